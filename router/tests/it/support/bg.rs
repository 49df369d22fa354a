//! A three-node cluster (s1, s2, s3 on virtual storage "default") with a
//! migrated database, for the background-work tests: seeded repositories on
//! a node's disk, ref listings and checksums to compare replicas.

#![allow(clippy::disallowed_methods, reason = "tests run git to seed and inspect repositories")]

use super::cluster::NodeProc;
use super::pg::TestDb;
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::{CalculateChecksumRequest, Repository};
use cairn_router::config::Config;
use cairn_router::db::{Db, migrate};
use cairn_router::health::HealthView;
use cairn_router::metrics::RouterMetrics;
use cairn_router::nodes::Nodes;
use cairn_router::replication::Replicator;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

pub const VS: &str = "default";
pub const TOKEN: &str = "background-secret";

pub struct Cluster {
    pub nodes: Vec<NodeProc>,
    pub test_db: TestDb,
    pub db: Db,
    pub config: Arc<Config>,
    pub router_nodes: Nodes,
    pub health: HealthView,
}

impl Cluster {
    /// Three nodes and a migrated database; `extra` is appended to the
    /// router config (top-level keys must come first, so pass tables).
    pub async fn start(extra: &str) -> Self {
        let nodes: Vec<NodeProc> = ["s1", "s2", "s3"].iter().map(|s| NodeProc::start(s, TOKEN)).collect();
        let test_db = TestDb::new();
        let db = Db::new(&test_db.config()).expect("pool");
        migrate::migrate(&db, true, |_, _| {}).await.expect("migrate");
        let mut toml = format!("{}\n[[virtual_storage]]\nname = \"{VS}\"\n", test_db.toml());
        for n in &nodes {
            toml.push_str(&n.router_entry());
        }
        toml.push_str(extra);
        let config = Arc::new(Config::from_toml(&toml).expect("router config").config);
        let router_nodes = Nodes::new(&config, None);
        let health = HealthView::default();
        let cluster = Self { nodes, test_db, db, config, router_nodes, health };
        cluster.all_healthy();
        cluster
    }

    pub fn node(&self, storage: &str) -> &NodeProc {
        self.nodes.iter().find(|n| n.storage_name == storage).expect("known storage")
    }

    pub fn node_mut(&mut self, storage: &str) -> &mut NodeProc {
        self.nodes.iter_mut().find(|n| n.storage_name == storage).expect("known storage")
    }

    /// Marks every node healthy, locally and by consensus.
    pub fn all_healthy(&self) {
        self.set_health(&["s1", "s2", "s3"]);
    }

    /// Marks exactly `healthy` as healthy, locally and by consensus.
    pub fn set_health(&self, healthy: &[&str]) {
        for s in ["s1", "s2", "s3"] {
            self.health.set_local(VS, s, healthy.contains(&s));
        }
        let set: BTreeSet<String> = healthy.iter().map(|s| (*s).to_owned()).collect();
        self.health.finish_round(Some(BTreeMap::from([(VS.to_owned(), set)])));
    }

    pub fn replicator(&self, router: &str) -> Replicator {
        Replicator {
            config: self.config.clone(),
            db: self.db.clone(),
            nodes: self.router_nodes.clone(),
            health: self.health.clone(),
            router_name: router.to_owned(),
            metrics: Arc::new(RouterMetrics::unregistered()),
        }
    }

    /// Creates a repository with a few commits at `replica_path` on `storage`'s disk.
    pub fn seed(&self, storage: &str, replica_path: &str) {
        seed_repository(&self.node(storage).path_of(replica_path));
    }

    /// Adds a commit on `branch` of the replica on `storage`'s disk.
    pub fn commit(&self, storage: &str, replica_path: &str, branch: &str, message: &str) {
        add_commit(&self.node(storage).path_of(replica_path), branch, message);
    }

    /// `git for-each-ref` of the replica on `storage`.
    pub fn refs(&self, storage: &str, replica_path: &str) -> String {
        refs(&self.node(storage).path_of(replica_path))
    }

    /// CalculateChecksum of the replica, asked from its node.
    pub async fn checksum(&self, storage: &str, replica_path: &str) -> String {
        let conn = self.router_nodes.get(VS, storage).expect("node").connection().await.expect("dial");
        RepositoryServiceClient::new(conn.channel())
            .calculate_checksum(CalculateChecksumRequest {
                repository: Some(Repository {
                    storage_name: storage.to_owned(),
                    relative_path: replica_path.to_owned(),
                    ..Default::default()
                }),
            })
            .await
            .expect("checksum")
            .into_inner()
            .checksum
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.db.client().await.expect("client").query_one(sql, &[]).await.expect(sql).get(0)
    }

    pub async fn exec(&self, sql: &str) {
        self.db.client().await.expect("client").batch_execute(sql).await.expect(sql);
    }
}

fn git(dir: Option<&Path>, args: &[&str]) -> String {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    let out = cmd
        .args(["-c", "user.name=Cairn Test", "-c", "user.email=test@cairn.invalid", "-c", "init.defaultBranch=main"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", "/nonexistent")
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A bare repository with three commits on main and a tag, at `path`.
pub fn seed_repository(path: &Path) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("parent dirs");
    git(None, &["init", "-q", "--bare", path.to_str().expect("utf-8 path")]);
    for i in 1..=3 {
        add_commit(path, "main", &format!("commit {i}"));
    }
    git(Some(path), &["tag", "v1", "main"]);
}

/// Commits an empty tree change onto `branch` of a bare repository.
pub fn add_commit(path: &Path, branch: &str, message: &str) {
    let blob_input = format!("{message}\n");
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("file");
    std::fs::write(&file, blob_input).expect("write");
    let blob = git(Some(path), &["hash-object", "-w", file.to_str().expect("utf-8")]);
    let tree_spec = format!("100644 blob {}\tREADME\n", blob.trim());
    let spec = dir.path().join("tree");
    std::fs::write(&spec, tree_spec).expect("write");
    let tree = {
        let out = Command::new("git")
            .arg("-C")
            .arg(path)
            .arg("mktree")
            .stdin(std::fs::File::open(&spec).expect("open"))
            .output()
            .expect("mktree");
        assert!(out.status.success());
        String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
    };
    let reference = format!("refs/heads/{branch}");
    let parent = Command::new("git").arg("-C").arg(path).args(["rev-parse", "--verify", "-q", &reference]).output();
    let parent =
        parent.ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let mut args = vec!["commit-tree", tree.as_str(), "-m", message];
    if let Some(p) = parent.as_deref() {
        args.extend(["-p", p]);
    }
    let commit = git(Some(path), &args);
    git(Some(path), &["update-ref", &reference, commit.trim()]);
}

pub fn refs(path: &Path) -> String {
    git(Some(path), &["for-each-ref", "--format=%(objectname) %(refname)"])
}
