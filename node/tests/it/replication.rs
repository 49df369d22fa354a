//! Internal fetches between nodes: two real nodes with different storage
//! names, `gitaly-servers` metadata naming them, and git fetching through
//! gitaly-ssh (ReplicateRepository, GetSnapshot, CreateFork,
//! FetchSourceBranch), plus fetches from URLs served by the other node's
//! smart-HTTP front door (FetchRemote, CreateRepositoryFromURL).

#![allow(clippy::disallowed_methods, reason = "tests drive the real git CLI and the front-door binaries")]

use crate::support::fixture::{LONG_COMMITS, copy_repo, rel};
use crate::support::git::{Format, TestRepo, git};
use crate::support::{Node, snapshot};
use base64::Engine as _;
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::*;
use futures::StreamExt as _;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tonic::Code;
use tonic::transport::Channel;

const GITALY_HTTP: &str = env!("CARGO_BIN_EXE_gitaly-http");

/// A node whose single storage is called `name`.
async fn node_named(name: &str) -> Node {
    let name = name.to_owned();
    Node::start_with(move |cfg| cfg.storages[0].name = name).await
}

fn repo(storage: &str, relative: &str) -> Repository {
    Repository { storage_name: storage.into(), relative_path: relative.into(), ..Default::default() }
}

