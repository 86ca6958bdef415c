//! The report's header, before the figures (it measures none): the
//! command, the machine, the database directory and its filesystem, the
//! plugin, the source revision, the SQLite built into ours, the Python
//! interpreter and the rounds, then how this process allocates (what the
//! warm reads depend on).

use serde_json::json;
use std::path::Path;
use std::process::Command;

use super::Bench;
use aimm_backend_bench::sysinfo;

impl Bench {
    /// Prints the header (`quick`: the run is a `--quick` one) and records
    /// the machine in the JSON report.
    pub(crate) fn header(&mut self, quick: bool) {
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
            if quick { ", --quick" } else { "" }
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
    }
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
