//! Figures 1-3: durable creates, one get_models and durable updates on each
//! store: the Python reference (a subprocess) against ours as a plugin
//! (figure 1, also with `journal_mode=delete`), the plugin against the same
//! backend linked directly (figure 2), ours against bare `rusqlite` loops
//! (figure 3). Our variants run in lockstep on fresh files each round, the
//! Python run before or after them; get_models is timed cold (a fresh child
//! process per store) and warm (here). The report gives each phase's median
//! per variant and the ratios of medians against their targets.

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::Bench;
use crate::lockstep;
use crate::stores::{self, OpenStore, PhaseTimes, StoreKind};
use aimm_backend_bench::stats::{median, paired_ratios, range, ratio, secs, verdict};

/// The workload variants of figures 1-3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Python,
    Plugin,
    PluginDelete,
    Direct,
    Bare,
    BareUncached,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Python => "Python aimm SQLite backend",
            Variant::Plugin => "ours, plugin (.so via loader)",
            Variant::PluginDelete => "ours, plugin, journal_mode=delete",
            Variant::Direct => "ours, linked directly (rlib)",
            Variant::Bare => "bare rusqlite loop",
            Variant::BareUncached => "bare rusqlite loop, SQL prepared on every write",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Variant::Python => "python",
            Variant::Plugin => "plugin",
            Variant::PluginDelete => "plugin_delete",
            Variant::Direct => "direct",
            Variant::Bare => "bare_rusqlite",
            Variant::BareUncached => "bare_rusqlite_uncached",
        }
    }
}

/// Per-round phase times of one variant.
#[derive(Default, Clone)]
struct Series {
    create: Vec<f64>,
    get: Vec<f64>,
    get_warm: Vec<f64>,
    update: Vec<f64>,
    total: Vec<f64>,
}

impl Series {
    fn push(&mut self, t: PhaseTimes) {
        self.create.push(t.create);
        self.get.push(t.get);
        self.get_warm.push(t.get_warm);
        self.update.push(t.update);
        self.total.push(t.total());
    }

    fn phase(&self, phase: usize) -> &[f64] {
        match phase {
            0 => &self.create,
            1 => &self.get,
            2 => &self.update,
            3 => &self.total,
            _ => &self.get_warm,
        }
    }
}

/// Phase names by index, as [`Series::phase`] numbers them. The total is
/// creates + get_models (cold) + updates.
const PHASES: [&str; 5] = [
    "creates",
    "get_models (cold)",
    "updates",
    "total",
    "get_models (warm)",
];

/// Table column order of the phases.
const COLUMNS: [usize; 5] = [0, 1, 4, 2, 3];

/// One line of the ratio table: `numerator / denominator` for one phase.
struct RatioRow {
    figure: u8,
    what: &'static str,
    numerator: Variant,
    denominator: Variant,
    phase: usize,
    target: Option<f64>,
    higher_is_better: bool,
}

impl RatioRow {
    /// A speed-up (slower / ours): the target is a minimum.
    fn speedup(
        figure: u8,
        what: &'static str,
        numerator: Variant,
        denominator: Variant,
        phase: usize,
        target: Option<f64>,
    ) -> RatioRow {
        RatioRow {
            figure,
            what,
            numerator,
            denominator,
            phase,
            target,
            higher_is_better: true,
        }
    }

    /// A cost (ours / reference): the target is a maximum.
    fn cost(
        figure: u8,
        what: &'static str,
        numerator: Variant,
        denominator: Variant,
        phase: usize,
        target: Option<f64>,
    ) -> RatioRow {
        RatioRow {
            higher_is_better: false,
            ..RatioRow::speedup(figure, what, numerator, denominator, phase, target)
        }
    }
}

