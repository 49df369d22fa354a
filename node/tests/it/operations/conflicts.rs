//! ConflictsService, checked against the conflicts of a CLI `git merge-tree`.

#![allow(
    clippy::disallowed_methods,
    reason = "the conflicted CLI merge exits 1, which the support helpers treat as a failure"
)]

use super::merges::diverged;
use super::repository;
use crate::hooks::quarantines;
use crate::support::Node;
use crate::support::git::{Format, TestRepo};
use cairn_proto::gitaly::conflict_file::ConflictFilePayload;
use cairn_proto::gitaly::conflicts_service_client::ConflictsServiceClient;
use cairn_proto::gitaly::*;
use tonic::Code;
use tonic::transport::Channel;

pub(crate) async fn conflicts_client(node: &Node) -> ConflictsServiceClient<Channel> {
    ConflictsServiceClient::new(node.channel().await)
}

fn list(relative: &str, ours: &str, theirs: &str) -> ListConflictFilesRequest {
    ListConflictFilesRequest {
        repository: Some(repository(relative)),
        our_commit_oid: ours.into(),
        their_commit_oid: theirs.into(),
        ..Default::default()
    }
}

/// Every file of the answer: header and concatenated content.
async fn collect(
    client: &mut ConflictsServiceClient<Channel>,
    req: ListConflictFilesRequest,
) -> Result<Vec<(ConflictFileHeader, Vec<u8>)>, tonic::Status> {
    let mut stream = client.list_conflict_files(req).await?.into_inner();
    let mut files: Vec<(ConflictFileHeader, Vec<u8>)> = Vec::new();
    while let Some(msg) = stream.message().await? {
        for f in msg.files {
            match f.conflict_file_payload.expect("payload") {
                ConflictFilePayload::Header(h) => files.push((h, Vec::new())),
                ConflictFilePayload::Content(c) => files.last_mut().expect("header first").1.extend_from_slice(&c),
            }
        }
    }
    Ok(files)
}

/// What a CLI merge leaves at `path`, with the markers' commit ids
/// replaced by the path as GitLab shows them.
pub(crate) fn cli_conflict(repo: &TestRepo, ours: &str, theirs: &str, path: &str) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(&repo.path)
        .args(["merge-tree", "--write-tree", ours, theirs])
        .output()
        .expect("git runs");
    assert_eq!(out.status.code(), Some(1), "conflicts");
    let tree = String::from_utf8_lossy(&out.stdout).lines().next().expect("tree").to_owned();
    repo.git(&["cat-file", "blob", &format!("{tree}:{path}")]).replace(ours, path).replace(theirs, path) + "\n"
}

