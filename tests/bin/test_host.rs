//! `aimm-test-host`: a stand-in for one AIMM host, for tests that run
//! several at once in separate processes.
//!
//! ```text
//! aimm-test-host CONF TAG COUNT
//! ```
//!
//! Opens the backend CONF describes (through the loader, as a host does),
//! registers a change listener, then makes COUNT models of type TAG and
//! updates each once. Model `i`'s bytes are `TAG/i/created`, then
//! `TAG/i/updated` (padded to 1 KiB with spaces). Every acknowledged write
//! is printed as `created ID` or `updated ID` as soon as the call returns;
//! then `written`.
//!
//! It then reads one line from stdin: a JSON object mapping instance ids
//! (as strings) to the bytes (trimmed) the listener must have reported last
//! for them, and waits up to 60 s until it has. It prints `seen all`, or
//! `missing ID: last seen ...` for each one not seen, and exits 0 either way
//! (the test judges); 1 when a call fails.

use aimm_backend_api::Model;
use aimm_backend_loader::{SearchPath, ServerConfig};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const MODEL_LEN: usize = 1024;
const SEEN_DEADLINE: Duration = Duration::from_secs(60);

type Seen = Arc<(Mutex<BTreeMap<i64, String>>, Condvar)>;

fn main() {
    if let Err(err) = run() {
        eprintln!("aimm-test-host: {err}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [conf, tag, count] = args.as_slice() else {
        return Err(format!(
            "usage: aimm-test-host CONF TAG COUNT, got {args:?}"
        ));
    };
    let count: usize = count
        .parse()
        .map_err(|_| format!("COUNT: expected a number, got {count:?}"))?;
    let config = ServerConfig::from_file(conf.as_ref()).map_err(|err| err.to_string())?;
    let backend = aimm_backend_hat_host::opener(SearchPath::new(&[]))
        .prepare(&config)
        .and_then(|prepared| prepared.create())
        .map_err(|err| err.to_string())?;

    let seen: Seen = Arc::default();
    let recorder = seen.clone();
    backend
        .register_model_change_cb(Arc::new(move |model: &Model| {
            let text = String::from_utf8_lossy(&model.instance)
                .trim_end()
                .to_string();
            recorder.0.lock().unwrap().insert(model.instance_id, text);
            recorder.1.notify_all();
        }))
        .map_err(|err| err.to_string())?;

    let mut stdout = std::io::stdout().lock();
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let model = backend
            .create_model(tag.as_str().into(), bytes(tag, i, "created").into())
            .map_err(|err| format!("create {i}: {err}"))?;
        writeln!(stdout, "created {}", model.instance_id).map_err(|e| e.to_string())?;
        ids.push(model.instance_id);
    }
    for (i, id) in ids.iter().enumerate() {
        backend
            .update_model(Model::new(*id, tag.as_str(), bytes(tag, i, "updated")))
            .map_err(|err| format!("update {id}: {err}"))?;
        writeln!(stdout, "updated {id}").map_err(|e| e.to_string())?;
    }
    writeln!(stdout, "written").map_err(|e| e.to_string())?;
    stdout.flush().map_err(|e| e.to_string())?;

    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let expected: BTreeMap<String, String> =
        serde_json::from_str(&line).map_err(|err| format!("stdin: {err}"))?;
    let missing = wait_until_seen(&seen, &expected);
    if missing.is_empty() {
        writeln!(stdout, "seen all").map_err(|e| e.to_string())?;
    }
    for line in missing {
        writeln!(stdout, "{line}").map_err(|e| e.to_string())?;
    }
    backend.close().map_err(|err| err.to_string())
}

fn bytes(tag: &str, i: usize, state: &str) -> Vec<u8> {
    let mut bytes = format!("{tag}/{i}/{state}").into_bytes();
    bytes.resize(MODEL_LEN, b' ');
    bytes
}

/// What is still not seen as expected when the deadline passes (nothing
/// when all is).
fn wait_until_seen(seen: &Seen, expected: &BTreeMap<String, String>) -> Vec<String> {
    let deadline = Instant::now() + SEEN_DEADLINE;
    let mut map = seen.0.lock().unwrap();
    loop {
        let missing: Vec<String> = expected
            .iter()
            .filter_map(|(id, text)| {
                let id: i64 = id.parse().ok()?;
                let last = map.get(&id);
                (last != Some(text)).then(|| format!("missing {id}: last seen {last:?}"))
            })
            .collect();
        let left = deadline.saturating_duration_since(Instant::now());
        if missing.is_empty() || left.is_zero() {
            return missing;
        }
        map = seen.1.wait_timeout(map, left).unwrap().0;
    }
}
