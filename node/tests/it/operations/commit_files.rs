//! UserCommitFiles.

use super::{client, copy_repo, detail, repository, resolve, seeded, user};
use crate::hooks::{quarantines, script};
use crate::support::Node;
use crate::support::git::Format;
use cairn_proto::gitaly::index_error::ErrorType;
use cairn_proto::gitaly::user_commit_files_action::UserCommitFilesActionPayload as Payload;
use cairn_proto::gitaly::user_commit_files_action_header::ActionType;
use cairn_proto::gitaly::user_commit_files_request::UserCommitFilesRequestPayload as RequestPayload;
use cairn_proto::gitaly::*;
use tonic::Code;

pub(crate) fn header(relative: &str, branch: &str) -> UserCommitFilesRequestHeader {
    UserCommitFilesRequestHeader {
        repository: Some(repository(relative)),
        user: Some(user()),
        branch_name: branch.into(),
        commit_message: b"Change files\n".to_vec(),
        timestamp: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 }),
        ..Default::default()
    }
}

pub(crate) fn action(
    kind: ActionType,
    path: &str,
    previous: &str,
    content: Option<&str>,
) -> Vec<UserCommitFilesRequest> {
    let wrap = |p| UserCommitFilesRequest {
        user_commit_files_request_payload: Some(RequestPayload::Action(UserCommitFilesAction {
            user_commit_files_action_payload: Some(p),
        })),
    };
    let mut out = vec![wrap(Payload::Header(UserCommitFilesActionHeader {
        action: kind as i32,
        file_path: path.into(),
        previous_path: previous.into(),
        infer_content: content.is_none(),
        ..Default::default()
    }))];
    if let Some(c) = content {
        // Content may come in several messages.
        let (a, b) = c.split_at(c.len() / 2);
        out.push(wrap(Payload::Content(a.into())));
        out.push(wrap(Payload::Content(b.into())));
    }
    out
}

pub(crate) async fn commit(
    node: &Node,
    header: UserCommitFilesRequestHeader,
    actions: Vec<Vec<UserCommitFilesRequest>>,
) -> Result<UserCommitFilesResponse, tonic::Status> {
    let mut messages =
        vec![UserCommitFilesRequest { user_commit_files_request_payload: Some(RequestPayload::Header(header)) }];
    messages.extend(actions.into_iter().flatten());
    let mut ops = client(node).await;
    ops.user_commit_files(tokio_stream::iter(messages)).await.map(tonic::Response::into_inner)
}