async fn lists_conflicts(format: Format) {
    let node = Node::start().await;
    let (repo, main, feature, left, right) = diverged(&node, "r.git", format);
    let mut conflicts = conflicts_client(&node).await;
    let files = collect(&mut conflicts, list("r.git", &left, &right)).await.expect("listed");
    assert_eq!(files.len(), 1);
    let (header, content) = &files[0];
    assert_eq!(header.commit_oid, left);
    assert_eq!(header.our_path, b"README.md");
    assert_eq!(header.their_path, b"README.md");
    assert_eq!(header.ancestor_path, b"README.md");
    assert_eq!(header.our_mode, 0o100644);
    assert_eq!(String::from_utf8_lossy(content), cli_conflict(&repo, &left, &right, "README.md"));
    assert_eq!(String::from_utf8_lossy(content), "<<<<<<< README.md\nleft\n=======\nright\n>>>>>>> README.md\n");

    // Headers only.
    let req = ListConflictFilesRequest { skip_content: true, ..list("r.git", &left, &right) };
    let files = collect(&mut conflicts, req).await.expect("listed");
    assert_eq!(files.len(), 1);
    assert!(files[0].1.is_empty());

    // A clean merge has no conflicts.
    assert!(collect(&mut conflicts, list("r.git", &main, &feature)).await.expect("clean").is_empty());
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_conflicts_sha1() {
    lists_conflicts(Format::Sha1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_conflicts_sha256() {
    lists_conflicts(Format::Sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_conflicts_need_allowing() {
    let node = Node::start().await;
    let (repo, main, _, left, _) = diverged(&node, "r.git", Format::Sha1);
    // Deletes README.md, which `left` changes.
    let gone = repo.commit(&[("a.txt", "a\n")], &[&main], "gone");
    let mut conflicts = conflicts_client(&node).await;
    let status = collect(&mut conflicts, list("r.git", &left, &gone)).await.expect_err("tree conflict");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "conflict side missing");
    let req = ListConflictFilesRequest { allow_tree_conflicts: true, ..list("r.git", &left, &gone) };
    let files = collect(&mut conflicts, req).await.expect("listed");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0.our_path, b"README.md");
    assert!(files[0].0.their_path.is_empty());
    assert_eq!(files[0].1, b"left\n", "our side's content");

    let cases = [
        (list("r.git", "", &left), Code::InvalidArgument, "empty OurCommitOid"),
        (list("r.git", &left, ""), Code::InvalidArgument, "empty TheirCommitOid"),
        (list("r.git", "nope", &left), Code::FailedPrecondition, "could not lookup 'our' OID"),
        (list("r.git", &left, "nope"), Code::FailedPrecondition, "could not lookup 'their' OID"),
    ];
    for (req, code, message) in cases {
        let status = collect(&mut conflicts, req).await.expect_err("refused");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().starts_with(message), "{message:?} in {status:?}");
    }
}

fn resolve_header(relative: &str, ours: &str, theirs: &str, source: &str, target: &str) -> ResolveConflictsRequest {
    ResolveConflictsRequest {
        resolve_conflicts_request_payload: Some(resolve_conflicts_request::ResolveConflictsRequestPayload::Header(
            ResolveConflictsRequestHeader {
                repository: Some(repository(relative)),
                our_commit_oid: ours.into(),
                target_repository: Some(repository(relative)),
                their_commit_oid: theirs.into(),
                source_branch: source.into(),
                target_branch: target.into(),
                commit_message: b"Resolve conflicts".to_vec(),
                user: Some(super::user()),
                timestamp: super::merges::timestamp(),
            },
        )),
    }
}

async fn resolve(
    client: &mut ConflictsServiceClient<Channel>,
    header: ResolveConflictsRequest,
    json: &str,
) -> Result<ResolveConflictsResponse, tonic::Status> {
    let mut messages = vec![header];
    // Split the JSON over two messages as clients may.
    let (a, b) = json.split_at(json.len() / 2);
    for part in [a, b] {
        messages.push(ResolveConflictsRequest {
            resolve_conflicts_request_payload: Some(
                resolve_conflicts_request::ResolveConflictsRequestPayload::FilesJson(part.as_bytes().to_vec()),
            ),
        });
    }
    client.resolve_conflicts(futures::stream::iter(messages)).await.map(tonic::Response::into_inner)
}

fn section_id(path: &str, old: usize, new: usize) -> String {
    use sha1::Digest as _;
    format!("{}_{old}_{new}", hex::encode(sha1::Sha1::digest(path.as_bytes())))
}

async fn resolves_conflicts(format: Format) {
    let node = Node::start().await;
    let (repo, _, _, left, right) = diverged(&node, "r.git", format);
    let mut conflicts = conflicts_client(&node).await;
    let id = section_id("README.md", 1, 1);
    let json = format!(r#"[{{"old_path":"README.md","new_path":"README.md","sections":{{"{id}":"origin"}}}}]"#);
    let answer = resolve(&mut conflicts, resolve_header("r.git", &left, &right, "left", "right"), &json)
        .await
        .expect("resolved");
    assert_eq!(answer.resolution_error, "");
    let tip = super::resolve(&repo, "refs/heads/left").expect("branch");
    assert_eq!(
        repo.git(&["log", "-1", "--format=%P%n%an %at%n%B", &tip]),
        format!("{left} {right}\nJane Doe {}\nResolve conflicts", super::merges::WHEN)
    );
    assert_eq!(repo.git(&["show", &format!("{tip}:README.md")]), "right");
    assert_eq!(repo.git(&["show", &format!("{tip}:a.txt")]), "a");
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());

    // Content edited by hand replaces the file.
    repo.git(&["update-ref", "refs/heads/left", &left]);
    let json = r#"[{"old_path":"README.md","new_path":"README.md","content":"both\n"}]"#;
    resolve(&mut conflicts, resolve_header("r.git", &left, &right, "left", "right"), json).await.expect("resolved");
    let tip = super::resolve(&repo, "refs/heads/left").expect("branch");
    assert_eq!(repo.git(&["show", &format!("{tip}:README.md")]), "both");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolves_conflicts_sha1() {
    resolves_conflicts(Format::Sha1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolves_conflicts_sha256() {
    resolves_conflicts(Format::Sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_resolutions_and_refusals_leave_nothing() {
    let node = Node::start().await;
    let (repo, _, _, left, right) = diverged(&node, "r.git", Format::Sha1);
    let mut conflicts = conflicts_client(&node).await;
    let header = || resolve_header("r.git", &left, &right, "left", "right");
    let id = section_id("README.md", 1, 1);
    let cases = [
        ("[]".to_owned(), "Missing resolutions for the following files: README.md".to_owned()),
        (
            r#"[{"old_path":"README.md","new_path":"README.md","sections":{"x_1_1":"head"}}]"#.to_owned(),
            format!("Missing resolution for section ID: {id}"),
        ),
        (
            r#"[{"old_path":"README.md","new_path":"README.md","content":"<<<<<<< README.md\nleft\n=======\nright\n>>>>>>> README.md\n"}]"#
                .to_owned(),
            "Resolved content has no changes for file README.md".to_owned(),
        ),
    ];
    for (json, message) in cases {
        let answer = resolve(&mut conflicts, header(), &json).await.expect("answered");
        assert_eq!(answer.resolution_error, message);
        assert_eq!(super::resolve(&repo, "refs/heads/left").as_deref(), Some(left.as_str()));
    }
    let status = resolve(&mut conflicts, header(), r#"[{"old_path":"README.md"}]"#).await.expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "missing sections or content for a resolution");

    crate::hooks::script(&repo.path.join("custom_hooks/pre-receive"), "echo nope >&2; exit 1");
    let json = format!(r#"[{{"old_path":"README.md","new_path":"README.md","sections":{{"{id}":"head"}}}}]"#);
    let status = resolve(&mut conflicts, header(), &json).await.expect_err("refused");
    assert!(status.message().contains("nope"), "{status:?}");
    assert_eq!(super::resolve(&repo, "refs/heads/left").as_deref(), Some(left.as_str()));
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());

    let mut no_header = header();
    no_header.resolve_conflicts_request_payload =
        Some(resolve_conflicts_request::ResolveConflictsRequestPayload::FilesJson(b"[]".to_vec()));
    let status = conflicts.resolve_conflicts(futures::stream::iter(vec![no_header])).await.expect_err("no header");
    assert_eq!(status.message(), "empty ResolveConflictsRequestHeader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolving_against_a_target_in_another_repository_fetches_its_commit() {
    let node = Node::start().await;
    let (upstream, _, _, left, right) = diverged(&node, "r.git", Format::Sha1);
    // The merge request's source is a fork that lacks the target's commit.
    let fork = TestRepo { path: super::copy_repo(&node, &upstream, "fork.git") };
    fork.git(&["update-ref", "-d", "refs/heads/right"]);
    fork.git(&["reflog", "expire", "--expire=now", "--all"]);
    fork.git(&["gc", "--quiet", "--prune=now"]);
    assert!(!crate::support::git::has_object(&fork.path, &right));

    let mut header = resolve_header("fork.git", &left, &right, "left", "right");
    if let Some(resolve_conflicts_request::ResolveConflictsRequestPayload::Header(h)) =
        header.resolve_conflicts_request_payload.as_mut()
    {
        h.target_repository = Some(repository("r.git"));
    }
    let id = section_id("README.md", 1, 1);
    let json = format!(r#"[{{"old_path":"README.md","new_path":"README.md","sections":{{"{id}":"head"}}}}]"#);
    let mut conflicts = conflicts_client(&node).await;
    let answer = resolve(&mut conflicts, header, &json).await.expect("resolved");
    assert_eq!(answer.resolution_error, "");
    let tip = super::resolve(&fork, "refs/heads/left").expect("branch");
    assert_eq!(fork.git(&["log", "-1", "--format=%P", &tip]), format!("{left} {right}"));
    assert_eq!(fork.git(&["show", &format!("{tip}:README.md")]), "left");
    fork.git(&["fsck", "--no-progress"]);
    assert_eq!(quarantines(&fork.path), Vec::<String>::new());

    // A target branch that does not exist there is refused.
    let mut header = resolve_header("fork.git", &left, &right, "left", "gone");
    if let Some(resolve_conflicts_request::ResolveConflictsRequestPayload::Header(h)) =
        header.resolve_conflicts_request_payload.as_mut()
    {
        h.target_repository = Some(repository("r.git"));
    }
    let status = resolve(&mut conflicts, header, &json).await.expect_err("no target");
    assert_eq!(status.message(), "could not resolve target revision: reference not found");
}
