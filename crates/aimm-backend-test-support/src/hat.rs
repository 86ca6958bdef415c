//! A real `hat-event-server` (hat-event 0.9.44 from the reference venv) on
//! loopback, started and stopped by `scripts/hat-event-server.sh` in a
//! fresh temporary directory.

use crate::process::{describe, output_within, try_output_within, COMMAND_DEADLINE};
use crate::root::workspace_root;
use crate::venv::python;
use anyhow::{anyhow, Context};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A running `hat-event-server`, stopped on drop (its directory is then
/// removed).
pub struct HatServer {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
    /// The eventer port.
    pub port: u16,
}

/// Why one start failed: the script could not be run to completion, or it
/// ran and reported a failure (which a start tries again).
enum StartFailure {
    Run(anyhow::Error),
    Script(Output),
}

impl HatServer {
    /// Starts a server in a fresh directory, failing the test if it cannot.
    /// Makes sure the reference venv exists first ([`python`]). Tests start
    /// servers in parallel, and two may pick the same free port at once,
    /// failing the loser's start: a start the script reports failed is
    /// tried up to 3 times.
    pub fn start() -> Self {
        python();
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once() {
                Ok(server) => return server,
                Err(StartFailure::Run(err)) => panic!("{err:#}"),
                Err(StartFailure::Script(output)) => last = Some(output),
            }
        }
        panic!(
            "hat-event-server did not start in 3 tries:\n{}",
            describe(&last.expect("tried"))
        );
    }

    /// Starts a server in a fresh directory, once; for a program (a
    /// benchmark) that has made the reference venv already and reports
    /// errors instead of panicking.
    pub fn try_start() -> anyhow::Result<Self> {
        Self::start_once().map_err(|failure| match failure {
            StartFailure::Run(err) => err,
            StartFailure::Script(output) => {
                anyhow!("hat-event-server.sh start failed:\n{}", describe(&output))
            }
        })
    }

    fn start_once() -> Result<Self, StartFailure> {
        let tmp = tempfile::tempdir()
            .context("making the server's directory")
            .map_err(StartFailure::Run)?;
        let dir = tmp.path().to_path_buf();
        let output = try_output_within(
            Command::new("bash")
                .arg(workspace_root().join("scripts/hat-event-server.sh"))
                .arg("start")
                .arg(&dir),
            COMMAND_DEADLINE,
            "starting hat-event-server",
        )
        .map_err(StartFailure::Run)?;
        if !output.status.success() {
            return Err(StartFailure::Script(output));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let port = stdout
            .split_whitespace()
            .next()
            .context("hat-event-server.sh printed no port")
            .and_then(|port| {
                port.parse()
                    .with_context(|| format!("hat-event-server.sh printed port {port:?}"))
            })
            .map_err(StartFailure::Run)?;
        Ok(HatServer {
            dir,
            _tmp: tmp,
            port,
        })
    }

    /// The server's directory (config, database, log, pid).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs `hat-event-server.sh ACTION DIR` (with `HAT_EVENT_PORT` if
    /// `port` is given), failing the test past [`COMMAND_DEADLINE`].
    fn script(&self, action: &str, port: Option<u16>) -> Output {
        let mut command = Command::new("bash");
        command
            .arg(workspace_root().join("scripts/hat-event-server.sh"))
            .arg(action)
            .arg(&self.dir);
        if let Some(port) = port {
            command.env("HAT_EVENT_PORT", port.to_string());
        }
        output_within(
            &mut command,
            COMMAND_DEADLINE,
            &format!("hat-event-server.sh {action}"),
        )
    }

    /// Stops the server (SIGTERM), keeping its database; fails the test if
    /// the script fails.
    pub fn stop(&self) {
        let output = self.script("stop", None);
        assert!(output.status.success(), "{}", describe(&output));
    }

    /// Kills the server with SIGKILL: no chance to flush anything. Fails
    /// the test if it cannot.
    pub fn kill(&self) {
        let pid = std::fs::read_to_string(self.dir.join("server.pid")).unwrap();
        let status = Command::new("kill")
            .arg("-9")
            .arg(pid.trim())
            .status()
            .unwrap();
        assert!(status.success());
        // Let the process die and release its port.
        std::thread::sleep(std::time::Duration::from_millis(300));
    }

    /// Starts it again on the same database and port; fails the test if it
    /// does not start.
    pub fn start_again(&self) {
        let output = self.script("start", Some(self.port));
        assert!(
            output.status.success(),
            "restart failed:\n{}",
            describe(&output)
        );
    }
}

impl Drop for HatServer {
    fn drop(&mut self) {
        // Not `script`, which fails the test on a deadline: a panic while
        // the test unwinds would abort the test binary. The stop script
        // bounds its own wait (SIGKILL after 10 s).
        let _ = Command::new("bash")
            .arg(workspace_root().join("scripts/hat-event-server.sh"))
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}
