//! Leader/follower batching: callers that arrive while a batch is being
//! processed share the next one.
//!
//! Each caller queues a *member* (its request and where its reply goes)
//! with [`Batcher::join`]. The first caller to find no leader becomes the
//! leader: it takes the queue in batches and processes each, until the
//! queue is empty, then returns like every other caller. A caller alone
//! pays exactly what it would without batching; callers that arrive during
//! a batch share the next one (one commit, one sync, one round trip).
//!
//! Replies travel on a [`reply`] channel of their own per member, so each
//! caller gets its own result, and a leader that unwinds fails every member
//! still queued instead of leaving its caller blocked for good.
//!
//! ```
//! use aimm_backend_batcher::{reply, Batcher, Reply};
//! use std::collections::VecDeque;
//!
//! struct Double {
//!     n: u32,
//!     reply: Reply<Result<u32, String>>,
//! }
//!
//! let batcher = Batcher::default();
//! let (answer, waiting) = reply();
//! batcher.join(
//!     Double { n: 21, reply: answer },
//!     |queue: &mut VecDeque<Double>| queue.drain(..).collect(),
//!     |batch| {
//!         for member in batch {
//!             member.reply.send(Ok(member.n * 2));
//!         }
//!         Vec::new()
//!     },
//!     |orphan| orphan.reply.send(Err("the leader panicked".into())),
//! );
//! assert_eq!(waiting.wait(|| Err("lost".into())), Ok(42));
//! ```

#![warn(missing_docs)]

use std::collections::VecDeque;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The queue of one batching point (a store's writes, a backend's claims).
pub struct Batcher<T> {
    queue: Mutex<Queue<T>>,
}

struct Queue<T> {
    waiting: VecDeque<T>,
    leader_active: bool,
}

impl<T> Default for Batcher<T> {
    fn default() -> Self {
        Batcher {
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                leader_active: false,
            }),
        }
    }
}

impl<T> Batcher<T> {
    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        // A leader that panicked has already failed what it held; the
        // queue itself is still consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many members wait for a batch (those being processed excluded).
    pub fn queued(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Whether a caller is leading now.
    pub fn is_led(&self) -> bool {
        self.lock().leader_active
    }

    /// Queues `member`; if no caller leads, leads until the queue is empty.
    ///
    /// The leader takes each batch with `take` (which may leave members
    /// queued for the next one) and hands it to `process`, which replies to
    /// the members it served and returns those to queue again, first in
    /// line. If the leader unwinds, every member still queued is handed to
    /// `orphan`, which must reply to it. Returns once the member is handed
    /// over (a follower) or the queue is empty (the leader); the caller then
    /// waits for its reply.
    pub fn join(
        &self,
        member: T,
        take: impl Fn(&mut VecDeque<T>) -> Vec<T>,
        process: impl Fn(Vec<T>) -> Vec<T>,
        orphan: impl Fn(T),
    ) {
        let lead = {
            let mut queue = self.lock();
            queue.waiting.push_back(member);
            !std::mem::replace(&mut queue.leader_active, true)
        };
        if lead {
            self.lead(&take, &process, &orphan);
        }
    }

    fn lead(
        &self,
        take: &impl Fn(&mut VecDeque<T>) -> Vec<T>,
        process: &impl Fn(Vec<T>) -> Vec<T>,
        orphan: &impl Fn(T),
    ) {
        let _leadership = Leadership {
            batcher: self,
            orphan,
        };
        loop {
            let batch = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    queue.leader_active = false;
                    return;
                }
                take(&mut queue.waiting)
            };
            let again = process(batch);
            let mut queue = self.lock();
            for member in again.into_iter().rev() {
                queue.waiting.push_front(member);
            }
        }
    }
}

/// Releases leadership if the leader unwinds, failing what is still queued
/// (each of those callers is blocked and would otherwise wait forever).
struct Leadership<'a, T, F: Fn(T)> {
    batcher: &'a Batcher<T>,
    orphan: &'a F,
}

impl<T, F: Fn(T)> Drop for Leadership<'_, T, F> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let orphans: Vec<T> = {
            let mut queue = self.batcher.lock();
            queue.leader_active = false;
            queue.waiting.drain(..).collect()
        };
        for member in orphans {
            (self.orphan)(member);
        }
    }
}

/// Where a member's reply goes.
pub struct Reply<R>(SyncSender<R>);

impl<R> Reply<R> {
    /// Hands the caller its reply.
    pub fn send(self, reply: R) {
        // The caller is blocked in `Waiting::wait`; it cannot have gone.
        let _ = self.0.send(reply);
    }
}

/// A caller waiting for its member's reply.
pub struct Waiting<R>(Receiver<R>);

impl<R> Waiting<R> {
    /// The reply, or `lost()` if the member was dropped unanswered (a
    /// `process` that forgot it, or that panicked while holding it).
    pub fn wait(self, lost: impl FnOnce() -> R) -> R {
        self.0.recv().unwrap_or_else(|_| lost())
    }
}

