//! The one place that spawns git.
//!
//! Commands are built from a [`Subcommand`] allow-list, flags that are string
//! literals in our code, and arguments; user-supplied values only ever go
//! after `--end-of-options` or into stdin, so they cannot become options.
//! Every command runs with a sealed environment: no system or global git
//! config, no terminal prompts, and the node's own configuration injected
//! through `GIT_CONFIG_COUNT` so no value needs shell quoting.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::OnceCell;

/// The git subcommands the node may run. Anything else cannot be spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subcommand {
    /// `git --version` (no subcommand).
    Version,
    Init,
    UpdateRef,
    SymbolicRef,
    /// `git for-each-ref`: the reference listing FetchRemote votes on.
    ForEachRef,
    RevParse,
    Config,
    Bundle,
    RevList,
    /// `git blame --porcelain` (RawBlame's exact output format).
    Blame,
    Diff,
    FormatPatch,
    RangeDiff,
    DiffTree,
    UploadPack,
    ReceivePack,
    UploadArchive,
    /// `git fetch` from another node (through gitaly-ssh) or a remote URL.
    Fetch,
    /// `git clone --bare` for forks and repositories created from a URL.
    Clone,
    /// `git pack-objects --stdout` for the pack-objects hook; housekeeping's
    /// incremental repack of loose objects.
    PackObjects,
    /// `git ls-remote` against request-supplied URLs (remote existence,
    /// remote HEAD, a mirror's references).
    LsRemote,
    /// `git push` to a remote mirror.
    Push,
    /// `git merge-base --is-ancestor` (which refs a mirror push may move).
    MergeBase,
    /// `git fast-export` / `git fast-import`: history rewriting.
    FastExport,
    FastImport,
    /// Housekeeping: `git repack` (geometric, full, cruft).
    Repack,
    /// Housekeeping: `git pack-refs --all`.
    PackRefs,
    /// Housekeeping: `git commit-graph write`.
    CommitGraphWrite,
    /// Housekeeping: `git prune --expire=...` of loose unreachable objects.
    Prune,
    /// Housekeeping: `git prune-packed`, dropping loose objects already packed.
    PrunePacked,
    /// `git fsck`: object pools look for dangling objects to keep alive.
    Fsck,
    /// `git mktag`: annotated tags a user creates, checked as fsck would.
    Mktag,
    /// `git merge-tree --write-tree`: merges without a work tree, writing
    /// the result's objects (into a quarantine).
    MergeTree,
    /// `git commit-tree`: the commits operations write for a user.
    CommitTree,
    /// `git read-tree`, `git update-index`, `git write-tree` and
    /// `git hash-object -w` on a temporary index: trees edited without a
    /// work tree (conflict resolutions).
    ReadTree,
    UpdateIndex,
    WriteTree,
    HashObject,
    /// `git mailsplit`, `git mailinfo` and `git apply --cached` on a
    /// temporary index: patches (`git format-patch` output) applied as
    /// commits without a work tree.
    Mailsplit,
    Mailinfo,
    Apply,
    /// `git verify-commit`: whether a commit carries the node's own
    /// signature (GetCommitSignatures' system signer).
    VerifyCommit,
}

