//! Ids of new models, reserved in blocks.
//!
//! The Python backend's table is `AUTOINCREMENT`: SQLite gives a new row
//! `max(sqlite_sequence.seq, max(id)) + 1` and writes that id back to
//! `sqlite_sequence`, so that each new id is above every id the table ever
//! held, a deleted model's too. That write back costs every create a second
//! page in its commit (a whole 64 KiB page of the one-row `sqlite_sequence`
//! table: a 4 KiB create wrote 140 KiB to the WAL, and 76 KiB without it).
//! So a writer that finds nobody else writing raises `seq` by
//! [`IdBlock::SIZE`] at once and inserts the ids up to it itself: SQLite
//! writes `seq` back only when a new id exceeds it.
//!
//! The promise holds as SQLite keeps it. Each id of a block is checked when
//! it is taken, in the write transaction of its insert: `seq` must still be
//! where the writer left it (nobody else has inserted since: SQLite raises
//! `seq` past every id it inserts) and no model may have an id as high (an
//! import). Otherwise the rest of the block is dropped and the writer takes
//! a block of one id (SQLite's own way) until it finds `seq` untouched
//! again. So ids grow in the order they are handed out, whoever writes;
//! writers that take turns get consecutive ids, and a writer that finds
//! another writing leaves the rest of its block as a gap (at most
//! [`IdBlock::SIZE`] - 1 ids), as does a process killed with a block
//! reserved. Closing the store gives the unused rest back: one writer's ids
//! stay 1, 2, 3, ... across restarts. The one way around the promise: a
//! model imported under an id inside the block and deleted again before
//! the writer takes that id.

use aimm_backend_api::InstanceId;
use rusqlite::{Connection, OptionalExtension};

/// The ids a writer reserved: `next..=last`, used up when `next > last`.
/// `last` is also where the writer left `sqlite_sequence.seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdBlock {
    next: InstanceId,
    last: InstanceId,
}

impl Default for IdBlock {
    /// A writer that has not reserved yet: its first block is one id.
    fn default() -> Self {
        IdBlock { next: 1, last: 0 }
    }
}

impl IdBlock {
    /// Ids reserved at once by a writer that found nobody else writing. A
    /// block costs one write of `sqlite_sequence` instead of one per
    /// create; a killed process loses the rest.
    pub(crate) const SIZE: InstanceId = 32;

    /// The id of the next new model, in the transaction that inserts it:
    /// the next of the block if the block is still above everything (`seq`
    /// where this writer left it, no higher id in the table), else the
    /// first of a new block, which raises `sqlite_sequence.seq` above every
    /// id the file has used: by [`Self::SIZE`] if `seq` is where this
    /// writer left it, else (another writer, or the first block) by one.
    /// A block with no row in `sqlite_sequence` yet is one id, and SQLite
    /// writes the row when the id is inserted.
    pub(crate) fn next_id(&mut self, conn: &Connection) -> rusqlite::Result<InstanceId> {
        let (seq, highest) = file_ids(conn)?;
        if self.next <= self.last && seq == self.last && highest < self.next {
            self.next += 1;
            return Ok(self.next - 1);
        }
        let alone = self.last > 0 && seq == self.last;
        let used = seq.max(highest);
        let last = used.saturating_add(if alone { Self::SIZE } else { 1 });
        conn.prepare_cached("UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'models'")?
            .execute([last])?;
        *self = IdBlock {
            next: used + 2,
            last,
        };
        Ok(used + 1)
    }

