//! OptimizeRepository and PruneUnreachableObjects against a real node,
//! with the effects read back through the git CLI and the files git
//! writes (packs, multi-pack-index, commit-graph chain, packed-refs).

use crate::support::Node;
use crate::support::git::{Format, TestRepo, git, git_stdin, has_object as exists};
use cairn_proto::gitaly::optimize_repository_request::Strategy;
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::*;
use std::path::Path;
use std::time::{Duration, SystemTime};
use tonic::Code;
use tonic::transport::Channel;

async fn client(node: &Node) -> RepositoryServiceClient<Channel> {
    RepositoryServiceClient::new(node.channel().await)
}

/// Sets the modification time of `path` to `age` ago.
fn age(path: &Path, age: Duration) {
    let f = std::fs::File::open(path).expect("open");
    f.set_modified(SystemTime::now() - age).expect("set mtime");
}

/// The loose object file of `oid` in `repo`.
fn loose(repo: &Path, oid: &str) -> std::path::PathBuf {
    repo.join("objects").join(&oid[..2]).join(&oid[2..])
}

fn count_objects(repo: &Path) -> std::collections::BTreeMap<String, String> {
    git(Some(repo), &["count-objects", "-v"])
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

/// A repository with one pack, `loose` more loose blobs reachable from
/// `main`, and `refs` loose branches.
fn busy_repo(node: &Node, relative: &str, loose_objects: usize, refs: usize) -> TestRepo {
    let repo = node.create_repo(relative, Format::Sha1);
    // As CreateRepository leaves it: fully repacked just now.
    std::fs::write(repo.path.join(".gitaly-full-repack-timestamp"), "").expect("write");
    let first = repo.commit_on("main", &[("a", "a\n")], "packed");
    repo.git(&["repack", "-a", "-d", "-q"]);
    // One tree with many new blobs: all loose.
    let mut entries = String::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut paths = String::new();
    for i in 0..loose_objects.saturating_sub(2) {
        let p = dir.path().join(format!("f{i}"));
        std::fs::write(&p, format!("content {i}\n")).expect("write");
        paths.push_str(&format!("{}\n", p.display()));
    }
    let oids = git_stdin(Some(&repo.path), &["hash-object", "-w", "--stdin-paths"], Some(paths.as_bytes()));
    for (i, oid) in oids.lines().enumerate() {
        entries.push_str(&format!("100644 blob {oid}\tf{i}\n"));
    }
    let tree = git_stdin(Some(&repo.path), &["mktree"], Some(entries.as_bytes()));
    let commit = repo.git(&["commit-tree", &tree, "-p", &first, "-m", "loose"]);
    repo.git(&["update-ref", "refs/heads/main", &commit]);
    let mut updates = String::new();
    for i in 0..refs {
        updates.push_str(&format!("create refs/heads/branch-{i} {commit}\n"));
    }
    git_stdin(Some(&repo.path), &["update-ref", "--stdin"], Some(updates.as_bytes()));
    repo
}

fn loose_refs(repo: &Path) -> usize {
    walkdir(&repo.join("refs"))
}

fn walkdir(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| if e.path().is_dir() { walkdir(&e.path()) } else { 1 }).sum())
        .unwrap_or(0)
}

