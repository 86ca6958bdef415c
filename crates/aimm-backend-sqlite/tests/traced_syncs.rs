//! The durability in effect is what the docs promise, in every journal mode:
//! a write is acknowledged only after what it changed in the database, its
//! WAL or its rollback journal has been fsynced.
//!
//! Kill -9 tests cannot see this (the page cache outlives a killed process,
//! so a commit that was never synced still reads back), so this test watches
//! the syscalls themselves: it re-runs its own binary as a child under the
//! real `strace`, the child makes acknowledged writes and announces each
//! acknowledgement with one write(2) to stdout, and the parent checks the
//! trace around every announcement.
//!
//! The criterion, with a *change* being a successful write, writev,
//! pwrite64, pwritev(2), ftruncate or fallocate of the database, its `-wal` or
//! its `-journal` (and an unlink of the `-journal`, which changes the
//! database's directory: `delete` mode commits by it), a *sync* a successful
//! fsync or fdatasync of one file (or of that directory), and the *commit
//! file* being the `-wal` in WAL mode and the database in the
//! rollback-journal modes:
//!
//! * one writer (from the `sequential` line on): between an acknowledgement
//!   and the line printed before it, every file changed is synced after its
//!   last change (data written after the last sync would be unsynced when
//!   acknowledged), and the commit file was changed (unless the update
//!   changed nothing: [`NO_CHANGE`]);
//! * concurrent writers (group commit, which also announce each request): a
//!   whole commit of the commit file, from its first change after the file's
//!   previous sync to its next sync, lies between a request and its
//!   acknowledgement. Rounds in which followers queue up behind a large
//!   create make a follower acknowledged before its batch is synced fail;
//! * the writer connection reports `synchronous = 3` (EXTRA) and the asked-for
//!   journal mode, when opened and at the end.
//!
//! `harness = false`: a `#[test]` would have to skip quietly where strace is
//! missing; this fails instead.

use aimm_backend_api::{Backend, Model};
use aimm_backend_sqlite::{JournalMode, SqliteBackend, SqliteConfig};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STRACE: &str = "/usr/bin/strace";

/// The first argument that makes this binary the traced child.
const CHILD: &str = "--traced-child";

/// The child exits on its own after this long; the parent kills strace a
/// little later (strace 6.1 has no `--kill-on-exit`, so a killed strace would
/// leave a hung child running).
const CHILD_DEADLINE: Duration = Duration::from_secs(120);
const PARENT_DEADLINE: Duration = Duration::from_secs(130);

/// Every syscall that can change file contents or size, and every sync.
/// `sync_file_range` is traced (it shows in failure reports) but does not
/// count as a sync: it flushes neither metadata nor the disk's cache.
const TRACED: &str = "trace=write,writev,pwrite64,pwritev,pwritev2,ftruncate,fallocate,\
                      fsync,fdatasync,sync_file_range,unlink,unlinkat";

const MODES: [JournalMode; 4] = [
    JournalMode::Wal,
    JournalMode::Delete,
    JournalMode::Truncate,
    JournalMode::Persist,
];

/// Below the store's incremental-blob threshold...
const SMALL: usize = 1 << 10;
/// ...and at it (`LARGE_BLOB` in store.rs). The WAL must stay below
/// `journal_size_limit` (64 MiB), past which SQLite trims it after a commit
/// without syncing, which this test would report.
const LARGE: usize = 1 << 20;

/// Acknowledgements of updates that change nothing: such an update commits
/// no page, so it needs no sync, but it must not leave unsynced writes.
const NO_CHANGE: &str = "update-unchanged";

/// Concurrent writers, and creates each, after the group-commit rounds.
const THREADS: usize = 4;
const CREATES_PER_THREAD: usize = 6;

