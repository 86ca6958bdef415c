//! A fail-over under load, side by side in one run: a real `hat-monitor`
//! and two real `hat-event-server`s per variant (fresh each time), models
//! of `--size` bytes created one by one, awaited, for `--before` seconds;
//! then the active server is killed (SIGKILL) and creates go on for
//! `--after` seconds (a failed one is tried again 10 ms later); then the
//! new active server's listing says which creates stayed.
//!
//! Variants:
//!
//! - `stock`: `aimm.server.backend.event` through `hat.event.component`, as
//!   the Python AIMM server runs it with `hat.monitor_component`
//!   (`tests/python/bench_failover.py`);
//! - `ours via Python`: `aimm_backend.event` the same way (the package's
//!   bridge to the component's client);
//! - `ours, persisted` / `ours, sent`: the event plugin opened by our
//!   loader with `hat.monitor_component` (our host follows the monitor),
//!   acknowledging once persisted (the default) or once sent (the stock
//!   guarantee).
//!
//! For each: creates per second before and after the kill (only creates
//! that stayed count after it), seconds from the kill to the first create
//! that stayed, creates that returned but did not stay (lost: never stored,
//! or overwritten under a reused id), and the floor beside them: seconds
//! from the kill until the standby reports itself operational (polled every
//! 10 ms with our Hat client).
//!
//! ```text
//! cargo build --release -p aimm-backend-bench -p aimm-backend-event
//! bash scripts/install-wheel.sh target/py-venv/bin/python   # for `ours via Python`
//! target/release/failover-bench [--size BYTES] [--before S] [--after S]
//! ```

#![forbid(unsafe_code)]

use aimm_backend_api::Backend;
use aimm_backend_hat_host::open_backend;
use aimm_backend_loader::{SearchPath, ServerConfig};
use aimm_backend_test_support::{venv_python, workspace_root, HatMonitor, HatServer};
use anyhow::{bail, ensure, Context, Result};
use hat_eventer_client::eventer_msg::Status;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

struct Args {
    size: usize,
    before: f64,
    after: f64,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        size: 4096,
        before: 3.0,
        after: 8.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--size" => args.size = value.parse().with_context(|| format!("--size {value}"))?,
            "--before" => {
                args.before = value.parse().with_context(|| format!("--before {value}"))?
            }
            "--after" => args.after = value.parse().with_context(|| format!("--after {value}"))?,
            _ => bail!("unknown option {flag}; expected --size, --before or --after"),
        }
    }
    ensure!(args.size >= 8, "--size must be at least 8 bytes");
    Ok(args)
}

/// A create that returned: seconds from its phase's start, id, and the
/// first 8 bytes of its model (random, so a model overwritten under the
/// same id is told apart).
#[derive(Debug, Clone)]
struct Returned {
    at: f64,
    id: i64,
    tag: String,
}

/// One variant's run.
struct Run {
    before: Vec<Returned>,
    after: Vec<Returned>,
    failed_after_kill: usize,
    /// The new active server's listing: id -> first 8 bytes.
    stored: BTreeMap<i64, String>,
    /// Seconds from the kill until the standby reported operational.
    switch_s: f64,
}

impl Run {
    fn kept(&self, returned: &Returned) -> bool {
        self.stored.get(&returned.id) == Some(&returned.tag)
    }

    fn line(&self, name: &str, args: &Args) -> String {
        let kept_after: Vec<&Returned> = self.after.iter().filter(|r| self.kept(r)).collect();
        let first = kept_after.first().map(|r| r.at);
        let rate_after = match first {
            Some(first) if args.after > first => kept_after.len() as f64 / (args.after - first),
            _ => 0.0,
        };
        let lost = self
            .before
            .iter()
            .chain(&self.after)
            .filter(|r| !self.kept(r))
            .count();
        format!(
            "| {name} | {:.0} | {} | {:.0} | {lost} of {} | {} | {:.2} |",
            self.before.len() as f64 / args.before,
            first.map_or("never".into(), |s| format!("{s:.2}")),
            rate_after,
            self.before.len() + self.after.len(),
            self.failed_after_kill,
            self.switch_s,
        )
    }
}

