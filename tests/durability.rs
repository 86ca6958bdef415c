//! Nothing acknowledged is lost: several processes writing one SQLite file
//! at once, and a writer killed with SIGKILL in the middle of a stream.

use aimm_backend_tests::*;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
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
    let stdout = child.stdout.take().unwrap();
    BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
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
            let output = writer.wait_with_output().unwrap();
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
    const COUNT: usize = 400;
    const SIZE: usize = 64 * 1024;
    for (round, kill_after) in [(0, 25usize), (1, 120), (2, 250)] {
        let work = tempfile::tempdir().unwrap();
        let db = work.path().join("killed.db");
        let conf = sqlite_conf(work.path(), "c.yaml", &db, "");
        let tag = format!("k{round}");
        let mut writer = start_writer(work.path(), &conf, &tag, COUNT, SIZE);
        let stdout = writer.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut acknowledged = Vec::new();
        while acknowledged.len() < kill_after {
            let line = lines.next().expect("writer still running").unwrap();
            acknowledged.push(line.trim().parse::<i64>().unwrap());
        }
        // SIGKILL mid-stream: no chance to flush or close anything.
        writer.kill().unwrap();
        // Ids printed before the kill landed in the pipe are acknowledged too.
        acknowledged.extend(
            lines
                .map_while(Result::ok)
                .filter_map(|l| l.trim().parse::<i64>().ok()),
        );
        writer.wait().unwrap();
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