#[tokio::test]
async fn heuristic_optimization_packs_loose_objects_refs_and_writes_the_commit_graph() {
    let node = Node::start_with(|c| c.prometheus_listen_addr = Some("127.0.0.1:0".into())).await;
    let mut c = client(&node).await;
    let repo = busy_repo(&node, "busy.git", 1200, 100);
    assert!(count_objects(&repo.path)["count"].parse::<u64>().expect("count") > 1024);
    // Stale leftovers of crashed git processes, and a fresh lock in use.
    std::fs::write(repo.path.join("config.lock"), "").expect("write");
    age(&repo.path.join("config.lock"), Duration::from_secs(3600));
    std::fs::write(repo.path.join("HEAD.lock"), "").expect("write");

    c.optimize_repository(OptimizeRepositoryRequest { repository: Some(node.repo("busy.git")), strategy: 0 })
        .await
        .expect("optimize");

    let counts = count_objects(&repo.path);
    assert_eq!(counts["count"], "0", "{counts:?}");
    assert!(repo.path.join("objects/pack/multi-pack-index").exists(), "geometric repack writes a midx");
    assert_eq!(loose_refs(&repo.path), 0, "refs packed");
    assert_eq!(repo.git(&["for-each-ref", "--format=x"]).lines().count(), 101);
    let chain = std::fs::read_to_string(repo.path.join("objects/info/commit-graphs/commit-graph-chain"))
        .expect("split commit-graph");
    assert_eq!(chain.lines().count(), 1);
    git(Some(&repo.path), &["commit-graph", "verify"]);
    git(Some(&repo.path), &["fsck", "--no-dangling"]);
    assert!(!repo.path.join("config.lock").exists(), "stale lock removed");
    assert!(repo.path.join("HEAD.lock").exists(), "fresh lock kept");
    // Upstream's metrics name what ran.
    let metrics = node.metrics().await;
    for task in ["total", "packed_objects_geometric", "written_multi_pack_index", "packed_refs"] {
        let line = format!("gitaly_housekeeping_tasks_total{{housekeeping_task=\"{task}\",status=\"success\"}} 1");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    for step in ["clean-stale-data", "repack", "pack-refs", "commit-graph", "total"] {
        let line = format!("gitaly_housekeeping_tasks_latency_count{{housekeeping_task=\"{step}\"}} 1");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }

    // Nothing left to do: a second run changes no pack.
    let packs = || {
        let mut v: Vec<_> = std::fs::read_dir(repo.path.join("objects/pack"))
            .expect("pack dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        v.sort();
        v
    };
    let before = packs();
    c.optimize_repository(OptimizeRepositoryRequest { repository: Some(node.repo("busy.git")), strategy: 1 })
        .await
        .expect("optimize again");
    assert_eq!(packs(), before);
}

#[tokio::test]
async fn eager_optimization_expires_old_unreachable_objects_except_in_pools() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    for (relative, kept) in [
        ("plain.git", false),
        ("@pools/ab/cd/abcd000000000000000000000000000000000000000000000000000000000000.git", true),
    ] {
        let repo = node.create_repo(relative, Format::Sha1);
        repo.commit_on("main", &[("a", "a\n")], "a");
        let old = git_stdin(Some(&repo.path), &["hash-object", "-w", "--stdin"], Some(b"old garbage\n"));
        let fresh = git_stdin(Some(&repo.path), &["hash-object", "-w", "--stdin"], Some(b"fresh garbage\n"));
        age(&loose(&repo.path, &old), Duration::from_secs(30 * 24 * 3600));
        c.optimize_repository(OptimizeRepositoryRequest {
            repository: Some(node.repo(relative)),
            strategy: Strategy::Eager.into(),
        })
        .await
        .expect("optimize");
        assert_eq!(exists(&repo.path, &old), kept, "{relative}");
        assert!(exists(&repo.path, &fresh), "{relative}: recent unreachable objects stay");
        // A pool's unreachable loose objects stay loose (`--keep-unreachable`
        // keeps unreachable packed ones); elsewhere everything is packed.
        let loose = if kept { "2" } else { "0" };
        assert_eq!(count_objects(&repo.path)["count"], loose, "{relative}");
        assert!(repo.path.join(".gitaly-full-repack-timestamp").exists());
        let bitmaps = std::fs::read_dir(repo.path.join("objects/pack"))
            .expect("pack dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".bitmap"))
            .count();
        assert!(bitmaps >= 1, "{relative}: bitmaps written");
        git(Some(&repo.path), &["fsck", "--no-dangling"]);
    }
}

#[tokio::test]
async fn optimize_rejects_bad_requests() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    node.create_repo("a.git", Format::Sha1);
    let e = c
        .optimize_repository(OptimizeRepositoryRequest { repository: Some(node.repo("a.git")), strategy: 7 })
        .await
        .expect_err("bad strategy");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "unsupported optimization strategy 7"));
    let e =
        c.optimize_repository(OptimizeRepositoryRequest { repository: None, strategy: 0 }).await.expect_err("unset");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "repository not set"));
    let e = c
        .optimize_repository(OptimizeRepositoryRequest { repository: Some(node.repo("missing.git")), strategy: 0 })
        .await
        .expect_err("missing");
    assert_eq!(e.code(), Code::NotFound);
    // An empty repository has nothing to do and succeeds.
    c.optimize_repository(OptimizeRepositoryRequest { repository: Some(node.repo("a.git")), strategy: 0 })
        .await
        .expect("empty repository");
}

