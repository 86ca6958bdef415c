//! One function per subcommand.

use crate::cli::{Cli, Command};
use crate::failure::{Context, Failure};
use aimm_backend_api::{ErrorKind, Model, ModelInfo, RVec};
use aimm_backend_conformance::PluginTarget;
use aimm_backend_loader::{
    BackendHandle, CandidateState, LoadPolicy, Opener, PluginLibrary, SearchPath, ServerConfig,
};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

type Outcome = Result<(), Failure>;

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Outcome {
    let mut policy = LoadPolicy::from_env();
    policy.allow_unsafe |= cli.allow_unsafe_plugins;
    let opener = Opener::new(SearchPath::new(&cli.plugin_dirs)).with_load_policy(policy);
    match cli.command {
        Command::Plugins => return plugins(&opener),
        Command::Conformance { list: true, .. } => return list_checks(),
        Command::New {
            name,
            path,
            api_path,
        } => return new_plugin(&name, path.as_deref(), api_path.as_deref()),
        _ => {}
    }
    let config = read_config(cli.conf.as_deref())?;
    match cli.command {
        Command::Check => check(&config, &opener),
        Command::Plugins | Command::Conformance { list: true, .. } | Command::New { .. } => {
            unreachable!("handled above")
        }
        Command::List { json } => list(&open(&config, &opener)?, json).await,
        Command::Get { id, output } => get(&open(&config, &opener)?, id, output.as_deref()).await,
        Command::Put {
            model_type,
            files,
            jobs,
        } => put(&open(&config, &opener)?, &model_type, &files, jobs.into()).await,
        Command::Update {
            id,
            file,
            model_type,
        } => update(&open(&config, &opener)?, id, &file, model_type).await,
        Command::Copy { to } => {
            let source = open(&config, &opener)?;
            let target_config = read_config(Some(&to))?;
            copy(&source, &open(&target_config, &opener)?).await
        }
        Command::Watch { json } => watch(&open(&config, &opener)?, json).await,
        Command::Conformance { only, .. } => conformance(&config, &opener, only).await,
    }
}

fn read_config(path: Option<&Path>) -> Result<ServerConfig, Failure> {
    match path {
        Some(path) => ServerConfig::from_file(path).map_err(Failure::usage),
        None => Ok(ServerConfig::embedded_default()),
    }
}

fn open(config: &ServerConfig, opener: &Opener) -> Result<BackendHandle, Failure> {
    Ok(opener.open(config)?.into_handle())
}

