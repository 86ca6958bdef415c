//! The subcommands, in files by kind: reading a store ([`read`]), writing
//! to it ([`write`], [`copy`]), and the plugins themselves ([`plugins`]).

mod copy;
mod plugins;
mod read;
mod write;

use crate::cli::{Cli, Command};
use crate::failure::Failure;
use aimm_backend_loader::{BackendHandle, LoadPolicy, Opener, SearchPath, ServerConfig};
use std::io::Write;
use std::path::Path;

type Outcome = Result<(), Failure>;

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Outcome {
    let mut policy = LoadPolicy::from_env();
    policy.allow_unsafe |= cli.allow_unsafe_plugins;
    let opener =
        aimm_backend_hat_host::opener(SearchPath::new(&cli.plugin_dirs)).with_load_policy(policy);
    match cli.command {
        Command::Plugins => return plugins::plugins(&opener),
        Command::Conformance { list: true, .. } => return plugins::list_checks(),
        Command::New {
            name,
            path,
            api_path,
        } => return plugins::new_plugin(&name, path.as_deref(), api_path.as_deref()),
        _ => {}
    }
    let config = read_config(cli.conf.as_deref())?;
    match cli.command {
        Command::Check => plugins::check(&config, &opener),
        Command::Plugins | Command::Conformance { list: true, .. } | Command::New { .. } => {
            unreachable!("handled above")
        }
        Command::List { json } => read::list(&open(&config, &opener)?, json).await,
        Command::Get { id, output } => {
            read::get(&open(&config, &opener)?, id, output.as_deref()).await
        }
        Command::Put {
            model_type,
            files,
            jobs,
        } => write::put(&open(&config, &opener)?, &model_type, &files, jobs.into()).await,
        Command::Update {
            id,
            file,
            model_type,
        } => write::update(&open(&config, &opener)?, id, &file, model_type).await,
        Command::Copy { to } => {
            let source = open(&config, &opener)?;
            let target_config = read_config(Some(&to))?;
            copy::copy(&source, &open(&target_config, &opener)?).await
        }
        Command::Watch { json } => read::watch(&open(&config, &opener)?, json).await,
        Command::Conformance { only, .. } => plugins::conformance(&config, &opener, only).await,
    }
}

fn read_config(path: Option<&Path>) -> Result<ServerConfig, Failure> {
    match path {
        Some(path) => ServerConfig::from_file(path).map_err(Failure::usage),
        None => {
            create_default_store_directory()?;
            Ok(ServerConfig::embedded_default())
        }
    }
}

/// The built-in default store is ours to place, so its directory is made
/// here; a path a config names must exist (the SQLite backend refuses a
/// missing directory, as a typo in it would otherwise start an empty store).
fn create_default_store_directory() -> Outcome {
    let path = aimm_backend_loader::default_store_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|err| {
            Failure::operation(anyhow::anyhow!(
                "creating {}, the directory of the default store: {err}",
                dir.display()
            ))
        })?;
    }
    Ok(())
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
