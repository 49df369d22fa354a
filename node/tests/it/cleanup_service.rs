//! CleanupService against a real node: ApplyBfgObjectMapStream and
//! RewriteHistory, checked with the git CLI, for SHA-1 and SHA-256.

use crate::support::Node;
use crate::support::git::{Format, TestRepo, git, git_stdin};
use cairn_proto::gitaly::cleanup_service_client::CleanupServiceClient;
use cairn_proto::gitaly::*;
use futures::StreamExt as _;
use tonic::Code;
use tonic::transport::Channel;

const FORMATS: [Format; 2] = [Format::Sha1, Format::Sha256];

async fn client(node: &Node) -> CleanupServiceClient<Channel> {
    CleanupServiceClient::new(node.channel().await)
}

async fn apply_map(
    node: &Node,
    repo: Option<Repository>,
    pieces: &[&[u8]],
) -> Result<Vec<apply_bfg_object_map_stream_response::Entry>, tonic::Status> {
    let msgs: Vec<ApplyBfgObjectMapStreamRequest> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| ApplyBfgObjectMapStreamRequest {
            repository: if i == 0 { repo.clone() } else { None },
            object_map: p.to_vec(),
        })
        .collect();
    let mut stream = client(node).await.apply_bfg_object_map_stream(futures::stream::iter(msgs)).await?.into_inner();
    let mut entries = Vec::new();
    while let Some(msg) = stream.next().await {
        entries.extend(msg?.entries);
    }
    Ok(entries)
}

fn ref_names(repo: &TestRepo) -> Vec<String> {
    git(Some(&repo.path), &["for-each-ref", "--format=%(refname)"]).lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_bfg_object_map_removes_internal_references() {
    let node = Node::start().await;
    for format in FORMATS {
        let name = format!("bfg-{}.git", format.name());
        let repo = node.create_repo(&name, format);
        let commit = repo.commit_on("main", &[("blob", "blob contents")], "one");
        let blob = repo.git(&["rev-parse", &format!("{commit}:blob")]);
        repo.git(&["tag", "-a", "-m", "annotated tag", "v1.0.0", &commit]);
        let tag = repo.git(&["rev-parse", "refs/tags/v1.0.0"]);
        let other = repo.commit_on("feature", &[("other", "more contents")], "other");
        // A merge whose parent is rewritten, though it is not in the map.
        let merge = repo.commit(&[("blob", "blob contents")], &[&commit, &other], "merge");
        repo.git(&["update-ref", "refs/merge-requests/merge", &merge]);
        for r in ["refs/environments/1", "refs/keep-around/1", "refs/merge-requests/1", "refs/pipelines/1"] {
            repo.git(&["update-ref", r, &commit]);
        }
        for r in ["refs/heads/_keep", "refs/tags/_keep", "refs/notes/_keep"] {
            repo.git(&["update-ref", r, &commit]);
        }
        for r in
            ["refs/environments/_keep", "refs/keep-around/_keep", "refs/merge-requests/_keep", "refs/pipelines/_keep"]
        {
            repo.git(&["update-ref", r, &tag]);
        }
        let zero = "0".repeat(commit.len());
        let header = format!("old{}new\n", " ".repeat(commit.len() - 2));
        let map = format!("{header}{commit} {zero}\n{zero} {blob}\n{zero} {tag}\n{blob} {zero}\n{tag} {tag}\n");
        let bytes = map.as_bytes();
        let entries = apply_map(&node, Some(node.repo(&name)), &[&bytes[..10], &bytes[10..20], &bytes[20..]])
            .await
            .expect("apply");
        let names = ref_names(&repo);
        for gone in [
            "refs/environments/1",
            "refs/keep-around/1",
            "refs/merge-requests/1",
            "refs/merge-requests/merge",
            "refs/pipelines/1",
        ] {
            assert!(!names.iter().any(|n| n == gone), "{gone} deleted ({format:?}): {names:?}");
        }
        for kept in [
            "refs/heads/_keep",
            "refs/tags/_keep",
            "refs/notes/_keep",
            "refs/environments/_keep",
            "refs/keep-around/_keep",
            "refs/merge-requests/_keep",
            "refs/pipelines/_keep",
            "refs/heads/main",
        ] {
            assert!(names.iter().any(|n| n == kept), "{kept} kept ({format:?})");
        }
        let got: Vec<(i32, String, String)> = entries.into_iter().map(|e| (e.r#type, e.old_oid, e.new_oid)).collect();
        assert_eq!(
            got,
            vec![
                (ObjectType::Commit as i32, commit.clone(), zero.clone()),
                (ObjectType::Blob as i32, zero.clone(), blob.clone()),
                (ObjectType::Tag as i32, zero.clone(), tag.clone()),
                (ObjectType::Unknown as i32, blob.clone(), zero.clone()),
            ]
        );
        git(Some(&repo.path), &["fsck", "--no-dangling"]);
    }
}

#[tokio::test]
async fn apply_bfg_object_map_rejects_bad_input() {
    let node = Node::start().await;
    let repo = node.create_repo("bad.git", Format::Sha1);
    let commit = repo.commit_on("main", &[("a", "a")], "one");
    repo.git(&["update-ref", "refs/keep-around/1", &commit]);
    let e = apply_map(&node, Some(node.repo("bad.git")), &[b"invalid-data here as you can see"])
        .await
        .expect_err("invalid map");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "invalid old object ID at line 0"));
    // A bad line anywhere changes nothing.
    let map = format!("{commit} {}\n{commit} nope\n", "0".repeat(40));
    let e = apply_map(&node, Some(node.repo("bad.git")), &[map.as_bytes()]).await.expect_err("bad new id");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "invalid new object ID at line 1"));
    assert!(ref_names(&repo).contains(&"refs/keep-around/1".to_owned()));
    let e = apply_map(&node, None, &[b""]).await.expect_err("no repository");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "repository not set"));
}

