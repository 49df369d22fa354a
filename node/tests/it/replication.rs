//! Internal fetches between nodes: two real nodes with different storage
//! names, `gitaly-servers` metadata naming them, and git fetching through
//! gitaly-ssh (ReplicateRepository, GetSnapshot, CreateFork,
//! FetchSourceBranch), plus fetches from URLs served by the other node's
//! smart-HTTP front door (FetchRemote, CreateRepositoryFromURL).

#![allow(clippy::disallowed_methods, reason = "tests drive the real git CLI and the front-door binaries")]

use crate::support::fixture::{LONG_COMMITS, copy_repo, rel};
use crate::support::git::{Format, TestRepo, git};
use crate::support::wire::HttpFrontDoor;
use crate::support::{Node, snapshot};
use base64::Engine as _;
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::*;
use futures::StreamExt as _;
use std::path::Path;
use std::process::Command;
use tonic::Code;
use tonic::transport::Channel;

/// A node whose single storage is called `name`.
pub(crate) async fn node_named(name: &str) -> Node {
    let name = name.to_owned();
    Node::start_with(move |cfg| cfg.storages[0].name = name).await
}

fn repo(storage: &str, relative: &str) -> Repository {
    Repository { storage_name: storage.into(), relative_path: relative.into(), ..Default::default() }
}