impl Bench {
    /// Figures 1-3: the create / get_models / update workload.
    pub(crate) fn workload(&mut self, fig1: bool, fig2: bool, fig3: bool) -> Result<()> {
        let p = self.params.clone();
        let with_python = fig1 && self.python.is_some();
        let mut variants = vec![Variant::Plugin];
        if fig1 {
            variants.push(Variant::PluginDelete);
        }
        if fig2 {
            variants.push(Variant::Direct);
        }
        if fig3 {
            variants.push(Variant::Bare);
            variants.push(Variant::BareUncached);
        }
        let mut series: Vec<Series> = vec![Series::default(); variants.len()];
        let mut python_series = Series::default();
        let mut python_report = Value::Null;
        for round in 0..p.rounds {
            let payloads = stores::Payloads::new(p.count, p.size, round);
            // Python first in even rounds, last in odd ones
            if with_python && round % 2 == 0 {
                python_report = self.python_round(round, &mut python_series)?;
            }
            progress!(
                "workload round {}/{}: {} in lockstep",
                round + 1,
                p.rounds,
                variants
                    .iter()
                    .map(|v| v.key())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let dirs: Vec<tempfile::TempDir> = variants
                .iter()
                .map(|_| self.fresh_dir("workload-"))
                .collect::<Result<_>>()?;
            let mut opened = Vec::new();
            for (variant, dir) in variants.iter().zip(&dirs) {
                let kind = match variant {
                    Variant::Plugin => StoreKind::Plugin,
                    Variant::PluginDelete => StoreKind::PluginDelete,
                    Variant::Direct => StoreKind::Direct,
                    Variant::Bare => StoreKind::Bare,
                    Variant::BareUncached => StoreKind::BareUncached,
                    Variant::Python => unreachable!("Python runs in its own process"),
                };
                let db = dir.path().join("models.db");
                opened.push(OpenStore::open(kind, &self.plugin, db)?);
            }
            let times = lockstep::run_lockstep(&mut opened, &self.plugin_path, &payloads, round)?;
            for open in opened {
                open.store.close()?;
            }
            drop(dirs);
            for (s, t) in series.iter_mut().zip(times) {
                s.push(t);
            }
            if with_python && round % 2 == 1 {
                python_report = self.python_round(round, &mut python_series)?;
            }
        }
        if with_python {
            variants.insert(0, Variant::Python);
            series.insert(0, python_series);
        }
        let get = |v: Variant| variants.iter().position(|x| *x == v).map(|i| &series[i]);

        println!(
            "## Figures 1-3: {} durable creates of {} KiB, one get_models, {} updates\n",
            p.count,
            p.size / 1024,
            p.count
        );
        println!(
            "Seconds, median of {} rounds (min-max in brackets). Our variants run in \
             lockstep (each create and update goes to every store in turn, on its own \
             fresh file); the Python run is a subprocess before (even rounds) or after \
             (odd rounds) them. Only the calls are timed. get_models (cold): after \
             the creates, a fresh child process per store (order rotated) opens the \
             same file as the benchmark does and times one get_models, so the 64 MiB \
             result is built in freshly faulted pages, as in the Python process \
             (which is fresh too); the call includes what a first call does there \
             (for ours, opening a reader connection). get_models (warm): in the \
             benchmark process, the call right after an untimed first one, into \
             memory the process holds (automatic trimming is off there). The total \
             counts the cold call.\n",
            p.rounds
        );
        println!("| variant | {} |", COLUMNS.map(|ph| PHASES[ph]).join(" | "));
        println!("|---|---|---|---|---|---|");
        let mut json_series = serde_json::Map::new();
        for (variant, s) in variants.iter().zip(&series) {
            let cells: Vec<String> = COLUMNS
                .iter()
                .map(|&ph| {
                    let (lo, hi) = range(s.phase(ph));
                    if lo.is_nan() || median(s.phase(ph)).is_nan() {
                        return "n/a".to_string();
                    }
                    format!("{} [{}-{}]", secs(median(s.phase(ph))), secs(lo), secs(hi))
                })
                .collect();
            println!("| {} | {} |", variant.label(), cells.join(" | "));
            json_series.insert(
                variant.key().into(),
                json!({"create": s.create, "get_models_cold": s.get,
                       "get_models_warm": s.get_warm, "update": s.update}),
            );
        }
        println!();
        if let Some(pragmas) = python_report.get("pragmas") {
            println!(
                "Python backend connection (as it reports it): {pragmas}; SQLite {}.\n",
                python_report["sqlite_version"]
            );
        }
        self.json.insert(
            "workload".into(),
            json!({"count": p.count, "size": p.size, "rounds": p.rounds,
                   "seconds": json_series, "python_report": python_report}),
        );

        let mut rows = Vec::new();
        if with_python {
            for (phase, target) in [(0, 2.0), (1, 4.0), (2, 2.0)] {
                rows.push(RatioRow::speedup(
                    1,
                    "Python / ours (plugin)",
                    Variant::Python,
                    Variant::Plugin,
                    phase,
                    Some(target),
                ));
            }
            for phase in 0..3 {
                rows.push(RatioRow::speedup(
                    1,
                    "Python / ours (plugin, journal_mode=delete)",
                    Variant::Python,
                    Variant::PluginDelete,
                    phase,
                    None,
                ));
            }
        }
        if fig2 {
            for phase in [0, 1, 4, 2, 3] {
                rows.push(RatioRow::cost(
                    2,
                    "ABI cost: plugin / direct",
                    Variant::Plugin,
                    Variant::Direct,
                    phase,
                    Some(1.05),
                ));
            }
        }
        if fig3 {
            for phase in [0, 1, 4, 2, 3] {
                rows.push(RatioRow::cost(
                    3,
                    "plugin / bare rusqlite",
                    Variant::Plugin,
                    Variant::Bare,
                    phase,
                    Some(1.15),
                ));
            }
            for phase in [0, 2] {
                rows.push(RatioRow::cost(
                    3,
                    "bare, SQL prepared per write / bare",
                    Variant::BareUncached,
                    Variant::Bare,
                    phase,
                    None,
                ));
            }
            if fig2 {
                for phase in [0, 1, 4, 2, 3] {
                    rows.push(RatioRow::cost(
                        3,
                        "direct / bare rusqlite",
                        Variant::Direct,
                        Variant::Bare,
                        phase,
                        None,
                    ));
                }
            }
        }
        println!(
            "| figure | comparison | phase | ratio of medians | per-round ratios | target | |"
        );
        println!("|---|---|---|---|---|---|---|");
        let mut ratios = Vec::new();
        for row in rows {
            let (Some(a), Some(b)) = (get(row.numerator), get(row.denominator)) else {
                continue;
            };
            let r = median(a.phase(row.phase)) / median(b.phase(row.phase));
            let (lo, hi) = range(&paired_ratios(a.phase(row.phase), b.phase(row.phase)));
            let (target_text, met) = match row.target {
                Some(t) if row.higher_is_better => (format!(">= {t:.2}x"), verdict(r >= t)),
                Some(t) => (format!("<= {t:.2}x"), verdict(r <= t)),
                None => ("(context)".to_string(), ""),
            };
            println!(
                "| {} | {} | {} | {} | {}-{} | {target_text} | {met} |",
                row.figure,
                row.what,
                PHASES[row.phase],
                ratio(r),
                ratio(lo),
                ratio(hi)
            );
            ratios.push(json!({"figure": row.figure, "comparison": row.what,
                               "phase": PHASES[row.phase], "ratio": r, "target": row.target}));
        }
        println!();
        self.json
            .insert("workload_ratios".into(), Value::Array(ratios));
        Ok(())
    }

    /// One run of the Python reference, added to `series`; returns its report.
    fn python_round(&self, round: usize, series: &mut Series) -> Result<Value> {
        let p = &self.params;
        progress!("workload round {}/{}: Python", round + 1, p.rounds);
        let py = self.python.as_ref().context("no Python interpreter")?;
        let dir = self.fresh_dir("workload-py-")?;
        let run = py.run(p.count, p.size, dir.path())?;
        series.push(PhaseTimes {
            create: run.create,
            get: run.get_models,
            get_warm: f64::NAN,
            update: run.update,
        });
        Ok(run.report)
    }
}
