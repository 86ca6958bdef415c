//! Nothing acknowledged is lost: several processes writing one SQLite file
//! at once, and a writer killed with SIGKILL in the middle of a stream.

use aimm_backend_tests::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Stdio};

/// Starts `aimm-backend put` of `count` files of `size` bytes.
fn start_writer(work: &Path, conf: &Path, tag: &str, count: usize, size: usize) -> Child {
    let files_dir = work.join(format!("files-{tag}"));
    std::fs::create_dir_all(&files_dir).unwrap();
    let files: Vec<_> = (0..count)
        .map(|i| {
            let path = files_dir.join(format!("{i}.bin"));
            std::fs::write(&path, payload(tag, i, size)).unwrap();
            path
        })
        .collect();
    cli(work)
        .arg("--conf")
        .arg(conf)
        .args(["put", &format!("writer.{tag}")])
        .args(&files)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn payload(tag: &str, i: usize, size: usize) -> Vec<u8> {
    let seed = tag.bytes().fold(i as u64 * 7919, |h, b| {
        h.wrapping_mul(31).wrapping_add(b as u64)
    });
    test_bytes(seed, size)
}

/// Checks that every id the writer printed is stored with its bytes.
fn assert_acknowledged_present(db: &Path, tag: &str, acknowledged: &[i64], size: usize) {
    let rows = read_models_table(db);
    for (i, id) in acknowledged.iter().enumerate() {
        let row = rows
            .iter()
            .find(|(row_id, _, _)| row_id == id)
            .unwrap_or_else(|| panic!("acknowledged model {id} of writer {tag} is missing"));
        assert_eq!(row.1, format!("writer.{tag}"));
        assert!(
            row.2 == payload(tag, i, size),
            "model {id} of writer {tag} has other bytes"
        );
    }
}

fn read_ids(child: &mut Child) -> Vec<i64> {
    ChildLines::new(child.stdout.take().unwrap(), "aimm-backend put")
        .rest_within(COMMAND_DEADLINE)
        .iter()
        .map(|line| line.trim().parse().expect("put prints ids"))
        .collect()
}

#[test]
fn three_processes_writing_one_file_lose_nothing() {
    const COUNT: usize = 300;
    const SIZE: usize = 64 * 1024;
    for journal in ["wal", "delete"] {
        let work = tempfile::tempdir().unwrap();
        let db = work.path().join("shared.db");
        let conf = sqlite_conf(
            work.path(),
            "c.yaml",
            &db,
            &format!("  journal_mode: {journal}\n"),
        );
        let tags = ["a", "b", "c"];
        let mut writers: Vec<Child> = tags
            .iter()
            .map(|tag| start_writer(work.path(), &conf, tag, COUNT, SIZE))
            .collect();
        let ids: Vec<Vec<i64>> = writers.iter_mut().map(read_ids).collect();
        for (writer, tag) in writers.into_iter().zip(tags) {
            let output = wait_within(writer, COMMAND_DEADLINE, "aimm-backend put");
            assert!(
                output.status.success(),
                "writer {tag} ({journal}): {}",
                describe(&output)
            );
        }
        let mut all = BTreeSet::new();
        for (tag, ids) in tags.iter().zip(&ids) {
            assert_eq!(
                ids.len(),
                COUNT,
                "writer {tag} acknowledged {} of {COUNT}",
                ids.len()
            );
            assert_acknowledged_present(&db, tag, ids, SIZE);
            all.extend(ids.iter().copied());
        }
        assert_eq!(
            all.len(),
            3 * COUNT,
            "ids were handed out twice ({journal})"
        );
        assert_eq!(read_models_table(&db).len(), 3 * COUNT);
        assert_eq!(integrity_check(&db), "ok", "journal mode {journal}");
    }
}

#[test]
fn every_acknowledged_create_survives_kill_9() {
    // Many small files: a pipelined put commits them fast, and the kill
    // must still land mid-stream on a loaded machine.
    const COUNT: usize = 20_000;
    const SIZE: usize = 4 * 1024;
    for (round, kill_after) in [(0, 25usize), (1, 120), (2, 250)] {
        let work = tempfile::tempdir().unwrap();
        let db = work.path().join("killed.db");
        let conf = sqlite_conf(work.path(), "c.yaml", &db, "");
        let tag = format!("k{round}");
        let mut writer = start_writer(work.path(), &conf, &tag, COUNT, SIZE);
        let lines = ChildLines::new(writer.stdout.take().unwrap(), "aimm-backend put");
        let mut acknowledged = Vec::new();
        while acknowledged.len() < kill_after {
            let line = lines
                .next_within(COMMAND_DEADLINE)
                .expect("writer still running");
            acknowledged.push(line.trim().parse::<i64>().unwrap());
        }
        // SIGKILL mid-stream: no chance to flush or close anything.
        writer.kill().unwrap();
        // Ids printed before the kill landed in the pipe are acknowledged too.
        acknowledged.extend(
            lines
                .rest_within(COMMAND_DEADLINE)
                .iter()
                .filter_map(|l| l.trim().parse::<i64>().ok()),
        );
        wait_within(writer, COMMAND_DEADLINE, "the killed writer");
        assert!(
            acknowledged.len() < COUNT,
            "the writer finished before the kill; kill earlier"
        );
        assert_acknowledged_present(&db, &tag, &acknowledged, SIZE);
        assert_eq!(integrity_check(&db), "ok");
        // The store keeps working after the crash, and never reuses an id.
        let file = write_file(work.path(), "after.bin", "after");
        let new_id = put_one(work.path(), &conf, "after", &file);
        assert!(
            acknowledged.iter().all(|&id| id < new_id),
            "id {new_id} reused after the crash"
        );
    }
}

/// A commit that fails (here: the file size limit is hit while the commit
/// writes the WAL or the database, as on a full disk) is never
/// acknowledged: `put` prints no id for it, exits 1 naming the file, and
/// stores nothing of it; the next write works.
#[test]
fn a_failed_commit_is_never_acknowledged() {
    const LIMIT: usize = 512 << 10;
    for journal in ["wal", "delete"] {
        let work = tempfile::tempdir().unwrap();
        let db = work.path().join("full.db");
        let conf = sqlite_conf(
            work.path(),
            "c.yaml",
            &db,
            &format!("  journal_mode: {journal}\n"),
        );
        let first = write_file(work.path(), "first.bin", "first");
        let first_id = put_one(work.path(), &conf, "before", &first);
        let small = work.path().join("small.bin");
        std::fs::write(&small, test_bytes(1, 10 << 10)).unwrap();
        // Small enough to stay in SQLite's page cache until the commit, so
        // that it is the commit's writes that cross the limit.
        let big = work.path().join("big.bin");
        std::fs::write(&big, test_bytes(2, 800 << 10)).unwrap();
        let output = output_within(
            limited_file_size(work.path(), LIMIT)
                .arg("--conf")
                .arg(&conf)
                .args(["put", "limited"])
                .args([&small, &big, &small]),
            std::time::Duration::from_secs(60),
            "put under a file size limit",
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let printed: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            output.status.code(),
            Some(1),
            "{journal}: {}",
            describe(&output)
        );
        assert_eq!(printed.len(), 1, "{journal}: ids printed: {printed:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("big.bin"), "{journal}: {stderr}");
        assert!(!stderr.contains("panicked"), "{journal}: {stderr}");

        let small_id: i64 = printed[0].parse().unwrap();
        // The second small file was in flight with the big one; if it was
        // stored, stderr names it with its id, and nothing else is stored.
        let stored_too: Vec<i64> = stderr
            .lines()
            .filter_map(|line| line.split_once("was stored too, as id "))
            .map(|(_, rest)| rest.split_whitespace().next().unwrap().parse().unwrap())
            .collect();
        assert!(stored_too.len() <= 1, "{journal}: {stderr}");
        let rows = read_models_table(&db);
        let ids: Vec<i64> = rows.iter().map(|row| row.0).collect();
        // Creates in flight together take ids in the order they reach the
        // store, not the order of the files: compare the ids as a set.
        let mut expected: Vec<i64> = [first_id, small_id].into_iter().chain(stored_too).collect();
        expected.sort_unstable();
        assert_eq!(ids, expected, "{journal}: rows after the failure");
        let small_row = rows.iter().find(|row| row.0 == small_id).unwrap();
        assert!(small_row.2 == test_bytes(1, 10 << 10), "{journal}");
        assert_eq!(integrity_check(&db), "ok", "{journal}");

        // Without the limit, the same model goes in, byte-exact.
        let big_id = put_one(work.path(), &conf, "limited", &big);
        assert!(big_id > small_id, "{journal}");
        let rows = read_models_table(&db);
        assert_eq!(rows.len(), expected.len() + 1, "{journal}");
        assert!(
            rows.last().unwrap().2 == test_bytes(2, 800 << 10),
            "{journal}"
        );
        assert_eq!(integrity_check(&db), "ok", "{journal}");
    }
}

/// The CLI, run with a file size limit of `bytes`: a write past it fails
/// with EFBIG (`SIGXFSZ` is ignored, as a disk-full error would not kill).
fn limited_file_size(home: &Path, bytes: usize) -> std::process::Command {
    let mut command = std::process::Command::new("sh");
    isolate(&mut command, home)
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; exec prlimit --fsize={bytes}:{bytes} \"$0\" \"$@\""
        ))
        .arg(cli_binary());
    command
}
