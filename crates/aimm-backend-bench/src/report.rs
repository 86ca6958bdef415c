//! Measurements run in another process that report one JSON value, the last
//! line they print: a benchmark re-executed for a figure that needs a fresh
//! process, and the stock Python backend's benchmark.

use crate::sysinfo;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// Why a child's report could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The program did not start.
    #[error("could not run {program}: {source}")]
    Start {
        /// The program, as it was to be run.
        program: String,
        /// Why it did not start.
        #[source]
        source: std::io::Error,
    },
    /// It ran and failed.
    #[error("{what} failed ({status}): {output}")]
    Failed {
        /// The child, as the caller named it.
        what: String,
        /// How it ended.
        status: ExitStatus,
        /// What it printed, stdout then stderr.
        output: String,
    },
    /// Its last line is not JSON.
    #[error("{what} printed {line:?} last, expected a JSON report: {source}")]
    NotJson {
        /// The child, as the caller named it.
        what: String,
        /// Its last line of stdout.
        line: String,
        /// Where the JSON parser gave up.
        #[source]
        source: serde_json::Error,
    },
    /// The report lacks a field, or says the run did not verify.
    #[error("{what}: {problem}, in its report {report}")]
    Report {
        /// The child, as the caller named it.
        what: String,
        /// What is wrong with the report.
        problem: String,
        /// The report.
        report: Value,
    },
}

/// Runs `command` to its end with glibc's default allocator settings (see
/// [`sysinfo::default_allocator`]) and parses the last line it printed.
/// `what` names the child in errors.
///
/// ```
/// use std::process::Command;
/// let mut echo = Command::new("sh");
/// echo.args(["-c", r#"echo warming up; echo '{"secs": 0.5}'"#]);
/// let report = aimm_backend_bench::report::run(&mut echo, "echo").unwrap();
/// assert_eq!(report["secs"], 0.5);
/// ```
pub fn run(command: &mut Command, what: &str) -> Result<Value, ReportError> {
    sysinfo::default_allocator(command);
    let output = command.output().map_err(|source| ReportError::Start {
        program: format!("{:?}", command.get_program()),
        source,
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(ReportError::Failed {
            what: what.to_string(),
            status: output.status,
            output: format!(
                "{}{}",
                stdout.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).map_err(|source| ReportError::NotJson {
        what: what.to_string(),
        line: line.to_string(),
        source,
    })
}

/// The stock Python SQLite backend's benchmark,
/// `tests/python/bench_aimm_sqlite.py`: creates, one `get_models` and
/// updates on a fresh file, each phase timed by the script.
pub struct StockBench {
    /// The venv's interpreter, with `aimm` installed.
    pub interpreter: PathBuf,
    /// The script.
    pub script: PathBuf,
}

/// One run of [`StockBench`].
pub struct StockRun {
    /// Seconds of the creates.
    pub create: f64,
    /// Seconds of the `get_models`.
    pub get_models: f64,
    /// Seconds of the updates.
    pub update: f64,
    /// The whole report.
    pub report: Value,
}

impl StockBench {
    /// The script of the repository at `repo`, run by `interpreter`.
    pub fn new(interpreter: PathBuf, repo: &Path) -> StockBench {
        StockBench {
            interpreter,
            script: repo.join("tests/python/bench_aimm_sqlite.py"),
        }
    }

    /// `count` models of `size` bytes, the script's file in a temporary
    /// directory under `dir`. A run whose read-back did not match fails.
    pub fn run(&self, count: usize, size: usize, dir: &Path) -> Result<StockRun, ReportError> {
        let what = "the stock Python benchmark";
        let mut command = Command::new(&self.interpreter);
        command
            .arg(&self.script)
            .args(["--count", &count.to_string(), "--size", &size.to_string()])
            .arg("--dir")
            .arg(dir);
        let report = run(&mut command, what)?;
        let problem = |problem: String| ReportError::Report {
            what: what.to_string(),
            problem,
            report: report.clone(),
        };
        if report["verified"] != true {
            return Err(problem("the models read back did not match".into()));
        }
        let secs = |key: &str| {
            report[key]
                .as_f64()
                .ok_or_else(|| problem(format!("no number `{key}`")))
        };
        let (create, get_models, update) =
            (secs("create_s")?, secs("get_models_s")?, secs("update_s")?);
        Ok(StockRun {
            create,
            get_models,
            update,
            report,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn the_last_line_is_the_report() {
        let report = run(&mut sh(r#"echo '{"a": 1}'; echo '{"b": 2}'"#), "two").unwrap();
        assert_eq!(report, serde_json::json!({"b": 2}));
    }

    #[test]
    fn a_failed_child_is_an_error_with_what_it_printed() {
        let err = run(&mut sh("echo out; echo err >&2; exit 3"), "the child").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ReportError::Failed { .. }), "{text}");
        for part in ["the child failed", "3", "out", "err"] {
            assert!(text.contains(part), "{part:?} not in {text:?}");
        }
    }

    #[test]
    fn a_last_line_that_is_not_json_is_an_error_naming_it() {
        let err = run(&mut sh(r#"echo '{"a": 1}'; echo done"#), "the child").unwrap_err();
        assert!(matches!(err, ReportError::NotJson { .. }));
        assert!(err.to_string().contains(r#"printed "done" last"#), "{err}");
    }

    #[test]
    fn a_program_that_does_not_start_is_an_error_naming_it() {
        let err = run(&mut Command::new("/nonexistent/bench"), "it").unwrap_err();
        assert!(matches!(err, ReportError::Start { .. }));
        assert!(err.to_string().contains("/nonexistent/bench"), "{err}");
    }

    /// A stand-in for the Python script: `sh` runs the "script" and ignores
    /// the arguments.
    fn stock(dir: &tempfile::TempDir, report: &str) -> StockBench {
        let script = dir.path().join("bench.sh");
        std::fs::write(&script, format!("echo '{report}'\n")).unwrap();
        StockBench {
            interpreter: "sh".into(),
            script,
        }
    }

    #[test]
    fn a_stock_run_gives_its_three_phases() {
        let dir = tempfile::tempdir().unwrap();
        let run = stock(
            &dir,
            r#"{"verified": true, "create_s": 1.5, "get_models_s": 0.25, "update_s": 2}"#,
        )
        .run(3, 4096, Path::new("/tmp"))
        .unwrap();
        assert_eq!((run.create, run.get_models, run.update), (1.5, 0.25, 2.0));
        assert_eq!(run.report["verified"], true);
    }

    #[test]
    fn a_stock_run_that_did_not_verify_or_lacks_a_phase_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        for (report, expected) in [
            (
                r#"{"verified": false, "create_s": 1, "get_models_s": 1, "update_s": 1}"#,
                "did not match",
            ),
            (
                r#"{"verified": true, "create_s": 1, "update_s": 1}"#,
                "no number `get_models_s`",
            ),
        ] {
            let err = stock(&dir, report)
                .run(1, 1, Path::new("/tmp"))
                .err()
                .expect("an error");
            assert!(err.to_string().contains(expected), "{err}");
        }
    }
}