#[tokio::test]
async fn prune_unreachable_objects_drops_old_garbage_and_keeps_the_commit_graph_valid() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    let repo = node.create_repo("a.git", Format::Sha1);
    let base = repo.commit_on("main", &[("a", "a\n")], "a");
    let orphan = repo.commit(&[("b", "b\n")], &[&base], "orphan");
    repo.git(&["update-ref", "refs/heads/tmp", &orphan]);
    repo.git(&["commit-graph", "write", "--reachable", "--split"]);
    repo.git(&["update-ref", "-d", "refs/heads/tmp"]);
    let fresh = git_stdin(Some(&repo.path), &["hash-object", "-w", "--stdin"], Some(b"fresh\n"));
    for entry in std::fs::read_dir(repo.path.join("objects")).expect("objects").flatten() {
        if entry.file_name().len() == 2 {
            for f in std::fs::read_dir(entry.path()).expect("shard").flatten() {
                age(&f.path(), Duration::from_secs(3600));
            }
        }
    }
    age(&loose(&repo.path, &fresh), Duration::from_secs(60));

    c.prune_unreachable_objects(PruneUnreachableObjectsRequest { repository: Some(node.repo("a.git")) })
        .await
        .expect("prune");
    assert!(!exists(&repo.path, &orphan), "old unreachable commit pruned");
    assert!(exists(&repo.path, &fresh), "recent unreachable object kept");
    assert!(exists(&repo.path, &base));
    git(Some(&repo.path), &["commit-graph", "verify"]);
    git(Some(&repo.path), &["fsck", "--no-dangling"]);
    let graph = git(Some(&repo.path), &["rev-list", "--all"]);
    assert_eq!(graph, base);

    let e = c.prune_unreachable_objects(PruneUnreachableObjectsRequest { repository: None }).await.expect_err("unset");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "repository not set"));
    node.create_repo("@cluster/pools/d4/73/2", Format::Sha1);
    let e = c
        .prune_unreachable_objects(PruneUnreachableObjectsRequest {
            repository: Some(node.repo("@cluster/pools/d4/73/2")),
        })
        .await
        .expect_err("pool");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "pruning objects for object pool"));
}

/// Not a test of behaviour: times OptimizeRepository against `git gc` on
/// copies of the same repository (run with `--run-ignored only`).
#[tokio::test]
#[ignore = "measurement"]
async fn measure_optimize_against_git_gc() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    let repo = busy_repo(&node, "measure.git", 2000, 5000);
    // A faithful copy: loose objects and loose refs as in the original.
    let copy = node.storage.join("gc-copy.git");
    copy_dir(&repo.path, &copy);
    println!("before: {:?}, loose refs {}", count_objects(&repo.path), loose_refs(&repo.path));

    let start = std::time::Instant::now();
    c.optimize_repository(OptimizeRepositoryRequest { repository: Some(node.repo("measure.git")), strategy: 0 })
        .await
        .expect("optimize");
    let optimize = start.elapsed();
    println!(
        "OptimizeRepository (heuristic): {optimize:?}; after: {:?}, loose refs {}",
        count_objects(&repo.path),
        loose_refs(&repo.path)
    );

    let start = std::time::Instant::now();
    git(Some(&copy), &["gc", "--quiet"]);
    let gc = start.elapsed();
    println!("git gc: {gc:?}; after: {:?}, loose refs {}", count_objects(&copy), loose_refs(&copy));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read").flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}
