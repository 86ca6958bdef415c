//! What the benchmark reads from `/proc`: memory of this process, the
//! machine, and the filesystem a directory lives on.

use std::path::Path;

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`, ...) in bytes.
pub fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    })
}

/// Resident set size now, in bytes.
pub fn rss() -> u64 {
    status_bytes("VmRSS").unwrap_or(0)
}

/// Peak resident set size (high-water mark), in bytes.
pub fn peak_rss() -> u64 {
    status_bytes("VmHWM").unwrap_or(0)
}

/// Resets the peak RSS to the current RSS (`echo 5 > /proc/self/clear_refs`,
/// Linux >= 4.0). Returns whether the kernel accepted it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The CPU model name, from `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Logical CPUs this process may use.
pub fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Total memory in GiB, from `/proc/meminfo`.
pub fn mem_total_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map(|kib| kib / (1024.0 * 1024.0))
        .unwrap_or(0.0)
}

/// The running kernel's release string.
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The 1, 5 and 15 minute load averages, from `/proc/loadavg`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The mount holding a path: mount point, filesystem type and source device.
#[derive(Debug, Clone)]
pub struct Mount {
    /// Where it is mounted.
    pub mount_point: String,
    /// Filesystem type (`ext4`, `tmpfs`, ...).
    pub fs_type: String,
    /// The mounted device or pseudo-source.
    pub source: String,
}

impl std::fmt::Display for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} on {} (mounted at {})",
            self.fs_type, self.source, self.mount_point
        )
    }
}

/// The mount with the longest mount point that is a prefix of `path`,
/// from `/proc/self/mountinfo`.
pub fn mount_of(path: &Path) -> Option<Mount> {
    let path = path.canonicalize().ok()?;
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<Mount> = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if fields.len() < dash + 3 || fields.len() < 5 {
            continue;
        }
        let mount_point = fields[4].replace("\\040", " ");
        if !path.starts_with(&mount_point) {
            continue;
        }
        // later entries over the same point shadow earlier ones
        if best
            .as_ref()
            .is_some_and(|b| b.mount_point.len() > mount_point.len())
        {
            continue;
        }
        best = Some(Mount {
            mount_point,
            fs_type: fields[dash + 1].to_string(),
            source: fields[dash + 2].to_string(),
        });
    }
    best
}

/// The environment variable glibc reads its malloc tunables from.
const TUNABLES: &str = "GLIBC_TUNABLES";

/// Set in the re-executed process (see [`reexec_keeping_freed_memory`]): the
/// value of `GLIBC_TUNABLES` before ours was added, or empty if it was unset.
const TUNABLES_BEFORE: &str = "AIMM_BENCH_GLIBC_TUNABLES_BEFORE";

/// Set in the re-executed process: whether `GLIBC_TUNABLES` was set before.
const TUNABLES_WAS_SET: &str = "AIMM_BENCH_GLIBC_TUNABLES_WAS_SET";

/// glibc's `M_TRIM_THRESHOLD` as a tunable: free memory at the top of the
/// heap is handed back to the kernel only above this many bytes (2^31 - 1,
/// as `mallopt(M_TRIM_THRESHOLD, INT_MAX)` would set). Setting it also fixes
/// the mmap threshold at its default (128 KiB), as mallopt does.
pub const TRIM_TUNABLE: &str = "glibc.malloc.trim_threshold=2147483647";

/// Whether this process is the re-executed one, with [`TRIM_TUNABLE`] added
/// to `GLIBC_TUNABLES`.
pub fn keeps_freed_memory() -> bool {
    std::env::var_os(TUNABLES_WAS_SET).is_some()
}

/// Whether this program is linked against glibc (where the tunable applies).
pub fn is_glibc() -> bool {
    cfg!(all(target_os = "linux", target_env = "gnu"))
}

/// Re-executes this program with the same arguments and [`TRIM_TUNABLE`]
/// appended to `GLIBC_TUNABLES` (earlier entries kept), so that glibc never
/// hands freed heap memory back to the kernel on its own: whether a large
/// result lands in memory the process already holds then depends on what
/// ran before in this process, not on the allocator's trimming. Returns the
/// child's exit code (128 + signal if it was killed).
pub fn reexec_keeping_freed_memory() -> std::io::Result<u8> {
    use std::os::unix::process::ExitStatusExt;
    let exe = std::env::current_exe()?;
    let before = std::env::var_os(TUNABLES);
    let tunables = match &before {
        Some(old) if !old.is_empty() => {
            let mut value = old.clone();
            value.push(":");
            value.push(TRIM_TUNABLE);
            value
        }
        _ => TRIM_TUNABLE.into(),
    };
    let status = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(TUNABLES, tunables)
        .env(TUNABLES_WAS_SET, if before.is_some() { "1" } else { "0" })
        .env(TUNABLES_BEFORE, before.unwrap_or_default())
        .status()?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => (128 + signal) as u8,
        (None, None) => 1,
    })
}

/// Makes `command` run with the allocator settings this program was started
/// with (`GLIBC_TUNABLES` as it was before [`reexec_keeping_freed_memory`]
/// added to it): measurement children and the Python subprocess run with
/// glibc's defaults, not with trimming off.
pub fn default_allocator(command: &mut std::process::Command) {
    let Some(was_set) = std::env::var_os(TUNABLES_WAS_SET) else {
        return;
    };
    if was_set == "1" {
        command.env(
            TUNABLES,
            std::env::var_os(TUNABLES_BEFORE).unwrap_or_default(),
        );
    } else {
        command.env_remove(TUNABLES);
    }
    command
        .env_remove(TUNABLES_WAS_SET)
        .env_remove(TUNABLES_BEFORE);
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
