//! The peak memory of a child process: the kernel's high-water mark of its
//! resident set (`VmHWM`), which `wait4` hands the parent as `ru_maxrss`.

use crate::{describe, output_within, python};
use std::process::{Command, Output};
use std::time::Duration;

/// Runs `command` (within `deadline`) and returns its output and its peak
/// resident set in bytes.
///
/// The command runs under a Python parent that reaps it with `os.wait4`
/// and appends the child's `ru_maxrss` (KiB) to stderr as the last line.
pub fn run_measured(deadline: Duration, command: Command, what: &str) -> (Output, u64) {
    let mut wrapper = Command::new(python());
    wrapper
        .arg("-c")
        .arg(
            "import os, subprocess, sys\n\
             child = subprocess.Popen(sys.argv[1:])\n\
             _, status, usage = os.wait4(child.pid, 0)\n\
             sys.stderr.write(f'\\npeak-rss-kib {usage.ru_maxrss}\\n')\n\
             code = os.waitstatus_to_exitcode(status)\n\
             sys.exit(code if code >= 0 else 128 - code)\n",
        )
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapper.env(key, value),
            None => wrapper.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapper.current_dir(dir);
    }
    let mut output = output_within(&mut wrapper, deadline, what);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let (rest, last) = stderr
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("{what}: no peak line in\n{}", describe(&output)));
    let kib: u64 = last
        .strip_prefix("peak-rss-kib ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{what}: no peak line in\n{}", describe(&output)));
    output.stderr = rest.as_bytes().to_vec();
    assert!(
        output.status.success(),
        "{what} failed:\n{}",
        describe(&output)
    );
    (output, kib * 1024)
}

/// Fails unless `peak` is at most `factor` times `bytes`.
pub fn assert_peak_within(what: &str, peak: u64, factor: f64, bytes: u64) {
    let bound = (factor * bytes as f64) as u64;
    let ratio = peak as f64 / bytes as f64;
    eprintln!("{what}: peak RSS {} MiB, {ratio:.2}x", peak / (1 << 20));
    assert!(
        peak <= bound,
        "{what}: peak RSS {} MiB is {ratio:.2}x of {} MiB, more than {factor}x",
        peak / (1 << 20),
        bytes / (1 << 20)
    );
}
