//! UserMergeToRef and UserMergeBranch, checked against `git merge-tree`.

use super::{client, detail, repository, resolve, seeded, user};
use crate::hooks::{quarantines, script};
use crate::support::Node;
use crate::support::git::{Format, TestRepo};
use cairn_proto::gitaly::custom_hook_error::HookType;
use cairn_proto::gitaly::operation_service_client::OperationServiceClient;
use cairn_proto::gitaly::*;
use tonic::Code;
use tonic::transport::Channel;

pub(crate) const WHEN: i64 = 1_700_000_000;

pub(crate) fn timestamp() -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds: WHEN, nanos: 0 })
}

/// `main` (README.md, a.txt) plus `feature` (README.md, b.txt) forked at
/// its first commit, and `left`/`right` changing README.md differently on
/// top of main. Returns (repo, main, feature, left, right).
pub(crate) fn diverged(node: &Node, relative: &str, format: Format) -> (TestRepo, String, String, String, String) {
    let (repo, first, second) = seeded(node, relative, format);
    let feature = repo.commit(&[("README.md", "hello\n"), ("b.txt", "b\n")], &[&first], "feature");
    repo.git(&["update-ref", "refs/heads/feature", &feature]);
    let left = repo.commit(&[("README.md", "left\n"), ("a.txt", "a\n")], &[&second], "left");
    let right = repo.commit(&[("README.md", "right\n"), ("a.txt", "a\n")], &[&second], "right");
    repo.git(&["update-ref", "refs/heads/left", &left]);
    repo.git(&["update-ref", "refs/heads/right", &right]);
    (repo, second, feature, left, right)
}

fn to_ref(relative: &str, source: &str, first_parent: &str, target: &str) -> UserMergeToRefRequest {
    UserMergeToRefRequest {
        repository: Some(repository(relative)),
        user: Some(user()),
        source_sha: source.into(),
        first_parent_ref: first_parent.into(),
        target_ref: target.into(),
        message: b"Merge into ref".to_vec(),
        timestamp: timestamp(),
        ..Default::default()
    }
}

/// The tree `git merge-tree` makes of `ours` and `theirs`.
pub(crate) fn cli_merge_tree(repo: &TestRepo, ours: &str, theirs: &str) -> String {
    repo.git(&["merge-tree", "--write-tree", "--allow-unrelated-histories", ours, theirs])
}