/// A monitor and two servers of group `event`: server 1 operational,
/// server 2 its standby.
fn group(runtime: &tokio::runtime::Runtime) -> Result<(HatMonitor, HatServer, HatServer)> {
    let monitor = HatMonitor::try_start()?;
    let first = HatServer::try_start_in_group(&monitor, 1)?;
    wait_status(
        runtime,
        &first,
        Status::Operational,
        Duration::from_secs(60),
    )?;
    let second = HatServer::try_start_in_group(&monitor, 2)?;
    wait_status(runtime, &second, Status::Standby, Duration::from_secs(60))?;
    Ok((monitor, first, second))
}

/// `server`'s status as reported to a new connection.
fn status_of(runtime: &tokio::runtime::Runtime, server: &HatServer) -> Result<Status> {
    use hat_eventer_client::client::{connect, ClientConfig};
    use hat_eventer_client::eventer_msg::MsgInitReq;
    let init = MsgInitReq {
        client_name: "failover-bench-probe".into(),
        client_token: None,
        subscriptions: vec![],
        server_id: None,
        persisted: false,
    };
    let config = ClientConfig {
        connect_timeout: Duration::from_secs(1),
        ..ClientConfig::default()
    };
    let (client, _) = runtime.block_on(connect(&server.address(), init, config))?;
    let status = client.status();
    runtime.block_on(client.close());
    Ok(status)
}

