//! Instance ids made from the event ids the server gives claim events.
//!
//! A Hat event id is `(server, session, instance)`. Every server of a
//! redundant group counts sessions from 1 on its own, so `(session,
//! instance)` alone repeats across the group; with the server it is unique
//! for as long as each server keeps its store (a server restarted on its
//! store goes on from its last session). An instance id packs all three
//! into the 63 bits of a positive `i64`:
//!
//! ```text
//!   bit 62 ........ 55 54 ............... 16 15 ........ 0
//!   | server_id + 1  |       session        |  instance  |
//! ```
//!
//! The top field is never 0, so these ids never meet the ids of the
//! single-server scheme this backend used before (`session * 2^16 +
//! instance`, which is this layout with a zero top field): a store written
//! that way keeps its ids, and new ones are always new. Server ids 0 to 254
//! fit; sessions may grow to 2^39 (17 years at 1000 register requests a
//! second; hat-event 0.9.44 opens a session per request); the claims of one
//! request are its instances 1, 2, ... (at most
//! [`MAX_GROUP`](crate::claims::MAX_GROUP), far below 2^16).

use aimm_backend_api::{BackendError, EventId, InstanceId, Result};

/// Bits holding the claim event's instance.
const INSTANCE_BITS: u32 = 16;
/// Bits holding its session, above the instance.
const SESSION_BITS: u32 = 39;
/// The server field's value is `server_id + 1`, below `2^(63 - 55)`.
const SERVER_SHIFT: u32 = INSTANCE_BITS + SESSION_BITS;
/// The largest server id that fits.
const MAX_SERVER_ID: i64 = (1 << (63 - SERVER_SHIFT)) - 2;

/// The instance id a claim event numbered `event` stands for: unique
/// across every server of a group and never an id of the single-server
/// scheme (see the module docs).
pub(crate) fn instance_id(event: EventId) -> Result<InstanceId> {
    let servers = 0..=MAX_SERVER_ID;
    let sessions = 0..1i64 << SESSION_BITS;
    let instances = 0..1i64 << INSTANCE_BITS;
    if !servers.contains(&event.server)
        || !sessions.contains(&event.session)
        || !instances.contains(&event.instance)
    {
        return Err(BackendError::storage(format!(
            "claim event id server {} / session {} / instance {} is outside the range \
             instance ids are made from (server id 0 to {MAX_SERVER_ID}, session below \
             2^{SESSION_BITS}, instance below 2^{INSTANCE_BITS})",
            event.server, event.session, event.instance
        )));
    }
    // Sums, not ORs, of disjoint fields: the same value, and a mutation
    // test can tell every operator apart.
    Ok(((event.server + 1) << SERVER_SHIFT) + (event.session << INSTANCE_BITS) + event.instance)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The event id `(server, session, instance)`.
    pub(crate) fn event_id(server: i64, session: i64, instance: i64) -> EventId {
        EventId {
            server,
            session,
            instance,
        }
    }

    /// The id a claim numbered `(1, session, instance)` stands for: the
    /// server of the unit tests' fake is server 1.
    pub(crate) fn claimed(session: i64, instance: i64) -> InstanceId {
        instance_id(event_id(1, session, instance)).unwrap()
    }

    /// The id the single-server scheme made of `(session, instance)`.
    fn single_server_id(session: i64, instance: i64) -> InstanceId {
        session * 65536 + instance
    }

    #[test]
    fn ids_pack_server_session_and_instance() {
        assert_eq!(
            instance_id(event_id(1, 3, 5)).unwrap(),
            (2 << 55) + 3 * 65536 + 5
        );
        assert_eq!(instance_id(event_id(0, 0, 0)).unwrap(), 1 << 55);
        let largest = instance_id(event_id(254, (1 << 39) - 1, 65535)).unwrap();
        assert_eq!(largest, i64::MAX);
    }

    #[test]
    fn servers_numbering_alike_get_distinct_ids() {
        let ids: std::collections::BTreeSet<InstanceId> = (0..4)
            .flat_map(|server| {
                [(1, 1), (1, 2), (2, 1)]
                    .map(|(session, instance)| instance_id(event_id(server, session, instance)))
            })
            .map(Result::unwrap)
            .collect();
        assert_eq!(ids.len(), 12, "{ids:?}");
    }

    #[test]
    fn no_id_is_one_the_single_server_scheme_made() {
        let old = single_server_id((1 << 39) - 1, 65535);
        for server in [0, 1, 254] {
            let new = instance_id(event_id(server, 1, 1)).unwrap();
            assert!(new > old, "server {server}: {new} <= {old}");
        }
        assert_ne!(
            instance_id(event_id(1, 3, 1)).unwrap(),
            single_server_id(3, 1)
        );
    }

    #[test]
    fn event_ids_outside_the_range_are_refused() {
        for (server, session, instance) in [
            (255, 1, 1),
            (-1, 1, 1),
            (1, 1 << 39, 1),
            (1, -1, 1),
            (1, 1, 1 << 16),
            (1, 1, -1),
        ] {
            let err = instance_id(event_id(server, session, instance)).unwrap_err();
            assert!(
                err.message.contains("outside the range")
                    && err.message.contains(&format!("server {server} ")),
                "{err}"
            );
        }
    }
}
