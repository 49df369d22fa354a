//! UserUpdateBranch and UserFFBranch.

use super::{client, detail, repository, resolve, seeded, user};
use crate::hooks::{quarantines, script};
use crate::support::Node;
use crate::support::git::Format;
use cairn_proto::gitaly::custom_hook_error::HookType;
use cairn_proto::gitaly::*;
use tonic::Code;

fn ff(relative: &str, branch: &str, commit: &str, expected: &str) -> UserFfBranchRequest {
    UserFfBranchRequest {
        repository: Some(repository(relative)),
        user: Some(user()),
        commit_id: commit.into(),
        branch: branch.into(),
        expected_old_oid: expected.into(),
    }
}

fn update(relative: &str, branch: &str, new: &str, old: &str) -> UserUpdateBranchRequest {
    UserUpdateBranchRequest {
        repository: Some(repository(relative)),
        branch_name: branch.into(),
        user: Some(user()),
        newrev: new.into(),
        oldrev: old.into(),
    }
}

async fn fast_forwards(format: Format) {
    let node = Node::start().await;
    let (repo, first, second) = seeded(&node, "r.git", format);
    repo.git(&["update-ref", "refs/heads/topic", &first]);
    let mut ops = client(&node).await;
    let resp = ops.user_ff_branch(ff("r.git", "topic", &second, "")).await.expect("ff").into_inner();
    let update = resp.branch_update.expect("update");
    assert_eq!(update.commit_id, second);
    assert!(!update.branch_created && !update.repo_created);
    assert_eq!(resolve(&repo, "refs/heads/topic").as_deref(), Some(second.as_str()));
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());

    // Backwards is not a fast-forward.
    let status = ops.user_ff_branch(ff("r.git", "topic", &first, "")).await.expect_err("not ff");
    assert_eq!((status.code(), status.message()), (Code::FailedPrecondition, "not fast forward"));
    // Diverged history neither.
    let side = repo.commit(&[("side.txt", "s\n")], &[&first], "side");
    let status = ops.user_ff_branch(ff("r.git", "topic", &side, "")).await.expect_err("not ff");
    assert_eq!(status.message(), "not fast forward");
    assert_eq!(resolve(&repo, "refs/heads/topic").as_deref(), Some(second.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_forwards_sha1() {
    fast_forwards(Format::Sha1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_forwards_sha256() {
    fast_forwards(Format::Sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ff_refuses_bad_requests_and_hooks() {
    let node = Node::start().await;
    let (repo, first, second) = seeded(&node, "r.git", Format::Sha1);
    repo.git(&["update-ref", "refs/heads/topic", &first]);
    let mut ops = client(&node).await;
    let cases = [
        (ff("r.git", "", &second, ""), Code::InvalidArgument, "empty branch name"),
        (UserFfBranchRequest { user: None, ..ff("r.git", "topic", &second, "") }, Code::InvalidArgument, "empty user"),
        (ff("r.git", "topic", "", ""), Code::InvalidArgument, "empty commit id"),
        (ff("r.git", "topic", "xyz", ""), Code::InvalidArgument, "cannot parse commit ID"),
        (ff("r.git", "topic", &second, "abc"), Code::InvalidArgument, "invalid expected old object ID"),
        (ff("r.git", "nope", &second, ""), Code::InvalidArgument, "reference not found"),
    ];
    for (req, code, message) in cases {
        let status = ops.user_ff_branch(req).await.expect_err("refused");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(message), "{message:?} in {status:?}");
    }
    // A stale expected value: the update is refused with the detail.
    let status = ops.user_ff_branch(ff("r.git", "main", &second, &first)).await.expect_err("stale");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let err: UserFfBranchError = detail(&status);
    let Some(user_ff_branch_error::Error::ReferenceUpdate(u)) = err.error else { panic!("{err:?}") };
    assert_eq!((u.old_oid.as_str(), u.new_oid.as_str()), (first.as_str(), second.as_str()));

    script(&repo.path.join("custom_hooks/update"), "echo failure; exit 1");
    let status = ops.user_ff_branch(ff("r.git", "topic", &second, "")).await.expect_err("hook");
    assert_eq!((status.code(), status.message()), (Code::PermissionDenied, "failure\n"));
    let err: UserFfBranchError = detail(&status);
    let Some(user_ff_branch_error::Error::CustomHook(hook)) = err.error else { panic!("{err:?}") };
    assert_eq!((hook.hook_type(), hook.stdout.as_slice()), (HookType::Update, b"failure\n".as_slice()));
    assert_eq!(resolve(&repo, "refs/heads/topic").as_deref(), Some(first.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fast_forwards_have_one_winner() {
    let node = Node::start().await;
    let (repo, first, _) = seeded(&node, "r.git", Format::Sha1);
    repo.git(&["update-ref", "refs/heads/race", &first]);
    let targets: Vec<String> =
        (0..6).map(|i| repo.commit(&[("f.txt", &format!("{i}\n"))], &[&first], &format!("c{i}"))).collect();
    let mut calls = Vec::new();
    for target in &targets {
        let mut ops = client(&node).await;
        let req = ff("r.git", "race", target, &first);
        calls.push(tokio::spawn(async move { ops.user_ff_branch(req).await }));
    }
    let mut winners = Vec::new();
    for call in calls {
        match call.await.expect("task") {
            Ok(r) => winners.push(r.into_inner().branch_update.expect("update").commit_id),
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                let err: UserFfBranchError = detail(&status);
                assert!(matches!(err.error, Some(user_ff_branch_error::Error::ReferenceUpdate(_))), "{err:?}");
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one update wins");
    assert_eq!(resolve(&repo, "refs/heads/race").as_deref(), Some(winners[0].as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_a_branch() {
    let node = Node::start().await;
    let (repo, first, second) = seeded(&node, "r.git", Format::Sha256);
    let mut ops = client(&node).await;
    // Any move, backwards too, when the old value matches.
    ops.user_update_branch(update("r.git", "main", &first, &second)).await.expect("updated");
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(first.as_str()));

    let status = ops.user_update_branch(update("r.git", "main", &second, &second)).await.expect_err("stale");
    assert_eq!(
        (status.code(), status.message()),
        (Code::FailedPrecondition, "Could not update main. Please refresh and try again.")
    );
    let cases = [
        (update("r.git", "", &second, &first), "empty branch name"),
        (update("r.git", "main", "", &first), "empty newrev"),
        (update("r.git", "main", &second, ""), "empty oldrev"),
        (UserUpdateBranchRequest { user: None, ..update("r.git", "main", &second, &first) }, "empty user"),
    ];
    for (req, message) in cases {
        let status = ops.user_update_branch(req).await.expect_err("refused");
        assert_eq!((status.code(), status.message()), (Code::InvalidArgument, message));
    }
    let status = ops.user_update_branch(update("r.git", "main", "zz", &first)).await.expect_err("bad id");
    assert_eq!(status.code(), Code::Internal);
    assert!(status.message().starts_with("could not parse newrev"), "{status:?}");

    script(&repo.path.join("custom_hooks/pre-receive"), "echo 'GitLab: no' >&2; exit 1");
    let resp = ops.user_update_branch(update("r.git", "main", &second, &first)).await.expect("answered");
    assert_eq!(resp.into_inner().pre_receive_error, "GitLab: no\n");
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(first.as_str()));
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
}
