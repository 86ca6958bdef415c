//! The command line, as scripts see it.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Inspect, fill, copy, watch and test AIMM model stores through backend plugins.
#[derive(Debug, Parser)]
#[command(name = "aimm-backend", version, about)]
pub struct Cli {
    /// Server config (YAML): a Python AIMM server config or just a `backend`
    /// section. Without it: the SQLite backend at the per-user data path.
    #[arg(long, global = true, value_name = "PATH")]
    pub conf: Option<PathBuf>,

    /// Directory to look for backend libraries in, before AIMM_BACKEND_PATH
    /// and the directory of this executable. Repeatable.
    #[arg(long = "plugin-dir", global = true, value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,

    /// Load plugin libraries even from places others can write to (a file
    /// or directory on the plugin's path writable by its group or by
    /// everyone, or owned by another user). For development only: each
    /// such load is logged as a warning. Same as
    /// AIMM_BACKEND_ALLOW_UNSAFE_PLUGINS=1.
    #[arg(long, global = true)]
    pub allow_unsafe_plugins: bool,

    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config and load the backend; print module, library file,
    /// plugin name and version.
    Check,
    /// List every backend library on the search path, in search order:
    /// name, version, file, and what became of it (loaded; shadowed by an
    /// earlier file of the same name; refused, and why; a link that leads
    /// nowhere).
    Plugins,
    /// One row per model: instance id, model type, size in bytes.
    List {
        /// Print a JSON array of {instance_id, model_type, size}.
        #[arg(long)]
        json: bool,
    },
    /// Write a model's bytes to FILE, or to stdout.
    Get {
        /// Instance id.
        id: i64,
        /// Output file (default: stdout).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Store each FILE ('-' = stdin) as a new model of TYPE; print each new id.
    Put {
        /// Model type.
        #[arg(value_name = "TYPE")]
        model_type: String,
        /// Files to store, one model each.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
        /// Most creates in flight at once (writes that wait for a commit or
        /// an event server flush share it); 1 stores one file at a time.
        #[arg(long, value_name = "N", default_value_t = 64,
              value_parser = clap::value_parser!(u16).range(1..))]
        jobs: u16,
    },
    /// Replace a model's bytes (and type, if given).
    Update {
        /// Instance id.
        id: i64,
        /// File with the new bytes ('-' = stdin).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// New model type (default: keep the current one).
        #[arg(long = "type", value_name = "TYPE")]
        model_type: Option<String>,
    },
    /// Copy every model into the backend CONF describes, keeping ids, types
    /// and bytes. Models already there with equal content are skipped.
    Copy {
        /// Config of the destination backend.
        #[arg(long, value_name = "CONF")]
        to: PathBuf,
    },
    /// Print each model change the backend reports, as it arrives, until stopped.
    Watch {
        /// One JSON object {instance_id, model_type, size} per line.
        #[arg(long)]
        json: bool,
    },
    /// Write a new backend plugin crate to start from: a store of one file
    /// per model, its config schema and scratch_conf, change listeners, a
    /// `cargo test` running the conformance suite in-process, and a README
    /// on building it and dropping it in. Needs no config.
    New {
        /// The crate's name (lowercase letters, digits, '-', '_'); the
        /// library is lib<NAME, '-' as '_'>.so and the module that name.
        #[arg(value_name = "NAME")]
        name: String,
        /// Directory to write the crate into (default: ./NAME); must not
        /// exist or be empty.
        #[arg(long, value_name = "DIR")]
        path: Option<PathBuf>,
        /// Take aimm-backend-api and aimm-backend-conformance from this
        /// directory (a checkout's crates/). Default: the checkout this
        /// program was built from, until the crates are on crates.io.
        #[arg(long, value_name = "DIR")]
        api_path: Option<PathBuf>,
    },
    /// Run the conformance suite against a scratch store of the configured backend.
    Conformance {
        /// Run only the checks whose names contain this text.
        #[arg(long, value_name = "TEXT")]
        only: Option<String>,
        /// Print every check (name, then what it requires of a backend) and
        /// run nothing; needs no config.
        #[arg(long, conflicts_with = "only")]
        list: bool,
    },
}
