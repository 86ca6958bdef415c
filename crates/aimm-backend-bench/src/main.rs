//! `aimm-backend-bench`: the benchmark program for the AIMM SQLite backend.
//!
//! It measures, side by side in one run and on one filesystem:
//!
//! 1. durable creates, one get_models and durable updates: the Python aimm
//!    SQLite backend (a subprocess running `tests/python/bench_aimm_sqlite.py`)
//!    against ours loaded as a plugin;
//! 2. ours as a plugin against the same backend linked directly (ABI cost);
//! 3. ours against a bare `rusqlite` loop at the same durability;
//! 4. peak RSS of `list_models` over many small vs many large models;
//! 5. create throughput of 16 threads on one backend vs 1 thread;
//! 6. peak RSS of writing and of reading one very large model.
//!
//! Our variants of figures 1-3 run in lockstep (each write goes to every
//! store in turn), the Python subprocess alternates before and after them, and
//! each figure is the median of the rounds; every run uses a fresh database
//! file in a fresh directory. get_models is timed "cold" (in a fresh child
//! process per store, as the Python reference runs in a fresh process) and
//! "warm" (in this process, into memory it already holds). A read-path table
//! compares get_models with plain SQLite reads of the same bytes, the same
//! way. Memory figures come from fresh child processes reading `VmHWM`.
//! Child processes are this program re-executed with a hidden subcommand.
//! On glibc the program first re-executes itself once with automatic heap
//! trimming off (`GLIBC_TUNABLES=glibc.malloc.trim_threshold=...`), so warm
//! reads reliably reuse freed memory; its children and the Python subprocess
//! run with glibc's defaults. `BENCHMARKS.md` has the results and the method
//! in full.
//!
//! ```text
//! cargo build --release -p aimm-backend-bench
//! target/release/aimm-backend-bench            # full size
//! target/release/aimm-backend-bench --quick    # a smaller run
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod child;
mod payload;
mod readpaths;
mod stores;

use aimm_backend_api::{Backend, RString, RVec};
use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, Barrier};
use std::time::Instant;

use aimm_backend_bench::stats::{median, paired_ratios, range, ratio, secs, verdict};
use aimm_backend_bench::{sysinfo, venv};
use stores::{OpenStore, PhaseTimes, Plugin, Python, StoreKind};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "aimm-backend-bench",
    about = "Benchmarks the AIMM SQLite backend against the Python reference, \
             direct linking and bare rusqlite, and prints a report in Markdown"
)]
struct Cli {
    /// A hidden child-process measurement (used by the program itself).
    #[command(subcommand)]
    child: Option<child::ChildCommand>,

    /// A smaller, faster run (100 models, 1,000 listed, 64 MiB big model).
    #[arg(long)]
    quick: bool,

    /// Rounds per interleaved comparison (default 5, or 2 with --quick).
    #[arg(long)]
    rounds: Option<usize>,

    /// Run only these figures (1-6, comma separated). Figures 1-3 share one
    /// interleaved workload.
    #[arg(long, value_delimiter = ',')]
    only: Vec<u8>,

    /// Parent of the temporary directories holding the databases (default:
    /// `bench-tmp` in the target directory holding this program). Must not be
    /// tmpfs for the figures to mean anything.
    #[arg(long)]
    dir: Option<PathBuf>,

    /// The SQLite plugin library (default: `deps/libaimm_backend_sqlite.so`
    /// beside this program, which cargo builds together with it, else
    /// `libaimm_backend_sqlite.so` beside it).
    #[arg(long)]
    plugin: Option<PathBuf>,

    /// The repository root (for `scripts/python-venv.sh` and
    /// `tests/python/bench_aimm_sqlite.py`; default: where this was built).
    #[arg(long)]
    repo: Option<PathBuf>,

    /// Python interpreter with aimm installed (default: what
    /// `scripts/python-venv.sh` prints).
    #[arg(long)]
    python: Option<PathBuf>,

    /// Leave the Python reference out of figure 1.
    #[arg(long)]
    skip_python: bool,

