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

/// Stops the allocator from handing freed memory back to the kernel on its
/// own (glibc `mallopt(M_TRIM_THRESHOLD, INT_MAX)`; a no-op elsewhere), so that
/// whether a large result lands in memory the process already has depends
/// only on [`release_free_memory`] calls, not on the order of earlier runs.
/// Returns whether the setting took.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_TRIM_THRESHOLD: std::os::raw::c_int = -1;
        extern "C" {
            fn mallopt(
                param: std::os::raw::c_int,
                value: std::os::raw::c_int,
            ) -> std::os::raw::c_int;
        }
        // SAFETY: mallopt takes no pointers; it only changes a glibc malloc
        // tuning parameter.
        unsafe { mallopt(M_TRIM_THRESHOLD, std::os::raw::c_int::MAX) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Hands the process's free heap memory back to the kernel (glibc
/// `malloc_trim(0)`; a no-op elsewhere), so that the next large result is
/// built in freshly faulted pages, as it is in a fresh process ("cold").
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: malloc_trim takes no pointers; it only returns free memory
        // to the kernel and is safe to call at any time from any thread.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