fn stdout_line(line: &str) -> Outcome {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

fn info_json(info: &ModelInfo) -> serde_json::Value {
    serde_json::json!({
        "instance_id": info.instance_id,
        "model_type": info.model_type.as_str(),
        "size": info.size,
    })
}

fn check(config: &ServerConfig, opener: &Opener) -> Outcome {
    let opened = opener.open(config)?;
    opened.backend.close()?;
    let library = opened.library;
    stdout_line(&format!("config:  {}", config.origin()))?;
    stdout_line(&format!("module:  {}", config.module()))?;
    stdout_line(&format!("library: {}", library.path().display()))?;
    stdout_line(&format!(
        "plugin:  {} {}",
        library.name(),
        library.version()
    ))?;
    stdout_line(&format!("backend: {}", config.backend()))
}

fn plugins(opener: &Opener) -> Outcome {
    let search = opener.search();
    let candidates = search.candidates();
    if candidates.is_empty() {
        let dirs: Vec<String> = search
            .dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        stdout_line(&format!("no libraries found in: {}", dirs.join(", ")))?;
        return Ok(());
    }
    for candidate in candidates {
        let path = candidate.path.display();
        let line = match candidate.state {
            CandidateState::Loadable => {
                match PluginLibrary::load_with(&candidate.path, opener.load_policy()) {
                    Ok(library) => {
                        format!("{}\t{}\t{path}\tloaded", library.name(), library.version())
                    }
                    Err(err) => format!("-\t-\t{path}\trefused: {}", one_line(&err.to_string())),
                }
            }
            CandidateState::ShadowedBy(earlier) => {
                format!("-\t-\t{path}\tshadowed by {}", earlier.display())
            }
            CandidateState::DanglingLink { target } => {
                format!("-\t-\t{path}\tdangling link to {}", target.display())
            }
            CandidateState::LinkLoop => format!("-\t-\t{path}\tlink loop"),
        };
        stdout_line(&line)?;
    }
    Ok(())
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn list(backend: &BackendHandle, json: bool) -> Outcome {
    let infos = backend.list_models().await?;
    if json {
        let array: Vec<_> = infos.iter().map(info_json).collect();
        return stdout_line(&serde_json::Value::Array(array).to_string());
    }
    let mut out = std::io::stdout().lock();
    for info in infos.iter() {
        writeln!(
            out,
            "{}\t{}\t{}",
            info.instance_id, info.model_type, info.size
        )?;
    }
    out.flush()?;
    Ok(())
}

async fn get(backend: &BackendHandle, id: i64, output: Option<&Path>) -> Outcome {
    let model = backend.get_model(id).await?;
    match output {
        Some(path) => std::fs::write(path, model.instance.as_slice())
            .context_with(|| format!("writing model {id} to {}", path.display())),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(model.instance.as_slice())?;
            out.flush()?;
            Ok(())
        }
    }
}

fn read_input(path: &Path) -> Result<RVec<u8>, Failure> {
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .context_with(|| "reading standard input".to_string())?;
    } else {
        bytes = std::fs::read(path).context_with(|| format!("cannot read {}", path.display()))?;
    }
    Ok(RVec::from(bytes))
}

