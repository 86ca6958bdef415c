//! SBS encode and decode of one `HatEventer.MsgEventsNotify` of 1,000 events
//! with 64 KiB models in their JSON payloads: the Python `hat-sbs` (the
//! serializer hat-event runs with) against `hat-eventer-client`, side by
//! side in one run, on the same message. Also checks that both encodings
//! are byte-identical.
//!
//! ```text
//! cargo build --release -p aimm-backend-bench
//! target/release/sbs-bench [--count N] [--size BYTES] [--rounds R]
//! ```

#![forbid(unsafe_code)]

use aimm_backend_bench::stats::median;
use aimm_backend_bench::sysinfo;
use aimm_backend_test_support::{venv_python, workspace_root};
use anyhow::{bail, ensure, Context, Result};
use base64::Engine;
use hat_eventer_client::eventer_msg::{
    decode, encode, Event, EventId, EventPayload, MsgEventsNotify, Timestamp,
};
use std::process::Command;
use std::time::Instant;

struct Args {
    count: usize,
    size: usize,
    rounds: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        count: 1000,
        size: 65536,
        rounds: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let value: usize = value.parse().with_context(|| format!("{flag} {value}"))?;
        match flag.as_str() {
            "--count" => args.count = value,
            "--size" => args.size = value,
            "--rounds" => args.rounds = value.max(1),
            _ => bail!("unknown option {flag}; expected --count, --size or --rounds"),
        }
    }
    Ok(args)
}

/// The message `tests/python/bench_sbs.py` builds, field for field.
fn message(count: usize, size: usize) -> MsgEventsNotify {
    let data: Vec<u8> = (0..size).map(|j| (j % 251) as u8).collect();
    let text = format!(
        "{{\"type\": \"bench.Model\", \"instance\": \"{}\"}}",
        base64::engine::general_purpose::STANDARD.encode(&data)
    );
    MsgEventsNotify(
        (0..count as i64)
            .map(|i| Event {
                id: EventId {
                    server: 1,
                    session: 2,
                    instance: i,
                },
                event_type: vec!["aimm".into(), "model".into(), i.to_string()],
                timestamp: Timestamp {
                    s: 1_700_000_000 + i,
                    us: i % 1_000_000,
                },
                source_timestamp: None,
                payload: Some(EventPayload::Json(text.clone())),
            })
            .collect(),
    )
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let repo = workspace_root().canonicalize()?;
    let dir = tempfile::tempdir()?;
    let python_out = dir.path().join("python.sbs");
    let output = Command::new(venv_python(&repo, sysinfo::default_allocator)?)
        .arg(repo.join("tests/python/bench_sbs.py"))
        .args([
            "--count",
            &args.count.to_string(),
            "--size",
            &args.size.to_string(),
        ])
        .args(["--rounds", &args.rounds.to_string(), "--out"])
        .arg(&python_out)
        .output()?;
    ensure!(
        output.status.success(),
        "bench_sbs.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let py: serde_json::Value = serde_json::from_slice(&output.stdout)?;

    let value = message(args.count, args.size);
    let (mut enc, mut dec) = (Vec::new(), Vec::new());
    let mut encoded = Vec::new();
    for _ in 0..args.rounds {
        let t0 = Instant::now();
        encoded = encode(&value);
        enc.push(t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        let decoded: MsgEventsNotify = decode(&encoded)?;
        dec.push(t0.elapsed().as_secs_f64());
        ensure!(decoded == value, "decoding did not give the message back");
    }
    let theirs = std::fs::read(&python_out)?;
    ensure!(theirs == encoded, "the Python and Rust encodings differ");

    let (py_enc, py_dec) = (
        py["encode_s"].as_f64().unwrap_or(f64::NAN),
        py["decode_s"].as_f64().unwrap_or(f64::NAN),
    );
    let (rs_enc, rs_dec) = (median(&enc), median(&dec));
    println!(
        "MsgEventsNotify of {} events, {} bytes encoded (identical from both); median of {} rounds",
        args.count,
        encoded.len(),
        args.rounds
    );
    println!();
    println!("| | Python hat-sbs | hat-eventer-client | Python / ours | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| encode | {py_enc:.4} s | {rs_enc:.4} s | {:.1}x | >= 10x |",
        py_enc / rs_enc
    );
    println!(
        "| decode | {py_dec:.4} s | {rs_dec:.4} s | {:.1}x | >= 10x |",
        py_dec / rs_dec
    );
    Ok(())
}
