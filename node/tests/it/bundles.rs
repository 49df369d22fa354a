//! CreateRepositoryFromBundle, FetchBundle and CreateBundleFromRefList
//! against a real node, checked with the git CLI, for SHA-1 and SHA-256.

#![allow(clippy::disallowed_methods, reason = "a failing `git bundle verify` is asserted with the real git CLI")]

use crate::support::Node;
use crate::support::git::{Format, TestRepo, git, git_stdin_bytes};
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::*;
use futures::StreamExt as _;
use std::path::Path;
use tonic::Code;
use tonic::transport::Channel;

const FORMATS: [Format; 2] = [Format::Sha1, Format::Sha256];

async fn client(node: &Node) -> RepositoryServiceClient<Channel> {
    RepositoryServiceClient::new(node.channel().await)
}

/// Every reference with its object, and HEAD's target.
fn refs(repo: &Path) -> String {
    format!("{}HEAD -> {}", crate::support::wire::refs(repo), git(Some(repo), &["symbolic-ref", "HEAD"]))
}

fn fsck(repo: &Path) {
    git(Some(repo), &["fsck", "--strict", "--no-dangling"]);
}

/// A repository with branches, a tag and GitLab-internal references.
fn source(node: &Node, name: &str, format: Format) -> (TestRepo, String, String) {
    let src = node.create_repo(name, format);
    let one = src.commit_on("main", &[("a", "a\n")], "one");
    let two = src.commit_on("main", &[("a", "b\n")], "two");
    src.git(&["update-ref", "refs/heads/feature", &one]);
    src.git(&["tag", "-a", "-m", "release", "v1", &one]);
    src.git(&["update-ref", &format!("refs/keep-around/{one}"), &one]);
    src.git(&["update-ref", "refs/merge-requests/1/head", &two]);
    src.git(&["symbolic-ref", "HEAD", "refs/heads/main"]);
    (src, one, two)
}

fn bundle_of(repo: &Path, args: &[&str]) -> Vec<u8> {
    let mut argv = vec!["bundle", "create", "-"];
    argv.extend_from_slice(args);
    git_stdin_bytes(Some(repo), &argv, None)
}

/// Sends `data` in small pieces, the repository only in the first message.
fn from_bundle_stream(repo: Option<Repository>, data: &[u8]) -> Vec<CreateRepositoryFromBundleRequest> {
    let mut msgs = vec![CreateRepositoryFromBundleRequest { repository: repo, data: Vec::new() }];
    msgs.extend(data.chunks(1000).map(|c| CreateRepositoryFromBundleRequest { repository: None, data: c.to_vec() }));
    msgs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_repository_from_bundle_copies_every_reference() {
    let node = Node::start().await;
    for format in FORMATS {
        let (src, ..) = source(&node, &format!("src-{}.git", format.name()), format);
        let bundle = bundle_of(&src.path, &["--all"]);
        let name = format!("new-{}.git", format.name());
        let mut c = client(&node).await;
        c.create_repository_from_bundle(futures::stream::iter(from_bundle_stream(Some(node.repo(&name)), &bundle)))
            .await
            .expect("CreateRepositoryFromBundle");
        let created = node.storage.join(&name);
        assert_eq!(refs(&created), refs(&src.path), "{format:?}");
        fsck(&created);
        assert_eq!(git(Some(&created), &["rev-parse", "--show-object-format"]), format.name());
        let config = git(Some(&created), &["config", "--list", "--local"]);
        assert!(!config.contains("remote.origin"), "origin removed: {config}");

        // Once more: the repository exists.
        let e = c
            .create_repository_from_bundle(futures::stream::iter(from_bundle_stream(Some(node.repo(&name)), &bundle)))
            .await
            .expect_err("exists");
        assert_eq!((e.code(), e.message()), (Code::AlreadyExists, "creating repository: repository exists already"));
    }
    let mut c = client(&node).await;
    let e = c
        .create_repository_from_bundle(futures::stream::iter(from_bundle_stream(
            Some(node.repo("bad.git")),
            b"nonsense",
        )))
        .await
        .expect_err("invalid bundle");
    assert_eq!(e.code(), Code::Internal, "{e:?}");
    assert!(
        e.message().starts_with("creating repository: cloning bundle: waiting for git-clone: exit status 128"),
        "{e:?}"
    );
    assert!(!node.storage.join("bad.git").exists(), "nothing left behind");
    let e = c
        .create_repository_from_bundle(futures::stream::iter(from_bundle_stream(None, b"")))
        .await
        .expect_err("no repository");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "repository not set"));
    let left: Vec<_> =
        std::fs::read_dir(node.storage.join("+gitaly/tmp")).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

