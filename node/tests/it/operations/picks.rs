//! UserCherryPick and UserRevert, checked against `git merge-tree` with the
//! merge base a CLI cherry-pick or revert uses.

use super::merges::{WHEN, diverged, timestamp};
use super::{client, detail, repository, resolve, user};
use crate::hooks::{quarantines, script};
use crate::support::Node;
use crate::support::git::Format;
use cairn_proto::gitaly::*;
use tonic::Code;

fn pick(relative: &str, commit: &str, branch: &str) -> UserCherryPickRequest {
    UserCherryPickRequest {
        repository: Some(repository(relative)),
        user: Some(user()),
        commit: Some(GitCommit { id: commit.into(), ..Default::default() }),
        branch_name: branch.into(),
        message: b"Picked\n\n(cherry picked from commit x)".to_vec(),
        timestamp: timestamp(),
        ..Default::default()
    }
}

fn revert(relative: &str, commit: &str, branch: &str) -> UserRevertRequest {
    UserRevertRequest {
        repository: Some(repository(relative)),
        user: Some(user()),
        commit: Some(GitCommit { id: commit.into(), ..Default::default() }),
        branch_name: branch.into(),
        message: b"Revert \"second\"".to_vec(),
        timestamp: timestamp(),
        ..Default::default()
    }
}

