//! Context for figures 1 and 3, "where get_models time goes": get_models
//! (plugin and linked directly) against plain SQLite reads of the same bytes
//! (the readers of [`crate::readpaths`]) on one database filled in bulk;
//! each read is timed cold, in a fresh child process (`__cold-read`), and
//! warm, here right after the same read, order rotated per round.

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::{fill_store, Bench};
use crate::{child, readpaths, stores};
use aimm_backend_bench::stats::{median, ratio, secs};

impl Bench {
    /// Context for figures 1 and 3: get_models against plain SQLite reads
    /// of the same bytes, on one database.
    pub(crate) fn read_paths(&mut self) -> Result<()> {
        use readpaths::ReadPath;
        let p = self.params.clone();
        let dir = self.fresh_dir("read-")?;
        let db = dir.path().join("models.db");
        progress!(
            "filling {} models of {} bytes for the read paths",
            p.count,
            p.size
        );
        fill_store(&db, p.count, p.size)?;
        let mut readers =
            readpaths::Readers::open(&db, stores::open_direct(&db)?, self.plugin.open(&db, None)?)?;
        let paths = [
            ReadPath::Column,
            ReadPath::ColumnMmap,
            ReadPath::BlobOpenPerRow,
            ReadPath::BlobReopen,
            ReadPath::Direct,
            ReadPath::Plugin,
        ];
        let expected = (p.count * p.size) as u64;
        for &path in &paths {
            readers.read(path)?; // warm-up: connections, statement caches
        }
        let plugin = self.plugin_path.to_string_lossy().into_owned();
        let mut cold = vec![Vec::new(); paths.len()];
        let mut warm = vec![Vec::new(); paths.len()];
        for round in 0..p.rounds {
            progress!("read paths round {}/{}", round + 1, p.rounds);
            for k in 0..paths.len() {
                let i = (k + round) % paths.len();
                let path = paths[i];
                // cold: a fresh child process; warm: here, right after a read
                let result = child::spawn(&[
                    "__cold-read".into(),
                    "--path".into(),
                    readpath_arg(path),
                    "--plugin".into(),
                    plugin.clone(),
                    "--db".into(),
                    db.to_string_lossy().into_owned(),
                ])?;
                let bytes = result["bytes"].as_u64().unwrap_or(0);
                if bytes != expected {
                    bail!("{path:?} read {bytes} bytes in a child, expected {expected}");
                }
                cold[i].push(result["secs"].as_f64().unwrap_or(f64::NAN));
                readers.read(path)?;
                let (secs, bytes) = readers.read(path)?;
                if bytes != expected {
                    bail!("{path:?} read {bytes} bytes, expected {expected}");
                }
                warm[i].push(secs);
            }
        }
        readers.close()?;
        println!(
            "## Where get_models time goes: {} models of {} KiB read back in full, one database\n",
            p.count,
            p.size / 1024
        );
        println!(
            "Seconds, median of {} rounds, order rotated; the file is in the OS page \
             cache. Cold: one read in a fresh child process that opens only that \
             reader, so the result lands in freshly faulted pages (the read includes \
             preparing its statement, and for ours opening a reader connection); \
             warm: in the benchmark process, the read right after the same read, \
             into memory the process holds.\n",
            p.rounds
        );
        println!("| read path | cold | warm | cold vs column read | warm vs column read |");
        println!("|---|---|---|---|---|");
        let (column_cold, column_warm) = (median(&cold[0]), median(&warm[0]));
        let mut json_rows = Vec::new();
        for ((path, c), w) in paths.iter().zip(&cold).zip(&warm) {
            println!(
                "| {} | {} | {} | {} | {} |",
                path.label(),
                secs(median(c)),
                secs(median(w)),
                ratio(median(c) / column_cold),
                ratio(median(w) / column_warm)
            );
            json_rows.push(json!({"path": format!("{path:?}"), "cold_s": c, "warm_s": w}));
        }
        println!();
        self.json
            .insert("get_models_read_paths".into(), Value::Array(json_rows));
        Ok(())
    }
}

/// The command-line spelling of a read path (for the child process).
fn readpath_arg(path: readpaths::ReadPath) -> String {
    use clap::ValueEnum;
    path.to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}