/// Rounds of a large create with followers queued behind it, and how much
/// the commit file must have grown before the followers send theirs.
const GROUP_ROUNDS: usize = 2;
const GROUP_LEADER: usize = 6 << 20;
const GROUP_TRIGGER: u64 = 1 << 20;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(CHILD) {
        return match child(&args[2], Path::new(&args[3])) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("traced child: {err}");
                ExitCode::FAILURE
            }
        };
    }
    if !Path::new(STRACE).exists() {
        eprintln!(
            "traced_syncs: {STRACE} not found. This test needs the real strace: \
             install Debian's `strace` package (apt-get install strace)."
        );
        return ExitCode::FAILURE;
    }
    let started = Instant::now();
    let mut failures = Vec::new();
    for mode in MODES {
        let mode_started = Instant::now();
        match check_mode(mode) {
            Ok(acks) => println!(
                "journal_mode={}: {acks} acknowledged writes, each synced first ({:.1} s)",
                mode.as_sql(),
                mode_started.elapsed().as_secs_f64()
            ),
            Err(err) => {
                println!("journal_mode={}: FAILED", mode.as_sql());
                failures.push(format!("journal_mode={}: {err}", mode.as_sql()));
            }
        }
    }
    if failures.is_empty() {
        println!(
            "traced_syncs: ok ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        ExitCode::SUCCESS
    } else {
        for failure in &failures {
            eprintln!("\n{failure}");
        }
        eprintln!(
            "\ntraced_syncs: {} of {} journal modes failed",
            failures.len(),
            MODES.len()
        );
        ExitCode::FAILURE
    }
}

// ---------------------------------------------------------------- the child

/// Announces an acknowledged (or about to be requested) write, in one
/// write(2) (stdout's line buffer passes a whole line on at once; the parent
/// checks that it found every printed line whole in the trace).
fn say(line: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    out.write_all(format!("{line}\n").as_bytes())
        .and_then(|()| out.flush())
        .map_err(|err| format!("writing to stdout: {err}"))
}

fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
        .collect()
}

fn child(mode: &str, path: &Path) -> Result<(), String> {
    std::thread::spawn(|| {
        std::thread::sleep(CHILD_DEADLINE);
        eprintln!("traced child: still running after {CHILD_DEADLINE:?}; giving up");
        std::process::exit(3);
    });
    let journal_mode = MODES
        .into_iter()
        .find(|m| m.as_sql() == mode)
        .ok_or_else(|| format!("unknown journal mode {mode}"))?;
    let mut conf = SqliteConfig::new(path);
    conf.journal_mode = Some(journal_mode);
    let backend = Arc::new(SqliteBackend::open(conf).map_err(|e| e.to_string())?);
    say_connection(&backend)?;
    say("opened")?;
    let e = |err: aimm_backend_api::BackendError| err.to_string();

    // Concurrent writes first, while the commit file is still small (see
    // `group_commit`).
    let commit_file = match journal_mode {
        JournalMode::Wal => format!("{}-wal", path.display()),
        _ => path.display().to_string(),
    };
    for round in 0..GROUP_ROUNDS {
        group_commit(&backend, Path::new(&commit_file), round)?;
    }
    std::thread::scope(|scope| {
        let writers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let backend = &backend;
                scope.spawn(move || -> Result<(), String> {
                    for n in 0..CREATES_PER_THREAD {
                        let tag = format!("t{thread}n{n}");
                        say(&format!("req {tag}"))?;
                        backend
                            .create_model(tag.as_str().into(), bytes(n as u8, SMALL).into())
                            .map_err(e)?;
                        say(&format!("ack {tag}"))?;
                    }
                    Ok(())
                })
            })
            .collect();
        writers
            .into_iter()
            .try_for_each(|w| w.join().map_err(|_| "a writer panicked".to_string())?)
    })?;

    say("sequential")?;
    let create = |label: &str, instance: Vec<u8>| -> Result<i64, String> {
        let model = backend
            .create_model("traced.Model".into(), instance.into())
            .map_err(e)?;
        say(&format!("ack {label} {}", model.instance_id))?;
        Ok(model.instance_id)
    };
    let update = |label: &str, id: i64, instance: &[u8]| -> Result<(), String> {
        backend
            .update_model(Model::new(id, "traced.Model", instance.to_vec()))
            .map_err(e)?;
        say(&format!("ack {label} {id}"))
    };
    let mut small = Vec::new();
    for seed in 0..3 {
        small.push(create("create-small", bytes(seed, SMALL))?);
    }
    let mut large_bytes = bytes(10, LARGE);
    let large = create("create-large", large_bytes.clone())?;
    let larger = create("create-large", bytes(11, LARGE + LARGE / 2 + 7))?;
    update("update-small", small[0], &bytes(20, SMALL))?;
    update("update-small-resized", small[1], &bytes(21, 3 * SMALL + 5))?;
    // Changes in the first, a middle and the last of the store's compare
    // chunks: only those chunks are rewritten.
    for position in [0, LARGE / 2 + 3, LARGE - 1] {
        large_bytes[position] ^= 0x5a;
        update("update-large", large, &large_bytes)?;
    }
    update(NO_CHANGE, large, &large_bytes)?;
    update("update-large-resized", larger, &bytes(12, 2 * LARGE + 3))?;
    update("update-large-to-small", larger, &bytes(13, SMALL))?;
    update("update-small-to-large", small[2], &bytes(14, LARGE + 1))?;
    for (id, len) in [(1_000, SMALL), (1_001, LARGE)] {
        let model = backend
            .import_model(Model::new(id, "traced.Model", bytes(30, len)))
            .map_err(e)?;
        say(&format!("ack import {}", model.instance_id))?;
    }

    say_connection(&backend)?;
    say("done")?;
    Ok(())
}

