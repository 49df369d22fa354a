//! Custom server hooks: executables an administrator installed for one
//! repository (`<repo>/custom_hooks/<hook>`, `<repo>/custom_hooks/<hook>.d/*`)
//! or for all (`<[hooks] custom_hooks_dir>/<hook>.d/*`), run in that order
//! with upstream's environment. The first one that fails stops the rest.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::payload::{HooksPayload, lookup};

/// Variables of the hook process passed on to custom hooks (upstream's
/// allow-list: paths, tracing and proxies).
const PASSED_ENV: &[&str] = &[
    "HOME",
    "PATH",
    "LD_LIBRARY_PATH",
    "TZ",
    "GIT_TRACE",
    "GIT_TRACE_PACK_ACCESS",
    "GIT_TRACE_PACKET",
    "GIT_TRACE_PERFORMANCE",
    "GIT_TRACE_SETUP",
    "GIT_EXEC_PATH",
    "all_proxy",
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// A chunk of a custom hook's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// Why custom hooks did not all succeed.
#[derive(Debug, thiserror::Error)]
pub enum CustomHookError {
    /// A hook ran and failed: its exit code is the hook's answer.
    #[error("error executing {path:?}: exit status {code}")]
    Exit { path: PathBuf, code: i32 },
    #[error("list custom hooks in {dir:?}")]
    List {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("start {path:?}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("run {path:?}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The output's receiver went away (the RPC was cancelled).
    #[error("send hook output")]
    Gone,
}

/// An executable regular file whose name does not end in `~` (editor
/// backups are skipped, as upstream does).
fn valid_hook(path: &Path) -> bool {
    if path.as_os_str().to_string_lossy().ends_with('~') {
        return false;
    }
    match std::fs::metadata(path) {
        Ok(m) if !m.is_dir() => rustix::fs::access(path, rustix::fs::Access::EXEC_OK).is_ok(),
        _ => false,
    }
}

fn hooks_in(dir: &Path) -> Result<Vec<PathBuf>, CustomHookError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(CustomHookError::List { dir: dir.to_owned(), source }),
    };
    let mut names = Vec::new();
    for e in entries {
        let e = e.map_err(|source| CustomHookError::List { dir: dir.to_owned(), source })?;
        names.push(e.file_name());
    }
    // Lexical order, as Go's os.ReadDir returns them.
    names.sort();
    Ok(names.into_iter().map(|n| dir.join(n)).filter(|p| valid_hook(p)).collect())
}

/// The custom hooks for `hook` in the repository at `repo`, in run order.
pub fn find(repo: &Path, global_dir: Option<&Path>, hook: &str) -> Result<Vec<PathBuf>, CustomHookError> {
    let mut files = Vec::new();
    let single = repo.join(crate::git::custom_hooks::DIR).join(hook);
    if valid_hook(&single) {
        files.push(single);
    }
    files.extend(hooks_in(&repo.join(crate::git::custom_hooks::DIR).join(format!("{hook}.d")))?);
    if let Some(global) = global_dir {
        files.extend(hooks_in(&global.join(format!("{hook}.d")))?);
    }
    Ok(files)
}

/// The environment custom hooks run with: the allowed part of the hook
/// process's environment, push options, the quarantine object directories
/// (from git, or from the payload's repository), and GitLab's identifiers.
pub fn environment(
    repo: &Path,
    payload: &HooksPayload,
    push_options: &[String],
    hook_env: &[String],
    git_binary: &Path,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = hook_env
        .iter()
        .filter_map(|e| e.split_once('='))
        .filter(|(k, _)| PASSED_ENV.contains(k))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if !push_options.is_empty() {
        env.push(("GIT_PUSH_OPTION_COUNT".into(), push_options.len().to_string()));
        for (i, o) in push_options.iter().enumerate() {
            env.push((format!("GIT_PUSH_OPTION_{i}"), o.clone()));
        }
    }
    let object_dir = lookup(hook_env, "GIT_OBJECT_DIRECTORY").filter(|v| !v.is_empty()).or_else(|| {
        let rel = &payload.repository.git_object_directory;
        (!rel.is_empty()).then(|| repo.join(rel).display().to_string())
    });
    if let Some(d) = object_dir {
        env.push(("GIT_OBJECT_DIRECTORY".into(), d));
    }
    let alternates = lookup(hook_env, "GIT_ALTERNATE_OBJECT_DIRECTORIES").filter(|v| !v.is_empty()).or_else(|| {
        let dirs = &payload.repository.git_alternate_object_directories;
        (!dirs.is_empty())
            .then(|| dirs.iter().map(|d| repo.join(d).display().to_string()).collect::<Vec<_>>().join(":"))
    });
    if let Some(a) = alternates {
        env.push(("GIT_ALTERNATE_OBJECT_DIRECTORIES".into(), a));
    }
    // Hooks calling `git` get the node's git first on PATH.
    if let Some(dir) = git_binary.parent().filter(|d| !d.as_os_str().is_empty()) {
        let current = lookup(hook_env, "PATH").or_else(|| std::env::var("PATH").ok()).unwrap_or_default();
        env.push(("PATH".into(), format!("{}:{current}", dir.display())));
    }
    let user = payload.user_details.clone().unwrap_or_default();
    env.extend([
        ("GIT_DIR".into(), repo.display().to_string()),
        ("GL_REPOSITORY".into(), payload.repository.gl_repository.clone()),
        ("GL_PROJECT_PATH".into(), payload.repository.gl_project_path.clone()),
        ("GL_ID".into(), user.userid),
        ("GL_USERNAME".into(), user.username),
        ("GL_PROTOCOL".into(), user.protocol),
    ]);
    env
}

/// Runs `hooks` one after the other in `repo` with `args`, `env` and the
/// same `stdin` each, streaming their output to `out`.
pub async fn run(
    hooks: &[PathBuf],
    repo: &Path,
    args: &[String],
    env: &[(String, String)],
    stdin: &[u8],
    out: &tokio::sync::mpsc::Sender<Chunk>,
) -> Result<(), CustomHookError> {
    for path in hooks {
        run_one(path, repo, args, env, stdin, out).await?;
    }
    Ok(())
}

async fn run_one(
    path: &Path,
    repo: &Path,
    args: &[String],
    env: &[(String, String)],
    stdin: &[u8],
    out: &tokio::sync::mpsc::Sender<Chunk>,
) -> Result<(), CustomHookError> {
    let io = |source| CustomHookError::Io { path: path.to_owned(), source };
    // Custom hooks are administrator-installed executables, not git: the
    // command factory (git only) does not apply.
    #[allow(clippy::disallowed_methods)]
    let mut cmd = tokio::process::Command::new(path);
    cmd.args(args)
        .current_dir(repo)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| CustomHookError::Spawn { path: path.to_owned(), source })?;
    let mut child_stdin = child.stdin.take().expect("stdin was piped");
    let input = stdin.to_vec();
    // A hook need not read its input; a broken pipe is not a failure.
    let writer = tokio::spawn(async move {
        let _ = child_stdin.write_all(&input).await;
    });
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let (mut obuf, mut ebuf) = (vec![0u8; 32 * 1024], vec![0u8; 32 * 1024]);
    while stdout.is_some() || stderr.is_some() {
        tokio::select! {
            n = read_some(&mut stdout, &mut obuf) => match n.map_err(io)? {
                0 => stdout = None,
                n => out.send(Chunk::Stdout(obuf[..n].to_vec())).await.map_err(|_| CustomHookError::Gone)?,
            },
            n = read_some(&mut stderr, &mut ebuf) => match n.map_err(io)? {
                0 => stderr = None,
                n => out.send(Chunk::Stderr(ebuf[..n].to_vec())).await.map_err(|_| CustomHookError::Gone)?,
            },
        }
    }
    let status = child.wait().await.map_err(io)?;
    writer.abort();
    if status.success() {
        return Ok(());
    }
    Err(CustomHookError::Exit { path: path.to_owned(), code: status.code().unwrap_or(-1) })
}

