//! The event backends through one real `hat-event-server`: the Python
//! `aimm` 1.2.dev1 event backend against ours (loaded as a plugin), side by
//! side in one run, on fresh prefixes of one server.
//!
//! Each round times, for every variant, N creates of S bytes and then one
//! `get_models` returning exactly those N models (checked byte for byte):
//!
//! - `python`: `aimm.server.backend.event`, which registers without waiting
//!   for the server; its timing ends with a query on the same connection,
//!   which the server answers only after every registration before it.
//! - `ours, registered`: `acknowledge: registered`, each create waits for
//!   the server's confirmation (a server killed before its next flush may
//!   lose it).
//! - `ours, persisted, 16 threads`: the default, each create waits until the
//!   server reports the model persisted; 16 threads share the flushes.
//! - `ours, persisted, 1 thread`: the same, one create at a time, over
//!   `--persisted-count` creates (each waits for a flush, so it is slow).
//!
//! After `ours, registered`'s `get_models`, the same events are queried
//! bare by our Hat client on a connection of its own: the answer received
//! and decoded from SBS, nothing more (no model decoded). That is the
//! server's floor for `get_models`, measured in the same round; the report
//! gives `get_models` over that floor. The SBS decoding alone is timed on
//! that answer re-encoded, in memory: its share of `get_models`.
//!
//! ```text
//! cargo build --release -p aimm-backend-bench -p aimm-backend-event
//! target/release/event-bench [--count N] [--size BYTES] [--rounds R] [--persisted-count M]
//! ```

#![forbid(unsafe_code)]

use aimm_backend_api::{Backend, RVec};
use aimm_backend_bench::stats::median;
use aimm_backend_bench::sysinfo;
use aimm_backend_hat_host::open_backend;
use aimm_backend_loader::{SearchPath, ServerConfig};
use aimm_backend_test_support::payload::round_bytes;
use aimm_backend_test_support::{venv_python, workspace_root, HatServer};
use anyhow::{bail, ensure, Context, Result};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

struct Args {
    count: usize,
    size: usize,
    rounds: usize,
    persisted_count: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        count: 1000,
        size: 65536,
        rounds: 3,
        persisted_count: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let value: usize = value.parse().with_context(|| format!("{flag} {value}"))?;
        match flag.as_str() {
            "--count" => args.count = value.max(1),
            "--size" => args.size = value,
            "--rounds" => args.rounds = value.max(1),
            "--persisted-count" => args.persisted_count = value.max(1),
            _ => bail!(
                "unknown option {flag}; expected --count, --size, --rounds or --persisted-count"
            ),
        }
    }
    Ok(args)
}

/// One variant's timings in one round.
#[derive(Debug, Clone, Copy)]
struct Timing {
    creates: usize,
    create_s: f64,
    get_models_s: f64,
}

/// What a bare query of one prefix costs: the server's answer, and the SBS
/// decoding of it alone.
#[derive(Debug, Clone, Copy)]
struct Floor {
    query_s: f64,
    decode_s: f64,
}

/// Queries the latest events under `[bench, prefix, *]` with our client
/// alone, and times decoding that answer once more from its bytes.
fn bare_query(
    runtime: &tokio::runtime::Runtime,
    server: &HatServer,
    prefix: &str,
) -> Result<Floor> {
    use hat_eventer_client::client::{connect, ClientConfig};
    use hat_eventer_client::eventer_msg::{self as msg, MsgInitReq, QueryParams};
    let init = MsgInitReq {
        client_name: "event-bench-floor".into(),
        client_token: None,
        subscriptions: vec![],
        server_id: None,
        persisted: false,
    };
    let address = server.address();
    let (client, _) = runtime.block_on(connect(&address, init, ClientConfig::default()))?;
    let params = QueryParams::Latest {
        event_types: Some(vec![vec!["bench".into(), prefix.into(), "*".into()]]),
    };
    let started = Instant::now();
    let result = runtime.block_on(client.query(params))?;
    let query_s = started.elapsed().as_secs_f64();
    runtime.block_on(client.close());
    let bytes = msg::encode(&result);
    let started = Instant::now();
    let decoded: msg::QueryResult = msg::decode(&bytes)?;
    let decode_s = started.elapsed().as_secs_f64();
    ensure!(
        decoded.events.len() == result.events.len(),
        "decoding lost events"
    );
    Ok(Floor { query_s, decode_s })
}