/// One thread creates a large model; once the commit file has grown (its
/// commit is under way), three more send creates, which queue up and are
/// committed together by the next commit, one of them large so that this
/// commit takes a while. A follower acknowledged before that commit is synced
/// has no whole commit between its request and its acknowledgement.
fn group_commit(backend: &SqliteBackend, commit_file: &Path, round: usize) -> Result<(), String> {
    let size = || std::fs::metadata(commit_file).map_or(0, |m| m.len());
    let trigger = size() + GROUP_TRIGGER;
    let write = |tag: String, len: usize| -> Result<(), String> {
        say(&format!("req {tag}"))?;
        backend
            .create_model(tag.as_str().into(), bytes(round as u8, len).into())
            .map_err(|err| err.to_string())?;
        say(&format!("ack {tag}"))
    };
    std::thread::scope(|scope| {
        let leader = scope.spawn(|| write(format!("g{round}-leader"), GROUP_LEADER));
        let followers: Vec<_> = [LARGE, SMALL, SMALL]
            .into_iter()
            .enumerate()
            .map(|(n, len)| {
                scope.spawn(move || {
                    // Bounded: should the file not grow, the followers go
                    // anyway (the check stays sound, it only tests less).
                    let waiting = Instant::now();
                    while size() < trigger && waiting.elapsed() < Duration::from_secs(10) {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    write(format!("g{round}-follower{n}"), len)
                })
            })
            .collect();
        std::iter::once(leader)
            .chain(followers)
            .try_for_each(|w| w.join().map_err(|_| "a writer panicked".to_string())?)
    })
}

/// Reports the writer connection's journal mode and synchronous level for
/// the parent to check; the child goes on either way, so that a wrong level
/// is also seen in the trace.
fn say_connection(backend: &SqliteBackend) -> Result<(), String> {
    let journal_mode = backend.journal_mode().map_err(|e| e.to_string())?;
    let synchronous = backend.synchronous().map_err(|e| e.to_string())?;
    say(&format!(
        "connection journal_mode={journal_mode} synchronous={synchronous}"
    ))
}

// --------------------------------------------------------------- the parent

/// Runs the child for `mode` under strace and checks its trace; returns how
/// many acknowledgements were checked.
fn check_mode(mode: JournalMode) -> Result<usize, String> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .map_err(|err| format!("creating a temporary directory: {err}"))?;
    // strace -y prints the paths the kernel resolves, symlinks followed.
    let dir_path = std::fs::canonicalize(dir.path()).map_err(|err| err.to_string())?;
    let db = dir_path.join("models.db");
    let trace_path = dir_path.join("strace.txt");
    let exe = std::env::current_exe().map_err(|err| err.to_string())?;

    let mut strace = Command::new(STRACE)
        .args([
            "-f",
            "--seccomp-bpf",
            "-y",
            "-qq",
            "-s",
            "96",
            "-e",
            TRACED,
            "-o",
        ])
        .arg(&trace_path)
        .arg("--")
        .arg(&exe)
        .arg(CHILD)
        .arg(mode.as_sql())
        .arg(&db)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("starting {STRACE}: {err}"))?;
    let stdout = read_in_background(strace.stdout.take());
    let stderr = read_in_background(strace.stderr.take());
    let started = Instant::now();
    let status = loop {
        match strace.try_wait().map_err(|err| err.to_string())? {
            Some(status) => break status,
            None if started.elapsed() > PARENT_DEADLINE => {
                let _ = strace.kill();
                let _ = strace.wait();
                return Err(format!(
                    "the traced child ran longer than {PARENT_DEADLINE:?}; strace killed"
                ));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "the traced child failed ({status}); its stderr:\n{stderr}"
        ));
    }
    let trace = std::fs::read_to_string(&trace_path)
        .map_err(|err| format!("reading {}: {err}", trace_path.display()))?;
    let mut failures = check_connection(mode, &stdout);
    let files = Files::new(&db);
    let calls = parse_trace(&trace, &files);
    let acks = check_trace(mode, &calls, &stdout, &mut failures);
    if failures.is_empty() {
        return Ok(acks);
    }
    // Kept for a look at the whole trace.
    let kept = dir.keep();
    Err(format!(
        "{} problems:\n{}\n(full trace: {})",
        failures.len(),
        failures.join("\n"),
        kept.join("strace.txt").display()
    ))
}

