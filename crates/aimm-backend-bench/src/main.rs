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
//! Each figure is measured in its own module under `figures` (figures 1-3
//! together, as they share one workload); this file is the driver: the
//! command line, which figures to run, and the report's end.
//!
//! ```text
//! cargo build --release -p aimm-backend-bench
//! target/release/aimm-backend-bench            # full size
//! target/release/aimm-backend-bench --quick    # a smaller run
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod child;
mod figures;
mod lockstep;
mod readpaths;
mod stores;

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use aimm_backend_bench::report::StockBench;
use aimm_backend_bench::sysinfo;
use aimm_backend_test_support::{venv_python, workspace_root};
use figures::{Bench, Params};
use stores::Plugin;

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
    let params = Params::new(cli.quick, cli.rounds);
    let exe = std::env::current_exe().context("finding this program's path")?;
    let exe_dir = exe.parent().context("this program has no directory")?;
    let repo = match &cli.repo {
        Some(repo) => repo.clone(),
        None => workspace_root(),
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
            None => venv_python(&repo, sysinfo::default_allocator)
                .context("use --python or --skip-python")?,
        };
        Some(StockBench::new(interpreter, &repo))
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
    bench.header(cli.quick);
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
