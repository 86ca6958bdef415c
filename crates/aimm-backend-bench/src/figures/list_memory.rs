//! Figure 4: peak RSS of list_models over many small models against as many
//! large ones: each store filled in bulk, then one child process per size
//! (`__list-mem`) takes the peak (`VmHWM`) of its first list_models call
//! above its baseline and the best time of three calls; the goal is no
//! growth of the peak with the model size.

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::{fill_store, Bench};
use crate::child;
use aimm_backend_bench::stats::{ratio, secs, verdict};
use aimm_backend_bench::sysinfo;

impl Bench {
    /// Figure 4: peak RSS of list_models over many models of two sizes.
    pub(crate) fn list_memory(&mut self) -> Result<()> {
        let p = self.params.clone();
        let mut rows = Vec::new();
        for &size in &p.list_sizes {
            progress!(
                "filling {} models of {} bytes for list_models",
                p.list_count,
                size
            );
            let dir = self.fresh_dir("list-")?;
            let db = dir.path().join("models.db");
            fill_store(&db, p.list_count, size)?;
            progress!("list_models in a child process");
            let result = child::spawn(&[
                "__list-mem".into(),
                "--plugin".into(),
                self.plugin_path.to_string_lossy().into_owned(),
                "--db".into(),
                db.to_string_lossy().into_owned(),
            ])?;
            let models = result["models"].as_u64().unwrap_or(0) as usize;
            if models != p.list_count {
                bail!(
                    "list_models returned {models} models, expected {}",
                    p.list_count
                );
            }
            rows.push((size, result));
        }
        println!(
            "## Figure 4: list_models over {} models, fresh process per case\n",
            p.list_count
        );
        println!("| model size | data in store | list_models (first call) | list_models (best of 3) | peak RSS above baseline | baseline RSS |");
        println!("|---|---|---|---|---|---|");
        let mut deltas = Vec::new();
        for (size, r) in &rows {
            let base = r["baseline_rss"].as_u64().unwrap_or(0);
            let peak = r["peak_rss"].as_u64().unwrap_or(0);
            let delta = peak.saturating_sub(base);
            deltas.push(delta);
            println!(
                "| {} KiB | {:.0} MiB | {} s | {} s | {:.2} MiB | {:.1} MiB |",
                size / 1024,
                sysinfo::mib(r["model_bytes"].as_u64().unwrap_or(0)),
                secs(r["first_s"].as_f64().unwrap_or(f64::NAN)),
                secs(r["best_s"].as_f64().unwrap_or(f64::NAN)),
                sysinfo::mib(delta),
                sysinfo::mib(base)
            );
        }
        if deltas.len() == 2 && deltas[0] > 0 {
            let r = deltas[1] as f64 / deltas[0] as f64;
            println!(
                "\npeak above baseline, {} KiB models / {} KiB models: {} \
                 (goal: no growth with model size, i.e. <= ~1x): {}\n",
                p.list_sizes[1] / 1024,
                p.list_sizes[0] / 1024,
                ratio(r),
                verdict(r <= 1.25)
            );
        } else {
            println!();
        }
        if rows.iter().any(|(_, r)| r["peak_reset"] == json!(false)) {
            println!("(the kernel refused to reset VmHWM; baselines are the earlier peak)\n");
        }
        self.json.insert(
            "list_models_memory".into(),
            Value::Array(
                rows.into_iter()
                    .map(|(size, r)| json!({"size": size, "result": r}))
                    .collect(),
            ),
        );
        Ok(())
    }
}
