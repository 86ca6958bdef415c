//! Ids of new models, reserved in blocks.
//!
//! The Python backend's table is `AUTOINCREMENT`: SQLite gives a new row
//! `max(sqlite_sequence.seq, max(id)) + 1` and writes that id back to
//! `sqlite_sequence`, so that no id is ever handed out twice, even after
//! its row is deleted. That write back costs every create a second page in
//! its commit (a whole 64 KiB page of the one-row `sqlite_sequence` table:
//! a 4 KiB create wrote 140 KiB to the WAL, and 76 KiB without it). So the
//! writer raises `seq` by [`IdBlock::SIZE`] at once and inserts the ids up
//! to it itself: SQLite writes `seq` back only when a new id exceeds it.
//!
//! What `AUTOINCREMENT` promises still holds: every id of a block is above
//! every id and every `seq` the file had when the block was reserved, and
//! everyone else (other connections, other processes, the Python backend)
//! takes ids above the raised `seq`. An id of the block that someone took
//! meanwhile (an import of that id) makes the insert fail, and the writer
//! reserves a new block. The ids of a store written by one writer stay
//! 1, 2, 3, ...: closing the store gives the unused rest of its block back.
//! A process killed with a block reserved leaves a gap of at most
//! [`IdBlock::SIZE`] - 1 ids; others writing meanwhile take ids after the
//! block, so ids are no longer in the order the models were created.

use aimm_backend_api::InstanceId;
use rusqlite::{Connection, OptionalExtension};

/// The unused ids of the block the writer reserved: `next..=last`, empty
/// when `next > last` (as a new writer's is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdBlock {
    next: InstanceId,
    last: InstanceId,
}

impl Default for IdBlock {
    fn default() -> Self {
        IdBlock { next: 1, last: 0 }
    }
}

impl IdBlock {
    /// Ids reserved at once. A block costs one write of `sqlite_sequence`
    /// instead of one per create; a killed process loses the rest.
    pub(crate) const SIZE: InstanceId = 32;

    /// Reserves the next block in the transaction `conn` is in, taking its
    /// first id: raises `sqlite_sequence.seq` by [`Self::SIZE`] above the
    /// highest id the file has used.
    pub(crate) fn reserve(conn: &Connection) -> rusqlite::Result<(InstanceId, IdBlock)> {
        let used: InstanceId = conn
            .prepare_cached(
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'models'), 0), \
                 coalesce((SELECT max(id) FROM models), 0))",
            )?
            .query_row([], |row| row.get(0))?;
        let last = used.saturating_add(Self::SIZE);
        let raised = conn
            .prepare_cached("UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'models'")?
            .execute([last])?;
        if raised == 0 {
            conn.prepare_cached("INSERT INTO sqlite_sequence (name, seq) VALUES ('models', ?1)")?
                .execute([last])?;
        }
        let first = used + 1;
        Ok((
            first,
            IdBlock {
                next: first + 1,
                last,
            },
        ))
    }

    /// The next unused id of the block, if any is left.
    pub(crate) fn take(&mut self) -> Option<InstanceId> {
        (self.next <= self.last).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    /// Lowers `seq` back to the highest id used, unless someone raised it
    /// further meanwhile; commits. An id of the block that someone else
    /// took stays used: `seq` never falls below the highest id of the table.
    pub(crate) fn give_back(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if self.next > self.last {
            return Ok(());
        }
        conn.execute(
            "UPDATE sqlite_sequence SET seq = max(?1, (SELECT coalesce(max(id), 0) FROM models)) \
             WHERE name = 'models' AND seq = ?2",
            [self.next - 1, self.last],
        )?;
        *self = IdBlock::default();
        Ok(())
    }
}

