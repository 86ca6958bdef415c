//! Refusing plugin files that someone else could have written.
//!
//! Loading a library runs its code in the host with the host's rights, so a
//! plugin is only as trustworthy as everyone who could have written it. In
//! the manner of OpenSSH's `StrictModes`, a library is loaded only if the
//! file and every directory on its path, symlinks resolved, can be written
//! by no one but its owner, and that owner is root or the user the host runs
//! as. A world- or group-writable directory with the sticky bit (`/tmp`) is
//! accepted: in it, others cannot rename or replace entries they do not own,
//! and the entry below it is checked in turn.
//!
//! [`LoadPolicy::allow_unsafe`] (the CLI's `--allow-unsafe-plugins`, or the
//! environment variable [`ALLOW_UNSAFE_ENV`]) loads such a library anyway,
//! for development, with a warning in the log each time.

use std::path::{Path, PathBuf};

/// Set to `1` to load plugins from unsafe places anyway (development only).
pub const ALLOW_UNSAFE_ENV: &str = "AIMM_BACKEND_ALLOW_UNSAFE_PLUGINS";

/// Which plugin files a host loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadPolicy {
    /// Load a library even if others could have written it (logged loudly).
    pub allow_unsafe: bool,
}

impl LoadPolicy {
    /// Safe places only, unless [`ALLOW_UNSAFE_ENV`] is `1`.
    pub fn from_env() -> Self {
        LoadPolicy {
            allow_unsafe: std::env::var_os(ALLOW_UNSAFE_ENV).is_some_and(|value| value == "1"),
        }
    }
}

impl Default for LoadPolicy {
    fn default() -> Self {
        Self::from_env()
    }
}

/// Why a path lets others change the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsafe {
    /// The file or directory at fault (symlinks resolved).
    pub path: PathBuf,
    /// Its permission bits.
    pub mode: u32,
    /// Its owner's uid.
    pub owner: u32,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What makes a path unsafe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Its group or others may write to it.
    Writable,
    /// It belongs to neither root nor the user the host runs as (`user`).
    Owner {
        /// The uid the host runs as.
        user: u32,
    },
}

impl std::fmt::Display for Unsafe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.path.display();
        let kind = if self.path.is_dir() {
            "directory"
        } else {
            "file"
        };
        write!(
            f,
            "{kind} {path} (mode {:04o}, owner uid {}) ",
            self.mode & 0o7777,
            self.owner
        )?;
        match self.problem {
            Problem::Writable => write!(
                f,
                "can be written by {}; fix: chmod go-w {path}",
                writers(self.mode)
            ),
            Problem::Owner { user } => write!(
                f,
                "belongs to neither root nor this user (uid {user}); fix: chown {user} {path}"
            ),
        }
    }
}

/// Who besides the owner may write, from permission bits.
fn writers(mode: u32) -> &'static str {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "its group and everyone else",
        (true, false) => "its group",
        _ => "everyone",
    }
}

/// The first path component of the library at `library` that others could
/// write (the file itself, then its directories from the nearest up), if
/// any. Symlinks are resolved first: what is judged is what would be loaded.
pub fn check(library: &Path) -> std::io::Result<Option<Unsafe>> {
    let canonical = library.canonicalize()?;
    let user = current_user();
    for (depth, path) in canonical.ancestors().enumerate() {
        let metadata = std::fs::metadata(path)?;
        let figures = Figures::of(&metadata, depth == 0);
        if let Some(problem) = figures.problem(user) {
            return Ok(Some(Unsafe {
                path: path.to_path_buf(),
                mode: figures.mode,
                owner: figures.owner,
                problem,
            }));
        }
    }
    Ok(None)
}

/// What the rule looks at of one path component.
#[derive(Debug, Clone, Copy)]
struct Figures {
    mode: u32,
    owner: u32,
    /// A directory (not the library file itself).
    directory: bool,
}

impl Figures {
    #[cfg(unix)]
    fn of(metadata: &std::fs::Metadata, is_library: bool) -> Figures {
        use std::os::unix::fs::MetadataExt;
        Figures {
            mode: metadata.mode(),
            owner: metadata.uid(),
            directory: !is_library && metadata.is_dir(),
        }
    }

    #[cfg(not(unix))]
    fn of(_metadata: &std::fs::Metadata, _is_library: bool) -> Figures {
        Figures {
            mode: 0o755,
            owner: 0,
            directory: false,
        }
    }

