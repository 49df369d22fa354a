//! UserCreateBranch and UserDeleteBranch.

use super::{client, detail, repository, resolve, seeded, user};
use crate::gitlab_api::{FakeGitlab, configure, json};
use crate::hooks::{quarantines, script};
use crate::support::Node;
use crate::support::git::Format;
use cairn_proto::gitaly::custom_hook_error::HookType;
use cairn_proto::gitaly::*;
use std::sync::Arc;
use tonic::Code;

fn create(relative: &str, branch: &str, start: &str) -> UserCreateBranchRequest {
    UserCreateBranchRequest {
        repository: Some(repository(relative)),
        branch_name: branch.into(),
        user: Some(user()),
        start_point: start.into(),
    }
}

fn delete(relative: &str, branch: &str, expected: &str) -> UserDeleteBranchRequest {
    UserDeleteBranchRequest {
        repository: Some(repository(relative)),
        branch_name: branch.into(),
        user: Some(user()),
        expected_old_oid: expected.into(),
    }
}

async fn creates_a_branch(format: Format) {
    let node = Node::start().await;
    let (repo, first, second) = seeded(&node, "r.git", format);
    let mut ops = client(&node).await;
    let log = node.dir.path().join("hook.log");
    // The hooks see the user and, in pre-receive, the quarantine.
    script(
        &repo.path.join("custom_hooks/pre-receive"),
        &format!(
            "cat >> {0}; echo \"$GL_ID $GL_USERNAME $GL_PROTOCOL $GL_REPOSITORY\" >> {0}; case \"$GIT_OBJECT_DIRECTORY\" in *incoming-*) echo quarantined >> {0};; esac",
            log.display()
        ),
    );
    script(&repo.path.join("custom_hooks/update"), &format!("echo \"update $1 $2 $3\" >> {}", log.display()));
    script(&repo.path.join("custom_hooks/post-receive"), &format!("echo post >> {}", log.display()));

    let branch = ops.user_create_branch(create("r.git", "feature", "main")).await.expect("created").into_inner();
    let branch = branch.branch.expect("branch");
    assert_eq!(branch.name, b"feature");
    assert_eq!(branch.target_commit.expect("commit").id, second);
    assert_eq!(resolve(&repo, "refs/heads/feature").as_deref(), Some(second.as_str()));

    // A start point may be any revision.
    ops.user_create_branch(create("r.git", "old", "main~1")).await.expect("created");
    assert_eq!(resolve(&repo, "refs/heads/old").as_deref(), Some(first.as_str()));

    let zero = "0".repeat(second.len());
    let log = std::fs::read_to_string(&log).expect("hooks ran");
    let expected = format!(
        "{zero} {second} refs/heads/feature\nuser-1 jane web project-1\nquarantined\nupdate refs/heads/feature {zero} {second}\npost\n"
    );
    assert!(log.starts_with(&expected), "{log}");
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_a_branch_sha1() {
    creates_a_branch(Format::Sha1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_a_branch_sha256() {
    creates_a_branch(Format::Sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_branch_refuses_bad_requests() {
    let node = Node::start().await;
    let (repo, _, second) = seeded(&node, "r.git", Format::Sha1);
    let mut ops = client(&node).await;
    let cases = [
        (create("r.git", "", "main"), Code::InvalidArgument, "empty branch name"),
        (UserCreateBranchRequest { user: None, ..create("r.git", "x", "main") }, Code::InvalidArgument, "empty user"),
        (create("r.git", "x", ""), Code::InvalidArgument, "empty start point"),
        (create("r.git", "a..b", "main"), Code::InvalidArgument, "invalid branch name"),
        (create("r.git", "x", "nope"), Code::FailedPrecondition, "revspec 'nope' not found"),
        (create("r.git", "main", "main~1"), Code::FailedPrecondition, "reference update"),
        (create("missing.git", "x", "main"), Code::NotFound, "not found"),
    ];
    for (req, code, message) in cases {
        let status = ops.user_create_branch(req).await.expect_err("refused");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(message), "{message:?} in {status:?}");
    }
    // The existing branch kept its value; nothing else appeared.
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(second.as_str()));
    assert_eq!(repo.git(&["for-each-ref", "--format=%(refname)"]), "refs/heads/main");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_hook_refusing_leaves_nothing_behind() {
    let node = Node::start().await;
    let (repo, _, _) = seeded(&node, "r.git", Format::Sha1);
    script(&repo.path.join("custom_hooks/pre-receive"), "echo out; echo 'branch names are reviewed' >&2; exit 1");
    let mut ops = client(&node).await;
    let status = ops.user_create_branch(create("r.git", "feature", "main")).await.expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "creation denied by custom hooks");
    let err: UserCreateBranchError = detail(&status);
    let Some(user_create_branch_error::Error::CustomHook(hook)) = err.error else { panic!("{err:?}") };
    assert_eq!(hook.hook_type(), HookType::Prereceive);
    assert_eq!(hook.stdout, b"out\n");
    assert_eq!(hook.stderr, b"branch names are reviewed\n");
    assert_eq!(resolve(&repo, "refs/heads/feature"), None);
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());

    // An update hook refusing is reported as such.
    std::fs::remove_file(repo.path.join("custom_hooks/pre-receive")).expect("rm");
    script(&repo.path.join("custom_hooks/update"), "echo no >&2; exit 3");
    let status = ops.user_create_branch(create("r.git", "feature", "main")).await.expect_err("refused");
    let err: UserCreateBranchError = detail(&status);
    let Some(user_create_branch_error::Error::CustomHook(hook)) = err.error else { panic!("{err:?}") };
    assert_eq!(hook.hook_type(), HookType::Update);
    assert_eq!(resolve(&repo, "refs/heads/feature"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creations_of_one_branch_have_one_winner() {
    let node = Node::start().await;
    let (repo, first, second) = seeded(&node, "r.git", Format::Sha1);
    let mut calls = Vec::new();
    for i in 0..8 {
        let mut ops = client(&node).await;
        let start = if i % 2 == 0 { "main" } else { "main~1" };
        calls.push(tokio::spawn(async move { ops.user_create_branch(create("r.git", "race", start)).await }));
    }
    let mut winners = Vec::new();
    for call in calls {
        match call.await.expect("task") {
            Ok(r) => winners.push(r.into_inner().branch.expect("branch").target_commit.expect("commit").id),
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert!(status.message().starts_with("reference update"), "{status:?}");
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one creation wins");
    assert!(winners[0] == first || winners[0] == second);
    assert_eq!(resolve(&repo, "refs/heads/race").as_deref(), Some(winners[0].as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_a_branch() {
    let node = Node::start().await;
    let (repo, first, second) = seeded(&node, "r.git", Format::Sha256);
    repo.git(&["update-ref", "refs/heads/topic", &first]);
    repo.git(&["update-ref", "refs/heads/other", &first]);
    let mut ops = client(&node).await;

    ops.user_delete_branch(delete("r.git", "topic", "")).await.expect("deleted");
    assert_eq!(resolve(&repo, "refs/heads/topic"), None);

    // With an expected value: refused while the branch points elsewhere.
    let status = ops.user_delete_branch(delete("r.git", "other", &second)).await.expect_err("stale");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().starts_with("reference update failed: reference update:"), "{status:?}");
    let err: UserDeleteBranchError = detail(&status);
    let Some(user_delete_branch_error::Error::ReferenceUpdate(update)) = err.error else { panic!("{err:?}") };
    assert_eq!(update.reference_name, b"refs/heads/other");
    assert_eq!(update.old_oid, second);
    assert_eq!(update.new_oid, "0".repeat(64));
    assert_eq!(resolve(&repo, "refs/heads/other").as_deref(), Some(first.as_str()));
    ops.user_delete_branch(delete("r.git", "other", &first)).await.expect("deleted");
    assert_eq!(resolve(&repo, "refs/heads/other"), None);

    let cases = [
        (delete("r.git", "", ""), Code::InvalidArgument, "bad request: empty branch name"),
        (
            UserDeleteBranchRequest { user: None, ..delete("r.git", "main", "") },
            Code::InvalidArgument,
            "bad request: empty user",
        ),
        (delete("r.git", "gone", ""), Code::FailedPrecondition, "branch not found: \"gone\""),
        (delete("r.git", "main", "xyz"), Code::InvalidArgument, "invalid expected old object ID"),
    ];
    for (req, code, message) in cases {
        let status = ops.user_delete_branch(req).await.expect_err("refused");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(message), "{message:?} in {status:?}");
    }
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(second.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_refusing_a_deletion_is_an_access_check_error() {
    let handler: crate::gitlab_api::Handler = Arc::new(|call| {
        Box::pin(async move {
            if call.path.ends_with("/allowed") {
                json(200, serde_json::json!({"status": false, "message": "You cannot delete protected branches"}))
            } else {
                json(200, serde_json::json!({"reference_counter_increased": true}))
            }
        })
    });
    let (gitlab, url) = FakeGitlab::tcp(handler).await;
    let secrets = tempfile::tempdir().expect("tempdir");
    let node = Node::start_with(|c| configure(c, &url, secrets.path())).await;
    let (repo, _, second) = seeded(&node, "r.git", Format::Sha1);
    let mut ops = client(&node).await;
    let status = ops.user_delete_branch(delete("r.git", "main", "")).await.expect_err("denied");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(
        status.message(),
        "deletion denied by access checks: running pre-receive hooks: GitLab: You cannot delete protected branches"
    );
    let err: UserDeleteBranchError = detail(&status);
    let Some(user_delete_branch_error::Error::AccessCheck(check)) = err.error else { panic!("{err:?}") };
    assert_eq!(check.error_message, "You cannot delete protected branches");
    assert_eq!(check.user_id, "user-1");
    assert_eq!(check.protocol, "web");
    assert_eq!(check.changes, format!("{second} {} refs/heads/main\n", "0".repeat(40)).into_bytes());
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(second.as_str()));
    assert_eq!(gitlab.paths(), ["/api/v4/internal/allowed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_left_by_a_killed_git_does_not_block_the_branch() {
    let node = Node::start().await;
    let (repo, _, second) = seeded(&node, "r.git", Format::Sha1);
    let mut ops = client(&node).await;
    let lock = |name: &str, age: std::time::Duration| {
        let path = repo.path.join("refs/heads").join(format!("{name}.lock"));
        std::fs::write(&path, "").expect("write lock");
        let f = std::fs::File::open(&path).expect("open lock");
        f.set_modified(std::time::SystemTime::now() - age).expect("age lock");
        path
    };
    // An hour-old lock is a leftover: removed, and the update goes through.
    let stale = lock("stale", std::time::Duration::from_secs(3600));
    ops.user_create_branch(create("r.git", "stale", "main")).await.expect("created despite the stale lock");
    assert_eq!(resolve(&repo, "refs/heads/stale").as_deref(), Some(second.as_str()));
    assert!(!stale.exists());
    // A fresh lock belongs to a running update: left alone, the update refused.
    let fresh = lock("fresh", std::time::Duration::ZERO);
    let status = ops.user_create_branch(create("r.git", "fresh", "main")).await.expect_err("locked");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(fresh.exists());
    assert_eq!(resolve(&repo, "refs/heads/fresh"), None);
}