/// Whether the `models` table is `AUTOINCREMENT` (the Python backend makes
/// it so); only then does `sqlite_sequence` decide its ids.
pub(crate) fn uses_autoincrement(conn: &Connection) -> rusqlite::Result<bool> {
    let sql: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'models'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    Ok(sql.is_some_and(|sql| sql.to_ascii_uppercase().contains("AUTOINCREMENT")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::open::CREATE_TABLE;

    fn table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute(CREATE_TABLE, []).unwrap();
        conn
    }

    fn seq(conn: &Connection) -> Option<InstanceId> {
        conn.query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'models'",
            [],
            |row| row.get(0),
        )
        .optional()
        .unwrap()
    }

    fn insert(conn: &Connection, id: InstanceId) {
        conn.execute(
            "INSERT INTO models (id, type, instance) VALUES (?1, 't', x'')",
            [id],
        )
        .unwrap();
    }

    #[test]
    fn a_block_on_a_new_table_is_1_to_its_size() {
        let conn = table();
        let (first, mut block) = IdBlock::reserve(&conn).unwrap();
        assert_eq!(first, 1);
        assert_eq!(seq(&conn), Some(IdBlock::SIZE));
        let rest: Vec<InstanceId> = std::iter::from_fn(|| block.take()).collect();
        assert_eq!(rest, (2..=IdBlock::SIZE).collect::<Vec<_>>());
        assert_eq!(block.take(), None, "an empty block stays empty");
    }

    #[test]
    fn a_block_starts_above_both_the_highest_id_and_seq() {
        let conn = table();
        insert(&conn, 5);
        conn.execute("UPDATE sqlite_sequence SET seq = 40", [])
            .unwrap();
        assert_eq!(IdBlock::reserve(&conn).unwrap().0, 41, "seq is higher");
        assert_eq!(seq(&conn), Some(40 + IdBlock::SIZE));

        insert(&conn, 500);
        conn.execute("UPDATE sqlite_sequence SET seq = 10", [])
            .unwrap();
        assert_eq!(IdBlock::reserve(&conn).unwrap().0, 501, "an id is higher");
        assert_eq!(seq(&conn), Some(500 + IdBlock::SIZE));
    }

    #[test]
    fn giving_back_lowers_seq_to_the_last_id_taken_and_empties_the_block() {
        let conn = table();
        let (first, mut block) = IdBlock::reserve(&conn).unwrap();
        let second = block.take().unwrap();
        insert(&conn, first);
        insert(&conn, second);
        block.give_back(&conn).unwrap();
        assert_eq!(seq(&conn), Some(2));
        assert_eq!(block.take(), None);
        conn.execute("UPDATE sqlite_sequence SET seq = 7", [])
            .unwrap();
        block.give_back(&conn).unwrap();
        assert_eq!(seq(&conn), Some(7), "an empty block gives nothing back");
    }

    #[test]
    fn giving_back_the_last_id_of_a_block_lowers_seq_by_one() {
        let conn = table();
        let (first, mut block) = IdBlock::reserve(&conn).unwrap();
        insert(&conn, first);
        for _ in 2..IdBlock::SIZE {
            insert(&conn, block.take().unwrap());
        }
        block.give_back(&conn).unwrap();
        assert_eq!(seq(&conn), Some(IdBlock::SIZE - 1));
    }

    #[test]
    fn giving_back_keeps_an_id_someone_took_and_a_seq_someone_raised() {
        let conn = table();
        let (first, mut block) = IdBlock::reserve(&conn).unwrap();
        insert(&conn, first);
        insert(&conn, 20);
        block.give_back(&conn).unwrap();
        assert_eq!(seq(&conn), Some(20), "id 20 would be handed out again");

        let (_, mut block) = IdBlock::reserve(&conn).unwrap();
        conn.execute("UPDATE sqlite_sequence SET seq = 1000", [])
            .unwrap();
        block.give_back(&conn).unwrap();
        assert_eq!(seq(&conn), Some(1000), "someone else's ids were given back");
    }

    #[test]
    fn only_an_autoincrement_models_table_takes_reserved_ids() {
        assert!(uses_autoincrement(&table()).unwrap());
        let conn = Connection::open_in_memory().unwrap();
        assert!(!uses_autoincrement(&conn).unwrap(), "no table");
        conn.execute(
            "CREATE TABLE models (id INTEGER PRIMARY KEY, type TEXT NOT NULL, instance BLOB)",
            [],
        )
        .unwrap();
        assert!(!uses_autoincrement(&conn).unwrap());
    }
}