fn fetch_stream(repo: Option<Repository>, data: &[u8], update_head: bool) -> Vec<FetchBundleRequest> {
    let mut msgs = vec![FetchBundleRequest { repository: repo, data: Vec::new(), update_head }];
    msgs.extend(data.chunks(700).map(|c| FetchBundleRequest {
        repository: None,
        data: c.to_vec(),
        update_head: false,
    }));
    msgs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_bundle_adds_references_and_updates_head() {
    let node = Node::start().await;
    for format in FORMATS {
        let (src, one, two) = source(&node, &format!("src-{}.git", format.name()), format);
        src.git(&["symbolic-ref", "HEAD", "refs/heads/feature"]);
        let bundle = bundle_of(&src.path, &["--all"]);
        let dst = node.create_repo(&format!("dst-{}.git", format.name()), format);
        let own = dst.commit_on("own", &[("o", "o\n")], "own");
        let repo = node.repo(&format!("dst-{}.git", format.name()));
        let mut c = client(&node).await;
        c.fetch_bundle(futures::stream::iter(fetch_stream(Some(repo.clone()), &bundle, false))).await.expect("fetch");
        let listed = git(Some(&dst.path), &["for-each-ref", "--format=%(objectname) %(refname)"]);
        for expected in [
            format!("{two} refs/heads/main"),
            format!("{one} refs/heads/feature"),
            format!("{own} refs/heads/own"),
            format!("{one} refs/keep-around/{one}"),
            format!("{two} refs/merge-requests/1/head"),
        ] {
            assert!(listed.contains(&expected), "{expected} in {listed}");
        }
        assert_eq!(git(Some(&dst.path), &["rev-parse", "refs/tags/v1^{commit}"]), one);
        // Without update_head HEAD stays where it was (git's default branch).
        assert_eq!(git(Some(&dst.path), &["symbolic-ref", "HEAD"]), "refs/heads/main");
        fsck(&dst.path);

        // The bundle's HEAD is feature's commit; main is elsewhere, so the
        // branch is guessed among the others.
        c.fetch_bundle(futures::stream::iter(fetch_stream(Some(repo), &bundle, true))).await.expect("update head");
        assert_eq!(git(Some(&dst.path), &["symbolic-ref", "HEAD"]), "refs/heads/feature");
    }
    let mut c = client(&node).await;
    let e = c.fetch_bundle(futures::stream::iter(fetch_stream(None, b"", false))).await.expect_err("no repository");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "repository not set"));
    let e = c
        .fetch_bundle(futures::stream::iter(fetch_stream(Some(node.repo("unknown.git")), b"", false)))
        .await
        .expect_err("unknown repository");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    node.create_repo("plain.git", Format::Sha1);
    let e = c
        .fetch_bundle(futures::stream::iter(fetch_stream(Some(node.repo("plain.git")), b"garbage", false)))
        .await
        .expect_err("invalid bundle");
    assert_eq!(e.code(), Code::Internal, "{e:?}");
    assert!(e.message().starts_with("fetch bundle: "), "{e:?}");
}

async fn bundle_from_ref_list(
    node: &Node,
    repo: Option<Repository>,
    patterns: &[&[u8]],
) -> Result<Vec<u8>, tonic::Status> {
    let mut msgs = vec![CreateBundleFromRefListRequest { repository: repo, patterns: Vec::new() }];
    msgs.extend(
        patterns.iter().map(|p| CreateBundleFromRefListRequest { repository: None, patterns: vec![p.to_vec()] }),
    );
    let mut stream = client(node).await.create_bundle_from_ref_list(futures::stream::iter(msgs)).await?.into_inner();
    let mut data = Vec::new();
    while let Some(msg) = stream.next().await {
        data.extend(msg?.data);
    }
    Ok(data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_bundle_from_ref_list_bundles_the_given_revisions() {
    let node = Node::start().await;
    for format in FORMATS {
        let name = format!("src-{}.git", format.name());
        let (src, one, two) = source(&node, &name, format);
        let data = bundle_from_ref_list(
            &node,
            Some(node.repo(&name)),
            &[b"refs/heads/main", b"^refs/heads/main~1", b"refs/heads/missing"],
        )
        .await
        .expect("bundle");
        let file = node.dir.path().join(format!("{}.bundle", format.name()));
        std::fs::write(&file, &data).expect("write bundle");
        let file = file.to_str().expect("utf-8 path");
        let heads = git(Some(&src.path), &["bundle", "list-heads", file]);
        assert_eq!(heads, format!("{two} refs/heads/main"), "missing names are ignored");
        // Thin: it needs `one`, which the repository has.
        let verify = crate::support::git::git_stdin(Some(&src.path), &["bundle", "verify", file], None);
        assert!(verify.is_empty() || !verify.contains("error"), "{verify}");
        let fresh = node.create_repo(&format!("fresh-{}.git", format.name()), format);
        let e = std::process::Command::new("git")
            .arg("-C")
            .arg(&fresh.path)
            .args(["bundle", "verify", file])
            .output()
            .expect("git runs");
        assert!(!e.status.success(), "a repository without {one} cannot use it");

        let e = bundle_from_ref_list(&node, Some(node.repo(&name)), &[b"refs/heads/main", b"^refs/heads/main"])
            .await
            .expect_err("empty");
        assert_eq!(
            (e.code(), e.message()),
            (Code::FailedPrecondition, "create bundle: refusing to create empty bundle")
        );
    }
    let e = bundle_from_ref_list(&node, None, &[b"main"]).await.expect_err("no repository");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "repository not set"));
}
