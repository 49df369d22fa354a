//! The diff commands that run git itself: patches, numstat, format-patch
//! and range-diff, where the answer is git's exact text (hunk placement,
//! indent heuristic, diff drivers and funcname context from
//! `.gitattributes`, word diff) that gitoxide does not reproduce. One
//! process per request, read as it streams: nothing is collected whole.
//!
//! Producers run on the blocking pool, so the process's output is read
//! through a small synchronous adapter over tokio's pipe.

use crate::git::command::Running;
use crate::git::{CommandFactory, GitCommand, GitError, Subcommand};
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The repository a command runs in, with the quarantine directories of a
/// request that names them (pre-receive checks see pushed objects there).
#[derive(Debug, Clone)]
pub struct Target {
    pub git_dir: PathBuf,
    pub object_dir: Option<PathBuf>,
    pub alternate_object_dirs: Vec<PathBuf>,
}

impl Target {
    /// A plain repository.
    pub fn new(git_dir: &Path) -> Self {
        Self { git_dir: git_dir.to_owned(), object_dir: None, alternate_object_dirs: Vec::new() }
    }

    /// A `sub` command bound to this repository.
    pub fn command(&self, sub: Subcommand) -> GitCommand {
        let mut cmd = GitCommand::new(sub).git_dir(&self.git_dir);
        if let Some(dir) = &self.object_dir {
            let mut alternates = OsString::new();
            for (i, alt) in self.alternate_object_dirs.iter().enumerate() {
                if i > 0 {
                    alternates.push(":");
                }
                alternates.push(alt);
            }
            cmd = cmd.env("GIT_OBJECT_DIRECTORY", dir).env("GIT_ALTERNATE_OBJECT_DIRECTORIES", alternates);
        }
        cmd
    }

    /// A `git diff`-family command reading attributes (binary files, diff
    /// drivers) from HEAD's tree, as upstream configures `diff` and
    /// `format-patch` for bare repositories.
    pub fn diff_command(&self, sub: Subcommand) -> GitCommand {
        self.command(sub).config("attr.tree", "HEAD")
    }
}

/// A running git command whose stdout is read synchronously.
#[derive(Debug)]
pub struct Output {
    running: Running,
    handle: tokio::runtime::Handle,
}

impl Output {
    /// Starts `cmd`. Call on the blocking pool (the reads block on the
    /// runtime).
    pub fn start(factory: &CommandFactory, cmd: GitCommand, correlation_id: Option<&str>) -> Result<Self, GitError> {
        let handle = tokio::runtime::Handle::current();
        let running = {
            let _guard = handle.enter();
            factory.spawn(cmd, correlation_id)?
        };
        Ok(Self { running, handle })
    }

    /// Waits for git to exit after its output was read to the end; a
    /// failure carries git's stderr.
    pub fn finish(self) -> Result<(), GitError> {
        let Self { running, handle } = self;
        handle.block_on(running.wait()).map_err(GitError::from)
    }
}

impl Read for Output {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use tokio::io::AsyncReadExt as _;
        let stdout = self.running.stdout();
        self.handle.block_on(stdout.read(buf))
    }
}

/// Reads until `buf` is full or the output ends; returns how much was read.
pub fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