/// The `gitaly-servers` value naming each (storage, node).
fn servers(nodes: &[(&str, &Node)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = nodes
        .iter()
        .map(|(name, node)| {
            ((*name).to_owned(), serde_json::json!({"address": format!("unix:{}", node.socket.display()), "token": ""}))
        })
        .collect();
    base64::engine::general_purpose::STANDARD.encode(serde_json::Value::Object(map).to_string())
}

fn with_servers<T>(msg: T, servers: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert("gitaly-servers", servers.parse().expect("ascii"));
    req
}

async fn client(node: &Node) -> RepositoryServiceClient<Channel> {
    RepositoryServiceClient::new(node.channel().await)
}

/// `<objectname> <refname>` of every reference, and HEAD's target.
fn refs(repo: &Path) -> String {
    let list = git(Some(repo), &["for-each-ref", "--format=%(objectname) %(refname)"]);
    let head = git(Some(repo), &["symbolic-ref", "HEAD"]);
    format!("{list}\nHEAD -> {head}")
}

fn fsck(repo: &Path) {
    let out =
        Command::new("git").arg("-C").arg(repo).args(["fsck", "--strict", "--no-dangling"]).output().expect("fsck");
    assert!(out.status.success(), "fsck {}: {}", repo.display(), String::from_utf8_lossy(&out.stderr));
}

/// Nothing left in the storage's temporary area.
fn assert_no_temp_dirs(storage: &Path) {
    let tmp = storage.join("+gitaly/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "temporary directories left behind: {left:?}");
}

async fn replicate(
    target_node: &Node,
    target: Repository,
    source: Repository,
    servers: &str,
) -> Result<(), tonic::Status> {
    let req = ReplicateRepositoryRequest { repository: Some(target), source: Some(source) };
    client(target_node).await.replicate_repository(with_servers(req, servers)).await.map(|_| ())
}

async fn replicate_long(format: Format) {
    let (a, b) = (node_named("alpha").await, node_named("beta").await);
    let source = copy_repo(&a.storage, format, "long");
    let relative = rel(format, "long");
    let s = servers(&[("alpha", &a), ("beta", &b)]);
    std::fs::create_dir_all(source.join("custom_hooks")).expect("mkdir hooks");
    std::fs::write(source.join("custom_hooks/pre-receive"), "#!/bin/sh\nexit 0\n").expect("hook");

    // A missing target is created from the snapshot.
    replicate(&b, repo("beta", &relative), repo("alpha", &relative), &s).await.expect("replicate new");
    let target = b.storage.join(&relative);
    assert_eq!(refs(&target), refs(&source));
    fsck(&target);
    let count = git(Some(&target), &["rev-list", "--count", "--all"]);
    assert_eq!(count, LONG_COMMITS.to_string());
    assert_eq!(std::fs::read(target.join("custom_hooks/pre-receive")).expect("hook copied"), b"#!/bin/sh\nexit 0\n");
    let format_name = git(Some(&target), &["rev-parse", "--show-object-format"]);
    assert_eq!(format_name, format.name());
    assert_no_temp_dirs(&b.storage);

    // Pushes, deletions, a new tag and a new HEAD on the source arrive.
    let src = TestRepo { path: source.clone() };
    let main = src.git(&["rev-parse", "refs/heads/main"]);
    let next = src.commit(&[("new.txt", "new\n")], &[&main], "after replication");
    src.git(&["update-ref", "refs/heads/main", &next]);
    src.git(&["update-ref", "refs/heads/feature", &main]);
    src.git(&["tag", "v-after", &next]);
    let doomed: Vec<String> = src
        .git(&["for-each-ref", "--format=%(refname)", "--count=3", "refs/heads/"])
        .lines()
        .filter(|r| *r != "refs/heads/main" && *r != "refs/heads/feature")
        .map(str::to_owned)
        .collect();
    for r in &doomed {
        src.git(&["update-ref", "-d", r]);
    }
    src.git(&["symbolic-ref", "HEAD", "refs/heads/feature"]);
    std::fs::remove_file(source.join("custom_hooks/pre-receive")).expect("rm hook");
    std::fs::write(source.join("custom_hooks/update"), "#!/bin/sh\nexit 1\n").expect("hook");

    replicate(&b, repo("beta", &relative), repo("alpha", &relative), &s).await.expect("replicate again");
    assert_eq!(refs(&target), refs(&source));
    fsck(&target);
    for r in &doomed {
        assert!(!refs(&target).contains(&format!(" {r}\n")), "{r} pruned");
    }
    assert!(!target.join("custom_hooks/pre-receive").exists());
    assert!(target.join("custom_hooks/update").exists());
    assert_no_temp_dirs(&b.storage);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_repository_creates_and_mirrors_sha1() {
    replicate_long(Format::Sha1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_repository_creates_and_mirrors_sha256() {
    replicate_long(Format::Sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_repository_bad_input() {
    let (a, b) = (node_named("alpha").await, node_named("beta").await);
    let src = TestRepo::create(&a.storage, "src.git", Format::Sha1);
    src.commit_on("main", &[("a", "a\n")], "one");
    let s = servers(&[("alpha", &a), ("beta", &b)]);
    let before = snapshot(&b.storage);
    let cases: Vec<(Option<Repository>, Option<Repository>, Option<&str>, Code, &str)> = vec![
        (None, Some(repo("alpha", "src.git")), Some(&s), Code::InvalidArgument, "repository not set"),
        (Some(repo("beta", "t.git")), None, Some(&s), Code::InvalidArgument, "source repository cannot be empty"),
        (Some(repo("beta", "t.git")), Some(repo("beta", "x.git")), Some(&s), Code::InvalidArgument, "same storage"),
        (Some(repo("gamma", "t.git")), Some(repo("alpha", "src.git")), Some(&s), Code::InvalidArgument, "storage"),
        (Some(repo("beta", "t.git")), Some(repo("alpha", "src.git")), None, Code::Internal, "gitaly-servers"),
        (
            Some(repo("beta", "t.git")),
            Some(repo("delta", "src.git")),
            Some(&s),
            Code::Internal,
            "storage name not found",
        ),
        (Some(repo("beta", "t.git")), Some(repo("alpha", "missing.git")), Some(&s), Code::NotFound, "invalid source"),
    ];
    for (target, source, servers, code, needle) in cases {
        let mut req = tonic::Request::new(ReplicateRepositoryRequest { repository: target, source });
        if let Some(v) = servers {
            req.metadata_mut().insert("gitaly-servers", v.parse().expect("ascii"));
        }
        let err = client(&b).await.replicate_repository(req).await.expect_err(needle);
        assert_eq!(err.code(), code, "{needle}: {err:?}");
        assert!(err.message().contains(needle), "{needle}: {}", err.message());
    }
    // A source whose history cannot be read fails without creating the target.
    std::fs::write(src.path.join("HEAD"), "garbage").expect("corrupt");
    let err = replicate(&b, repo("beta", "t.git"), repo("alpha", "src.git"), &s).await.expect_err("broken source");
    assert_ne!(err.code(), Code::Ok);
    let after = snapshot(&b.storage);
    let created: Vec<_> =
        after.keys().filter(|p| !before.contains_key(*p) && !p.starts_with(b.storage.join("+gitaly"))).collect();
    assert!(created.is_empty(), "nothing half-written: {created:?}");
    assert!(!b.storage.join("t.git").exists());
    assert_no_temp_dirs(&b.storage);
}

/// Untars GetSnapshot's answer and compares it with the repository.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_snapshot_holds_refs_and_objects_only() {
    let a = node_named("alpha").await;
    let repo_path = TestRepo::create(&a.storage, "snap.git", Format::Sha1);
    let one = repo_path.commit_on("main", &[("a", "a\n")], "one");
    repo_path.commit_on("topic", &[("b", "b\n")], "two");
    repo_path.git(&["tag", "v1", &one]);
    repo_path.git(&["pack-refs", "--all"]);
    repo_path.commit_on("loose", &[("c", "c\n")], "three");
    repo_path.git(&["repack", "-a", "-d", "--write-bitmap-index"]);
    repo_path.commit_on("main", &[("d", "d\n")], "four");
    std::fs::create_dir_all(repo_path.path.join("custom_hooks")).expect("mkdir");
    std::fs::write(repo_path.path.join("custom_hooks/update"), "x").expect("hook");
    std::fs::write(repo_path.path.join("config"), "[core]\n\tbare = true\n[secret]\n\ttoken = x\n").expect("config");

    let mut stream = client(&a)
        .await
        .get_snapshot(GetSnapshotRequest { repository: Some(repo("alpha", "snap.git")) })
        .await
        .expect("snapshot")
        .into_inner();
    let mut data = Vec::new();
    let mut messages = 0;
    while let Some(m) = stream.next().await {
        let m = m.expect("chunk");
        assert!(m.data.len() <= 128 * 1024);
        data.extend_from_slice(&m.data);
        messages += 1;
    }
    assert!(messages >= 1);
    let names: Vec<String> = tar::Archive::new(data.as_slice())
        .entries()
        .expect("tar")
        .map(|e| e.expect("entry").path().expect("path").display().to_string())
        .collect();
    assert!(names.contains(&"HEAD".to_owned()));
    assert!(names.contains(&"packed-refs".to_owned()));
    assert!(names.iter().any(|n| n.starts_with("refs/heads/")));
    assert!(names.iter().any(|n| n.starts_with("objects/pack/pack-") && n.ends_with(".pack")));
    assert!(names.iter().any(|n| n.starts_with("objects/pack/pack-") && n.ends_with(".idx")));
    for n in &names {
        assert!(!n.starts_with("config") && !n.starts_with("custom_hooks") && !n.starts_with("hooks"), "{n}");
        assert!(!n.ends_with(".bitmap") && !n.ends_with(".rev") && !n.starts_with("objects/info"), "{n}");
        assert!(!n.starts_with("info") && !n.starts_with("logs") && !n.starts_with("description"), "{n}");
    }

    // Unpacked over a fresh repository, it is the same repository.
    let tmp = tempfile::tempdir().expect("tempdir");
    let copy = tmp.path().join("copy.git");
    git(None, &["init", "--bare", "--quiet", copy.to_str().expect("utf-8")]);
    tar::Archive::new(data.as_slice()).unpack(&copy).expect("unpack");
    assert_eq!(refs(&copy), refs(&repo_path.path));
    fsck(&copy);
    assert_eq!(
        git(Some(&copy), &["rev-list", "--all", "--objects"]),
        repo_path.git(&["rev-list", "--all", "--objects"])
    );

    let err = client(&a)
        .await
        .get_snapshot(GetSnapshotRequest { repository: Some(repo("alpha", "missing.git")) })
        .await
        .expect_err("missing");
    assert_eq!(err.code(), Code::NotFound);
    let err = client(&a)
        .await
        .get_snapshot(GetSnapshotRequest { repository: Some(repo("", "snap.git")) })
        .await
        .expect_err("no storage");
    assert_eq!(err.code(), Code::InvalidArgument);
}