async fn put(backend: &BackendHandle, model_type: &str, files: &[PathBuf], jobs: usize) -> Outcome {
    // Refuse before storing anything if a named file is missing.
    let mut sizes = Vec::with_capacity(files.len());
    for file in files {
        let size = match file.as_path() == Path::new("-") {
            true => 0,
            false => std::fs::metadata(file)
                .context_with(|| format!("cannot read {}; nothing was stored", file.display()))?
                .len(),
        };
        sizes.push(size);
    }
    let mut puts = Puts::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = 0;
    loop {
        let room = tasks.is_empty()
            || (tasks.len() < jobs
                && puts.bytes_in_flight + sizes.get(next).copied().unwrap_or(0)
                    <= PUT_BYTES_IN_FLIGHT);
        if puts.failed.is_none() && next < files.len() && room {
            let index = next;
            next += 1;
            let bytes = match read_input(&files[index]) {
                Ok(bytes) => bytes,
                Err(err) => {
                    puts.fail(index, err);
                    continue;
                }
            };
            puts.bytes_in_flight += sizes[index];
            let (backend, model_type) = (backend.clone(), model_type.to_string());
            tasks.spawn(async move {
                let created = backend.create_model(model_type.into(), bytes).await;
                (index, created.map(|m| m.instance_id).map_err(Failure::from))
            });
            continue;
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (index, created) =
            joined.map_err(|err| Failure::operation(anyhow::anyhow!("put task: {err}")))?;
        puts.bytes_in_flight -= sizes[index];
        match created {
            Ok(id) => {
                puts.acknowledged.insert(index, id);
            }
            Err(err) => puts.fail(index, err),
        }
        puts.print_ready()?;
    }
    puts.finish(files)
}

/// Most bytes `put` holds in flight at once (one larger file goes alone).
const PUT_BYTES_IN_FLIGHT: u64 = 256 << 20;

/// What `put` knows of its creates: ids acknowledged but not printed yet
/// (they wait for every earlier file), and the first file that failed.
#[derive(Default)]
struct Puts {
    acknowledged: std::collections::BTreeMap<usize, i64>,
    printed: usize,
    failed: Option<(usize, Failure)>,
    bytes_in_flight: u64,
}

impl Puts {
    fn fail(&mut self, index: usize, err: Failure) {
        if self.failed.as_ref().is_none_or(|(first, _)| index < *first) {
            self.failed = Some((index, err));
        }
    }

    /// Prints, in the order of the files, every id whose earlier files are
    /// all acknowledged, up to the first failure.
    fn print_ready(&mut self) -> Outcome {
        let stop = self.failed.as_ref().map_or(usize::MAX, |(index, _)| *index);
        while self.printed < stop {
            let Some(id) = self.acknowledged.remove(&self.printed) else {
                break;
            };
            stdout_line(&id.to_string())?;
            self.printed += 1;
        }
        Ok(())
    }

    /// The failure, if any, naming its file; files after it that were
    /// stored anyway (they were in flight) are named on stderr.
    fn finish(self, files: &[PathBuf]) -> Outcome {
        let Some((index, err)) = self.failed else {
            return Ok(());
        };
        for (later, id) in &self.acknowledged {
            eprintln!(
                "{} was stored too, as id {id} (in flight when {} failed; not printed on stdout)",
                files[*later].display(),
                files[index].display()
            );
        }
        Err(err).context_with(|| format!("storing {}", files[index].display()))
    }
}

async fn update(
    backend: &BackendHandle,
    id: i64,
    file: &Path,
    model_type: Option<String>,
) -> Outcome {
    let model_type = match model_type {
        Some(model_type) => model_type,
        None => current_type(backend, id).await?,
    };
    let instance = read_input(file)?;
    backend
        .update_model(Model::new(id, model_type, instance))
        .await?;
    Ok(())
}

async fn current_type(backend: &BackendHandle, id: i64) -> Result<String, Failure> {
    let infos = backend.list_models().await?;
    infos
        .iter()
        .find(|info| info.instance_id == id)
        .map(|info| info.model_type.to_string())
        .ok_or_else(|| Failure::from(aimm_backend_api::BackendError::not_found(id)))
}

/// Most models `copy` has in flight at once: writes that wait for a commit
/// or an event server flush share it.
const COPIES_IN_FLIGHT: usize = 16;

/// Most bytes `copy` holds in flight at once (one larger model goes alone).
const COPY_BYTES_IN_FLIGHT: u64 = 256 << 20;

async fn copy(source: &BackendHandle, target: &BackendHandle) -> Outcome {
    let infos = source.list_models().await?;
    let total_bytes: u64 = infos.iter().map(|i| i.size).sum();
    let bar = progress_bar(total_bytes);
    let (mut copied, mut present) = (0u64, 0u64);
    let mut in_flight = tokio::task::JoinSet::new();
    let mut bytes_in_flight = 0u64;
    let mut infos = infos.iter().peekable();
    loop {
        let room = |bytes: u64, next: u64, tasks: usize| {
            tasks == 0 || (tasks < COPIES_IN_FLIGHT && bytes + next <= COPY_BYTES_IN_FLIGHT)
        };
        match infos.peek() {
            Some(info) if room(bytes_in_flight, info.size, in_flight.len()) => {
                let (id, size) = (info.instance_id, info.size);
                let (source, target) = (source.clone(), target.clone());
                in_flight.spawn(async move { (id, size, copy_one(&source, &target, id).await) });
                bytes_in_flight += size;
                infos.next();
            }
            _ => {
                let Some(done) = in_flight.join_next().await else {
                    break;
                };
                let (id, size, outcome) =
                    done.map_err(|err| Failure::operation(anyhow::anyhow!("copy task: {err}")))?;
                match outcome.context_with(|| format!("copying model {id}"))? {
                    Copied::New => copied += 1,
                    Copied::AlreadyThere => present += 1,
                }
                bytes_in_flight -= size;
                bar.set_message(format!("model {id}"));
                bar.inc(size);
            }
        }
    }
    bar.finish_and_clear();
    eprintln!("copied {copied} models, {present} already present");
    Ok(())
}

/// What `copy_one` did.
enum Copied {
    New,
    AlreadyThere,
}

async fn copy_one(
    source: &BackendHandle,
    target: &BackendHandle,
    id: i64,
) -> Result<Copied, Failure> {
    let model = source.get_model(id).await?;
    match target.import_model(model).await {
        Ok(_) => Ok(Copied::New),
        Err(err) if err.kind == ErrorKind::Conflict => {
            ensure_same(source, target, id).await?;
            Ok(Copied::AlreadyThere)
        }
        Err(err) => Err(Failure::from(err)),
    }
}

/// A re-run of `copy` skips models already copied, but never overwrites a
/// different model that happens to have the same id.
async fn ensure_same(source: &BackendHandle, target: &BackendHandle, id: i64) -> Outcome {
    let ours = source.get_model(id).await?;
    let theirs = target.get_model(id).await?;
    if ours == theirs {
        return Ok(());
    }
    Err(Failure::operation(anyhow::anyhow!(
        "instance id {id} exists in the destination with different content \
         (type {:?}, {} bytes; source has type {:?}, {} bytes); not overwritten",
        theirs.model_type.as_str(),
        theirs.instance.len(),
        ours.model_type.as_str(),
        ours.instance.len()
    )))
}

fn progress_bar(total_bytes: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total_bytes);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

async fn watch(backend: &BackendHandle, json: bool) -> Outcome {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<ModelInfo>();
    let registration = backend
        .register_model_change_cb(Arc::new(move |model: &Model| {
            let _ = sender.send(model.info());
        }))
        .await?;
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            change = receiver.recv() => {
                let Some(info) = change else { break };
                let line = if json {
                    info_json(&info).to_string()
                } else {
                    format!("{}\t{}\t{}", info.instance_id, info.model_type, info.size)
                };
                stdout_line(&line)?;
            }
        }
    }
    backend.unregister_model_change_cb(registration).await?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Writes the plugin crate and says what to do next.