impl Subcommand {
    fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::Version => return None,
            Self::Init => "init",
            Self::UpdateRef => "update-ref",
            Self::SymbolicRef => "symbolic-ref",
            Self::ForEachRef => "for-each-ref",
            Self::RevParse => "rev-parse",
            Self::Config => "config",
            Self::Bundle => "bundle",
            Self::RevList => "rev-list",
            Self::Blame => "blame",
            Self::Diff => "diff",
            Self::FormatPatch => "format-patch",
            Self::RangeDiff => "range-diff",
            Self::DiffTree => "diff-tree",
            Self::UploadPack => "upload-pack",
            Self::ReceivePack => "receive-pack",
            Self::UploadArchive => "upload-archive",
            Self::Fetch => "fetch",
            Self::Clone => "clone",
            Self::PackObjects => "pack-objects",
            Self::LsRemote => "ls-remote",
            Self::Push => "push",
            Self::MergeBase => "merge-base",
            Self::FastExport => "fast-export",
            Self::FastImport => "fast-import",
            Self::Repack => "repack",
            Self::PackRefs => "pack-refs",
            Self::CommitGraphWrite => "commit-graph",
            Self::Prune => "prune",
            Self::PrunePacked => "prune-packed",
            Self::Fsck => "fsck",
            Self::Mktag => "mktag",
            Self::MergeTree => "merge-tree",
            Self::CommitTree => "commit-tree",
            Self::ReadTree => "read-tree",
            Self::UpdateIndex => "update-index",
            Self::WriteTree => "write-tree",
            Self::HashObject => "hash-object",
            Self::Mailsplit => "mailsplit",
            Self::Mailinfo => "mailinfo",
            Self::Apply => "apply",
            Self::VerifyCommit => "verify-commit",
        })
    }

    /// The action word some subcommands need before their flags
    /// (`git commit-graph write --reachable`).
    fn action(self) -> Option<&'static str> {
        match self {
            Self::CommitGraphWrite => Some("write"),
            _ => None,
        }
    }

    /// Whether the subcommand accepts `--end-of-options` before its
    /// positional arguments.
    fn takes_end_of_options(self) -> bool {
        // upload-archive's hand-rolled parser would take the marker for the
        // directory, so it is left out there.
        matches!(
            self,
            Self::RevParse
                | Self::Diff
                | Self::FormatPatch
                | Self::RangeDiff
                | Self::UploadPack
                | Self::ReceivePack
                | Self::Fetch
                | Self::Clone
                | Self::LsRemote
                | Self::Push
                | Self::MergeBase
                | Self::MergeTree
        )
    }
}

