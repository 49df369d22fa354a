//! Driving stock git against a node: hermetic client-side git, ref
//! listings to compare repositories, and the `gitaly-http` front door.

#![allow(clippy::disallowed_methods, reason = "tests drive the real git CLI and the front-door binaries")]

use super::Node;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const GITALY_SSH: &str = env!("CARGO_BIN_EXE_gitaly-ssh");
pub const GITALY_HTTP: &str = env!("CARGO_BIN_EXE_gitaly-http");

/// Runs client-side git (hermetic config) with extra environment, off the
/// async threads (the node runs on this runtime).
pub async fn git(dir: Option<PathBuf>, args: &[&str], env: Vec<(String, String)>) -> Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("git");
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", "/nonexistent")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "Pusher")
            .env("GIT_AUTHOR_EMAIL", "pusher@example.com")
            .env("GIT_COMMITTER_NAME", "Pusher")
            .env("GIT_COMMITTER_EMAIL", "pusher@example.com")
            .env("GIT_TERMINAL_PROMPT", "0")
            .args(["-c", "init.defaultBranch=main", "-c", "gc.auto=0"]);
        if let Some(d) = dir {
            cmd.arg("-C").arg(d);
        }
        cmd.args(&args).envs(env).stdin(Stdio::null()).output().expect("git runs")
    })
    .await
    .expect("join")
}

/// [`git`] that must succeed; its trimmed stdout.
pub async fn git_ok(dir: Option<PathBuf>, args: &[&str], env: Vec<(String, String)>) -> String {
    let out = git(dir, args, env).await;
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim_end().to_owned()
}

/// Every ref of `repo` with its object id.
pub fn refs(repo: &Path) -> String {
    let out = Command::new("git")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .arg("-C")
        .arg(repo)
        .args(["for-each-ref", "--format=%(objectname) %(refname)"])
        .output()
        .expect("git runs");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `clone` passes `git fsck --strict` and has exactly `source`'s refs.
pub fn assert_fsck_and_refs(clone: &Path, source: &Path) {
    let out = Command::new("git").arg("-C").arg(clone).args(["fsck", "--strict"]).output().expect("fsck");
    assert!(out.status.success(), "fsck: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(refs(clone), refs(source), "clone refs equal the source's");
}

/// A running `gitaly-http` in front of one storage of a node; dropping it
/// kills the process.
pub struct HttpFrontDoor {
    child: std::process::Child,
    pub addr: String,
}

impl HttpFrontDoor {
    pub fn start(node: &Node, storage: &str) -> Self {
        let mut child = Command::new(GITALY_HTTP)
            .args(["--listen", "127.0.0.1:0", "--storage", storage, "--address"])
            .arg(format!("unix:{}", node.socket.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("gitaly-http starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("read address");
        let addr = line.trim().strip_prefix("listening on ").expect("address line").to_owned();
        Self { child, addr }
    }

    pub fn url(&self, relative: &str) -> String {
        format!("http://{}/{relative}", self.addr)
    }
}

impl Drop for HttpFrontDoor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