/// Waits until `server` reports `status`, polling every 10 ms; returns the
/// seconds it took.
fn wait_status(
    runtime: &tokio::runtime::Runtime,
    server: &HatServer,
    status: Status,
    limit: Duration,
) -> Result<f64> {
    let started = Instant::now();
    loop {
        if matches!(status_of(runtime, server), Ok(now) if now == status) {
            return Ok(started.elapsed().as_secs_f64());
        }
        ensure!(
            started.elapsed() < limit,
            "server {} did not report {status:?} within {limit:?}",
            server.address()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A variant through `tests/python/bench_failover.py`.
fn python_run(
    runtime: &tokio::runtime::Runtime,
    python: &Path,
    module: &str,
    args: &Args,
) -> Result<Run> {
    let (monitor, first, second) = group(runtime)?;
    let child = Command::new(python)
        .arg(workspace_root().join("tests/python/bench_failover.py"))
        .args(["--module", module])
        .args(["--monitor-port", &monitor.port.to_string()])
        .arg("--kill-pid-file")
        .arg(first.dir().join("server.pid"))
        .args(["--size", &args.size.to_string()])
        .args(["--before", &args.before.to_string()])
        .args(["--after", &args.after.to_string()])
        .env("PYTHONWARNINGS", "ignore")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting bench_failover.py")?;
    // The helper kills server 1 after `before` seconds; the switch is timed
    // from when it is seen gone.
    let switch_s = time_switch(runtime, &first, &second, args)?;
    let output = child.wait_with_output()?;
    ensure!(
        output.status.success(),
        "bench_failover.py {module} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(
        output
            .stdout
            .split(|b| *b == b'\n')
            .rfind(|l| !l.is_empty())
            .unwrap_or_default(),
    )
    .context("bench_failover.py printed no JSON")?;
    let returned = |key: &str| -> Vec<Returned> {
        report[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|entry| Returned {
                at: entry[0].as_f64().unwrap_or_default(),
                id: entry[1][0].as_i64().unwrap_or_default(),
                tag: entry[1][1].as_str().unwrap_or_default().to_string(),
            })
            .collect()
    };
    let stored = report["stored"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(id, tag)| Some((id.parse().ok()?, tag.as_str()?.to_string())))
        .collect();
    Ok(Run {
        before: returned("before"),
        after: returned("after"),
        failed_after_kill: report["failed_after_kill"].as_u64().unwrap_or_default() as usize,
        stored,
        switch_s,
    })
}

/// Waits until `first` is gone, then times how long `second` takes to
/// report itself operational.
fn time_switch(
    runtime: &tokio::runtime::Runtime,
    first: &HatServer,
    second: &HatServer,
    args: &Args,
) -> Result<f64> {
    let pid = first.pid()?;
    let limit = Instant::now() + Duration::from_secs_f64(args.before + 60.0);
    while Path::new(&format!("/proc/{pid}/stat")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
    {
        ensure!(Instant::now() < limit, "server 1 was never killed");
        std::thread::sleep(Duration::from_millis(1));
    }
    wait_status(
        runtime,
        second,
        Status::Operational,
        Duration::from_secs(60),
    )
}

/// One create through `backend`.
fn attempt(backend: &dyn Backend, size: usize, at: f64) -> Option<Returned> {
    let tag: [u8; 8] = std::array::from_fn(|_| fastrand_byte());
    let mut bytes = tag.to_vec();
    bytes.resize(size, 0);
    let model = backend
        .create_model("bench.Model".into(), bytes.into())
        .ok()?;
    Some(Returned {
        at,
        id: model.instance_id,
        tag: hex(&tag),
    })
}

/// A byte from the clock and a counter: random enough to tell models apart.
fn fastrand_byte() -> u8 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ nanos;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x as u8
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates through `backend` for `seconds`: those that returned, and the
/// count of those that failed.
fn creates_for(backend: &dyn Backend, seconds: f64, size: usize) -> (Vec<Returned>, usize) {
    let started = Instant::now();
    let (mut done, mut failed) = (Vec::new(), 0);
    loop {
        let at = started.elapsed().as_secs_f64();
        if at >= seconds {
            return (done, failed);
        }
        match attempt(backend, size, at) {
            Some(returned) => done.push(returned),
            None => {
                failed += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// A variant through our loader and host, following the monitor.
fn rust_run(runtime: &tokio::runtime::Runtime, acknowledge: &str, args: &Args) -> Result<Run> {
    let (monitor, first, second) = group(runtime)?;
    let plugin = workspace_root().join("target/release/libaimm_backend_event.so");
    ensure!(
        plugin.is_file(),
        "missing {}: build aimm-backend-event",
        plugin.display()
    );
    let config = ServerConfig::from_value(
        serde_json::json!({
            "name": "failover-bench",
            "hat": {"monitor_component": {"host": "127.0.0.1", "port": monitor.port,
                    "group": "bench", "event_server_group": "event"}},
            "backend": {"module": plugin.to_string_lossy(), "model_prefix": ["aimm", "bench"],
                        "acknowledge": acknowledge},
        }),
        "failover-bench",
    )?;
    let _entered = runtime.enter();
    let handle = open_backend(&config, &SearchPath::from_dirs(Vec::new()))?;
    let backend = handle.backend().clone();
    let (before, _) = creates_for(backend.as_ref(), args.before, args.size);
    first.kill_now()?;
    let switch = std::thread::scope(|scope| {
        let timer = scope.spawn(|| {
            wait_status(
                runtime,
                &second,
                Status::Operational,
                Duration::from_secs(60),
            )
        });
        let after = creates_for(backend.as_ref(), args.after, args.size);
        (timer.join(), after)
    });
    let (switch_s, (after, failed_after_kill)) = switch;
    let switch_s = switch_s.map_err(|_| anyhow::anyhow!("the switch timer panicked"))??;
    let stored = listing(backend.as_ref())?;
    Ok(Run {
        before,
        after,
        failed_after_kill,
        stored,
        switch_s,
    })
}

/// The backend's listing once it lists: id -> first 8 bytes.
fn listing(backend: &dyn Backend) -> Result<BTreeMap<i64, String>> {
    let limit = Instant::now() + Duration::from_secs(60);
    loop {
        match backend.get_models() {
            Ok(models) => {
                return Ok(models
                    .into_iter()
                    .map(|m| (m.instance_id, hex(&m.instance[..8.min(m.instance.len())])))
                    .collect())
            }
            Err(err) => ensure!(Instant::now() < limit, "no listing within 60 s: {err}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let repo = workspace_root();
    let python = venv_python(&repo, |_| {})?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!(
        "fail-over under load: {} B models, one create at a time; active server SIGKILLed \
         after {} s, creates for {} s after\n",
        args.size, args.before, args.after
    );
    println!(
        "| variant | creates/s before | kill to first create that stayed (s) | creates/s after \
         (stayed) | returned but lost | failed after the kill | floor: kill to standby \
         operational (s) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let stock = python_run(&runtime, &python, "aimm.server.backend.event", &args)?;
    println!("{}", stock.line("stock `aimm.server.backend.event`", &args));
    let bridge = python_run(&runtime, &python, "aimm_backend.event", &args)?;
    println!("{}", bridge.line("`aimm_backend.event` via Python", &args));
    for acknowledge in ["persisted", "sent"] {
        let ours = rust_run(&runtime, acknowledge, &args)?;
        println!(
            "{}",
            ours.line(&format!("ours, our host, `{acknowledge}`"), &args)
        );
    }
    Ok(())
}