fn new_plugin(name: &str, path: Option<&Path>, api_path: Option<&Path>) -> Outcome {
    let dependencies = match api_path {
        Some(crates) => crate::new_plugin::Dependencies::Path(crates),
        None => crate::new_plugin::Dependencies::Registry,
    };
    let dir = crate::new_plugin::write(name, path, dependencies)?;
    let lib = name.replace('-', "_");
    stdout_line(&format!(
        "created the plugin crate {} (module: {lib})\n\
         next: cd {} && cargo test && cargo build --release\n\
         then: copy target/release/lib{lib}.so into a plugin directory; see its README.md",
        dir.display(),
        dir.display()
    ))
}

/// `name<TAB>requires` for every check, in the order they run.
fn list_checks() -> Outcome {
    for check in aimm_backend_conformance::checks() {
        stdout_line(&format!("{}\t{}", check.name, check.requires))?;
    }
    Ok(())
}

async fn conformance(config: &ServerConfig, opener: &Opener, only: Option<String>) -> Outcome {
    let target = PluginTarget::scratch(opener.prepare(config)?)?;
    let library = target.prepared().library().clone();
    eprintln!(
        "conformance: plugin {} {} ({}), scratch config {}",
        library.name(),
        library.version(),
        library.path().display(),
        target.conf()
    );
    // The suite makes blocking calls, some of which wait on the async runtime.
    let report = tokio::task::spawn_blocking(move || {
        aimm_backend_conformance::run_matching(&target, |name| {
            only.as_deref().is_none_or(|o| name.contains(o))
        })
    })
    .await
    .map_err(|err| Failure::operation(anyhow::anyhow!("the conformance run failed: {err}")))?;
    print!("{report}");
    std::io::stdout().flush()?;
    if report.all_passed() {
        Ok(())
    } else {
        Err(Failure::operation(anyhow::anyhow!(
            "{} conformance check(s) failed",
            report.failures().count()
        )))
    }
}