async fn merges_to_ref(format: Format) {
    let node = Node::start().await;
    let (repo, main, feature, _, _) = diverged(&node, "r.git", format);
    let mut ops = client(&node).await;
    let target = "refs/merge-requests/1/merge";
    let merged = ops.user_merge_to_ref(to_ref("r.git", &feature, "refs/heads/main", target)).await.expect("merged");
    let id = merged.into_inner().commit_id;
    assert_eq!(resolve(&repo, target).as_deref(), Some(id.as_str()));
    assert_eq!(repo.git(&["log", "-1", "--format=%P", &id]), format!("{main} {feature}"));
    assert_eq!(repo.git(&["rev-parse", &format!("{id}^{{tree}}")]), cli_merge_tree(&repo, &main, &feature));
    let raw = repo.git(&["cat-file", "commit", &id]);
    assert!(raw.contains(&format!("\nauthor Jane Doe <jane@example.com> {WHEN} +0000\n")), "{raw}");
    assert!(raw.contains(&format!("\ncommitter Jane Doe <jane@example.com> {WHEN} +0000\n")), "{raw}");
    assert!(raw.ends_with("\n\nMerge into ref"), "{raw}");
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(main.as_str()));
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());

    // An existing target is overwritten; the deprecated `branch` works too.
    let left = repo.commit(&[("README.md", "hello\n"), ("c.txt", "c\n")], &[&main], "c");
    #[allow(deprecated)]
    let req = UserMergeToRefRequest { branch: b"main".to_vec(), ..to_ref("r.git", &left, "", target) };
    let again = ops.user_merge_to_ref(req).await.expect("merged").into_inner().commit_id;
    assert_eq!(repo.git(&["log", "-1", "--format=%P", &again]), format!("{main} {left}"));
    assert_eq!(resolve(&repo, target).as_deref(), Some(again.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_to_ref_sha1() {
    merges_to_ref(Format::Sha1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_to_ref_sha256() {
    merges_to_ref(Format::Sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_to_ref_is_deterministic_across_replicas() {
    let node = Node::start().await;
    let (_, _, feature, _, _) = diverged(&node, "a.git", Format::Sha1);
    let (b, _, feature_b, _, _) = diverged(&node, "b.git", Format::Sha1);
    assert_eq!(feature, feature_b);
    let mut ops = client(&node).await;
    let target = "refs/merge-requests/7/merge";
    let mut berlin = to_ref("a.git", &feature, "refs/heads/main", target);
    berlin.user.as_mut().expect("user").timezone = "Europe/Berlin".into();
    let a = ops.user_merge_to_ref(berlin.clone()).await.expect("a").into_inner().commit_id;
    berlin.repository = Some(repository("b.git"));
    let second = ops.user_merge_to_ref(berlin).await.expect("b").into_inner().commit_id;
    assert_eq!(a, second, "same request, same commit");
    // The user's time zone sets the offset (Berlin is at +0100 in November).
    let raw = b.git(&["cat-file", "commit", &second]);
    assert!(raw.contains(&format!("{WHEN} +0100\n")), "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_to_ref_refuses_conflicts_and_bad_requests() {
    let node = Node::start().await;
    let (repo, main, feature, left, right) = diverged(&node, "r.git", Format::Sha1);
    let mut ops = client(&node).await;
    let target = "refs/merge-requests/1/merge";
    let status = ops.user_merge_to_ref(to_ref("r.git", &right, "refs/heads/left", target)).await.expect_err("conflict");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(
        status.message(),
        format!("Failed to create merge commit for source_sha {right} and target_sha {left} at {target}")
    );
    assert_eq!(resolve(&repo, target), None);
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());

    // A stale expected old value refuses the update.
    let req = UserMergeToRefRequest { expected_old_oid: main.clone(), ..to_ref("r.git", &feature, "main", target) };
    ops.user_merge_to_ref(req.clone()).await.expect_err("target does not exist yet");
    let status = ops.user_merge_to_ref(req).await.expect_err("stale");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(status.message(), format!("Could not update {target}. Please refresh and try again"));
    assert_eq!(resolve(&repo, target), None);
    repo.git(&["symbolic-ref", "refs/merge-requests/2/merge", "refs/heads/main"]);

    let cases = [
        (to_ref("r.git", &feature, "", target), "empty first parent ref and branch name"),
        (UserMergeToRefRequest { user: None, ..to_ref("r.git", &feature, "main", target) }, "empty user"),
        (to_ref("r.git", "", "main", target), "empty source SHA"),
        (to_ref("r.git", &feature, "main", ""), "empty target ref"),
        (to_ref("r.git", &feature, "main", "refs/heads/x"), "invalid target ref"),
        (to_ref("r.git", &"1".repeat(40), "main", target), "Invalid merge source"),
        (to_ref("r.git", &feature, "nope", target), "Invalid merge source"),
    ];
    for (req, message) in cases {
        let status = ops.user_merge_to_ref(req).await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(status.message(), message);
    }
    let status = ops
        .user_merge_to_ref(to_ref("r.git", &feature, "main", "refs/merge-requests/2/merge"))
        .await
        .expect_err("symbolic");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(main.as_str()));
}

fn merge_first(relative: &str, branch: &str, commit: &str) -> UserMergeBranchRequest {
    UserMergeBranchRequest {
        repository: Some(repository(relative)),
        user: Some(user()),
        commit_id: commit.into(),
        branch: branch.into(),
        message: b"Merge feature".to_vec(),
        timestamp: timestamp(),
        ..Default::default()
    }
}

/// A UserMergeBranch call in progress: the first answer and the sender
/// for the confirmation.
pub(crate) struct Pending<Req, Resp> {
    pub(crate) tx: tokio::sync::mpsc::Sender<Req>,
    pub(crate) answers: tonic::Streaming<Resp>,
}

async fn start_merge(
    ops: &mut OperationServiceClient<Channel>,
    first: UserMergeBranchRequest,
) -> Result<(String, Pending<UserMergeBranchRequest, UserMergeBranchResponse>), tonic::Status> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tx.send(first).await.expect("queued");
    let mut answers = ops.user_merge_branch(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
    let first = answers.message().await?.expect("first answer");
    Ok((first.commit_id, Pending { tx, answers }))
}

async fn confirm(
    mut pending: Pending<UserMergeBranchRequest, UserMergeBranchResponse>,
    apply: bool,
) -> Result<UserMergeBranchResponse, tonic::Status> {
    pending.tx.send(UserMergeBranchRequest { apply, ..Default::default() }).await.expect("queued");
    let answer = pending.answers.message().await?.expect("second answer");
    Ok(answer)
}

async fn merges_a_branch(format: Format) {
    let node = Node::start().await;
    let (repo, main, feature, _, _) = diverged(&node, "r.git", format);
    let log = node.dir.path().join("hook.log");
    script(&repo.path.join("custom_hooks/post-receive"), &format!("cat >> {}", log.display()));
    let mut ops = client(&node).await;
    let (id, pending) = start_merge(&mut ops, merge_first("r.git", "main", &feature)).await.expect("computed");
    // Nothing moves before the client confirms.
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(main.as_str()));
    let answer = confirm(pending, true).await.expect("applied");
    let update = answer.branch_update.expect("branch update");
    assert_eq!(update.commit_id, id);
    assert!(!update.branch_created && !update.repo_created);
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(id.as_str()));
    assert_eq!(
        repo.git(&["log", "-1", "--format=%P%n%an <%ae> %at%n%B", &id]),
        format!("{main} {feature}\nJane Doe <jane@example.com> {WHEN}\nMerge feature")
    );
    assert_eq!(repo.git(&["rev-parse", &format!("{id}^{{tree}}")]), cli_merge_tree(&repo, &main, &feature));
    assert_eq!(std::fs::read_to_string(&log).expect("post-receive ran"), format!("{main} {id} refs/heads/main\n"));
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_a_branch_sha1() {
    merges_a_branch(Format::Sha1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_a_branch_sha256() {
    merges_a_branch(Format::Sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_not_applied_leaves_nothing() {
    let node = Node::start().await;
    let (repo, main, feature, _, _) = diverged(&node, "r.git", Format::Sha1);
    let mut ops = client(&node).await;
    let (id, pending) = start_merge(&mut ops, merge_first("r.git", "main", &feature)).await.expect("computed");
    let status = confirm(pending, false).await.expect_err("aborted");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "merge aborted by client");
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(main.as_str()));
    assert_eq!(resolve(&repo, &format!("{id}^{{commit}}")), None, "the merge commit was never migrated");
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_branch_conflicts_and_refusals() {
    let node = Node::start().await;
    let (repo, main, feature, left, right) = diverged(&node, "r.git", Format::Sha1);
    let mut ops = client(&node).await;
    let status = start_merge(&mut ops, merge_first("r.git", "left", &right)).await.err().expect("conflict");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(status.message(), "merging commits: merge: there are conflicting files");
    let err: UserMergeBranchError = detail(&status);
    let Some(user_merge_branch_error::Error::MergeConflict(conflict)) = err.error else { panic!("{err:?}") };
    assert_eq!(conflict.conflicting_files, vec![b"README.md".to_vec()]);
    assert_eq!(conflict.conflicting_commit_ids, vec![left.clone(), right.clone()]);
    assert_eq!(resolve(&repo, "refs/heads/left").as_deref(), Some(left.as_str()));

    // A custom hook refusing leaves the branch and no objects behind.
    script(&repo.path.join("custom_hooks/pre-receive"), "echo 'merges are reviewed' >&2; exit 1");
    let (id, pending) = start_merge(&mut ops, merge_first("r.git", "main", &feature)).await.expect("computed");
    let status = confirm(pending, true).await.expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(status.message(), "merges are reviewed\n");
    let err: UserMergeBranchError = detail(&status);
    let Some(user_merge_branch_error::Error::CustomHook(hook)) = err.error else { panic!("{err:?}") };
    assert_eq!(hook.hook_type(), HookType::Prereceive);
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(main.as_str()));
    assert_eq!(resolve(&repo, &format!("{id}^{{commit}}")), None);
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
    std::fs::remove_file(repo.path.join("custom_hooks/pre-receive")).expect("rm");

    let cases = [
        (
            UserMergeBranchRequest { user: None, ..merge_first("r.git", "main", &feature) },
            Code::InvalidArgument,
            "empty user",
        ),
        (merge_first("r.git", "", &feature), Code::InvalidArgument, "empty branch name"),
        (merge_first("r.git", "main", ""), Code::InvalidArgument, "empty commit ID"),
        (
            UserMergeBranchRequest { message: vec![], ..merge_first("r.git", "main", &feature) },
            Code::InvalidArgument,
            "empty message",
        ),
        (merge_first("r.git", "gone", &feature), Code::NotFound, "reference not found"),
        (
            UserMergeBranchRequest { expected_old_oid: "xyz".into(), ..merge_first("r.git", "main", &feature) },
            Code::InvalidArgument,
            "invalid expected old object ID",
        ),
    ];
    for (req, code, message) in cases {
        let status = start_merge(&mut ops, req).await.err().expect("refused");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(message), "{message:?} in {status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_merges_into_one_branch_have_one_winner() {
    let node = Node::start().await;
    let (repo, main, feature, left, _) = diverged(&node, "r.git", Format::Sha1);
    let mut ops = client(&node).await;
    let (a, first) = start_merge(&mut ops, merge_first("r.git", "main", &feature)).await.expect("a");
    let (b, second) = start_merge(&mut ops, merge_first("r.git", "main", &left)).await.expect("b");
    let (ra, rb) = tokio::join!(confirm(first, true), confirm(second, true));
    let (winner, loser) = match (ra, rb) {
        (Ok(_), Err(status)) => (a, status),
        (Err(status), Ok(_)) => (b, status),
        other => panic!("exactly one merge wins: {other:?}"),
    };
    assert_eq!(loser.code(), Code::FailedPrecondition, "{loser:?}");
    assert!(loser.message().starts_with("reference update"), "{loser:?}");
    let err: UserMergeBranchError = detail(&loser);
    let Some(user_merge_branch_error::Error::ReferenceUpdate(update)) = err.error else { panic!("{err:?}") };
    assert_eq!(update.reference_name, b"refs/heads/main");
    assert_eq!(update.old_oid, main);
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(winner.as_str()));

    // With expected_old_oid naming the new tip, a merge applies again.
    let req = UserMergeBranchRequest { expected_old_oid: winner.clone(), ..merge_first("r.git", "main", &feature) };
    let (id, pending) = start_merge(&mut ops, req).await.expect("computed");
    confirm(pending, true).await.expect("applied");
    assert_eq!(repo.git(&["log", "-1", "--format=%P", &id]), format!("{winner} {feature}"));
}
