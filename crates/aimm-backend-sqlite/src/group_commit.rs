//! Group commit: writers that arrive while a commit is in progress share the
//! next one.
//!
//! Every write is acknowledged only after the transaction holding it is
//! committed and synced. When several threads write at once, the first
//! becomes the *leader*: it takes every request waiting in the queue,
//! applies each in its own savepoint (so one failing request fails alone),
//! commits once (one sync), and hands each waiting thread its own result.
//! A single writer pays exactly what it would without grouping.

use aimm_backend_api::{BackendError, ErrorKind, Model, Result};
use aimm_backend_batcher::{reply, Batcher, Reply};
use std::collections::VecDeque;

/// At most this many writes share one commit...
const MAX_BATCH_WRITES: usize = 256;
/// ...and at most this many bytes of model data (the first write of a batch
/// is always taken, however large).
const MAX_BATCH_BYTES: usize = 64 << 20;

/// What a write does with its model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteKind {
    /// Store under a fresh id.
    Create,
    /// Replace the model with the same id.
    Update,
    /// Store under the model's own id.
    Import,
}

/// What a write did, once its transaction is over.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Written {
    /// The model as stored, with its id.
    pub model: Model,
    /// False for an update that found the model already as given, and
    /// wrote nothing.
    pub changed: bool,
}

/// One write waiting for a commit, and where its result goes.
pub(crate) struct Pending {
    pub kind: WriteKind,
    pub model: Model,
    reply: Reply<Result<Written>>,
}

impl Pending {
    /// Hands the writer its result.
    pub fn reply(self, result: Result<Written>) {
        self.reply.send(result);
    }
}

/// The queue of writes of one backend.
#[derive(Default)]
pub(crate) struct GroupCommit {
    batcher: Batcher<Pending>,
}

impl GroupCommit {
    /// Queues a write and returns its result once committed. `commit` applies
    /// a batch in one transaction and replies to every write in it.
    pub fn submit(
        &self,
        kind: WriteKind,
        model: Model,
        commit: impl Fn(Vec<Pending>),
    ) -> Result<Written> {
        let (reply, result) = reply();
        self.batcher.join(
            Pending { kind, model, reply },
            take_batch,
            |batch| {
                commit(batch);
                Vec::new()
            },
            |orphan| {
                orphan.reply(Err(BackendError::new(
                    ErrorKind::Storage,
                    "the write was not attempted: the thread committing writes panicked",
                )))
            },
        );
        result.wait(|| {
            Err(BackendError::new(
                ErrorKind::Storage,
                "the write was dropped: the thread committing it failed",
            ))
        })
    }
}

fn take_batch(pending: &mut VecDeque<Pending>) -> Vec<Pending> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while let Some(next) = pending.front() {
        let size = next.model.instance.len();
        let full = batch.len() >= MAX_BATCH_WRITES
            || (!batch.is_empty() && bytes + size > MAX_BATCH_BYTES);
        if full {
            break;
        }
        bytes += size;
        batch.extend(pending.pop_front());
    }
    batch
}

