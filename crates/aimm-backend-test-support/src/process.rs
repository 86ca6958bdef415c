//! Running a command to completion with a deadline, so that a hung child
//! fails its test (or benchmark) instead of hanging it.
//!
//! [`try_output_within`] and [`try_wait_within`] return an error;
//! [`output_within`] and [`wait_within`] panic with the same message, for
//! tests.

use anyhow::{anyhow, Result};
use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a test lets a build (cargo, a venv's pip) run before failing.
pub const BUILD_DEADLINE: Duration = Duration::from_secs(1200);

/// How long a test lets a command it runs (the CLI, a Python tool) take
/// before it kills it and fails, naming the command.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(300);

/// Output of a finished command, for assertion and error messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `command` to completion (stdin closed, stdout and stderr
/// collected), killing it if it is still running after `deadline`; `what`
/// names it in the error. A command that ran, whatever its exit status, is
/// `Ok`.
pub fn try_output_within(command: &mut Command, deadline: Duration, what: &str) -> Result<Output> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| anyhow!("{what}: cannot start {command:?}: {err}"))?;
    try_wait_within(child, deadline, what)
}

/// [`try_output_within`], failing the test on an error.
pub fn output_within(command: &mut Command, deadline: Duration, what: &str) -> Output {
    try_output_within(command, deadline, what).unwrap_or_else(|err| panic!("{err:#}"))
}

/// Waits for `child` to exit, collecting whatever of its stdout and stderr
/// is piped and not taken yet; kills it and returns an error (with its
/// stderr) if it is still running after `deadline`.
pub fn try_wait_within(mut child: Child, deadline: Duration, what: &str) -> Result<Output> {
    fn drain(reader: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut reader) = reader {
                let _ = reader.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(anyhow!("{what}: wait for the child: {err}"));
            }
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).to_string();
            return Err(anyhow!(
                "{what}: still running after {deadline:?}, killed\n--- stderr\n{stderr}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// [`try_wait_within`], failing the test on an error.
pub fn wait_within(child: Child, deadline: Duration, what: &str) -> Output {
    try_wait_within(child, deadline, what).unwrap_or_else(|err| panic!("{err:#}"))
}

/// A process stopped with `SIGSTOP`, as a hung server is (connected, its
/// kernel still acknowledging TCP, nothing answered); resumed with
/// `SIGCONT` when dropped, also when the test fails, so that nothing waits
/// on it after the test.
pub struct Paused {
    pid: u32,
}

impl Paused {
    /// Stops process `pid`, failing the test if `kill` cannot.
    pub fn stop(pid: u32) -> Paused {
        signal("-STOP", pid);
        Paused { pid }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        signal("-CONT", self.pid);
    }
}

/// Sends `sig` to `pid` with `kill`, failing the test if it fails (unless
/// the test is failing already: a panic in `drop` would abort it).
fn signal(sig: &str, pid: u32) {
    let output = output_within(
        Command::new("kill").args([sig, &pid.to_string()]),
        COMMAND_DEADLINE,
        "kill",
    );
    if !output.status.success() && !std::thread::panicking() {
        panic!("kill {sig} {pid} failed:\n{}", describe(&output));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_that_ends_in_time_gives_its_output_whatever_its_status() {
        let output = try_output_within(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            COMMAND_DEADLINE,
            "sh",
        )
        .unwrap();
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(output.stdout, b"out\n");
        assert_eq!(output.stderr, b"err\n");
        assert_eq!(
            describe(&output),
            "status Some(3)\n--- stdout\nout\n\n--- stderr\nerr\n"
        );
    }

    #[test]
    fn a_command_past_its_deadline_is_killed_and_named() {
        let started = Instant::now();
        let err = try_output_within(
            Command::new("sh").args(["-c", "echo late >&2; exec sleep 30"]),
            Duration::from_millis(300),
            "the sleeper",
        )
        .unwrap_err()
        .to_string();
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(
            err.starts_with("the sleeper: still running after 300ms, killed"),
            "{err}"
        );
        assert!(err.ends_with("--- stderr\nlate\n"), "{err}");
    }

    #[test]
    fn a_command_that_cannot_start_is_an_error() {
        let err = try_output_within(
            &mut Command::new("/nonexistent/command"),
            COMMAND_DEADLINE,
            "nothing",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("nothing: cannot start"), "{err}");
    }

    #[test]
    #[should_panic(expected = "the sleeper: still running after")]
    fn the_panicking_form_fails_the_test() {
        output_within(
            Command::new("sleep").arg("30"),
            Duration::from_millis(100),
            "the sleeper",
        );
    }
}