    /// Lowers `seq` back to the highest id taken, unless someone raised it
    /// further meanwhile; commits. `seq` never falls below the highest id
    /// of the table.
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

/// `sqlite_sequence.seq` for `models` and the table's highest id (0 for
/// none).
fn file_ids(conn: &Connection) -> rusqlite::Result<(InstanceId, InstanceId)> {
    conn.prepare_cached(
        "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'models'), 0), \
         coalesce((SELECT max(id) FROM models), 0)",
    )?
    .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
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

    fn set_seq(conn: &Connection, seq: InstanceId) {
        conn.execute("UPDATE sqlite_sequence SET seq = ?1", [seq])
            .unwrap();
    }

    fn insert(conn: &Connection, id: InstanceId) {
        conn.execute(
            "INSERT INTO models (id, type, instance) VALUES (?1, 't', x'')",
            [id],
        )
        .unwrap();
    }

    /// Creates as `create` does; returns the id.
    fn create(conn: &Connection, block: &mut IdBlock) -> InstanceId {
        let id = block.next_id(conn).unwrap();
        insert(conn, id);
        id
    }

    /// A writer that has created models 1 and 2, the second from a block.
    fn writer_holding_a_block(conn: &Connection) -> IdBlock {
        let mut block = IdBlock::default();
        create(conn, &mut block);
        create(conn, &mut block);
        block
    }

    /// A plain `AUTOINCREMENT` insert, as the Python backend makes it.
    fn insert_as_python(conn: &Connection) -> InstanceId {
        conn.execute("INSERT INTO models (type, instance) VALUES ('py', x'')", [])
            .unwrap();
        conn.last_insert_rowid()
    }

    #[test]
    fn a_writer_alone_reserves_one_id_then_blocks() {
        let conn = table();
        let mut block = IdBlock::default();
        assert_eq!(create(&conn, &mut block), 1);
        assert_eq!(seq(&conn), Some(1), "a first reservation is one id");
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_sequence", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 1);
        assert_eq!(create(&conn, &mut block), 2);
        assert_eq!(seq(&conn), Some(1 + IdBlock::SIZE));
        let ids: Vec<InstanceId> = (0..IdBlock::SIZE)
            .map(|_| create(&conn, &mut block))
            .collect();
        assert_eq!(ids, (3..3 + IdBlock::SIZE).collect::<Vec<_>>());
        assert_eq!(seq(&conn), Some(1 + 2 * IdBlock::SIZE), "the next block");
    }

    #[test]
    fn a_block_starts_above_both_the_highest_id_and_seq() {
        let conn = table();
        insert(&conn, 5);
        set_seq(&conn, 40);
        assert_eq!(create(&conn, &mut IdBlock::default()), 41, "seq is higher");
        insert(&conn, 500);
        set_seq(&conn, 10);
        assert_eq!(
            create(&conn, &mut IdBlock::default()),
            501,
            "an id is higher"
        );
    }

    #[test]
    fn writers_taking_turns_get_growing_consecutive_ids() {
        let conn = table();
        let mut block = IdBlock::default();
        assert_eq!(
            [create(&conn, &mut block), create(&conn, &mut block)],
            [1, 2]
        );
        // Python inserts while this writer holds 3..=33: above the block,
        // as SQLite gives ids, and this writer's next id above Python's.
        let jumped = insert_as_python(&conn);
        assert_eq!(jumped, 2 + IdBlock::SIZE);
        let turns: Vec<InstanceId> = (0..3)
            .flat_map(|_| [create(&conn, &mut block), insert_as_python(&conn)])
            .collect();
        assert_eq!(turns, (jumped + 1..=jumped + 6).collect::<Vec<_>>());
    }

    #[test]
    fn a_writer_left_alone_again_goes_back_to_blocks() {
        let conn = table();
        let mut block = IdBlock::default();
        create(&conn, &mut block);
        insert_as_python(&conn);
        assert_eq!(create(&conn, &mut block), 3);
        assert_eq!(seq(&conn), Some(3), "one id while another writes");
        assert_eq!(create(&conn, &mut block), 4);
        assert_eq!(seq(&conn), Some(3 + IdBlock::SIZE), "no block once alone");
    }

    #[test]
    fn giving_back_lowers_seq_to_the_last_id_taken() {
        let conn = table();
        let mut block = writer_holding_a_block(&conn);
        block.give_back(&conn).unwrap();
        assert_eq!(seq(&conn), Some(2));
        set_seq(&conn, 7);
        block.give_back(&conn).unwrap();
        assert_eq!(seq(&conn), Some(7), "a used-up block gives nothing back");
    }

    #[test]
    fn giving_back_the_last_id_of_a_block_lowers_seq_by_one() {
        let conn = table();
        let mut block = IdBlock::default();
        for _ in 0..IdBlock::SIZE {
            create(&conn, &mut block);
        }
        assert_eq!(seq(&conn), Some(1 + IdBlock::SIZE), "one id left");
        block.give_back(&conn).unwrap();
        assert_eq!(seq(&conn), Some(IdBlock::SIZE));
    }

    #[test]
    fn giving_back_keeps_an_id_someone_took_and_a_seq_someone_raised() {
        let conn = table();
        let mut block = writer_holding_a_block(&conn);
        insert(&conn, 20);
        block.give_back(&conn).unwrap();
        assert_eq!(seq(&conn), Some(20), "id 20 would be handed out again");

        let mut block = writer_holding_a_block(&conn);
        set_seq(&conn, 1000);
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
