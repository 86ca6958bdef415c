//! Instance ids handed out in groups: creates that wait for an id at the
//! same time share one check that the ids are free (and one claim
//! registration, when the backend's pool of ids claimed ahead runs short).
//!
//! The first create to ask becomes the *leader*: it takes every create
//! waiting (itself included, at most [`MAX_GROUP`]), has that many ids
//! handed out and checked, and hands them on in order. Ids found taken are
//! dropped, and the creates left without one wait for the next round. How
//! an id is checked is the backend's business (`EventBackend::claim_ids`).

use aimm_backend_api::{BackendError, InstanceId, Result};
use aimm_backend_batcher::{reply, Batcher, Reply};
use std::collections::VecDeque;

/// At most this many ids are claimed in one registration.
pub(crate) const MAX_GROUP: usize = 256;

/// How often a create waits for another round when the ids it was handed
/// were all taken already.
pub(crate) const MAX_CLAIMS: usize = 16;

/// A create waiting for its id.
struct Waiter {
    reply: Reply<Result<InstanceId>>,
    /// Rounds in which every id this create could have had was taken.
    rounds: usize,
}

/// The id claims of one backend.
#[derive(Default)]
pub(crate) struct Claims {
    batcher: Batcher<Waiter>,
}

impl Claims {
    /// A fresh id. `claim` claims `n` ids in one go and returns those that
    /// are free, in order (possibly fewer than `n`).
    pub(crate) fn next(
        &self,
        claim: impl Fn(usize) -> Result<Vec<InstanceId>>,
    ) -> Result<InstanceId> {
        let (reply, result) = reply();
        self.batcher.join(
            Waiter { reply, rounds: 0 },
            take_group,
            // Those left without an id go first in the next round.
            |group| hand_out(group, &claim),
            |orphan| {
                orphan.reply.send(Err(BackendError::storage(
                    "no instance id: the thread claiming ids panicked",
                )))
            },
        );
        result.wait(|| {
            Err(BackendError::storage(
                "no instance id: the thread claiming ids failed",
            ))
        })
    }
}

fn take_group(waiting: &mut VecDeque<Waiter>) -> Vec<Waiter> {
    let n = waiting.len().min(MAX_GROUP);
    waiting.drain(..n).collect()
}

