//! UserSquash, checked against the tree `git merge-tree` makes.

use super::merges::{WHEN, cli_merge_tree, diverged, timestamp};
use super::{client, detail, repository, resolve, user};
use crate::hooks::quarantines;
use crate::support::Node;
use crate::support::git::Format;
use cairn_proto::gitaly::*;
use tonic::Code;

fn squash(relative: &str, start: &str, end: &str) -> UserSquashRequest {
    UserSquashRequest {
        repository: Some(repository(relative)),
        user: Some(user()),
        start_sha: start.into(),
        end_sha: end.into(),
        author: Some(User {
            name: b"Ann Author".to_vec(),
            email: b"ann@example.com".to_vec(),
            timezone: "Asia/Kolkata".into(),
            ..user()
        }),
        commit_message: b"Squashed".to_vec(),
        timestamp: timestamp(),
        ..Default::default()
    }
}

async fn squashes(format: Format) {
    let node = Node::start().await;
    let (repo, main, _, _, _) = diverged(&node, "r.git", format);
    let c1 = repo.commit(&[("README.md", "hello\n"), ("a.txt", "a\n"), ("c.txt", "c\n")], &[&main], "c1");
    let c2 =
        repo.commit(&[("README.md", "hello\n"), ("a.txt", "a\n"), ("c.txt", "c\n"), ("d.txt", "d\n")], &[&c1], "c2");
    let mut ops = client(&node).await;
    let id = ops.user_squash(squash("r.git", &main, &c2)).await.expect("squashed").into_inner().squash_sha;
    assert_eq!(repo.git(&["rev-parse", &format!("{id}^{{tree}}")]), cli_merge_tree(&repo, &main, &c2));
    assert_eq!(
        repo.git(&["rev-parse", &format!("{id}^{{tree}}")]),
        repo.git(&["rev-parse", &format!("{c2}^{{tree}}")])
    );
    assert_eq!(
        repo.git(&["log", "-1", "--format=%P%n%an <%ae> %ad%n%cn <%ce> %cd%n%B", "--date=raw", &id]),
        format!(
            "{main}\nAnn Author <ann@example.com> {WHEN} +0530\nJane Doe <jane@example.com> {WHEN} +0000\nSquashed"
        )
    );
    // The message gets its trailing newline.
    let raw = crate::support::git::git_stdin_bytes(Some(&repo.path), &["cat-file", "commit", &id], None);
    assert!(raw.ends_with(b"\n\nSquashed\n"));
    // No reference moves, but the commit is in the repository.
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(main.as_str()));
    assert_eq!(repo.git(&["cat-file", "-t", &id]), "commit");
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());

    // Same request on a replica: same commit.
    diverged(&node, "b.git", format);
    let b = repo_commit_chain(&node, "b.git", format, &main);
    assert_eq!(b, c2);
    let again = ops.user_squash(squash("b.git", &main, &c2)).await.expect("squashed").into_inner().squash_sha;
    assert_eq!(again, id);
}

/// The same c1, c2 chain in another repository; returns c2.
fn repo_commit_chain(node: &Node, relative: &str, _format: Format, main: &str) -> String {
    let repo = crate::support::git::TestRepo { path: node.storage.join(relative) };
    let c1 = repo.commit(&[("README.md", "hello\n"), ("a.txt", "a\n"), ("c.txt", "c\n")], &[main], "c1");
    repo.commit(&[("README.md", "hello\n"), ("a.txt", "a\n"), ("c.txt", "c\n"), ("d.txt", "d\n")], &[&c1], "c2")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn squashes_sha1() {
    squashes(Format::Sha1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn squashes_sha256() {
    squashes(Format::Sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn squash_conflicts_and_bad_requests() {
    let node = Node::start().await;
    let (repo, main, feature, left, right) = diverged(&node, "r.git", Format::Sha1);
    let mut ops = client(&node).await;
    let status = ops.user_squash(squash("r.git", &left, &right)).await.expect_err("conflict");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(status.message(), "squashing commits: merge: there are conflicting files");
    let err: UserSquashError = detail(&status);
    let Some(user_squash_error::Error::RebaseConflict(conflict)) = err.error else { panic!("{err:?}") };
    assert_eq!(conflict.conflicting_files, vec![b"README.md".to_vec()]);
    assert_eq!(conflict.conflicting_commit_ids, vec![left, right]);
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());

    let status = ops.user_squash(squash("r.git", "nope", &feature)).await.expect_err("unknown start");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "resolving start revision: reference not found");
    let err: UserSquashError = detail(&status);
    let Some(user_squash_error::Error::ResolveRevision(rev)) = err.error else { panic!("{err:?}") };
    assert_eq!(rev.revision, b"nope");
    let cases = [
        (UserSquashRequest { user: None, ..squash("r.git", &main, &feature) }, "empty User"),
        (squash("r.git", "", &feature), "empty StartSha"),
        (squash("r.git", &main, ""), "empty EndSha"),
        (UserSquashRequest { commit_message: vec![], ..squash("r.git", &main, &feature) }, "empty CommitMessage"),
        (UserSquashRequest { author: None, ..squash("r.git", &main, &feature) }, "empty Author"),
    ];
    for (req, message) in cases {
        let status = ops.user_squash(req).await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(status.message(), message);
    }
}
