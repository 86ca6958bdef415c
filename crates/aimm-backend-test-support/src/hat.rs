//! Real Hat processes on loopback, from the reference venv: a
//! `hat-event-server` (hat-event 0.9.44, `scripts/hat-event-server.sh`)
//! alone or in a redundant group under a `hat-monitor` (hat-monitor 0.8.23,
//! `scripts/hat-monitor.sh`), each in a fresh temporary directory.

use crate::process::{describe, output_within, try_output_within, COMMAND_DEADLINE};
use crate::root::workspace_root;
use crate::venv::python;
use anyhow::{anyhow, Context};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A process one of the scripts started in `dir` on `port`, stopped on
/// drop (its directory is then removed). The environment it was started
/// with is kept, so that a restart starts the same process.
struct Scripted {
    script: &'static str,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
    port: u16,
    env: Vec<(String, String)>,
}

/// Why one start failed: the script could not be run to completion, or it
/// ran and reported a failure (which a start tries again).
enum StartFailure {
    Run(anyhow::Error),
    Script(Output),
}

impl Scripted {
    /// Starts `script` in a fresh directory, failing the test if it
    /// cannot. Makes sure the reference venv exists first ([`python`]).
    /// Tests start processes in parallel, and two may pick the same free
    /// port at once, failing the loser's start: a start the script reports
    /// failed is tried up to 3 times.
    fn start(script: &'static str, env: Vec<(String, String)>) -> Self {
        python();
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(script, env.clone()) {
                Ok(process) => return process,
                Err(StartFailure::Run(err)) => panic!("{err:#}"),
                Err(StartFailure::Script(output)) => last = Some(output),
            }
        }
        panic!(
            "{script} did not start in 3 tries:\n{}",
            describe(&last.expect("tried"))
        );
    }

    /// [`Scripted::start_once`] with its failure as an error.
    fn try_start(script: &'static str, env: Vec<(String, String)>) -> anyhow::Result<Self> {
        Self::start_once(script, env).map_err(|failure| match failure {
            StartFailure::Run(err) => err,
            StartFailure::Script(output) => {
                anyhow!("{script} start failed:\n{}", describe(&output))
            }
        })
    }

    fn start_once(script: &'static str, env: Vec<(String, String)>) -> Result<Self, StartFailure> {
        let tmp = tempfile::tempdir()
            .context("making the process's directory")
            .map_err(StartFailure::Run)?;
        let dir = tmp.path().to_path_buf();
        let mut process = Scripted {
            script,
            dir,
            _tmp: tmp,
            port: 0,
            env,
        };
        let output = try_output_within(
            &mut process.command("start", None),
            COMMAND_DEADLINE,
            &format!("starting {script}"),
        )
        .map_err(StartFailure::Run)?;
        if !output.status.success() {
            return Err(StartFailure::Script(output));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        process.port = stdout
            .split_whitespace()
            .next()
            .with_context(|| format!("{script} printed no port"))
            .and_then(|port| {
                port.parse()
                    .with_context(|| format!("{script} printed port {port:?}"))
            })
            .map_err(StartFailure::Run)?;
        Ok(process)
    }

    /// `bash scripts/SCRIPT ACTION DIR` with the process's environment,
    /// and `port` in `port_var` if given.
    fn command(&self, action: &str, port: Option<(&str, u16)>) -> Command {
        let mut command = Command::new("bash");
        command
            .arg(workspace_root().join("scripts").join(self.script))
            .arg(action)
            .arg(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some((var, port)) = port {
            command.env(var, port.to_string());
        }
        command
    }

    /// Runs the script's `action`, failing the test if it fails or takes
    /// longer than [`COMMAND_DEADLINE`].
    fn run(&self, action: &str, port: Option<(&str, u16)>) {
        let output = output_within(
            &mut self.command(action, port),
            COMMAND_DEADLINE,
            &format!("{} {action}", self.script),
        );
        assert!(
            output.status.success(),
            "{} {action} failed:\n{}",
            self.script,
            describe(&output)
        );
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        // Not `run`, which fails the test on a deadline: a panic while the
        // test unwinds would abort the test binary. The stop scripts bound
        // their own wait (SIGKILL after 10 s).
        let _ = self.command("stop", None).output();
    }
}

/// A running `hat-event-server`, stopped on drop (its directory is then
/// removed).
pub struct HatServer {
    process: Scripted,
    /// The eventer port.
    pub port: u16,
}

impl HatServer {
    /// Starts a server of its own (server id 1, no monitor) in a fresh
    /// directory, failing the test if it cannot.
    pub fn start() -> Self {
        Self::from_process(Scripted::start("hat-event-server.sh", Vec::new()))
    }

    /// Starts server `server_id` of the redundant group under `monitor`
    /// (group `event`, one server token for the group): it syncs with the
    /// group's other servers, and is operational only while the monitor
    /// blesses it (the first ready server of the group; the next when that
    /// one goes).
    pub fn start_in_group(monitor: &HatMonitor, server_id: i64) -> Self {
        let env = vec![
            ("HAT_MONITOR_PORT".into(), monitor.port.to_string()),
            ("HAT_EVENT_SERVER_ID".into(), server_id.to_string()),
        ];
        Self::from_process(Scripted::start("hat-event-server.sh", env))
    }

    /// Starts a server of its own whose database flushes only every
    /// `period`, so a persisted notification comes that much after the
    /// registration (the default is 0.1 s).
    pub fn start_flushing_every(period: std::time::Duration) -> Self {
        let env = vec![(
            "HAT_EVENT_FLUSH_PERIOD".into(),
            format!("{}", period.as_secs_f64()),
        )];
        Self::from_process(Scripted::start("hat-event-server.sh", env))
    }

    /// The pid of the running server process.
    pub fn pid(&self) -> anyhow::Result<u32> {
        let text = std::fs::read_to_string(self.dir().join("server.pid"))
            .context("reading the server's pid file")?;
        text.trim()
            .parse()
            .with_context(|| format!("the server's pid file holds {text:?}"))
    }

    /// Starts a server of its own in a fresh directory, once; for a
    /// program (a benchmark) that has made the reference venv already and
    /// reports errors instead of panicking.
    pub fn try_start() -> anyhow::Result<Self> {
        Scripted::try_start("hat-event-server.sh", Vec::new()).map(Self::from_process)
    }

    /// [`HatServer::start_in_group`], once, reporting errors instead of
    /// panicking (for a benchmark).
    pub fn try_start_in_group(monitor: &HatMonitor, server_id: i64) -> anyhow::Result<Self> {
        let env = vec![
            ("HAT_MONITOR_PORT".into(), monitor.port.to_string()),
            ("HAT_EVENT_SERVER_ID".into(), server_id.to_string()),
        ];
        Scripted::try_start("hat-event-server.sh", env).map(Self::from_process)
    }

    fn from_process(process: Scripted) -> Self {
        HatServer {
            port: process.port,
            process,
        }
    }

    /// The server's directory (config, database, log, pid).
    pub fn dir(&self) -> &Path {
        &self.process.dir
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGTERM), keeping its database; fails the test if
    /// the script fails.
    pub fn stop(&self) {
        self.process.run("stop", None);
    }

    /// Kills the server with SIGKILL: no chance to flush anything. Fails
    /// the test if it cannot.
    pub fn kill(&self) {
        if let Err(err) = self.kill_now() {
            panic!("{err:#}");
        }
        // Let the process die and release its port.
        std::thread::sleep(std::time::Duration::from_millis(300));
    }

    /// Sends the server SIGKILL at once, reporting errors instead of
    /// panicking (for a benchmark, which times what follows).
    pub fn kill_now(&self) -> anyhow::Result<()> {
        let pid = self.pid()?;
        let status = Command::new("kill")
            .arg("-9")
            .arg(pid.to_string())
            .status()
            .context("running kill")?;
        anyhow::ensure!(status.success(), "kill -9 {pid} failed");
        Ok(())
    }

    /// Starts it again on the same database, port and group; fails the
    /// test if it does not start.
    pub fn start_again(&self) {
        self.process
            .run("start", Some(("HAT_EVENT_PORT", self.port)));
    }
}

/// A running `hat-monitor` (every group BLESS_ONE, one rank for all),
/// stopped on drop.
pub struct HatMonitor {
    process: Scripted,
    /// The port components connect to.
    pub port: u16,
}

impl HatMonitor {
    /// Starts a monitor in a fresh directory, failing the test if it
    /// cannot.
    pub fn start() -> Self {
        let process = Scripted::start("hat-monitor.sh", Vec::new());
        HatMonitor {
            port: process.port,
            process,
        }
    }

    /// [`HatMonitor::start`], once, reporting errors instead of panicking
    /// (for a benchmark).
    pub fn try_start() -> anyhow::Result<Self> {
        let process = Scripted::try_start("hat-monitor.sh", Vec::new())?;
        Ok(HatMonitor {
            port: process.port,
            process,
        })
    }

    /// The monitor's directory (config, log, pid).
    pub fn dir(&self) -> &Path {
        &self.process.dir
    }
}