/// Configuration applied to every git command, lowest precedence first.
/// Each entry says why it is there.
fn global_config() -> Vec<(String, String)> {
    [
        // The node schedules repository maintenance itself; git must never
        // start a gc or maintenance run in the middle of an RPC.
        ("gc.auto", "0"),
        ("maintenance.auto", "0"),
        // The web editor relies on CRLF being normalised on write.
        ("core.autocrlf", "input"),
        // Replace refs let one object masquerade as another: a security risk
        // in a multi-tenant server, so they are ignored.
        ("core.useReplaceRefs", "false"),
        // Flush objects, derived data and references so a crash does not
        // corrupt a repository.
        ("core.fsync", "objects,derived-metadata,reference"),
        ("core.fsyncMethod", "fsync"),
        // packed-refs is a shared lock in busy repositories; git's 1 s
        // default fails ref deletions under contention.
        ("core.packedRefsTimeout", "10000"),
        ("core.filesRefLockTimeout", "1000"),
        // Big blobs are streamed, not slurped or diffed.
        ("core.bigFileThreshold", "50m"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A failure to run git or a non-zero exit.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// git could not be started.
    #[error("spawn git {subcommand}")]
    Spawn {
        subcommand: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Talking to the child failed.
    #[error("git {subcommand} i/o")]
    Io {
        subcommand: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// git exited unsuccessfully.
    #[error("git {subcommand} exited with {code:?}: {stderr}")]
    Failed { subcommand: &'static str, code: Option<i32>, stderr: String },
}

impl CommandError {
    /// git's stderr, for failures that have one.
    pub fn stderr(&self) -> &str {
        match self {
            Self::Failed { stderr, .. } => stderr,
            _ => "",
        }
    }
}

/// One git invocation, built up before it is run.
#[derive(Debug, Clone)]
pub struct GitCommand {
    sub: Subcommand,
    git_dir: Option<PathBuf>,
    flags: Vec<OsString>,
    args: Vec<OsString>,
    config: Vec<(String, String)>,
    env: Vec<(&'static str, OsString)>,
    stdin: Option<Vec<u8>>,
    /// `--shallow-file ""`: ignore the repository's shallow file.
    no_shallow_file: bool,
}

impl GitCommand {
    /// A command of `sub`, not yet bound to a repository.
    pub fn new(sub: Subcommand) -> Self {
        Self {
            sub,
            git_dir: None,
            flags: Vec::new(),
            args: Vec::new(),
            config: Vec::new(),
            env: Vec::new(),
            stdin: None,
            no_shallow_file: false,
        }
    }

    /// Runs inside the bare repository at `path` (`--git-dir`).
    pub fn git_dir(mut self, path: &Path) -> Self {
        self.git_dir = Some(path.to_owned());
        self
    }

    /// A flag written in our code (`--bare`, `-z`); never user input.
    pub fn flag(mut self, flag: &'static str) -> Self {
        self.flags.push(flag.into());
        self
    }

    /// A flag with a value: `--name=value`. The name is ours, the value may
    /// come from a request because it cannot start a new option.
    pub fn flag_value(mut self, name: &'static str, value: impl AsRef<OsStr>) -> Self {
        let mut f = OsString::from(name);
        f.push("=");
        f.push(value);
        self.flags.push(f);
        self
    }

    /// A flag with its value glued on, `-o<dir>`, for the few commands that
    /// parse their arguments by hand (`git mailsplit`). The value must be
    /// ours (a path we created), never request input.
    pub fn flag_joined(mut self, name: &'static str, value: impl AsRef<OsStr>) -> Self {
        let mut f = OsString::from(name);
        f.push(value);
        self.flags.push(f);
        self
    }

    /// A positional argument (after `--end-of-options` where supported).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Per-command configuration, overriding the global defaults.
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.config.push((key.to_owned(), value.to_owned()));
        self
    }

    /// An extra environment variable (hooks payload, quarantine dirs).
    pub fn env(mut self, key: &'static str, value: impl Into<OsString>) -> Self {
        self.env.push((key, value.into()));
        self
    }

    /// Bytes fed to stdin.
    /// The global `--shallow-file ""`, which upload-pack asks pack-objects
    /// for when the client is shallow (the shallow info comes on stdin).
    pub fn without_shallow_file(mut self) -> Self {
        self.no_shallow_file = true;
        self
    }

    pub fn stdin(mut self, input: Vec<u8>) -> Self {
        self.stdin = Some(input);
        self
    }

    fn subcommand_name(&self) -> &'static str {
        self.sub.name().unwrap_or("--version")
    }
}

/// Result of a finished command.
#[derive(Debug)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Builds and runs git commands with the node's sealed environment.
#[derive(Debug, Clone)]
pub struct CommandFactory {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    binary: PathBuf,
    path_env: OsString,
    home: PathBuf,
    admin_config: Vec<(String, String)>,
    version: OnceCell<String>,
    spawned: AtomicU64,
}

impl CommandFactory {
    /// A factory running `binary` with the admin's `[[git.config]]` entries,
    /// which override everything else. `home` becomes `HOME` for git (the
    /// runtime directory), so nothing reads the service user's dotfiles.
    pub fn new(binary: PathBuf, admin_config: Vec<(String, String)>, home: PathBuf) -> Self {
        let path_env = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        Self {
            inner: Arc::new(Inner {
                binary,
                path_env,
                home,
                admin_config,
                version: OnceCell::new(),
                spawned: AtomicU64::new(0),
            }),
        }
    }

    /// How many git processes this factory has started (tests assert RPCs'
    /// process budgets with it).
    pub fn spawned(&self) -> u64 {
        self.inner.spawned.load(Ordering::Relaxed)
    }

    /// The git version, e.g. `2.47.3`, cached after the first call.
    pub async fn version(&self) -> Result<String, CommandError> {
        self.inner
            .version
            .get_or_try_init(|| async {
                let out = self.run(GitCommand::new(Subcommand::Version), None).await?;
                let text = String::from_utf8_lossy(&out.stdout);
                Ok(text.trim().trim_start_matches("git version ").to_owned())
            })
            .await
            .cloned()
    }

    fn build(&self, cmd: &GitCommand, correlation_id: Option<&str>) -> tokio::process::Command {
        // The allow-listed spawn point of the whole node.
        #[allow(clippy::disallowed_methods)]
        let mut c = tokio::process::Command::new(&self.inner.binary);
        c.env_clear()
            .env("PATH", &self.inner.path_env)
            .env("HOME", &self.inner.home)
            .env("LANG", "en_US.UTF-8")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_SYSTEM", "/dev/null")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            // Stop git from looking above the repository for one.
            .env("GIT_CEILING_DIRECTORIES", "/");
        if let Some(id) = correlation_id {
            c.env("CORRELATION_ID", id);
        }
        let config: Vec<(String, String)> = global_config()
            .into_iter()
            .chain(cmd.config.iter().cloned())
            .chain(self.inner.admin_config.iter().cloned())
            .collect();
        c.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (i, (k, v)) in config.iter().enumerate() {
            c.env(format!("GIT_CONFIG_KEY_{i}"), k).env(format!("GIT_CONFIG_VALUE_{i}"), v);
        }
        for (k, v) in &cmd.env {
            c.env(k, v);
        }
        if let Some(dir) = &cmd.git_dir {
            let mut arg = OsString::from("--git-dir=");
            arg.push(dir);
            c.arg(arg);
        }
        if cmd.no_shallow_file {
            c.arg("--shallow-file").arg("");
        }
        match cmd.sub.name() {
            None => {
                c.arg("--version");
            }
            Some(name) => {
                c.arg(name);
                c.args(cmd.sub.action());
                c.args(&cmd.flags);
                if cmd.sub.takes_end_of_options() && !cmd.args.is_empty() {
                    c.arg("--end-of-options");
                }
                c.args(&cmd.args);
            }
        }
        c.stdin(if cmd.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// Runs `cmd` to completion. A non-zero exit is [`CommandError::Failed`]
    /// with git's stderr. Dropping the future kills the process.
    pub async fn run(&self, cmd: GitCommand, correlation_id: Option<&str>) -> Result<Output, CommandError> {
        let name = cmd.subcommand_name();
        let mut command = self.build(&cmd, correlation_id);
        let mut child = command.spawn().map_err(|source| CommandError::Spawn { subcommand: name, source })?;
        self.inner.spawned.fetch_add(1, Ordering::Relaxed);
        if let Some(input) = cmd.stdin {
            let mut stdin = child.stdin.take().expect("stdin was piped");
            // Write concurrently with reading output so large inputs cannot
            // deadlock against a full stdout pipe.
            let writer = tokio::spawn(async move {
                let r = stdin.write_all(&input).await;
                drop(stdin);
                r
            });
            let out = child.wait_with_output().await.map_err(|source| CommandError::Io { subcommand: name, source })?;
            // git may exit early without reading all input (an error); its
            // exit status then tells the story, not the broken pipe.
            let _ = writer.await;
            return finish(name, out);
        }
        let out = child.wait_with_output().await.map_err(|source| CommandError::Io { subcommand: name, source })?;
        finish(name, out)
    }
}

impl CommandFactory {
    /// Starts `cmd` with its stdout piped for the caller to read as it is
    /// produced (outputs too large to collect, such as diffs). Must be
    /// called inside the runtime (async code or its blocking pool).
    /// Dropping the [`Running`] kills the process.
    pub fn spawn(&self, cmd: GitCommand, correlation_id: Option<&str>) -> Result<Running, CommandError> {
        let name = cmd.subcommand_name();
        let mut command = self.build(&cmd, correlation_id);
        let mut child = command.spawn().map_err(|source| CommandError::Spawn { subcommand: name, source })?;
        self.inner.spawned.fetch_add(1, Ordering::Relaxed);
        if let Some(input) = cmd.stdin {
            let mut stdin = child.stdin.take().expect("stdin was piped");
            // A failed write shows in git's exit status.
            tokio::spawn(async move { drop(stdin.write_all(&input).await) });
        }
        let stdout = child.stdout.take().expect("stdout was piped");
        let mut stderr = child.stderr.take().expect("stderr was piped");
        // Drained alongside stdout so a chatty git never blocks on a full
        // pipe; only the start is kept for the error message.
        let stderr = tokio::spawn(async move {
            use tokio::io::AsyncReadExt as _;
            let mut kept = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = stderr.read(&mut buf).await {
                let room = MAX_STDERR.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            kept
        });
        Ok(Running { name, child, stdout, stderr })
    }
}

/// Most stderr kept from a spawned command.
const MAX_STDERR: usize = 64 * 1024;

/// A git process started by [`CommandFactory::spawn`].
#[derive(Debug)]
pub struct Running {
    name: &'static str,
    child: tokio::process::Child,
    stdout: tokio::process::ChildStdout,
    stderr: tokio::task::JoinHandle<Vec<u8>>,
}

impl Running {
    /// The process's standard output.
    pub fn stdout(&mut self) -> &mut tokio::process::ChildStdout {
        &mut self.stdout
    }

    /// Waits for the process to exit; read stdout to its end first. A
    /// non-zero exit is [`CommandError::Failed`] with git's stderr.
    pub async fn wait(mut self) -> Result<(), CommandError> {
        let name = self.name;
        let status = self.child.wait().await.map_err(|source| CommandError::Io { subcommand: name, source })?;
        let stderr = self.stderr.await.unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        Err(CommandError::Failed {
            subcommand: name,
            code: status.code(),
            stderr: String::from_utf8_lossy(&stderr).trim().to_owned(),
        })
    }
}

/// A git process whose stdin, stdout and stderr all belong to the caller
/// (the wire protocol: upload-pack, receive-pack, upload-archive).
///
/// Dropping it closes stdin and sends SIGTERM rather than SIGKILL, so git
/// runs its signal handlers (lock files are removed); tokio reaps the
/// process in the background. git does not remove a receive quarantine on a
/// signal, so callers let receive-pack end on its own instead.
#[derive(Debug)]
pub struct Duplex {
    name: &'static str,
    child: tokio::process::Child,
    pub stdin: Option<tokio::process::ChildStdin>,
    pub stdout: Option<tokio::process::ChildStdout>,
    pub stderr: Option<tokio::process::ChildStderr>,
    exited: bool,
}

impl CommandFactory {
    /// Starts `cmd` with all three standard streams piped to the caller.
    pub fn spawn_duplex(&self, cmd: GitCommand, correlation_id: Option<&str>) -> Result<Duplex, CommandError> {
        let name = cmd.subcommand_name();
        let mut command = self.build(&cmd, correlation_id);
        command.stdin(Stdio::piped()).kill_on_drop(false);
        let mut child = command.spawn().map_err(|source| CommandError::Spawn { subcommand: name, source })?;
        self.inner.spawned.fetch_add(1, Ordering::Relaxed);
        let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        Ok(Duplex { name, child, stdin, stdout, stderr, exited: false })
    }
}

impl Duplex {
    /// The subcommand's name, for messages.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Asks git to stop (SIGTERM), letting it run its cleanup handlers.
    pub fn terminate(&self) {
        if let Some(pid) = self.child.id().and_then(|id| rustix::process::Pid::from_raw(id as i32)) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }

    /// Waits for the exit: `Ok(None)` for success, `Ok(Some(code))` for a
    /// non-zero exit (`-1` when killed by a signal).
    pub async fn wait(&mut self) -> Result<Option<i32>, CommandError> {
        self.stdin = None;
        let status = self.child.wait().await.map_err(|source| CommandError::Io { subcommand: self.name, source })?;
        self.exited = true;
        Ok(if status.success() { None } else { Some(status.code().unwrap_or(-1)) })
    }
}

impl Drop for Duplex {
    fn drop(&mut self) {
        if !self.exited {
            self.stdin = None;
            self.terminate();
        }
    }
}

fn finish(name: &'static str, out: std::process::Output) -> Result<Output, CommandError> {
    if out.status.success() {
        Ok(Output { stdout: out.stdout, stderr: out.stderr })
    } else {
        Err(CommandError::Failed {
            subcommand: name,
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn factory() -> CommandFactory {
        CommandFactory::new("git".into(), vec![("core.abbrev".into(), "12".into())], std::env::temp_dir())
    }

    #[tokio::test]
    async fn version_is_parsed_and_cached() {
        let f = factory();
        let v = f.version().await.expect("git runs");
        assert!(v.chars().next().is_some_and(|c| c.is_ascii_digit()), "{v}");
        f.version().await.expect("cached");
        assert_eq!(f.spawned(), 1);
    }

    #[tokio::test]
    async fn sealed_environment_and_config_precedence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = factory();
        f.run(GitCommand::new(Subcommand::Init).flag("--bare").flag("--quiet").arg(dir.path()), None)
            .await
            .expect("init");
        let out = f
            .run(
                GitCommand::new(Subcommand::Config)
                    .git_dir(dir.path())
                    .flag("--get-regexp")
                    .arg("^(gc\\.auto|core\\.abbrev|core\\.autocrlf)$"),
                None,
            )
            .await
            .expect("config");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("gc.auto 0"), "{text}");
        assert!(text.contains("core.abbrev 12"), "admin config applied: {text}");
        assert!(text.contains("core.autocrlf input"), "{text}");
    }

    #[tokio::test]
    async fn failures_carry_stderr() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = factory()
            .run(GitCommand::new(Subcommand::RevParse).git_dir(dir.path()).flag("--verify").arg("HEAD"), None)
            .await
            .expect_err("not a repository");
        assert!(matches!(err, CommandError::Failed { .. }));
        assert!(!err.stderr().is_empty());
    }
}