/// The `gitaly-servers` value naming each (storage, node).
pub(crate) fn servers(nodes: &[(&str, &Node)]) -> String {
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
    /// Target, source, gitaly-servers, expected code, expected message part.
    type Case<'a> = (Option<Repository>, Option<Repository>, Option<&'a str>, Code, &'a str);
    let cases: Vec<Case<'_>> = vec![
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

/// Accepts one HTTP request on loopback, answers 401 and returns its head.
async fn capture_request() -> (String, tokio::task::JoinHandle<String>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut buf = vec![0u8; 8192];
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let _ = s.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
        String::from_utf8_lossy(&head).into_owned()
    });
    (format!("http://{addr}"), task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_fork_across_and_within_nodes() {
    let (a, b) = (node_named("alpha").await, node_named("beta").await);
    let src = TestRepo::create(&a.storage, "src.git", Format::Sha256);
    let one = src.commit_on("main", &[("a", "a\n")], "one");
    src.commit_on("topic", &[("b", "b\n")], "two");
    src.git(&["tag", "v1", &one]);
    let s = servers(&[("alpha", &a), ("beta", &b)]);
    let fork = |target: Repository, revision: &[u8]| CreateForkRequest {
        repository: Some(target),
        source_repository: Some(repo("alpha", "src.git")),
        revision: revision.to_vec(),
    };

    // Another node: every branch and tag, HEAD as on the source, no origin.
    client(&b).await.create_fork(with_servers(fork(repo("beta", "fork.git"), b""), &s)).await.expect("fork");
    let forked = b.storage.join("fork.git");
    let expected: String = refs(&src.path);
    assert_eq!(refs(&forked), expected);
    fsck(&forked);
    assert!(!std::fs::read_to_string(forked.join("config")).expect("config").contains("remote"));
    assert_eq!(git(Some(&forked), &["rev-parse", "--show-object-format"]), "sha256");

    // The same node, one branch only.
    client(&a)
        .await
        .create_fork(with_servers(fork(repo("alpha", "one.git"), b"refs/heads/topic"), &s))
        .await
        .expect("single-branch fork");
    let one_branch = a.storage.join("one.git");
    assert_eq!(git(Some(&one_branch), &["for-each-ref", "--format=%(refname)"]), "refs/heads/topic");
    assert_eq!(git(Some(&one_branch), &["symbolic-ref", "HEAD"]), "refs/heads/topic");

    // Errors: the target exists, bad revision, bad source, no metadata.
    let err =
        client(&b).await.create_fork(with_servers(fork(repo("beta", "fork.git"), b""), &s)).await.expect_err("exists");
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains("repository exists already"), "{}", err.message());
    let err = client(&b)
        .await
        .create_fork(with_servers(fork(repo("beta", "bad.git"), b"refs/tags/v1"), &s))
        .await
        .expect_err("not a branch");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let mut req = fork(repo("beta", "bad.git"), b"");
    req.source_repository = Some(repo("", "src.git"));
    let err = client(&b).await.create_fork(with_servers(req, &s)).await.expect_err("no storage");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("validating source repository"), "{}", err.message());
    let err = client(&b).await.create_fork(fork(repo("beta", "bad.git"), b"")).await.expect_err("no metadata");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    let mut req = fork(repo("beta", "bad.git"), b"");
    req.source_repository = Some(repo("alpha", "missing.git"));
    let err = client(&b).await.create_fork(with_servers(req, &s)).await.expect_err("missing source");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(!b.storage.join("bad.git").exists());
    assert_no_temp_dirs(&b.storage);
    assert_no_temp_dirs(&a.storage);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_source_branch_present_and_missing() {
    let (a, b) = (node_named("alpha").await, node_named("beta").await);
    let src = TestRepo::create(&a.storage, "src.git", Format::Sha1);
    src.commit_on("main", &[("a", "a\n")], "one");
    let feature = src.commit_on("feature", &[("f", "f\n")], "feature");
    let dst = TestRepo::create(&b.storage, "dst.git", Format::Sha1);
    let dst_main = dst.commit_on("main", &[("z", "z\n")], "other history");
    let s = servers(&[("alpha", &a), ("beta", &b)]);
    let req = |branch: &[u8], target: &[u8], expected: &str| FetchSourceBranchRequest {
        repository: Some(repo("beta", "dst.git")),
        source_repository: Some(repo("alpha", "src.git")),
        source_branch: branch.to_vec(),
        target_ref: target.to_vec(),
        expected_target_old_oid: expected.to_owned(),
    };

    let r = client(&b)
        .await
        .fetch_source_branch(with_servers(req(b"feature", b"refs/merge-requests/1/head", ""), &s))
        .await
        .expect("fetch")
        .into_inner();
    assert!(r.result);
    assert_eq!(dst.git(&["rev-parse", "refs/merge-requests/1/head"]), feature);
    fsck(&dst.path);

    let r = client(&b)
        .await
        .fetch_source_branch(with_servers(req(b"no-such-branch", b"refs/merge-requests/2/head", ""), &s))
        .await
        .expect("missing branch")
        .into_inner();
    assert!(!r.result);
    assert!(!dst.git(&["for-each-ref", "--format=%(refname)"]).contains("merge-requests/2"));

    // expected_target_old_oid guards the update.
    let err = client(&b)
        .await
        .fetch_source_branch(with_servers(req(b"feature", b"refs/heads/main", &feature), &s))
        .await
        .expect_err("stale expectation");
    assert_ne!(err.code(), Code::Ok);
    assert_eq!(dst.git(&["rev-parse", "refs/heads/main"]), dst_main);
    let r = client(&b)
        .await
        .fetch_source_branch(with_servers(req(b"feature", b"refs/heads/main", &dst_main), &s))
        .await
        .expect("matching expectation")
        .into_inner();
    assert!(r.result);
    assert_eq!(dst.git(&["rev-parse", "refs/heads/main"]), feature);

    // Source and target the same repository: resolved locally.
    let mut same = req(b"main", b"refs/heads/copy", "");
    same.source_repository = Some(repo("beta", "dst.git"));
    let r = client(&b).await.fetch_source_branch(with_servers(same, &s)).await.expect("same repo").into_inner();
    assert!(r.result);
    assert_eq!(dst.git(&["rev-parse", "refs/heads/copy"]), feature);

    for (branch, target, code) in [
        (&b""[..], &b"refs/x"[..], Code::InvalidArgument),
        (b"-evil", b"refs/x", Code::InvalidArgument),
        (b"feature", b"a b", Code::InvalidArgument),
    ] {
        let err = client(&b)
            .await
            .fetch_source_branch(with_servers(req(branch, target, ""), &s))
            .await
            .expect_err("bad input");
        assert_eq!(err.code(), code, "{err:?}");
    }
    let err = client(&b).await.fetch_source_branch(req(b"feature", b"refs/x", "")).await.expect_err("no metadata");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_remote_over_http_reports_changes() {
    let (a, b) = (node_named("alpha").await, node_named("beta").await);
    let src = TestRepo::create(&a.storage, "src.git", Format::Sha1);
    let one = src.commit_on("main", &[("a", "a\n")], "one");
    let front = tokio::task::block_in_place(|| HttpFrontDoor::start(&a, "alpha"));
    let dst = TestRepo::create(&b.storage, "dst.git", Format::Sha1);
    dst.commit_on("stale", &[("s", "s\n")], "only here");
    let fetch = |check_tags: bool, no_tags: bool| FetchRemoteRequest {
        repository: Some(repo("beta", "dst.git")),
        remote_params: Some(Remote { url: front.url("src.git"), ..Default::default() }),
        check_tags_changed: check_tags,
        no_tags,
        force: true,
        timeout: 60,
        ..Default::default()
    };
    let call = |r: FetchRemoteRequest| {
        let b = &b;
        async move { client(b).await.fetch_remote(r).await.map(tonic::Response::into_inner) }
    };

    let r = call(fetch(true, false)).await.expect("first fetch");
    assert!(r.repo_changed && !r.tags_changed, "{r:?}");
    assert_eq!(dst.git(&["for-each-ref", "--format=%(objectname) %(refname)"]), format!("{one} refs/heads/main"));

    let r = call(fetch(true, false)).await.expect("nothing new");
    assert!(!r.repo_changed && !r.tags_changed, "{r:?}");
    let r = call(fetch(false, false)).await.expect("unchecked");
    assert!(r.tags_changed, "unchecked answers true");

    // --no-tags stops tag following; an explicit heads-only refmap then
    // leaves the new tag behind.
    src.git(&["tag", "v1", &one]);
    let mut no_tags = fetch(true, true);
    no_tags.remote_params.as_mut().expect("params").mirror_refmaps = vec!["heads".into()];
    let r = call(no_tags).await.expect("no tags");
    assert!(!r.repo_changed && !r.tags_changed, "{r:?}");
    let r = call(fetch(true, false)).await.expect("tag");
    assert!(r.repo_changed && r.tags_changed, "{r:?}");
    assert_eq!(dst.git(&["rev-parse", "refs/tags/v1"]), one);
    fsck(&dst.path);

    // Only heads, by refmap.
    let two = src.commit_on("main", &[("b", "b\n")], "two");
    src.git(&["tag", "v2", &two]);
    let mut heads = fetch(true, true);
    heads.remote_params.as_mut().expect("params").mirror_refmaps = vec!["heads".into()];
    let r = call(heads).await.expect("heads");
    assert!(r.repo_changed && !r.tags_changed, "{r:?}");
    assert_eq!(dst.git(&["rev-parse", "refs/heads/main"]), two);

    // The authorization header is sent.
    let (url, captured) = capture_request().await;
    let mut auth = fetch(false, false);
    auth.remote_params = Some(Remote {
        url: format!("{url}/x.git"),
        http_authorization_header: "Bearer s3cret".into(),
        ..Default::default()
    });
    let err = call(auth).await.expect_err("401");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(captured.await.expect("request").contains("Authorization: Bearer s3cret"));

    // Bad input and local paths.
    let mut no_params = fetch(false, false);
    no_params.remote_params = None;
    assert_eq!(call(no_params).await.expect_err("params").code(), Code::InvalidArgument);
    let mut empty = fetch(false, false);
    empty.remote_params = Some(Remote::default());
    assert_eq!(call(empty).await.expect_err("url").code(), Code::InvalidArgument);
    let mut local = fetch(false, false);
    local.remote_params = Some(Remote { url: src.path.display().to_string(), ..Default::default() });
    assert_eq!(call(local).await.expect_err("local path").code(), Code::Internal);
    let mut missing = fetch(false, false);
    missing.repository = Some(repo("beta", "missing.git"));
    assert_eq!(call(missing).await.expect_err("missing").code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_repository_from_url_over_http() {
    let (a, b) = (node_named("alpha").await, node_named("beta").await);
    let source = copy_repo(&a.storage, Format::Sha1, "long");
    let relative = rel(Format::Sha1, "long");
    let front = tokio::task::block_in_place(|| HttpFrontDoor::start(&a, "alpha"));
    let create = |target: &str, url: String, mirror: bool| CreateRepositoryFromUrlRequest {
        repository: Some(repo("beta", target)),
        url,
        mirror,
        ..Default::default()
    };

    client(&b)
        .await
        .create_repository_from_url(create("mirror.git", front.url(&relative), true))
        .await
        .expect("mirror");
    let mirror = b.storage.join("mirror.git");
    assert_eq!(refs(&mirror), refs(&source));
    fsck(&mirror);
    assert!(!std::fs::read_to_string(mirror.join("config")).expect("config").contains("remote"));

    client(&b).await.create_repository_from_url(create("bare.git", front.url(&relative), false)).await.expect("bare");
    let bare = b.storage.join("bare.git");
    let heads =
        |p: &Path| git(Some(p), &["for-each-ref", "--format=%(objectname) %(refname)", "refs/heads", "refs/tags"]);
    assert_eq!(heads(&bare), heads(&source));

    let err = client(&b)
        .await
        .create_repository_from_url(create("bare.git", front.url(&relative), false))
        .await
        .expect_err("exists");
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");

    // Credentials in the URL become a Basic header, not config.
    let (url, captured) = capture_request().await;
    let with_user = url.replace("http://", "http://user:pa%40ss@") + "/x.git";
    let err = client(&b).await.create_repository_from_url(create("auth.git", with_user, false)).await.expect_err("401");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    let expected = base64::engine::general_purpose::STANDARD.encode("user:pa@ss");
    assert!(captured.await.expect("request").contains(&format!("Authorization: Basic {expected}")));

    for (target, url, code) in [
        ("x.git", String::new(), Code::InvalidArgument),
        ("x.git", front.url("missing.git"), Code::Internal),
        ("x.git", source.display().to_string(), Code::Internal),
    ] {
        let err = client(&b).await.create_repository_from_url(create(target, url, false)).await.expect_err("bad");
        assert_eq!(err.code(), code, "{err:?}");
    }
    let mut bad_address = create("x.git", front.url(&relative), false);
    bad_address.resolved_address = "not-an-ip".into();
    let err = client(&b).await.create_repository_from_url(bad_address).await.expect_err("resolved address");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(!b.storage.join("x.git").exists() && !b.storage.join("auth.git").exists());
    assert_no_temp_dirs(&b.storage);
}
