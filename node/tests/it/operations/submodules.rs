//! UserUpdateSubmodule.

use super::{client, detail, repository, resolve, seeded, user};
use crate::hooks::quarantines;
use crate::support::Node;
use crate::support::git::{Format, git_stdin};
use cairn_proto::gitaly::*;
use tonic::Code;

fn request(commit: &str, submodule: &str) -> UserUpdateSubmoduleRequest {
    UserUpdateSubmoduleRequest {
        repository: Some(repository("r.git")),
        user: Some(user()),
        commit_sha: commit.into(),
        branch: b"main".to_vec(),
        submodule: submodule.into(),
        commit_message: b"Update submodule\n".to_vec(),
        timestamp: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 }),
        expected_old_oid: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_a_submodule() {
    let node = Node::start().await;
    let (repo, first, second) = seeded(&node, "r.git", Format::Sha1);
    // A tree with a gitlink at lib/sub pointing at `first`.
    let lib = git_stdin(Some(&repo.path), &["mktree"], Some(format!("160000 commit {first}\tsub\n").as_bytes()));
    let readme = repo.git(&["rev-parse", "main:README.md"]);
    let root = git_stdin(
        Some(&repo.path),
        &["mktree"],
        Some(format!("100644 blob {readme}\tREADME.md\n040000 tree {lib}\tlib\n").as_bytes()),
    );
    let tip = repo.git(&["commit-tree", &root, "-p", &second, "-m", "with submodule"]);
    repo.git(&["update-ref", "refs/heads/main", &tip]);
    let mut ops = client(&node).await;

    let resp = ops.user_update_submodule(request(&second, "lib/sub")).await.expect("updated").into_inner();
    let commit = resp.branch_update.expect("update").commit_id;
    assert_eq!(resolve(&repo, "main").as_deref(), Some(commit.as_str()));
    assert_eq!(repo.git(&["rev-parse", "main:lib/sub"]), second);
    assert_eq!(repo.git(&["rev-parse", "main^"]), tip);
    assert_eq!(repo.git(&["rev-parse", "main:README.md"]), readme);
    assert_eq!(repo.git(&["log", "-1", "--format=%an %ct %s", "main"]), "Jane Doe 1700000000 Update submodule");

    let resp = ops.user_update_submodule(request(&second, "lib/sub")).await.expect("answered").into_inner();
    assert_eq!(resp.commit_error, format!("The submodule lib/sub is already at {second}"));

    let status = ops.user_update_submodule(request(&second, "README.md")).await.expect_err("not a submodule");
    assert_eq!((status.code(), status.message()), (Code::InvalidArgument, "Invalid submodule path"));
    let err: UserUpdateSubmoduleError = detail(&status);
    let Some(user_update_submodule_error::Error::PathError(p)) = err.error else { panic!("{err:?}") };
    assert_eq!(p.path, b"README.md");

    for (req, message) in [
        (UserUpdateSubmoduleRequest { user: None, ..request(&second, "lib/sub") }, "empty User"),
        (request("", "lib/sub"), "empty CommitSha"),
        (request("abc", "lib/sub"), "invalid CommitSha"),
        (request(&second, ""), "empty Submodule"),
    ] {
        let status = ops.user_update_submodule(req).await.expect_err("refused");
        assert_eq!((status.code(), status.message()), (Code::InvalidArgument, message));
    }
    assert_eq!(resolve(&repo, "main").as_deref(), Some(commit.as_str()));
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
    let _ = first;
}