fn python_round(
    repo: &Path,
    python: &Path,
    server: &HatServer,
    prefix: &str,
    args: &Args,
) -> Result<Timing> {
    let output = Command::new(python)
        .arg(repo.join("tests/python/bench_aimm_event.py"))
        .args(["127.0.0.1", &server.port.to_string()])
        .arg(format!("[\"bench\", \"{prefix}\"]"))
        .args(["--count", &args.count.to_string()])
        .args(["--size", &args.size.to_string()])
        .output()?;
    ensure!(
        output.status.success(),
        "bench_aimm_event.py failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok(Timing {
        creates: args.count,
        create_s: result["create_s"].as_f64().context("create_s")?,
        get_models_s: result["get_models_s"].as_f64().context("get_models_s")?,
    })
}

/// Our backend (the event plugin) on `prefix`, acknowledging as `acknowledge`.
fn our_backend(
    server: &HatServer,
    prefix: &str,
    acknowledge: &str,
) -> Result<aimm_backend_loader::BackendHandle> {
    let yaml = format!(
        "name: event-bench\nhat:\n  eventer_server: {{host: 127.0.0.1, port: {}, timeout: 30}}\n\
         backend:\n  module: aimm.server.backend.event\n  model_prefix: [bench, {prefix}]\n  acknowledge: {acknowledge}\n",
        server.port
    );
    let config = ServerConfig::from_yaml(&yaml, "event-bench")?;
    let exe_dir = std::env::current_exe()?
        .parent()
        .context("the executable has no directory")?
        .to_path_buf();
    Ok(open_backend(
        &config,
        &SearchPath::from_dirs(vec![exe_dir]),
    )?)
}

