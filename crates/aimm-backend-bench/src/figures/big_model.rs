//! Figure 6: time and peak RSS of writing and of reading one very large
//! model, each step in a fresh child process reading `VmHWM` (`__big-write`,
//! `__big-read`, the read verified byte for byte), retried below SQLite's
//! default blob limit when the size is refused; for context, the same write
//! as bare `rusqlite` steps, each timed (`__big-bare-write`).

use anyhow::{bail, Result};
use serde_json::json;

use super::Bench;
use crate::child;
use aimm_backend_bench::stats::{secs, verdict};
use aimm_backend_bench::sysinfo;

/// Largest blob SQLite accepts with its default `SQLITE_MAX_LENGTH`
/// (10^9 bytes, record header included), rounded down: the fallback size
/// for figure 6 when the requested size is refused.
const SQLITE_DEFAULT_MAX_BLOB: usize = 999_000_000;

impl Bench {
    /// Figure 6: peak RSS of writing and reading one very large model.
    pub(crate) fn big_model(&mut self) -> Result<()> {
        let p = self.params.clone();
        let dir = self.fresh_dir("big-")?;
        let plugin = self.plugin_path.to_string_lossy().into_owned();
        let mut attempts = Vec::new();
        let mut size = p.big_size;
        let (write, db) = loop {
            let db = dir.path().join(format!("big-{size}.db"));
            progress!("create_model of {} bytes in a child process", size);
            let write = child::spawn(&[
                "__big-write".into(),
                "--plugin".into(),
                plugin.clone(),
                "--db".into(),
                db.to_string_lossy().into_owned(),
                "--size".into(),
                size.to_string(),
            ])?;
            attempts.push(write.clone());
            if write["id"].is_i64() {
                break (write, db);
            }
            if size <= SQLITE_DEFAULT_MAX_BLOB {
                bail!("create_model of {size} bytes failed: {}", write["error"]);
            }
            progress!(
                "refused: {}; retrying at {} bytes",
                write["error"],
                SQLITE_DEFAULT_MAX_BLOB
            );
            let _ = std::fs::remove_file(&db);
            size = SQLITE_DEFAULT_MAX_BLOB;
        };
        let id = write["id"].as_i64().unwrap_or(0);
        progress!("get_model of {} bytes in a child process", size);
        let read = child::spawn(&[
            "__big-read".into(),
            "--plugin".into(),
            plugin,
            "--db".into(),
            db.to_string_lossy().into_owned(),
            "--id".into(),
            id.to_string(),
            "--size".into(),
            size.to_string(),
        ])?;
        let file_size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
        let _ = std::fs::remove_file(&db);
        // where the write's time goes: the same write as bare rusqlite steps
        let mut bare = Vec::new();
        for method in ["incremental", "bind"] {
            progress!("bare rusqlite write of {size} bytes ({method}) in a child process");
            let bare_db = dir.path().join(format!("bare-{method}.db"));
            bare.push(child::spawn(&[
                "__big-bare-write".into(),
                "--db".into(),
                bare_db.to_string_lossy().into_owned(),
                "--size".into(),
                size.to_string(),
                "--method".into(),
                method.into(),
            ])?);
            let _ = std::fs::remove_file(&bare_db);
        }
        drop(dir);

        println!("## Figure 6: one large model, fresh process per step\n");
        for failed in attempts.iter().filter(|a| !a["id"].is_i64()) {
            println!(
                "- create_model of **{} bytes ({:.0} MiB) was refused**: {}",
                failed["size"],
                sysinfo::mib(failed["size"].as_u64().unwrap_or(0)),
                failed["error"].as_str().unwrap_or("?")
            );
        }
        if attempts.len() > 1 {
            println!(
                "- measured instead at {size} bytes ({:.0} MiB), below SQLite's default 10^9-byte limit\n",
                sysinfo::mib(size as u64)
            );
        }
        println!("| step | seconds | peak RSS above baseline | / model size |");
        println!("|---|---|---|---|");
        let size_f = size as f64;
        let w_delta = write["peak_rss"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(write["baseline_rss"].as_u64().unwrap_or(0));
        let w_buf = write["after_buffer_rss"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(write["baseline_rss"].as_u64().unwrap_or(0));
        let r_delta = read["peak_rss"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(read["baseline_rss"].as_u64().unwrap_or(0));
        println!(
            "| caller fills its buffer (before create_model) | - | {:.0} MiB | {:.2}x |",
            sysinfo::mib(w_buf),
            w_buf as f64 / size_f
        );
        println!(
            "| create_model (buffer included) | {} | {:.0} MiB | {:.2}x |",
            secs(write["secs"].as_f64().unwrap_or(f64::NAN)),
            sysinfo::mib(w_delta),
            w_delta as f64 / size_f
        );
        println!(
            "| get_model | {} | {:.0} MiB | {:.2}x |",
            secs(read["secs"].as_f64().unwrap_or(f64::NAN)),
            sysinfo::mib(r_delta),
            r_delta as f64 / size_f
        );
        println!(
            "\nread verified byte for byte: {}; database file {:.0} MiB; goal for get_model: about 1x (one copy): {}\n",
            read["verified"],
            sysinfo::mib(file_size),
            verdict(r_delta as f64 / size_f <= 1.1)
        );
        println!(
            "Context: the same write as bare rusqlite steps (WAL, synchronous=FULL, \
             autocheckpoint off so the checkpoint is timed apart), fresh process each:\n"
        );
        println!("| method | steps (seconds) | total | peak RSS above baseline | / model size |");
        println!("|---|---|---|---|---|");
        for b in &bare {
            let steps: Vec<(String, f64)> = b["steps"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|step| {
                            let name = step[0].as_str().unwrap_or("?").to_string();
                            (name, step[1].as_f64().unwrap_or(f64::NAN))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let total: f64 = steps.iter().map(|(_, s)| s).sum();
            let text: Vec<String> = steps
                .iter()
                .map(|(name, s)| format!("{name} {}", secs(*s)))
                .collect();
            let delta = b["peak_rss"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(b["baseline_rss"].as_u64().unwrap_or(0));
            println!(
                "| {} | {} | {} | {:.0} MiB | {:.2}x |",
                b["method"].as_str().unwrap_or("?"),
                text.join(", "),
                secs(total),
                sysinfo::mib(delta),
                delta as f64 / size_f
            );
        }
        println!();
        self.json.insert(
            "big_model".into(),
            json!({"requested_size": p.big_size, "size": size, "attempts": attempts,
                   "read": read, "bare_writes": bare}),
        );
        Ok(())
    }
}