async fn rewrite(node: &Node, msgs: Vec<RewriteHistoryRequest>) -> Result<(), tonic::Status> {
    client(node).await.rewrite_history(futures::stream::iter(msgs)).await.map(|_| ())
}

/// Every path (with its blob) in every commit of every reference.
fn all_blobs(repo: &TestRepo) -> String {
    let commits = git(Some(&repo.path), &["rev-list", "--all"]);
    commits.lines().map(|c| git(Some(&repo.path), &["ls-tree", "-r", c])).collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_history_removes_blobs_and_redacts_text() {
    let node = Node::start().await;
    for format in FORMATS {
        let name = format!("rw-{}.git", format.name());
        let repo = node.create_repo(&name, format);
        let base = repo.commit_on("main", &[("README", "hello\n")], "base");
        repo.commit_on(
            "main",
            &[("README", "hello\n"), ("big.bin", "large\0binary"), ("config", "password=hunter2\n")],
            "leak",
        );
        repo.commit_on("main", &[("README", "hello again\n"), ("config", "password=hunter2\ntoken=abc\n")], "more");
        let big = repo.git(&["rev-parse", "refs/heads/main~1:big.bin"]);
        repo.git(&["update-ref", "refs/heads/old", &base]);
        repo.git(&["tag", "-a", "-m", "release", "v1", "refs/heads/main"]);
        repo.git(&["update-ref", "refs/keep-around/x", "refs/heads/main~1"]);
        let before = ref_names(&repo);
        let count = git(Some(&repo.path), &["rev-list", "--all", "--count"]);

        let first = RewriteHistoryRequest {
            repository: Some(node.repo(&name)),
            blobs: vec![big.clone()],
            ..Default::default()
        };
        let second = RewriteHistoryRequest { redactions: vec![b"hunter2".to_vec()], ..Default::default() };
        rewrite(&node, vec![first, second]).await.expect("rewrite");

        assert_eq!(ref_names(&repo), before, "same references ({format:?})");
        assert_eq!(git(Some(&repo.path), &["rev-list", "--all", "--count"]), count, "no commit dropped");
        assert_eq!(repo.git(&["rev-parse", "refs/heads/old"]), base, "untouched history keeps its ids");
        let blobs = all_blobs(&repo);
        assert!(!blobs.contains("big.bin") && !blobs.contains(&big), "{blobs}");
        let config = repo.git(&["show", "refs/heads/main:config"]);
        assert_eq!(config, "password=***REMOVED***\ntoken=abc");
        assert_eq!(repo.git(&["show", "refs/keep-around/x:config"]), "password=***REMOVED***");
        let tagged = repo.git(&["rev-parse", "refs/tags/v1^{commit}"]);
        assert_eq!(tagged, repo.git(&["rev-parse", "refs/heads/main"]), "tags follow the rewrite");
        let grep = git_stdin(Some(&repo.path), &["log", "--all", "-p", "--format=%H"], None);
        assert!(!grep.contains("hunter2"), "{grep}");
        git(Some(&repo.path), &["fsck", "--strict", "--no-dangling"]);
        let left: Vec<_> =
            std::fs::read_dir(node.storage.join("+gitaly/tmp")).map(|d| d.flatten().collect()).unwrap_or_default();
        assert!(left.is_empty(), "staging left behind: {left:?}");
    }
}

#[tokio::test]
async fn rewrite_history_rejects_bad_requests() {
    let node = Node::start().await;
    let repo = node.create_repo("bad.git", Format::Sha1);
    repo.commit_on("main", &[("a", "a")], "one");
    let first = || RewriteHistoryRequest { repository: Some(node.repo("bad.git")), ..Default::default() };
    let cases: Vec<(Vec<RewriteHistoryRequest>, &str)> = vec![
        (vec![first()], "no object IDs or text replacements specified"),
        (
            vec![RewriteHistoryRequest { redactions: vec![b"a\nb".to_vec()], ..first() }],
            "redaction pattern contains newline",
        ),
        (
            vec![first(), RewriteHistoryRequest { repository: Some(node.repo("bad.git")), ..Default::default() }],
            "subsequent requests must not contain repository",
        ),
    ];
    for (msgs, message) in cases {
        let e = rewrite(&node, msgs).await.expect_err(message);
        assert_eq!((e.code(), e.message()), (Code::InvalidArgument, message));
    }
    let e =
        rewrite(&node, vec![RewriteHistoryRequest { blobs: vec!["xyz".into()], ..first() }]).await.expect_err("bad id");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("validating object ID"), "{e:?}");
    let e = rewrite(&node, vec![RewriteHistoryRequest { redactions: vec![b"x".to_vec()], ..Default::default() }])
        .await
        .expect_err("no repository");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "repository not set"));
}