async fn commits_every_action(format: Format) {
    let node = Node::start().await;
    let (repo, _, second) = seeded(&node, "r.git", format);
    let setup = vec![
        action(ActionType::Create, "dir/b.txt", "", Some("b\n")),
        action(ActionType::Create, "old.txt", "", Some("o\n")),
    ];
    commit(&node, header("r.git", "main"), setup).await.expect("set up");
    let parent = resolve(&repo, "main").expect("main");
    let _ = second;
    let mut exec = action(ActionType::Create, "bin/run.sh", "", Some("#!/bin/sh\n"));
    if let Some(RequestPayload::Action(a)) = &mut exec[0].user_commit_files_request_payload
        && let Some(Payload::Header(h)) = &mut a.user_commit_files_action_payload
    {
        h.execute_filemode = true;
    }
    let mut b64 = action(ActionType::Update, "a.txt", "", Some("dXBkYXRlZAo="));
    if let Some(RequestPayload::Action(a)) = &mut b64[0].user_commit_files_request_payload
        && let Some(Payload::Header(h)) = &mut a.user_commit_files_action_payload
    {
        h.base64_content = true;
    }
    let actions = vec![
        action(ActionType::Create, "new/file.txt", "", Some("new content\n")),
        exec,
        b64,
        action(ActionType::Move, "moved.txt", "old.txt", None),
        action(ActionType::Delete, "dir/b.txt", "", None),
        action(ActionType::CreateDir, "empty", "", None),
        action(ActionType::Chmod, "README.md", "", None),
    ];
    let mut chmod_exec = actions;
    if let Some(RequestPayload::Action(a)) = &mut chmod_exec[6][0].user_commit_files_request_payload
        && let Some(Payload::Header(h)) = &mut a.user_commit_files_action_payload
    {
        h.execute_filemode = true;
        h.infer_content = false;
    }
    let resp = commit(&node, header("r.git", "main"), chmod_exec.clone()).await.expect("committed");
    let update = resp.branch_update.expect("update");
    assert!(!update.branch_created && !update.repo_created);
    assert_eq!(resolve(&repo, "main").as_deref(), Some(update.commit_id.as_str()));
    let tree = repo.git(&["ls-tree", "-r", "--format=%(objectmode) %(path)", "main"]);
    assert_eq!(
        tree,
        "100755 README.md\n100644 a.txt\n100755 bin/run.sh\n100644 empty/.gitkeep\n100644 moved.txt\n100644 new/file.txt"
    );
    assert_eq!(repo.git(&["show", "main:a.txt"]), "updated");
    assert_eq!(repo.git(&["show", "main:moved.txt"]), "o");
    assert_eq!(repo.git(&["show", "main:new/file.txt"]), "new content");
    assert_eq!(repo.git(&["rev-parse", "main^"]), parent);
    assert_eq!(
        repo.git(&["log", "-1", "--format=%an <%ae> %at %ai|%cn <%ce> %ct|%B", "main"]),
        "Jane Doe <jane@example.com> 1700000000 2023-11-14 22:13:20 +0000|Jane Doe <jane@example.com> 1700000000|Change files"
    );
    repo.git(&["fsck", "--strict"]);
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());

    // The same request on a copy of the repository writes the same commit.
    copy_repo(&node, &repo, "copy.git");
    let copy = crate::support::git::TestRepo { path: repo.path.parent().expect("storage").join("copy.git") };
    copy.git(&["update-ref", "refs/heads/main", &parent]);
    let again = commit(&node, header("copy.git", "main"), chmod_exec).await.expect("committed");
    assert_eq!(again.branch_update.expect("update").commit_id, update.commit_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_every_action_sha1() {
    commits_every_action(Format::Sha1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_every_action_sha256() {
    commits_every_action(Format::Sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_branches_and_repositories() {
    let node = Node::start().await;
    let empty = node.create_repo("empty.git", Format::Sha1);
    let resp = commit(&node, header("empty.git", "main"), vec![action(ActionType::Create, "a", "", Some("x"))])
        .await
        .expect("committed");
    let update = resp.branch_update.expect("update");
    assert!(update.repo_created && update.branch_created);
    assert_eq!(empty.git(&["rev-list", "--count", "main"]), "1");
    assert_eq!(empty.git(&["ls-tree", "--name-only", "main"]), "a");

    let (repo, first, second) = seeded(&node, "r.git", Format::Sha1);
    // A new branch from another branch.
    let h = UserCommitFilesRequestHeader { start_branch_name: b"main".to_vec(), ..header("r.git", "feature") };
    let resp = commit(&node, h, vec![action(ActionType::Create, "f", "", Some("f"))]).await.expect("committed");
    let update = resp.branch_update.expect("update");
    assert!(update.branch_created && !update.repo_created);
    assert_eq!(repo.git(&["rev-parse", "feature^"]), second);
    // From a start commit, with force onto an existing branch.
    let h = UserCommitFilesRequestHeader { start_sha: first.clone(), force: true, ..header("r.git", "feature") };
    commit(&node, h, vec![action(ActionType::Create, "g", "", Some("g"))]).await.expect("committed");
    assert_eq!(repo.git(&["rev-parse", "feature^"]), first);
    // Without force, a start point other than the branch's commit loses.
    let h = UserCommitFilesRequestHeader { start_sha: first.clone(), ..header("r.git", "main") };
    let status = commit(&node, h, vec![action(ActionType::Create, "h", "", Some("h"))]).await.expect_err("stale");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(resolve(&repo, "main").as_deref(), Some(second.as_str()));
    // A stale expected old value neither.
    let h = UserCommitFilesRequestHeader { expected_old_oid: first.clone(), ..header("r.git", "main") };
    let status = commit(&node, h, vec![action(ActionType::Create, "h", "", Some("h"))]).await.expect_err("stale");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(resolve(&repo, "main").as_deref(), Some(second.as_str()));
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_errors_have_details() {
    let node = Node::start().await;
    let (repo, _, second) = seeded(&node, "r.git", Format::Sha1);
    commit(&node, header("r.git", "main"), vec![action(ActionType::Create, "dir/x", "", Some("x\n"))])
        .await
        .expect("set up");
    let tip = resolve(&repo, "main").expect("main");
    let _ = second;
    let cases = [
        (
            action(ActionType::Create, "README.md", "", Some("x")),
            Code::AlreadyExists,
            ErrorType::FileExists,
            "A file with this name already exists",
        ),
        (
            action(ActionType::Update, "nope", "", Some("x")),
            Code::NotFound,
            ErrorType::FileNotFound,
            "A file with this name doesn't exist",
        ),
        (
            action(ActionType::Delete, "nope", "", None),
            Code::NotFound,
            ErrorType::FileNotFound,
            "A file with this name doesn't exist",
        ),
        (
            action(ActionType::Move, "new", "nope", None),
            Code::NotFound,
            ErrorType::FileNotFound,
            "A file with this name doesn't exist",
        ),
        (
            action(ActionType::CreateDir, "dir", "", None),
            Code::AlreadyExists,
            ErrorType::DirectoryExists,
            "A directory with this name already exists",
        ),
        (
            action(ActionType::CreateDir, "README.md", "", None),
            Code::AlreadyExists,
            ErrorType::FileExists,
            "A file with this name already exists",
        ),
        (
            action(ActionType::Create, "../escape", "", Some("x")),
            Code::InvalidArgument,
            ErrorType::DirectoryTraversal,
            "Path cannot include directory traversal",
        ),
        (
            action(ActionType::Create, "", "", Some("x")),
            Code::InvalidArgument,
            ErrorType::EmptyPath,
            "You must provide a file path",
        ),
        (
            action(ActionType::Create, "a//b", "", Some("x")),
            Code::InvalidArgument,
            ErrorType::InvalidPath,
            "invalid path: \"a//b\"",
        ),
    ];
    for (a, code, kind, message) in cases {
        let status = commit(&node, header("r.git", "main"), vec![a]).await.expect_err("refused");
        assert_eq!((status.code(), status.message()), (code, message), "{status:?}");
        let err: UserCommitFilesError = detail(&status);
        let Some(user_commit_files_error::Error::IndexUpdate(index)) = err.error else { panic!("{err:?}") };
        assert_eq!(index.error_type(), kind);
    }
    let bad = [
        (UserCommitFilesRequestHeader { user: None, ..header("r.git", "main") }, "empty User"),
        (UserCommitFilesRequestHeader { commit_message: vec![], ..header("r.git", "main") }, "empty CommitMessage"),
        (header("r.git", ""), "empty BranchName"),
    ];
    for (h, message) in bad {
        let status = commit(&node, h, vec![]).await.expect_err("refused");
        assert_eq!((status.code(), status.message()), (Code::InvalidArgument, message));
    }
    assert_eq!(resolve(&repo, "main").as_deref(), Some(tip.as_str()));
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_hook_refusing_a_commit_leaves_nothing_behind() {
    let node = Node::start().await;
    let (repo, _, second) = seeded(&node, "r.git", Format::Sha256);
    script(&repo.path.join("custom_hooks/pre-receive"), "echo 'GitLab: no commits' >&2; exit 1");
    let before = repo.git(&["count-objects"]);
    let status = commit(&node, header("r.git", "main"), vec![action(ActionType::Create, "n", "", Some("n"))])
        .await
        .expect_err("refused");
    assert_eq!((status.code(), status.message()), (Code::PermissionDenied, "denied by custom hooks"));
    let err: UserCommitFilesError = detail(&status);
    let Some(user_commit_files_error::Error::CustomHook(hook)) = err.error else { panic!("{err:?}") };
    assert_eq!(hook.stderr, b"GitLab: no commits\n");
    assert_eq!(resolve(&repo, "main").as_deref(), Some(second.as_str()));
    assert_eq!(repo.git(&["count-objects"]), before);
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_branch_in_a_fork_is_fetched_with_the_commit() {
    let node = Node::start().await;
    let (repo, _, _) = seeded(&node, "r.git", Format::Sha1);
    // The fork's main moved on; the target lacks its tip.
    let fork_path = copy_repo(&node, &repo, "fork.git");
    let fork = crate::support::git::TestRepo { path: fork_path };
    let fork_main = fork.commit_on("main", &[("README.md", "hello\n"), ("fork.txt", "fork\n")], "fork work");
    assert!(!crate::support::git::has_object(&repo.path, &fork_main));

    let h = UserCommitFilesRequestHeader {
        start_repository: Some(repository("fork.git")),
        start_branch_name: b"main".to_vec(),
        ..header("r.git", "from-fork")
    };
    let update = commit(&node, h, vec![action(ActionType::Create, "new.txt", "", Some("new\n"))])
        .await
        .expect("committed")
        .branch_update
        .expect("update");
    assert!(update.branch_created);
    assert_eq!(repo.git(&["rev-parse", &format!("{}^", update.commit_id)]), fork_main);
    assert_eq!(repo.git(&["ls-tree", "--name-only", &update.commit_id]), "README.md\nfork.txt\nnew.txt");
    crate::support::git::git(Some(&repo.path), &["fsck", "--no-progress"]);

    // A start branch the fork lacks is refused, and nothing is fetched.
    let h = UserCommitFilesRequestHeader {
        start_repository: Some(repository("fork.git")),
        start_branch_name: b"gone".to_vec(),
        ..header("r.git", "other")
    };
    let status = commit(&node, h, vec![action(ActionType::Create, "x", "", Some("x"))]).await.expect_err("refused");
    assert!(status.message().starts_with("resolve parent commit"), "{status:?}");
    assert_eq!(resolve(&repo, "refs/heads/other"), None);
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
}