    /// What is wrong with this component for a host running as `user`.
    fn problem(self, user: u32) -> Option<Problem> {
        if self.owner != 0 && self.owner != user {
            return Some(Problem::Owner { user });
        }
        // A sticky directory lets others add entries but not replace ours;
        // the entry below it (checked before) is what must be ours.
        let sticky_directory = self.directory && self.mode & 0o1000 != 0;
        (self.mode & 0o022 != 0 && !sticky_directory).then_some(Problem::Writable)
    }
}

#[cfg(unix)]
fn current_user() -> u32 {
    rustix::process::geteuid().as_raw()
}

#[cfg(not(unix))]
fn current_user() -> u32 {
    0
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A library file in a directory of its own, both private.
    fn library() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("libx.so");
        std::fs::write(&file, b"x").unwrap();
        chmod(dir.path(), 0o755);
        chmod(&file, 0o644);
        (dir, file)
    }

    #[test]
    fn a_private_file_in_private_directories_below_a_sticky_tmp_is_safe() {
        let (_dir, file) = library();
        assert_eq!(check(&file).unwrap(), None);
    }

    #[test]
    fn a_file_others_may_write_is_named_with_its_mode_and_the_fix() {
        for (mode, who) in [
            (0o666, "its group and everyone else"),
            (0o664, "its group"),
            (0o646, "everyone"),
        ] {
            let (_dir, file) = library();
            chmod(&file, mode);
            let found = check(&file).unwrap().expect("unsafe");
            assert_eq!(found.path, file.canonicalize().unwrap());
            assert_eq!(found.problem, Problem::Writable);
            let text = found.to_string();
            assert!(text.contains(&format!("mode {mode:04o}")), "{text}");
            assert!(
                text.contains(&format!("can be written by {who};")),
                "{text}"
            );
            assert!(text.contains("fix: chmod go-w"), "{text}");
        }
    }

    #[test]
    fn a_directory_others_may_write_is_unsafe_unless_sticky() {
        let (dir, file) = library();
        chmod(dir.path(), 0o777);
        let found = check(&file).unwrap().expect("unsafe");
        assert_eq!(found.path, dir.path().canonicalize().unwrap());
        assert!(found.to_string().starts_with("directory "), "{found}");
        chmod(dir.path(), 0o1777);
        assert_eq!(check(&file).unwrap(), None);
        // A sticky bit on the library file itself counts for nothing.
        chmod(dir.path(), 0o755);
        chmod(&file, 0o1666);
        assert_eq!(check(&file).unwrap().expect("unsafe").path, file);
    }

    #[test]
    fn a_symlink_is_judged_by_where_it_leads() {
        let (unsafe_dir, file) = library();
        chmod(unsafe_dir.path(), 0o777);
        let (safe_dir, _) = library();
        let link = safe_dir.path().join("liblink.so");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let found = check(&link).unwrap().expect("unsafe");
        assert_eq!(found.path, unsafe_dir.path().canonicalize().unwrap());
    }

    #[test]
    fn a_file_of_another_user_is_refused() {
        // Runs as root here (CI does): giving the file away needs it.
        let (_dir, file) = library();
        std::os::unix::fs::chown(&file, Some(4242), None)
            .expect("chown to another uid: these tests run as root");
        let found = check(&file).unwrap().expect("unsafe");
        assert_eq!(found.path, file.canonicalize().unwrap());
        assert_eq!(found.owner, 4242);
        assert_eq!(
            found.problem,
            Problem::Owner {
                user: current_user()
            }
        );
    }

    #[test]
    fn an_owner_other_than_root_or_this_user_is_named() {
        // Owners cannot be changed without privileges here: the rule is
        // checked on figures, the message on what it gives.
        let figures = |owner| Figures {
            mode: 0o100644,
            owner,
            directory: false,
        };
        assert_eq!(
            figures(4242).problem(1000),
            Some(Problem::Owner { user: 1000 })
        );
        assert_eq!(figures(0).problem(1000), None, "root's is fine");
        assert_eq!(figures(1000).problem(1000), None, "ours is fine");
        let found = Unsafe {
            path: "/nonexistent/libx.so".into(),
            mode: 0o100644,
            owner: 4242,
            problem: Problem::Owner { user: 1000 },
        };
        let text = found.to_string();
        assert!(text.contains("(mode 0644, owner uid 4242)"), "{text}");
        assert!(
            text.contains("neither root nor this user (uid 1000)"),
            "{text}"
        );
        assert!(
            text.contains("fix: chown 1000 /nonexistent/libx.so"),
            "{text}"
        );
    }
}
