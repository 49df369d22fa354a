//! Real git, in a sealed environment, for building test repositories: no
//! system or global config, fixed identities and dates, so every run makes
//! byte-identical objects.

#![allow(clippy::disallowed_methods, reason = "tests build fixtures with the real git CLI")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Object format of a test repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Sha1,
    Sha256,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
        }
    }
}

/// Runs git with `args` in `dir` (or no directory), returning stdout.
/// Panics with stderr on failure.
pub fn git(dir: Option<&Path>, args: &[&str]) -> String {
    git_stdin(dir, args, None)
}

pub fn git_stdin(dir: Option<&Path>, args: &[&str], stdin: Option<&[u8]>) -> String {
    String::from_utf8(git_stdin_bytes(dir, args, stdin)).expect("utf-8 output").trim_end().to_owned()
}

/// [`git_stdin`] with raw output.
pub fn git_stdin_bytes(dir: Option<&Path>, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let mut cmd = Command::new("git");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Scrooge McDuck")
        .env("GIT_AUTHOR_EMAIL", "scrooge@mcduck.com")
        .env("GIT_AUTHOR_DATE", "1572776879 +0100")
        .env("GIT_COMMITTER_NAME", "Scrooge McDuck")
        .env("GIT_COMMITTER_EMAIL", "scrooge@mcduck.com")
        .env("GIT_COMMITTER_DATE", "1572776879 +0100")
        .args(["-c", "init.defaultBranch=main", "-c", "gc.auto=0"]);
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    cmd.args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("git runs");
    if let Some(input) = stdin {
        use std::io::Write as _;
        child.stdin.take().expect("piped").write_all(input).expect("write stdin");
    }
    let out = child.wait_with_output().expect("git finishes");
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Whether `repo` (with its alternates) has the object `rev` names.
pub fn has_object(repo: &Path, rev: &str) -> bool {
    let out = Command::new("git")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .arg("-C")
        .arg(repo)
        .args(["cat-file", "-e", rev])
        .output()
        .expect("git runs");
    out.status.success()
}

/// A pack of everything `tip` reaches in `repo` (what a push sends).
pub fn pack_of(repo: &Path, tip: &str) -> Vec<u8> {
    git_stdin_bytes(Some(repo), &["pack-objects", "--stdout", "--revs"], Some(format!("{tip}\n").as_bytes()))
}

/// A bare repository built with plumbing commands.
#[derive(Debug, Clone)]
pub struct TestRepo {
    pub path: PathBuf,
}

impl TestRepo {
    /// `git init --bare` at `storage/relative`.
    pub fn create(storage: &Path, relative: &str, format: Format) -> Self {
        let path = storage.join(relative);
        std::fs::create_dir_all(&path).expect("mkdir");
        git(Some(&path), &["init", "--bare", "--quiet", &format!("--object-format={}", format.name())]);
        Self { path }
    }

    pub fn git(&self, args: &[&str]) -> String {
        git(Some(&self.path), args)
    }

    /// Writes a commit with the given files (path → content) on top of
    /// `parents` and returns its id. Does not move any reference.
    pub fn commit(&self, files: &[(&str, &str)], parents: &[&str], message: &str) -> String {
        let mut entries = String::new();
        for (name, content) in files {
            let blob = git_stdin(Some(&self.path), &["hash-object", "-w", "--stdin"], Some(content.as_bytes()));
            entries.push_str(&format!("100644 blob {blob}\t{name}\n"));
        }
        let tree = git_stdin(Some(&self.path), &["mktree"], Some(entries.as_bytes()));
        let mut args = vec!["commit-tree", tree.as_str(), "-m", message];
        for p in parents {
            args.push("-p");
            args.push(p);
        }
        self.git(&args)
    }

    /// Commits on `branch` (creating it, or advancing it from its tip).
    pub fn commit_on(&self, branch: &str, files: &[(&str, &str)], message: &str) -> String {
        let refname = format!("refs/heads/{branch}");
        let parent = std::process::Command::new("git")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .args(["-C"])
            .arg(&self.path)
            .args(["rev-parse", "--verify", "--quiet", &refname])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        let parents: Vec<&str> = parent.iter().map(String::as_str).collect();
        let id = self.commit(files, &parents, message);
        self.git(&["update-ref", &refname, &id]);
        id
    }
}
