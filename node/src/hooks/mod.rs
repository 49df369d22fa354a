//! Server-side git hooks, as upstream Gitaly runs them.
//!
//! When the node runs `git receive-pack` it points `core.hooksPath` at a
//! node-managed directory ([`HooksDir`]) whose `pre-receive`, `update`,
//! `post-receive` and `reference-transaction` are links to the
//! `gitaly-hooks` binary, and exports [`payload::ENV`]. git runs a hook,
//! `gitaly-hooks` ([`cli`]) reads the payload and calls the node's
//! HookService over the node's internal socket, and the service runs the
//! custom hooks ([`custom`]) and reports their output and exit status.
//!
//! With the pack-objects cache on, upload-pack runs `gitaly-hooks git
//! pack-objects ...` as its `uploadpack.packObjectsHook`; the hook relays
//! the request over a Unix-socket sidechannel ([`sidechannel`]) to
//! PackObjectsHookWithSidechannel, which serves it from [`pack_cache`].

pub mod cli;
pub mod custom;
pub mod pack_cache;
pub mod payload;
pub mod sidechannel;

use std::path::{Path, PathBuf};

/// The helper binary's name.
pub const BINARY: &str = "gitaly-hooks";

/// Hooks git may run during a push; each is a link to [`BINARY`].
pub const HOOK_NAMES: &[&str] = &["pre-receive", "update", "post-receive", "reference-transaction"];

/// Where the internal socket lives below the runtime directory (upstream's
/// layout, which gitaly-hooks reads back from the payload).
pub fn internal_socket(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join("sock.d").join("intern")
}

/// The node's hooks directory and what the payload tells hooks about the
/// node.
#[derive(Debug, Clone)]
pub struct HooksDir {
    /// The directory `core.hooksPath` points at.
    pub dir: PathBuf,
    /// The `gitaly-hooks` binary the links point at.
    pub binary: PathBuf,
    pub runtime_dir: PathBuf,
    pub internal_socket: PathBuf,
    /// `GITALY_LOG_DIR` for gitaly-hooks (its own log file goes there).
    pub log_dir: Option<PathBuf>,
}

impl HooksDir {
    /// Creates `<runtime_dir>/hooks.d` with links to `<bin_dir>/gitaly-hooks`.
    /// A missing binary is not an error here (pushes report it), so that a
    /// node without pushes still starts.
    pub fn install(runtime_dir: &Path, bin_dir: &Path, log_dir: Option<PathBuf>) -> std::io::Result<Self> {
        let dir = runtime_dir.join("hooks.d");
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let binary = bin_dir.join(BINARY);
        for name in HOOK_NAMES {
            std::os::unix::fs::symlink(&binary, dir.join(name))?;
        }
        Ok(Self {
            dir,
            binary,
            runtime_dir: runtime_dir.to_owned(),
            internal_socket: internal_socket(runtime_dir),
            log_dir,
        })
    }

    /// Whether the links lead to an executable: git silently skips hooks it
    /// cannot run, so a push must not start without one.
    pub fn usable(&self) -> bool {
        rustix::fs::access(&self.binary, rustix::fs::Access::EXEC_OK).is_ok()
    }
}