    /// Also write every measurement as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Sizes of one benchmark run.
#[derive(Debug, Clone)]
struct Params {
    rounds: usize,
    count: usize,
    size: usize,
    abi_calls: usize,
    list_count: usize,
    list_sizes: [usize; 2],
    conc_total: usize,
    conc_threads: usize,
    big_size: usize,
}

impl Params {
    fn new(cli: &Cli) -> Params {
        let mut p = if cli.quick {
            Params {
                rounds: 2,
                count: 100,
                size: 64 * 1024,
                abi_calls: 2_000,
                list_count: 1_000,
                list_sizes: [1024, 64 * 1024],
                conc_total: 160,
                conc_threads: 16,
                big_size: 64 << 20,
            }
        } else {
            Params {
                rounds: 5,
                count: 1_000,
                size: 64 * 1024,
                abi_calls: 20_000,
                list_count: 10_000,
                list_sizes: [1024, 64 * 1024],
                conc_total: 1_600,
                conc_threads: 16,
                big_size: 1 << 30,
            }
        };
        if let Some(rounds) = cli.rounds {
            p.rounds = rounds.max(1);
        }
        p
    }
}

/// Largest blob SQLite accepts with its default `SQLITE_MAX_LENGTH`
/// (10^9 bytes, record header included), rounded down: the fallback size
/// for figure 6 when the requested size is refused.
const SQLITE_DEFAULT_MAX_BLOB: usize = 999_000_000;

/// Everything one run needs: where to put files, what to load, what to run.
struct Bench {
    params: Params,
    base: PathBuf,
    plugin_path: PathBuf,
    plugin: Plugin,
    python: Option<Python>,
    repo: PathBuf,
    json: BTreeMap<String, Value>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // the benchmark itself runs with glibc's automatic trimming off: once
    // re-executed with the tunable set (children measure with the defaults)
    if cli.child.is_none() && sysinfo::is_glibc() && !sysinfo::keeps_freed_memory() {
        return match sysinfo::reexec_keeping_freed_memory() {
            Ok(code) => ExitCode::from(code),
            Err(err) => {
                eprintln!("aimm-backend-bench: error: re-executing with GLIBC_TUNABLES: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let result = match cli.child {
        Some(command) => child::run(command),
        None => run(cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("aimm-backend-bench: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn wants(cli: &Cli, figure: u8) -> bool {
    cli.only.is_empty() || cli.only.contains(&figure)
}

fn run(cli: Cli) -> Result<()> {
    if let Some(bad) = cli.only.iter().find(|f| !(1..=6).contains(*f)) {
        bail!("--only takes figure numbers 1 to 6, got {bad}");
    }
    let params = Params::new(&cli);
    let exe = std::env::current_exe().context("finding this program's path")?;
    let exe_dir = exe.parent().context("this program has no directory")?;
    let repo = match &cli.repo {
        Some(repo) => repo.clone(),
        None => venv::repo_root(),
    };
    let repo = repo
        .canonicalize()
        .with_context(|| format!("repository root {}", repo.display()))?;
    let base = match &cli.dir {
        Some(dir) => dir.clone(),
        None => exe_dir.parent().unwrap_or(exe_dir).join("bench-tmp"),
    };
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let base = base.canonicalize()?;
    let plugin_path = match &cli.plugin {
        Some(path) => path.clone(),
        None => {
            let deps = exe_dir.join("deps").join("libaimm_backend_sqlite.so");
            if deps.exists() {
                deps
            } else {
                exe_dir.join("libaimm_backend_sqlite.so")
            }
        }
    };
    let plugin = Plugin::load(&plugin_path)?;
    let python = if wants(&cli, 1) && !cli.skip_python {
        let interpreter = match &cli.python {
            Some(py) => py.clone(),
            None => venv::venv_python(&repo).context("use --python or --skip-python")?,
        };
        Some(Python {
            interpreter,
            script: repo.join("tests/python/bench_aimm_sqlite.py"),
        })
    } else {
        None
    };
    let mut bench = Bench {
        params,
        base,
        plugin_path,
        plugin,
        python,
        repo,
        json: BTreeMap::new(),
    };
    bench.header(&cli);
    if sysinfo::keeps_freed_memory() {
        println!(
            "- allocator: glibc; this process runs with automatic trimming off \
             (re-executed with GLIBC_TUNABLES={}), so warm reads reuse memory it \
             freed; cold reads run in fresh child processes, which, like the \
             memory-figure children and the Python subprocess, use glibc's defaults\n",
            sysinfo::TRIM_TUNABLE
        );
    } else {
        println!(
            "- allocator: not glibc, automatic trimming left on; cold reads run in \
             fresh child processes, but warm reads may or may not reuse freed memory\n"
        );
    }
    if wants(&cli, 1) || wants(&cli, 2) || wants(&cli, 3) {
        bench.workload(wants(&cli, 1), wants(&cli, 2), wants(&cli, 3))?;
    }
    if wants(&cli, 1) || wants(&cli, 3) {
        bench.read_paths()?;
    }
    if wants(&cli, 2) {
        bench.abi_calls()?;
    }
    if wants(&cli, 4) {
        bench.list_memory()?;
    }
    if wants(&cli, 5) {
        bench.concurrency()?;
    }
    if wants(&cli, 6) {
        bench.big_model()?;
    }
    println!("Load average at the end: {}", sysinfo::loadavg());
    if let Some(path) = &cli.json {
        let text = serde_json::to_string_pretty(&bench.json)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Progress, on stderr so stdout stays the report.
macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("[bench] {}", format!($($arg)*)) };
}

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
    fn fresh_dir(&self, prefix: &str) -> Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&self.base)
            .with_context(|| format!("creating a directory in {}", self.base.display()))
    }

    fn header(&mut self, cli: &Cli) {
        let mount = sysinfo::mount_of(&self.base);
        let fs = mount
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_else(|| "unknown".into());
        let cmd: Vec<String> = std::env::args().collect();
        println!("# aimm-backend-bench report\n");
        println!("- command: `{}`", cmd.join(" "));
        println!(
            "- machine: {} x {}, {:.1} GiB RAM, Linux {}",
            sysinfo::cpus(),
            sysinfo::cpu_model(),
            sysinfo::mem_total_gib(),
            sysinfo::kernel()
        );
        println!("- database directory: {} ({fs})", self.base.display());
        if mount.as_ref().is_some_and(|m| m.fs_type == "tmpfs") {
            println!(
                "- **warning: the database directory is on tmpfs; fsync costs nothing there**"
            );
        }
        println!("- load average at start: {}", sysinfo::loadavg());
        println!("- plugin: {}", self.plugin.describe());
        if let (Ok(plugin), Ok(exe)) = (
            std::fs::metadata(&self.plugin_path).and_then(|m| m.modified()),
            std::env::current_exe()
                .and_then(std::fs::metadata)
                .and_then(|m| m.modified()),
        ) {
            if plugin > exe {
                println!(
                    "- **warning: the plugin is newer than this program, so the linked-in \
                     backend may be older code; rebuild with \
                     `cargo build --release -p aimm-backend-bench`**"
                );
            }
        }
        println!("- source: git {}", git_describe(&self.repo));
        println!(
            "- SQLite linked into ours: {} ({})",
            rusqlite::version(),
            sqlite_max_length()
        );
        if let Some(py) = &self.python {
            println!("- Python: {}", py.interpreter.display());
        }
        println!(
            "- rounds: {} (variants interleaved, order rotated; figures are medians){}",
            self.params.rounds,
            if cli.quick { ", --quick" } else { "" }
        );
        self.json.insert(
            "machine".into(),
            json!({
                "cpus": sysinfo::cpus(),
                "cpu": sysinfo::cpu_model(),
                "mem_gib": sysinfo::mem_total_gib(),
                "kernel": sysinfo::kernel(),
                "dir": self.base,
                "filesystem": fs,
                "plugin": self.plugin_path,
                "sqlite": rusqlite::version(),
                "params": format!("{:?}", self.params),
            }),
        );
    }

    /// Figures 1-3: the create / get_models / update workload.
    fn workload(&mut self, fig1: bool, fig2: bool, fig3: bool) -> Result<()> {
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
            let times = stores::run_lockstep(&mut opened, &self.plugin_path, &payloads, round)?;
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
        series.push(run.times);
        Ok(run.report)
    }

    /// Context for figures 1 and 3: get_models against plain SQLite reads
    /// of the same bytes, on one database.
    fn read_paths(&mut self) -> Result<()> {
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

    /// Figure 2, second view: the cost of one call across the boundary on a
    /// path with no fsync (get_model of a small model).
    fn abi_calls(&mut self) -> Result<()> {
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

    /// Figure 4: peak RSS of list_models over many models of two sizes.
    fn list_memory(&mut self) -> Result<()> {
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

    /// Figure 5: 16 threads creating on one backend vs one thread.
    fn concurrency(&mut self) -> Result<()> {
        let p = self.params.clone();
        let configs = [1usize, p.conc_threads];
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
        for round in 0..p.rounds {
            for k in 0..configs.len() {
                let index = (k + round) % configs.len();
                let threads = configs[index];
                progress!(
                    "concurrency round {}/{}: {} creator(s)",
                    round + 1,
                    p.rounds,
                    threads
                );
                let dir = self.fresh_dir("concurrent-")?;
                let backend = self.plugin.open(&dir.path().join("models.db"), None)?;
                let secs = concurrent_creates(&backend, threads, p.conc_total, p.size, round)?;
                backend.close()?;
                rates[index].push(p.conc_total as f64 / secs);
            }
        }
        println!(
            "## Figure 5: {} durable creates of {} KiB on one backend (plugin), split over N threads\n",
            p.conc_total,
            p.size / 1024
        );
        println!("| creators | creates/s (median) | per-round range |");
        println!("|---|---|---|");
        for (threads, r) in configs.iter().zip(&rates) {
            let (lo, hi) = range(r);
            println!("| {threads} | {:.0} | {lo:.0}-{hi:.0} |", median(r));
        }
        let speedup = median(&rates[1]) / median(&rates[0]);
        println!(
            "\nthroughput, {} creators / 1 creator: {}\n",
            p.conc_threads,
            ratio(speedup)
        );
        self.json.insert(
            "concurrency".into(),
            json!({"total": p.conc_total, "size": p.size, "threads": configs,
                   "creates_per_s": rates, "ratio": speedup}),
        );
        Ok(())
    }

    /// Figure 6: peak RSS of writing and reading one very large model.
    fn big_model(&mut self) -> Result<()> {
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

/// The command-line spelling of a read path (for the child process).
fn readpath_arg(path: readpaths::ReadPath) -> String {
    use clap::ValueEnum;
    path.to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

/// `git describe --always --dirty` of the repository (what was measured).
fn git_describe(repo: &Path) -> String {
    let mut command = Command::new("git");
    sysinfo::default_allocator(&mut command);
    command
        .arg("-C")
        .arg(repo)
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// SQLite's compile-time `MAX_LENGTH` (the largest blob), as built here.
fn sqlite_max_length() -> String {
    let read = || -> rusqlite::Result<Option<String>> {
        let conn = rusqlite::Connection::open_in_memory()?;
        let mut stmt = conn.prepare("PRAGMA compile_options")?;
        let options = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for option in options {
            let option = option?;
            if option.starts_with("MAX_LENGTH=") {
                return Ok(Some(option));
            }
        }
        Ok(None)
    };
    match read() {
        Ok(Some(option)) => option,
        Ok(None) => "MAX_LENGTH=1000000000, the default".into(),
        Err(err) => format!("compile options unreadable: {err}"),
    }
}

/// Creates a store at `db` with our backend (so it has our table and WAL
/// mode), then fills it with `count` models of `size` bytes in one bulk
/// transaction: setup only, not measured.
fn fill_store(db: &Path, count: usize, size: usize) -> Result<()> {
    let backend = stores::open_direct(db)?;
    backend.close()?;
    drop(backend);
    let mut conn = rusqlite::Connection::open(db)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare("INSERT INTO models (type, instance) VALUES (?1, ?2)")?;
        let mut buf = vec![0u8; size];
        for i in 0..count {
            payload::fill_at(&mut buf, i as u64, 0);
            stmt.execute(rusqlite::params![stores::MODEL_TYPE, buf])?;
        }
    }
    tx.commit()?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// `total` creates of `size` bytes split over `threads` threads on one
/// backend; returns the wall-clock seconds from a common start.
fn concurrent_creates(
    backend: &Arc<dyn Backend>,
    threads: usize,
    total: usize,
    size: usize,
    round: usize,
) -> Result<f64> {
    let per_thread = total / threads;
    let payloads: Vec<Vec<RVec<u8>>> = (0..threads)
        .map(|t| {
            (0..per_thread)
                .map(|i| {
                    RVec::from(payload::make(
                        size,
                        payload::seed(round, t * per_thread + i, false),
                    ))
                })
                .collect()
        })
        .collect();
    let start = Barrier::new(threads + 1);
    let elapsed = std::thread::scope(|scope| -> Result<f64> {
        let handles: Vec<_> = payloads
            .into_iter()
            .map(|batch| {
                let start = &start;
                scope.spawn(move || -> Result<()> {
                    start.wait();
                    for bytes in batch {
                        backend.create_model(RString::from(stores::MODEL_TYPE), bytes)?;
                    }
                    Ok(())
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a creator thread panicked"))??;
        }
        Ok(t0.elapsed().as_secs_f64())
    })?;
    let stored = backend.list_models()?.len();
    if stored != per_thread * threads {
        bail!("{stored} models stored, expected {}", per_thread * threads);
    }
    Ok(elapsed)
}