#[cfg(test)]
impl Pending {
    /// A write for tests that call the write path directly, and where its
    /// reply will arrive.
    pub(crate) fn for_test(
        kind: WriteKind,
        model: Model,
    ) -> (Self, aimm_backend_batcher::Waiting<Result<Written>>) {
        let (reply, result) = reply();
        (Pending { kind, model, reply }, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimm_backend_test_support::within;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn echo(batch: Vec<Pending>) {
        for pending in batch {
            let model = pending.model.clone();
            pending.reply(Ok(Written {
                model,
                changed: true,
            }));
        }
    }

    #[test]
    fn a_single_write_is_committed_alone_and_gets_its_result() {
        let group = Arc::new(GroupCommit::default());
        let batches = Arc::new(AtomicUsize::new(0));
        let counted = batches.clone();
        let model = within("a single write", move || {
            group.submit(WriteKind::Update, Model::new(7, "t", vec![1]), |batch| {
                assert_eq!(batch.len(), 1);
                assert_eq!(batch[0].kind, WriteKind::Update);
                counted.fetch_add(1, Ordering::SeqCst);
                echo(batch);
            })
        })
        .unwrap()
        .model;
        assert_eq!(model, Model::new(7, "t", vec![1]));
        assert_eq!(batches.load(Ordering::SeqCst), 1);
    }

    /// Queued creates of `lens` bytes each, and the receivers that keep
    /// their reply channels open.
    fn queued(
        lens: &[usize],
    ) -> (
        VecDeque<Pending>,
        Vec<aimm_backend_batcher::Waiting<Result<Written>>>,
    ) {
        lens.iter()
            .map(|&len| {
                let (reply, result) = reply();
                let pending = Pending {
                    kind: WriteKind::Create,
                    model: Model::new(0, "t", vec![0; len]),
                    reply,
                };
                (pending, result)
            })
            .unzip()
    }

    #[test]
    fn a_batch_holds_at_most_its_count_and_bytes_but_always_its_first_write() {
        let (mut pending, _replies) = queued(&[MAX_BATCH_BYTES + 1, 1, 1]);
        assert_eq!(
            take_batch(&mut pending).len(),
            1,
            "an oversized first write goes alone"
        );
        assert_eq!(take_batch(&mut pending).len(), 2);
        let (mut many, _replies) = queued(&[0; MAX_BATCH_WRITES + 1]);
        assert_eq!(take_batch(&mut many).len(), MAX_BATCH_WRITES);
        assert_eq!(take_batch(&mut many).len(), 1);
        let (mut exact, _replies) = queued(&[MAX_BATCH_BYTES / 2, MAX_BATCH_BYTES / 2, 1]);
        assert_eq!(
            take_batch(&mut exact).len(),
            2,
            "exactly MAX_BATCH_BYTES fits"
        );
        let (mut over, _replies) = queued(&[MAX_BATCH_BYTES / 2, MAX_BATCH_BYTES / 2 + 1]);
        assert_eq!(take_batch(&mut over).len(), 1, "one byte more does not fit");
    }

    #[test]
    fn a_dropped_write_is_an_error_not_a_hang() {
        let group = Arc::new(GroupCommit::default());
        let err = within("a write whose reply was dropped", move || {
            group.submit(WriteKind::Create, Model::new(0, "t", vec![]), drop)
        })
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Storage);
        assert!(err.message.contains("was dropped"), "{err}");
    }

    #[test]
    fn concurrent_writes_share_commits_and_each_gets_its_own_result() {
        let group = Arc::new(GroupCommit::default());
        let commits = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let group = group.clone();
                let commits = commits.clone();
                std::thread::spawn(move || {
                    group.submit(
                        WriteKind::Create,
                        Model::new(0, "t", vec![i as u8]),
                        |batch| {
                            commits.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            for pending in batch {
                                let mut model = pending.model.clone();
                                model.instance_id = 100 + model.instance[0] as i64;
                                pending.reply(Ok(Written {
                                    model,
                                    changed: true,
                                }));
                            }
                        },
                    )
                })
            })
            .collect();
        for (i, thread) in threads.into_iter().enumerate() {
            let model = within("a concurrent write", move || thread.join().unwrap())
                .unwrap()
                .model;
            assert_eq!(model.instance_id, 100 + i as i64);
        }
        assert!(
            commits.load(Ordering::SeqCst) < 16,
            "no write shared a commit"
        );
    }

    #[test]
    fn a_panicking_leader_fails_its_followers_instead_of_hanging_them() {
        let group = Arc::new(GroupCommit::default());
        let leader_group = group.clone();
        let watched = group.clone();
        let leader = std::thread::spawn(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                leader_group.submit(WriteKind::Create, Model::new(0, "t", vec![]), |_| {
                    // Panic only once a follower is queued behind this commit.
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                    while watched.batcher.queued() == 0 {
                        assert!(std::time::Instant::now() < deadline, "no follower queued");
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    panic!("boom")
                })
            }))
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !group.batcher.is_led() {
            assert!(std::time::Instant::now() < deadline, "the leader never led");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let follower_group = group.clone();
        let follower = std::thread::spawn(move || {
            follower_group.submit(WriteKind::Create, Model::new(0, "f", vec![]), echo)
        });
        let led = within("the panicking leader", move || leader.join().unwrap());
        assert!(led.is_err(), "the leader's panic is its own");
        let followed = within("the follower of a panicking leader", move || {
            follower.join().unwrap()
        });
        let err = followed.unwrap_err();
        assert!(err.message.contains("panicked"), "{err}");
        assert!(!group.batcher.is_led(), "leadership was released");
        // The next write goes through.
        let model = within("a write after the panic", move || {
            group.submit(WriteKind::Create, Model::new(0, "t", vec![]), echo)
        })
        .unwrap()
        .model;
        assert_eq!(model.model_type.as_str(), "t");
    }
}
