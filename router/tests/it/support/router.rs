//! A router serving in the test process against real node processes and a
//! fresh PostgreSQL database, plus client helpers (gRPC, gitaly-ssh git).

#![allow(clippy::disallowed_methods, reason = "tests drive the real git CLI")]

use super::cluster::{NodeProc, bin_dir};
use super::pg::TestDb;
use cairn_router::config::Config;
use cairn_router::db::{Db, migrate};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use tonic::transport::Channel;

pub const VS: &str = "default";
pub const NODE_TOKEN: &str = "node-secret";

/// A router task; dropping it stops the router.
pub struct Router {
    pub socket: PathBuf,
    pub addrs: cairn_router::server::Addresses,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), cairn_router::server::ServeError>>>,
    _dir: tempfile::TempDir,
}

impl Router {
    /// Starts a router for `nodes` on `db`; `extra` is appended to its config.
    pub async fn start(db: &TestDb, nodes: &[&NodeProc], extra: &str) -> Self {
        Self::try_start(db, nodes, extra).await.expect("router starts")
    }

    pub async fn try_start(
        db: &TestDb,
        nodes: &[&NodeProc],
        extra: &str,
    ) -> Result<Self, cairn_router::server::ServeError> {
        let dir = tempfile::Builder::new().prefix("cairn-router-").tempdir().expect("temp dir");
        let socket = dir.path().join("praefect.socket");
        let mut toml = format!(
            "socket_path = {socket:?}\nlisten_addr = \"127.0.0.1:0\"\nname = \"router-{}\"\n{extra}\n{}\n[logging]\nlevel = \"warn\"\n[[virtual_storage]]\nname = \"{VS}\"\n",
            uuid::Uuid::new_v4().simple(),
            db.toml(),
        );
        for n in nodes {
            toml.push_str(&n.router_entry());
        }
        let config = Config::from_toml(&toml).expect("router config decodes").config;
        config.validate().expect("router config is valid");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(cairn_router::server::run_with(
            config,
            async move {
                let _ = rx.await;
            },
            move |addrs| {
                let _ = ready_tx.send(addrs.clone());
            },
        ));
        let addrs = match ready_rx.await {
            Ok(a) => a,
            Err(_) => return Err(task.await.expect("router task").expect_err("router stopped before serving")),
        };
        Ok(Self { socket, addrs, shutdown: Some(tx), task: Some(task), _dir: dir })
    }

    pub fn address(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    pub async fn channel(&self) -> Channel {
        super::unix_channel(&self.socket).await
    }

    /// Stops the router and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), t).await;
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A migrated test database.
pub async fn migrated_db() -> (TestDb, Db) {
    let test_db = TestDb::new();
    let db = Db::new(&test_db.config()).expect("pool");
    migrate::migrate(&db, true, |_, _| {}).await.expect("migrate");
    (test_db, db)
}

pub fn repo(relative: &str) -> cairn_proto::gitaly::Repository {
    cairn_proto::gitaly::Repository {
        storage_name: VS.into(),
        relative_path: relative.into(),
        gl_repository: "project-1".into(),
        ..Default::default()
    }
}

/// Client-side git talking to the router through gitaly-ssh.
pub async fn git_via(
    router_address: &str,
    relative: &str,
    dir: Option<&Path>,
    args: &[&str],
    sidechannel: bool,
) -> Output {
    let gitaly_ssh = bin_dir().join("gitaly-ssh");
    let mode = if args.first() == Some(&"push") { "receive-pack" } else { "upload-pack" };
    // Only receive-pack requests carry the pushing user.
    let user = if mode == "receive-pack" { r#","glId":"user-1","glUsername":"user""# } else { "" };
    let payload = format!(
        r#"{{"repository":{{"storageName":"{VS}","relativePath":"{relative}","glRepository":"project-1"}}{user}}}"#
    );
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
        .env("GIT_SSH_COMMAND", format!("{} {mode}", gitaly_ssh.display()))
        .env("GIT_SSH_VARIANT", "simple")
        .env("GITALY_ADDRESS", router_address)
        .env("GITALY_PAYLOAD", payload)
        .args(["-c", "init.defaultBranch=main", "-c", "gc.auto=0"]);
    if sidechannel {
        cmd.env("GITALY_USE_SIDECHANNEL", "1");
    }
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    cmd.args(&args).stdin(Stdio::null());
    tokio::task::spawn_blocking(move || cmd.output().expect("git runs")).await.expect("join")
}

/// Plain local git.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Author")
        .env("GIT_COMMITTER_EMAIL", "author@example.com")
        .args(["-c", "init.defaultBranch=main"])
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim_end().to_owned()
}

/// A work tree with `n` commits on main.
pub fn work_tree(dir: &Path, n: usize) -> PathBuf {
    let wt = dir.join(format!("wt-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&wt).expect("mkdir");
    git(&wt, &["init", "-q"]);
    for i in 0..n {
        std::fs::write(wt.join("file.txt"), format!("line {i}\n")).expect("write");
        git(&wt, &["add", "file.txt"]);
        git(&wt, &["commit", "-q", "-m", &format!("commit {i}")]);
    }
    wt
}

/// CalculateChecksum of the replica on `node`, asked of the node directly.
pub async fn checksum(node: &NodeProc, replica_path: &str) -> String {
    let conn = cairn_node::client::dial(
        &node.address(),
        cairn_node::client::DialOptions { token: Some(NODE_TOKEN.into()), ..Default::default() },
    )
    .await
    .expect("dial node");
    let r = cairn_proto::gitaly::Repository {
        storage_name: node.storage_name.clone(),
        relative_path: replica_path.into(),
        ..Default::default()
    };
    cairn_proto::gitaly::repository_service_client::RepositoryServiceClient::new(conn.channel())
        .calculate_checksum(cairn_proto::gitaly::CalculateChecksumRequest { repository: Some(r) })
        .await
        .expect("checksum")
        .into_inner()
        .checksum
}

/// Waits until every running node holds the repository's latest generation
/// with the same checksum; returns that checksum.
pub async fn converged(db: &Db, nodes: &[NodeProc], relative: &str) -> String {
    match try_converged(db, nodes, relative, std::time::Duration::from_secs(60)).await {
        Ok(sum) => sum,
        Err(state) => panic!("replicas did not converge: {state:?}"),
    }
}

/// Like [`converged`], giving up after `within` with the last state seen.
pub async fn try_converged(
    db: &Db,
    nodes: &[NodeProc],
    relative: &str,
    within: std::time::Duration,
) -> Result<String, cairn_router::db::repositories::RepoState> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let state = db.repository(VS, relative).await.expect("db").expect("recorded");
        let running: Vec<&NodeProc> = nodes.iter().filter(|n| n.is_running()).collect();
        if running.iter().all(|n| state.is_up_to_date(&n.storage_name)) {
            let mut sums = Vec::new();
            for n in &running {
                sums.push(checksum(n, &state.replica_path).await);
            }
            if sums.windows(2).all(|w| w[0] == w[1]) {
                return Ok(sums.pop().expect("a node"));
            }
        }
        if std::time::Instant::now() >= deadline {
            return Err(state);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