async fn read_some<R: tokio::io::AsyncRead + Unpin>(r: &mut Option<R>, buf: &mut [u8]) -> std::io::Result<usize> {
    match r {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn script(path: &Path, body: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    #[test]
    fn order_and_skipping() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo.git");
        let global = dir.path().join("global");
        script(&repo.join("custom_hooks/update"), "true");
        script(&repo.join("custom_hooks/update.d/b"), "true");
        script(&repo.join("custom_hooks/update.d/a"), "true");
        script(&repo.join("custom_hooks/update.d/backup~"), "true");
        std::fs::write(repo.join("custom_hooks/update.d/not-executable"), "x").expect("write");
        script(&global.join("update.d/z"), "true");
        script(&global.join("pre-receive.d/other"), "true");
        let found = find(&repo, Some(&global), "update").expect("find");
        let names: Vec<String> =
            found.iter().map(|p| p.strip_prefix(dir.path()).expect("below").display().to_string()).collect();
        assert_eq!(
            names,
            [
                "repo.git/custom_hooks/update",
                "repo.git/custom_hooks/update.d/a",
                "repo.git/custom_hooks/update.d/b",
                "global/update.d/z"
            ]
        );
        assert!(find(&repo, None, "post-receive").expect("none").is_empty());
    }

    #[tokio::test]
    async fn runs_in_order_and_stops_at_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        let c = dir.path().join("c");
        script(&a, "read line; echo \"a:$line:$1:$GL_ID\"");
        script(&b, "echo b-fails >&2; exit 3");
        script(&c, "echo c");
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let env = vec![("GL_ID".to_owned(), "user-1".to_owned())];
        let err = run(&[a, b.clone(), c], dir.path(), &["arg".into()], &env, b"in\n", &tx).await.expect_err("b fails");
        assert!(matches!(err, CustomHookError::Exit { ref path, code: 3 } if *path == b), "{err:?}");
        drop(tx);
        let mut got = Vec::new();
        while let Some(c) = rx.recv().await {
            got.push(c);
        }
        assert_eq!(got, [Chunk::Stdout(b"a:in:arg:user-1\n".to_vec()), Chunk::Stderr(b"b-fails\n".to_vec())]);
    }
}