/// The writer connection was in the asked-for journal mode with
/// `synchronous = EXTRA` (3), as the crate docs say, when opened and at the
/// end. Only the backend's own connection can tell: the level is per
/// connection.
fn check_connection(mode: JournalMode, stdout: &str) -> Vec<String> {
    let expected = format!("connection journal_mode={} synchronous=3", mode.as_sql());
    let reported: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("connection "))
        .collect();
    if reported.len() == 2 && reported.iter().all(|line| *line == expected) {
        return Vec::new();
    }
    vec![format!(
        "the writer connection reported {reported:?}, expected `{expected}` (twice)"
    )]
}

fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum File {
    Db,
    Wal,
    Journal,
    /// The database's directory: deleting the journal (`delete` mode's
    /// commit) changes it, and only its own sync makes that durable.
    Dir,
}

impl File {
    fn name(self) -> &'static str {
        match self {
            File::Db => "database",
            File::Wal => "-wal",
            File::Journal => "-journal",
            File::Dir => "directory",
        }
    }
}

struct Files {
    db: String,
    wal: String,
    journal: String,
    dir: String,
}

impl Files {
    fn new(db: &Path) -> Self {
        let with = |suffix: &str| {
            let mut path = db.as_os_str().to_owned();
            path.push(suffix);
            PathBuf::from(path).to_string_lossy().into_owned()
        };
        Files {
            db: db.to_string_lossy().into_owned(),
            wal: with("-wal"),
            journal: with("-journal"),
            dir: db
                .parent()
                .map(|dir| dir.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    fn classify(&self, path: &str) -> Option<File> {
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        if path == self.db {
            Some(File::Db)
        } else if path == self.wal {
            Some(File::Wal)
        } else if path == self.journal {
            Some(File::Journal)
        } else if path == self.dir {
            Some(File::Dir)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum What {
    /// A successful call that may change the file's contents or size.
    Change(File),
    /// A successful fsync or fdatasync.
    Sync(File),
    /// A line the child wrote to stdout.
    Say(String),
}

/// One traced call: its kind, and the trace lines where it began and ended
/// (the same line unless strace split it).
#[derive(Debug)]
struct Call {
    what: What,
    start: usize,
    end: usize,
}

/// The calls of `trace` that matter here, in trace order. A call strace
/// split (`<unfinished ...>` / `<... resumed>`) is put together.
fn parse_trace(trace: &str, files: &Files) -> Vec<(Call, String)> {
    let mut calls = Vec::new();
    let mut unfinished: HashMap<u32, (usize, String)> = HashMap::new();
    for (index, line) in trace.lines().enumerate() {
        // strace pads the pid column to its widest pid so far: "812  write(".
        let (tid, rest) = match line.split_once(' ') {
            Some((pid, rest)) if pid.bytes().all(|b| b.is_ascii_digit()) => {
                (pid.parse().unwrap_or(0), rest.trim_start())
            }
            _ => (0, line),
        };
        let (start, text) = if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some((start, head)) = unfinished.remove(&tid) else {
                continue;
            };
            let tail = resumed.split_once("resumed>").map_or("", |(_, tail)| tail);
            (start, format!("{head}{tail}"))
        } else if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            unfinished.insert(tid, (index, head.to_string()));
            continue;
        } else {
            (index, rest.to_string())
        };
        if let Some(what) = interpret(&text, files) {
            calls.push((
                Call {
                    what,
                    start,
                    end: index,
                },
                format!("{tid} {}", shorten(&text)),
            ));
        }
    }
    calls
}

/// A trace line cut to a readable length for reports (the data of large
/// writes says nothing here).
fn shorten(text: &str) -> String {
    const MAX: usize = 160;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!(
            "{}... = {}",
            &text[..cut],
            text.rsplit_once(" = ").map_or("", |(_, r)| r)
        ),
        None => text.to_string(),
    }
}

/// What one whole traced call (`name(fd<path>, ...) = result`) means here.
fn interpret(text: &str, files: &Files) -> Option<What> {
    let (name, args) = text.split_once('(')?;
    // strace pads the result of a resumed call to a column.
    let (call, result) = args.rsplit_once(" = ")?;
    if !call.trim_end().ends_with(')') || result.starts_with('-') || result.starts_with('?') {
        return None; // failed, or never returned
    }
    if name == "unlink" || name == "unlinkat" {
        // `unlink("PATH")`, `unlinkat(AT_FDCWD<DIR>, "PATH", 0)`: removing
        // the journal is a change of the directory.
        let (_, quoted) = args.split_once('"')?;
        let (path, _) = quoted.split_once('"')?;
        return (files.classify(path)? == File::Journal).then_some(What::Change(File::Dir));
    }
    let (fd, rest) = args.split_once('<')?;
    let (path, rest) = rest.split_once('>')?;
    if fd == "1" && name == "write" {
        let data = rest.strip_prefix(", \"")?;
        let (line, _) = data.split_once("\\n\"")?;
        return Some(What::Say(line.to_string()));
    }
    let file = files.classify(path)?;
    match name {
        "write" | "writev" | "pwrite64" | "pwritev" | "pwritev2" | "ftruncate" | "fallocate" => {
            Some(What::Change(file))
        }
        "fsync" | "fdatasync" => Some(What::Sync(file)),
        _ => None,
    }
}

/// The file whose sync makes a commit durable: the WAL, or in rollback modes
/// the database itself (the journal is only the undo log).
fn commit_file(mode: JournalMode) -> File {
    match mode {
        JournalMode::Wal => File::Wal,
        _ => File::Db,
    }
}

/// Checks every acknowledgement in the trace; returns how many there were,
/// adding what is wrong to `failures` (the first failure with its trace
/// lines, the others in one line each).
fn check_trace(
    mode: JournalMode,
    calls: &[(Call, String)],
    stdout: &str,
    failures: &mut Vec<String>,
) -> usize {
    let said: Vec<(usize, &str)> = calls
        .iter()
        .enumerate()
        .filter_map(|(i, (call, _))| match &call.what {
            What::Say(line) => Some((i, line.as_str())),
            _ => None,
        })
        .collect();
    // Every line the child printed must be found whole in the trace, or the
    // checks below would pass on a trace they cannot read.
    let mut traced_lines: Vec<&str> = said.iter().map(|(_, line)| *line).collect();
    let mut printed: Vec<&str> = stdout.lines().collect();
    traced_lines.sort_unstable();
    printed.sort_unstable();
    if traced_lines != printed {
        failures.push(format!(
            "the trace's writes to stdout do not match what the child printed:\n\
             traced: {traced_lines:?}\nprinted: {printed:?}"
        ));
        return 0;
    }
    let position = |line: &str| said.iter().find(|(_, l)| *l == line).map(|(i, _)| *i);
    let (Some(opened), Some(sequential), Some(done)) =
        (position("opened"), position("sequential"), position("done"))
    else {
        failures.push(format!("the child's output is incomplete:\n{stdout}"));
        return 0;
    };
    let mut detailed = false;
    let mut fail = |short: String, long: String| {
        failures.push(if detailed { short } else { long });
        detailed = true;
    };

    let mut acks = 0;
    // Concurrent writers: what one request committed is mixed with other
    // commits, so only this is checked: a whole commit of the commit file
    // (from its first change after the file's previous sync to its next sync)
    // lies between the request and its acknowledgement.
    let file = commit_file(mode);
    let commits = commits(calls, file);
    for &(ack, line) in said
        .iter()
        .filter(|(i, _)| (opened..sequential).contains(i))
    {
        let Some(tag) = line.strip_prefix("ack ") else {
            continue;
        };
        let Some(req) = position(&format!("req {tag}")) else {
            fail(
                format!("`{line}` has no request line"),
                format!("`{line}` has no request line"),
            );
            continue;
        };
        let (req_end, ack_start) = (calls[req].0.end, calls[ack].0.start);
        let committed = commits
            .iter()
            .any(|&(first_change, sync)| first_change > req_end && sync < ack_start);
        if !committed {
            let lines: Vec<&str> = calls
                .iter()
                .filter(|(call, _)| call.start >= calls[req].0.start && call.end <= ack_start)
                .map(|(_, text)| text.as_str())
                .collect();
            let err = format!(
                "no whole commit of the {} file (changes, then its sync) lies between the \
                 request and the acknowledgement",
                file.name()
            );
            fail(
                format!("`{line}` (concurrent): {err}"),
                report(
                    &format!("`{line}` (concurrent): {err}; the traced calls from the request on"),
                    &lines,
                ),
            );
        }
        acks += 1;
    }

    // One thread writes from "sequential" on: each acknowledgement covers
    // the calls since the previous line printed.
    let sequential: Vec<usize> = said
        .iter()
        .map(|(i, _)| *i)
        .filter(|i| (sequential..=done).contains(i))
        .collect();
    for pair in sequential.windows(2) {
        let (from, ack) = (pair[0], pair[1]);
        let What::Say(line) = &calls[ack].0.what else {
            unreachable!()
        };
        if !line.starts_with("ack ") {
            continue;
        }
        let label = line.split(' ').nth(1).unwrap_or("");
        let window = &calls[from + 1..ack];
        if let Err(err) = check_sequential_ack(mode, window, label != NO_CHANGE) {
            let lines: Vec<&str> = window.iter().map(|(_, text)| text.as_str()).collect();
            fail(
                format!("`{line}`: {err}"),
                report(
                    &format!("`{line}`: {err}; the traced calls since the previous line"),
                    &lines,
                ),
            );
        }
        acks += 1;
    }

    acks
}

/// The commits to `file`, as (trace line of the first change after the
/// file's previous sync, trace line where the next sync ended). One
/// connection writes, so its calls on the file never overlap.
fn commits(calls: &[(Call, String)], file: File) -> Vec<(usize, usize)> {
    let mut commits = Vec::new();
    let mut first_change = None;
    for (call, _) in calls {
        if call.what == What::Change(file) {
            first_change.get_or_insert(call.start);
        } else if call.what == What::Sync(file) {
            if let Some(first_change) = first_change.take() {
                commits.push((first_change, call.end));
            }
        }
    }
    commits
}

/// The calls between two lines the single writer printed: every file it
/// changed is synced after its last change, and a write that commits changed
/// the mode's commit file.
fn check_sequential_ack(
    mode: JournalMode,
    calls: &[(Call, String)],
    commits: bool,
) -> Result<(), String> {
    let mut last_change: HashMap<File, usize> = HashMap::new();
    let mut last_sync: HashMap<File, usize> = HashMap::new();
    for (call, _) in calls {
        match call.what {
            What::Change(file) => {
                last_change.insert(file, call.end);
            }
            What::Sync(file) => {
                last_sync.insert(file, call.start);
            }
            What::Say(_) => {}
        }
    }
    if commits && !last_change.contains_key(&commit_file(mode)) {
        return Err(format!(
            "nothing was written to the {} file: the write was not committed",
            commit_file(mode).name()
        ));
    }
    for file in [File::Db, File::Wal, File::Journal, File::Dir] {
        if let Some(&changed) = last_change.get(&file) {
            if last_sync.get(&file).is_none_or(|&synced| synced < changed) {
                return Err(format!(
                    "the {} file was written and not fsynced afterwards",
                    file.name()
                ));
            }
        }
    }
    Ok(())
}

/// A failure with the trace lines it is about (the last ones, if many).
fn report(heading: &str, lines: &[&str]) -> String {
    const SHOWN: usize = 40;
    let skipped = lines.len().saturating_sub(SHOWN);
    let mut text = format!("{heading}:\n");
    if skipped > 0 {
        text.push_str(&format!("  ... {skipped} earlier calls\n"));
    }
    for line in &lines[skipped..] {
        text.push_str("  ");
        text.push_str(line);
        text.push('\n');
    }
    text
}