#[tokio::test]
async fn rewrite_history_prunes_commits_left_empty_as_filter_repo_does() {
    let node = Node::start().await;
    let repo = node.create_repo("prune.git", Format::Sha1);
    let base = repo.commit_on("main", &[("README", "hello\n")], "base");
    let added = repo.commit_on("main", &[("README", "hello\n"), ("big.bin", "large\0binary")], "add the big file");
    repo.commit_on("main", &[("README", "hello again\n"), ("big.bin", "large\0binary")], "edit README");
    let big = repo.git(&["rev-parse", "refs/heads/main:big.bin"]);
    // A branch whose only commit adds the file, a tag of the commit that
    // added it, and an annotated tag of the blob itself.
    let lone = repo.commit(&[("big.bin", "large\0binary")], &[], "only the big file");
    repo.git(&["update-ref", "refs/heads/lone", &lone]);
    repo.git(&["tag", "-a", "-m", "added", "v1", &added]);
    repo.git(&["tag", "-a", "-m", "the blob", "blob-tag", &big]);
    // An empty commit stays empty on purpose: it is kept.
    let empty = repo.git(&["commit-tree", &format!("{base}^{{tree}}"), "-p", &base, "-m", "empty on purpose"]);
    repo.git(&["update-ref", "refs/heads/empty", &empty]);

    let req =
        RewriteHistoryRequest { repository: Some(node.repo("prune.git")), blobs: vec![big], ..Default::default() };
    rewrite(&node, vec![req]).await.expect("rewrite");

    assert_eq!(repo.git(&["log", "--format=%s", "main"]), "edit README\nbase", "the emptied commit is pruned");
    assert_eq!(repo.git(&["rev-parse", "main~1"]), base, "untouched history keeps its ids");
    assert_eq!(repo.git(&["rev-parse", "refs/tags/v1^{commit}"]), base, "a tag of a pruned commit moves to its parent");
    let names = ref_names(&repo);
    assert!(!names.iter().any(|n| n == "refs/heads/lone"), "a branch with nothing left goes: {names:?}");
    assert!(!names.iter().any(|n| n == "refs/tags/blob-tag"), "a tag of the removed blob goes: {names:?}");
    assert_eq!(repo.git(&["rev-parse", "refs/heads/empty"]), empty, "commits empty from the start stay");
    git(Some(&repo.path), &["fsck", "--strict", "--no-dangling"]);
}