/// Claims ids for `group` and replies to each waiter that got one (or to
/// all, with the error, if the claim failed). Returns the waiters left
/// without an id that may try again.
fn hand_out(group: Vec<Waiter>, claim: &impl Fn(usize) -> Result<Vec<InstanceId>>) -> Vec<Waiter> {
    let ids = match claim(group.len()) {
        Ok(ids) => ids,
        Err(err) => {
            for waiter in group {
                waiter.reply.send(Err(err.clone()));
            }
            return Vec::new();
        }
    };
    let mut ids = ids.into_iter();
    let mut again = Vec::new();
    for mut waiter in group {
        if let Some(id) = ids.next() {
            waiter.reply.send(Ok(id));
            continue;
        }
        waiter.rounds += 1;
        if waiter.rounds < MAX_CLAIMS {
            again.push(waiter);
        } else {
            waiter.reply.send(Err(BackendError::storage(format!(
                "{MAX_CLAIMS} claimed instance ids in a row were taken already"
            ))));
        }
    }
    again
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimm_backend_test_support::within;
    use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_create_alone_claims_one_id() {
        let claims = Arc::new(Claims::default());
        let id = within("a claim", move || {
            claims.next(|n| {
                assert_eq!(n, 1);
                Ok(vec![42])
            })
        });
        assert_eq!(id.unwrap(), 42);
    }

    #[test]
    fn creates_waiting_together_share_claims_and_get_distinct_ids() {
        let claims = Arc::new(Claims::default());
        let rounds = Arc::new(AtomicUsize::new(0));
        let next = Arc::new(AtomicI64::new(1));
        let threads: Vec<_> = (0..32)
            .map(|_| {
                let (claims, rounds, next) = (claims.clone(), rounds.clone(), next.clone());
                std::thread::spawn(move || {
                    claims.next(|n| {
                        rounds.fetch_add(1, Ordering::SeqCst);
                        // Slow enough for the others to queue up behind.
                        std::thread::sleep(Duration::from_millis(20));
                        let first = next.fetch_add(n as i64, Ordering::SeqCst);
                        Ok((first..first + n as i64).collect())
                    })
                })
            })
            .collect();
        let mut ids: Vec<InstanceId> = threads
            .into_iter()
            .map(|t| within("a grouped claim", move || t.join().unwrap()).unwrap())
            .collect();
        ids.sort();
        assert_eq!(ids, (1..=32).collect::<Vec<_>>());
        assert!(rounds.load(Ordering::SeqCst) < 32, "no claim was shared");
    }

    #[test]
    fn creates_left_without_an_id_try_again_and_give_up_after_max_claims() {
        let claims = Arc::new(Claims::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let err = within("claims that never succeed", move || {
            claims.next(|_| {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(Vec::new())
            })
        })
        .unwrap_err();
        assert!(err.message.contains("16 claimed instance ids"), "{err}");
        assert_eq!(calls.load(Ordering::SeqCst), MAX_CLAIMS);
        let claims = Arc::new(Claims::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let id = within("a claim that succeeds the third time", move || {
            claims.next(|_| {
                let call = counted.fetch_add(1, Ordering::SeqCst);
                Ok(if call == 2 { vec![7] } else { Vec::new() })
            })
        });
        assert_eq!(id.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_failed_claim_fails_its_group_and_the_next_create_claims_again() {
        let claims = Arc::new(Claims::default());
        let failing = claims.clone();
        let err = within("a failed claim", move || {
            failing.next(|_| Err(BackendError::storage("server gone")))
        })
        .unwrap_err();
        assert_eq!(err.message, "server gone");
        let id = within("a claim after a failure", move || {
            claims.next(|_| Ok(vec![3]))
        });
        assert_eq!(id.unwrap(), 3);
    }

    #[test]
    fn at_most_max_group_ids_are_claimed_at_once() {
        let claims = Arc::new(Claims::default());
        let largest = Arc::new(AtomicUsize::new(0));
        let next = Arc::new(AtomicI64::new(0));
        let threads: Vec<_> = (0..MAX_GROUP + 40)
            .map(|_| {
                let (claims, largest, next) = (claims.clone(), largest.clone(), next.clone());
                std::thread::spawn(move || {
                    claims.next(|n| {
                        largest.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(50));
                        let first = next.fetch_add(n as i64, Ordering::SeqCst);
                        Ok((first..first + n as i64).collect())
                    })
                })
            })
            .collect();
        for thread in threads {
            within("a claim", move || thread.join().unwrap()).unwrap();
        }
        assert!(largest.load(Ordering::SeqCst) <= MAX_GROUP);
    }

    #[test]
    fn a_panicking_leader_fails_the_creates_waiting_behind_it() {
        let claims = Arc::new(Claims::default());
        let leader_claims = claims.clone();
        let watched = claims.clone();
        let leader = std::thread::spawn(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                leader_claims.next(|_| {
                    let deadline = std::time::Instant::now() + Duration::from_secs(30);
                    while watched.batcher.queued() == 0 {
                        assert!(std::time::Instant::now() < deadline, "no follower");
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    panic!("boom")
                })
            }))
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !claims.batcher.is_led() {
            assert!(std::time::Instant::now() < deadline, "the leader never led");
            std::thread::sleep(Duration::from_millis(5));
        }
        let follower_claims = claims.clone();
        let follower = std::thread::spawn(move || follower_claims.next(|_| Ok(vec![1])));
        assert!(within("the leader", move || leader.join().unwrap()).is_err());
        let err = within("the follower", move || follower.join().unwrap()).unwrap_err();
        assert!(err.message.contains("panicked"), "{err}");
        let id = within("a claim after the panic", move || {
            claims.next(|_| Ok(vec![9]))
        });
        assert_eq!(id.unwrap(), 9);
    }
}