fn our_round(
    backend: &Arc<dyn Backend>,
    round: usize,
    count: usize,
    size: usize,
    threads: usize,
) -> Result<Timing> {
    let payloads: Vec<Vec<u8>> = (0..count).map(|i| round_bytes(round, i, size)).collect();
    let mut inputs: Vec<Vec<RVec<u8>>> = vec![Vec::new(); threads];
    for (i, bytes) in payloads.iter().enumerate() {
        inputs[i % threads].push(bytes.clone().into());
    }
    let started = Instant::now();
    let created: Vec<Vec<(i64, usize)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = inputs
            .into_iter()
            .enumerate()
            .map(|(t, mine)| {
                scope.spawn(move || -> Result<Vec<(i64, usize)>> {
                    mine.into_iter()
                        .enumerate()
                        .map(|(k, bytes)| {
                            let model = backend.create_model("rs.bench".into(), bytes)?;
                            Ok((model.instance_id, k * threads + t))
                        })
                        .collect()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a create thread panicked"))
            .collect::<Result<_>>()
    })?;
    let create_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let models = backend.get_models()?;
    let get_models_s = started.elapsed().as_secs_f64();
    ensure!(
        models.len() == count,
        "get_models returned {}, expected {count}",
        models.len()
    );
    for (id, index) in created.into_iter().flatten() {
        let model = models
            .iter()
            .find(|m| m.instance_id == id)
            .with_context(|| format!("model {id} is missing"))?;
        ensure!(
            model.instance.as_slice() == payloads[index].as_slice(),
            "model {id} differs"
        );
    }
    Ok(Timing {
        creates: count,
        create_s,
        get_models_s,
    })
}

const VARIANTS: [&str; 4] = [
    "python",
    "ours, registered",
    "ours, persisted, 16 threads",
    "ours, persisted, 1 thread",
];

fn main() -> Result<()> {
    let args = parse_args()?;
    let repo = workspace_root().canonicalize()?;
    let python = venv_python(&repo, sysinfo::default_allocator)?;
    let server = HatServer::try_start()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let _context = runtime.enter();

    let mut timings: Vec<Vec<Timing>> = vec![Vec::new(); VARIANTS.len()];
    let mut floors: Vec<Floor> = Vec::new();
    for round in 0..args.rounds {
        eprintln!("round {}/{}", round + 1, args.rounds);
        timings[0].push(python_round(
            &repo,
            &python,
            &server,
            &format!("py{round}"),
            &args,
        )?);
        let plan = [
            ("registered", args.count, 1),
            ("persisted", args.count, 16),
            ("persisted", args.persisted_count, 1),
        ];
        for (v, (acknowledge, count, threads)) in plan.into_iter().enumerate() {
            let prefix = format!("rs{round}-{v}");
            let handle = our_backend(&server, &prefix, acknowledge)?;
            timings[v + 1].push(our_round(
                handle.backend(),
                round,
                count,
                args.size,
                threads,
            )?);
            if v == 0 {
                floors.push(bare_query(&runtime, &server, &prefix)?);
            }
        }
    }
    report(&args, &timings);
    report_floor(&timings[1], &floors);
    Ok(())
}

fn report(args: &Args, timings: &[Vec<Timing>]) {
    println!(
        "Creates of {} KiB models, then one get_models of them, through one hat-event-server \
         0.9.44 (LMDB, flush_period 0.1 s) on loopback; median of {} rounds",
        args.size / 1024,
        args.rounds
    );
    println!();
    println!("| variant | creates | create s | per create ms | get_models s |");
    println!("|---|---|---|---|---|");
    let medians: Vec<(usize, f64, f64)> = timings
        .iter()
        .map(|t| {
            (
                t[0].creates,
                median(&t.iter().map(|x| x.create_s).collect::<Vec<_>>()),
                median(&t.iter().map(|x| x.get_models_s).collect::<Vec<_>>()),
            )
        })
        .collect();
    for (name, (creates, create_s, get_s)) in VARIANTS.iter().zip(&medians) {
        println!(
            "| {name} | {creates} | {create_s:.3} | {:.2} | {get_s:.3} |",
            create_s * 1000.0 / *creates as f64
        );
    }
    let (_, py_create, py_get) = medians[0];
    println!();
    println!("| Python / ours | create ratio (per create) | get_models ratio | target |");
    println!("|---|---|---|---|");
    for (name, (creates, create_s, get_s)) in VARIANTS.iter().zip(&medians).skip(1) {
        let per_ours = create_s / *creates as f64;
        let per_py = py_create / args.count as f64;
        // get_models is only comparable over the same number of models.
        let get_ratio = if *creates == args.count {
            format!("{:.2}x", py_get / get_s)
        } else {
            format!("n/a ({creates} models)")
        };
        println!(
            "| {name} | {:.2}x | {get_ratio} | creates >= 1x, get_models >= 3x |",
            per_py / per_ours
        );
    }
}

/// `get_models` of `ours, registered` against the bare query of the same
/// events in the same round.
fn report_floor(ours: &[Timing], floors: &[Floor]) {
    let get_s: Vec<f64> = ours.iter().map(|t| t.get_models_s).collect();
    let query_s: Vec<f64> = floors.iter().map(|f| f.query_s).collect();
    let decode_s: Vec<f64> = floors.iter().map(|f| f.decode_s).collect();
    let over: Vec<f64> = get_s.iter().zip(&query_s).map(|(g, q)| g / q).collect();
    let share: Vec<f64> = decode_s.iter().zip(&get_s).map(|(d, g)| d / g).collect();
    println!();
    println!(
        "| get_models (ours, registered) s | bare query s | get_models / bare query | target | \
         SBS decoding s | SBS share of get_models |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {:.3} | {:.3} | {:.2}x | <= 1.15x | {:.4} | {:.1}% |",
        median(&get_s),
        median(&query_s),
        median(&over),
        median(&decode_s),
        median(&share) * 100.0
    );
}