async fn cherry_picks(format: Format) {
    let node = Node::start().await;
    let (repo, main, feature, _, _) = diverged(&node, "r.git", format);
    let mut ops = client(&node).await;
    let update = ops.user_cherry_pick(pick("r.git", &feature, "main")).await.expect("picked").into_inner();
    let update = update.branch_update.expect("update");
    assert!(!update.branch_created && !update.repo_created);
    let id = update.commit_id;
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(id.as_str()));
    let expected_tree = repo.git(&["merge-tree", "--write-tree", &format!("--merge-base={feature}^"), &main, &feature]);
    assert_eq!(repo.git(&["rev-parse", &format!("{id}^{{tree}}")]), expected_tree);
    // The original author stays; the user commits.
    assert_eq!(
        repo.git(&["log", "-1", "--format=%P%n%an <%ae> %ad%n%cn <%ce> %ct%n%B", "--date=raw", &id]),
        format!(
            "{main}\nScrooge McDuck <scrooge@mcduck.com> 1572776879 +0100\nJane Doe <jane@example.com> {WHEN}\nPicked\n\n(cherry picked from commit x)"
        )
    );
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());

    // Onto a new branch from a start branch.
    let req = UserCherryPickRequest { start_branch_name: b"main~1".to_vec(), ..pick("r.git", &feature, "picked") };
    let update = ops.user_cherry_pick(req).await.expect("picked").into_inner().branch_update.expect("update");
    assert!(update.branch_created);
    assert_eq!(repo.git(&["log", "-1", "--format=%P", &update.commit_id]), main);

    // Again on main: nothing left to apply.
    let status = ops.user_cherry_pick(pick("r.git", &feature, "main")).await.expect_err("empty");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(status.message(), "cherry-pick: could not apply because the result was empty");
    let err: UserCherryPickError = detail(&status);
    assert!(matches!(err.error, Some(user_cherry_pick_error::Error::ChangesAlreadyApplied(_))), "{err:?}");
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cherry_picks_sha1() {
    cherry_picks(Format::Sha1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cherry_picks_sha256() {
    cherry_picks(Format::Sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cherry_pick_is_deterministic_across_replicas() {
    let node = Node::start().await;
    let (_, _, feature, _, _) = diverged(&node, "a.git", Format::Sha1);
    diverged(&node, "b.git", Format::Sha1);
    let mut ops = client(&node).await;
    let a = ops.user_cherry_pick(pick("a.git", &feature, "main")).await.expect("a").into_inner();
    let b = ops.user_cherry_pick(pick("b.git", &feature, "main")).await.expect("b").into_inner();
    assert_eq!(a.branch_update.expect("a").commit_id, b.branch_update.expect("b").commit_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cherry_pick_conflicts_divergence_dry_runs_and_refusals() {
    let node = Node::start().await;
    let (repo, main, feature, left, right) = diverged(&node, "r.git", Format::Sha1);
    let mut ops = client(&node).await;
    let status = ops.user_cherry_pick(pick("r.git", &right, "left")).await.expect_err("conflict");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let err: UserCherryPickError = detail(&status);
    let Some(user_cherry_pick_error::Error::CherryPickConflict(conflict)) = err.error else { panic!("{err:?}") };
    assert_eq!(conflict.conflicting_files, vec![b"README.md".to_vec()]);
    assert_eq!(resolve(&repo, "refs/heads/left").as_deref(), Some(left.as_str()));

    // Started from another branch, the result does not descend from main.
    let req = UserCherryPickRequest { start_branch_name: b"feature".to_vec(), ..pick("r.git", &right, "main") };
    let status = ops.user_cherry_pick(req).await.expect_err("diverged");
    assert_eq!(status.message(), "cherry-pick: branch diverged");
    let err: UserCherryPickError = detail(&status);
    let Some(user_cherry_pick_error::Error::TargetBranchDiverged(diverged)) = err.error else { panic!("{err:?}") };
    assert_eq!(diverged.parent_revision, main.as_bytes());
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(main.as_str()));

    // A dry run answers the start revision and moves nothing.
    let req = UserCherryPickRequest { dry_run: true, ..pick("r.git", &feature, "main") };
    let update = ops.user_cherry_pick(req).await.expect("dry run").into_inner().branch_update.expect("update");
    assert_eq!(update.commit_id, main);
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(main.as_str()));

    script(&repo.path.join("custom_hooks/pre-receive"), "echo 'no picking' >&2; exit 1");
    let status = ops.user_cherry_pick(pick("r.git", &feature, "main")).await.expect_err("refused");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(status.message(), "access check failed");
    let err: UserCherryPickError = detail(&status);
    let Some(user_cherry_pick_error::Error::AccessCheck(check)) = err.error else { panic!("{err:?}") };
    assert_eq!(check.error_message, "no picking");
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(main.as_str()));
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());

    let cases = [
        (UserCherryPickRequest { user: None, ..pick("r.git", &feature, "main") }, Code::InvalidArgument, "empty User"),
        (
            UserCherryPickRequest { commit: None, ..pick("r.git", &feature, "main") },
            Code::InvalidArgument,
            "empty Commit",
        ),
        (pick("r.git", &feature, ""), Code::InvalidArgument, "empty BranchName"),
        (
            UserCherryPickRequest { message: vec![], ..pick("r.git", &feature, "main") },
            Code::InvalidArgument,
            "empty Message",
        ),
        (pick("r.git", &feature, "gone"), Code::InvalidArgument, "resolve start ref"),
        (pick("r.git", &"2".repeat(40), "main"), Code::NotFound, "cherry-pick: commit lookup: commit not found"),
    ];
    for (req, code, message) in cases {
        let status = ops.user_cherry_pick(req).await.expect_err("refused");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().starts_with(message), "{message:?} in {status:?}");
    }
}

async fn reverts(format: Format) {
    let node = Node::start().await;
    let (repo, main, _, left, right) = diverged(&node, "r.git", format);
    let first = repo.git(&["rev-parse", "main~1"]);
    let mut ops = client(&node).await;
    let update = ops.user_revert(revert("r.git", &main, "main")).await.expect("reverted").into_inner();
    let id = update.branch_update.expect("update").commit_id;
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(id.as_str()));
    // Reverting the last commit restores its parent's tree.
    assert_eq!(
        repo.git(&["rev-parse", &format!("{id}^{{tree}}")]),
        repo.git(&["rev-parse", &format!("{first}^{{tree}}")])
    );
    assert_eq!(
        repo.git(&["log", "-1", "--format=%P%n%an <%ae> %at%n%cn %ct%n%B", &id]),
        format!("{main}\nJane Doe <jane@example.com> {WHEN}\nJane Doe {WHEN}\nRevert \"second\"")
    );

    // Twice: nothing left to revert.
    let status = ops.user_revert(revert("r.git", &main, "main")).await.expect_err("empty");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(status.message(), "revert: could not apply because the result was empty");
    let err: UserRevertError = detail(&status);
    assert!(matches!(err.error, Some(user_revert_error::Error::ChangesAlreadyApplied(_))), "{err:?}");

    // Conflicts name the files.
    let status = ops.user_revert(revert("r.git", &left, "right")).await.expect_err("conflict");
    assert_eq!(status.message(), "revert: there are conflicting files");
    let err: UserRevertError = detail(&status);
    let Some(user_revert_error::Error::MergeConflict(conflict)) = err.error else { panic!("{err:?}") };
    assert_eq!(conflict.conflicting_files, vec![b"README.md".to_vec()]);
    assert_eq!(resolve(&repo, "refs/heads/right").as_deref(), Some(right.as_str()));

    // A root commit reverts to the empty tree, on a new branch.
    let req = UserRevertRequest { start_branch_name: first.clone().into_bytes(), ..revert("r.git", &first, "root") };
    let update = ops.user_revert(req).await.expect("reverted root").into_inner().branch_update.expect("update");
    assert!(update.branch_created);
    assert_eq!(repo.git(&["ls-tree", &update.commit_id]), "");
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverts_sha1() {
    reverts(Format::Sha1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverts_sha256() {
    reverts(Format::Sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_refusals_leave_nothing() {
    let node = Node::start().await;
    let (repo, main, feature, _, _) = diverged(&node, "r.git", Format::Sha1);
    let mut ops = client(&node).await;
    script(&repo.path.join("custom_hooks/pre-receive"), "echo 'no reverts' >&2; exit 1");
    let status = ops.user_revert(revert("r.git", &main, "main")).await.expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(status.message(), "revert: custom hook error");
    let err: UserRevertError = detail(&status);
    let Some(user_revert_error::Error::CustomHook(hook)) = err.error else { panic!("{err:?}") };
    assert_eq!(hook.stderr, b"no reverts\n");
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(main.as_str()));
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
    std::fs::remove_file(repo.path.join("custom_hooks/pre-receive")).expect("rm");

    // The result must descend from the branch.
    let req = UserRevertRequest { start_branch_name: b"feature".to_vec(), ..revert("r.git", &feature, "main") };
    let status = ops.user_revert(req).await.expect_err("diverged");
    assert_eq!(status.message(), "revert: branch diverged");
    let err: UserRevertError = detail(&status);
    assert!(matches!(err.error, Some(user_revert_error::Error::NotAncestor(_))), "{err:?}");
    let status = ops.user_revert(revert("r.git", &"3".repeat(40), "main")).await.expect_err("missing");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "revert commit lookup: commit not found");
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(main.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cherry_pick_onto_a_fork_branch_fetches_it() {
    let node = Node::start().await;
    let (repo, _, feature, _, _) = diverged(&node, "r.git", Format::Sha1);
    let fork = crate::support::git::TestRepo { path: super::copy_repo(&node, &repo, "fork.git") };
    let fork_main = fork.commit_on("main", &[("README.md", "hello\n"), ("a.txt", "a\n"), ("f", "f\n")], "fork work");
    assert!(!crate::support::git::has_object(&repo.path, &fork_main));
    let mut ops = client(&node).await;
    let req = UserCherryPickRequest {
        start_repository: Some(repository("fork.git")),
        start_branch_name: b"main".to_vec(),
        ..pick("r.git", &feature, "picked")
    };
    let update = ops.user_cherry_pick(req).await.expect("picked").into_inner().branch_update.expect("update");
    assert!(update.branch_created);
    assert_eq!(repo.git(&["rev-parse", &format!("{}^", update.commit_id)]), fork_main);
    assert_eq!(repo.git(&["ls-tree", "--name-only", &update.commit_id]), "README.md\na.txt\nb.txt\nf");
    crate::support::git::git(Some(&repo.path), &["fsck", "--no-progress"]);
}