/// A reply channel for one member: the [`Reply`] goes into the member, the
/// caller keeps the [`Waiting`].
pub fn reply<R>() -> (Reply<R>, Waiting<R>) {
    let (sender, receiver) = sync_channel(1);
    (Reply(sender), Waiting(receiver))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimm_backend_test_support::within;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    struct Member {
        n: usize,
        reply: Reply<Result<usize, String>>,
    }

    fn take_all(queue: &mut VecDeque<Member>) -> Vec<Member> {
        queue.drain(..).collect()
    }

    fn orphaned(member: Member) {
        member.reply.send(Err("orphaned".into()));
    }

    fn submit(
        batcher: &Batcher<Member>,
        n: usize,
        process: impl Fn(Vec<Member>) -> Vec<Member>,
    ) -> Result<usize, String> {
        let (answer, waiting) = reply();
        batcher.join(Member { n, reply: answer }, take_all, process, orphaned);
        waiting.wait(|| Err("lost".into()))
    }

    #[test]
    fn a_caller_alone_leads_one_batch_of_itself() {
        let batcher = Arc::new(Batcher::default());
        let batches = Arc::new(AtomicUsize::new(0));
        let counted = batches.clone();
        let got = within("a lone caller", move || {
            submit(&batcher, 5, |batch| {
                assert_eq!(batch.len(), 1);
                counted.fetch_add(1, Ordering::SeqCst);
                for m in batch {
                    m.reply.send(Ok(m.n + 1));
                }
                Vec::new()
            })
        });
        assert_eq!(got, Ok(6));
        assert_eq!(batches.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn concurrent_callers_share_batches_and_each_gets_its_own_reply() {
        let batcher = Arc::new(Batcher::default());
        let batches = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..32)
            .map(|n| {
                let (batcher, batches) = (batcher.clone(), batches.clone());
                std::thread::spawn(move || {
                    submit(&batcher, n, |batch| {
                        batches.fetch_add(1, Ordering::SeqCst);
                        // Slow enough for the others to queue up behind.
                        std::thread::sleep(Duration::from_millis(20));
                        for m in batch {
                            m.reply.send(Ok(m.n * 10));
                        }
                        Vec::new()
                    })
                })
            })
            .collect();
        for (n, thread) in threads.into_iter().enumerate() {
            let got = within("a concurrent caller", move || thread.join().unwrap());
            assert_eq!(got, Ok(n * 10));
        }
        let batches = batches.load(Ordering::SeqCst);
        assert!(
            batches < 32,
            "{batches} batches for 32 callers: none shared"
        );
    }

    #[test]
    fn members_handed_back_go_first_in_the_next_batch() {
        let batcher = Arc::new(Batcher::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let got = within("a member served on its second batch", move || {
            submit(&batcher, 1, move |batch| {
                let mut log = log.lock().unwrap();
                log.push(batch.len());
                if log.len() == 1 {
                    return batch; // not served: again
                }
                for m in batch {
                    m.reply.send(Ok(m.n));
                }
                Vec::new()
            })
        });
        assert_eq!(got, Ok(1));
        assert_eq!(*seen.lock().unwrap(), [1, 1]);
    }

    #[test]
    fn take_may_leave_members_for_the_next_batch() {
        let sizes = within("members taken one per batch", || {
            let batcher = Batcher::default();
            let sizes = Mutex::new(Vec::new());
            let (first, first_waiting) = reply();
            let (second, second_waiting) = reply();
            // Both queued before anyone leads: hold leadership by hand.
            batcher.lock().leader_active = true;
            batcher.join(Member { n: 1, reply: first }, take_all, |b| b, orphaned);
            assert_eq!(
                batcher.queued(),
                1,
                "a member joining a led batcher is queued"
            );
            assert!(batcher.is_led());
            batcher.lock().leader_active = false;
            assert!(!batcher.is_led());
            batcher.join(
                Member {
                    n: 2,
                    reply: second,
                },
                |queue: &mut VecDeque<Member>| queue.pop_front().into_iter().collect(),
                |batch| {
                    sizes.lock().unwrap().push(batch.len());
                    for m in batch {
                        m.reply.send(Ok(m.n));
                    }
                    Vec::new()
                },
                orphaned,
            );
            assert_eq!(batcher.queued(), 0, "the leader left members queued");
            assert!(!batcher.is_led(), "the leader kept leading");
            assert_eq!(first_waiting.wait(|| Err("lost".into())), Ok(1));
            assert_eq!(second_waiting.wait(|| Err("lost".into())), Ok(2));
            sizes.into_inner().unwrap()
        });
        assert_eq!(sizes, [1, 1], "one member per batch");
    }

    #[test]
    fn a_panicking_leader_fails_the_queued_instead_of_hanging_them() {
        within("a batcher whose leader panics", || {
            let batcher = Arc::new(Batcher::default());
            let entered = Arc::new(std::sync::Barrier::new(2));
            let leader = {
                let (batcher, entered) = (batcher.clone(), entered.clone());
                std::thread::spawn(move || {
                    submit(&batcher, 0, |_batch| {
                        entered.wait();
                        // Let the follower queue up behind this batch.
                        std::thread::sleep(Duration::from_millis(200));
                        panic!("the leader's batch panicked");
                    })
                })
            };
            entered.wait();
            let follower = within("a follower of a panicking leader", {
                let batcher = batcher.clone();
                move || {
                    submit(&batcher, 1, |batch| {
                        for m in batch {
                            m.reply.send(Ok(m.n));
                        }
                        Vec::new()
                    })
                }
            });
            let led = within("the panicking leader", move || leader.join());
            assert!(led.is_err(), "the leader's panic was swallowed");
            // Either the follower queued in time and was failed, or it came
            // after the leader gave up and led (and served) itself.
            assert!(
                follower == Err("orphaned".into()) || follower == Ok(1),
                "{follower:?}"
            );
            let after = within("a caller after the panic", move || {
                submit(&batcher, 2, |batch| {
                    for m in batch {
                        m.reply.send(Ok(m.n));
                    }
                    Vec::new()
                })
            });
            assert_eq!(after, Ok(2), "leadership was not released");
        });
    }

    #[test]
    fn a_member_dropped_unanswered_is_lost_not_a_hang() {
        let batcher = Arc::new(Batcher::default());
        let got = within("a dropped member", move || {
            submit(&batcher, 1, |_batch| Vec::new())
        });
        assert_eq!(got, Err("lost".into()));
    }
}
