//! Figure 2, per call: the cost of one call across the plugin boundary on a
//! path with no fsync: many get_model calls of one 1 KiB model through the
//! plugin and through the backend linked directly, both warmed first, the
//! order alternating per round; seconds per call, and their ratio.

use aimm_backend_api::{Backend, RString, RVec};
use anyhow::Result;
use serde_json::json;
use std::time::Instant;

use super::Bench;
use crate::stores;
use aimm_backend_bench::stats::{median, paired_ratios, range, ratio, verdict};
use aimm_backend_test_support::payload;

impl Bench {
    /// Figure 2, second view: the cost of one call across the boundary on a
    /// path with no fsync (get_model of a small model).
    pub(crate) fn abi_calls(&mut self) -> Result<()> {
        let p = self.params.clone();
        let dir = self.fresh_dir("abi-")?;
        let db = dir.path().join("models.db");
        let direct = stores::open_direct(&db)?;
        let model = direct.create_model(
            RString::from(stores::MODEL_TYPE),
            RVec::from(payload::make(1024, 1)),
        )?;
        let plugin = self.plugin.open(&db, None)?;
        let id = model.instance_id;
        let mut plugin_s = Vec::new();
        let mut direct_s = Vec::new();
        let calls = |b: &dyn Backend| -> Result<f64> {
            let t0 = Instant::now();
            for _ in 0..p.abi_calls {
                let m = b.get_model(id)?;
                std::hint::black_box(&m);
            }
            Ok(t0.elapsed().as_secs_f64() / p.abi_calls as f64)
        };
        // warm both (reader connections, statement caches)
        calls(plugin.as_ref())?;
        calls(&direct)?;
        for round in 0..p.rounds {
            progress!("ABI calls round {}/{}", round + 1, p.rounds);
            if round % 2 == 0 {
                plugin_s.push(calls(plugin.as_ref())?);
                direct_s.push(calls(&direct)?);
            } else {
                direct_s.push(calls(&direct)?);
                plugin_s.push(calls(plugin.as_ref())?);
            }
        }
        plugin.close()?;
        direct.close()?;
        let r = median(&plugin_s) / median(&direct_s);
        let (lo, hi) = range(&paired_ratios(&plugin_s, &direct_s));
        println!(
            "## Figure 2, per call: get_model of one 1 KiB model, {} calls per round (no fsync on this path)\n",
            p.abi_calls
        );
        println!("| variant | microseconds per call (median) |");
        println!("|---|---|");
        println!("| ours, plugin | {:.2} |", median(&plugin_s) * 1e6);
        println!("| ours, linked directly | {:.2} |", median(&direct_s) * 1e6);
        println!(
            "\nplugin / direct: {} (per-round {}-{}), target <= 1.05x: {}\n",
            ratio(r),
            ratio(lo),
            ratio(hi),
            verdict(r <= 1.05)
        );
        self.json.insert(
            "abi_get_model".into(),
            json!({"calls": p.abi_calls, "plugin_s_per_call": plugin_s,
                   "direct_s_per_call": direct_s, "ratio": r}),
        );
        Ok(())
    }
}
