//! UserCreateTag and UserDeleteTag.

use super::{client, detail, repository, resolve, seeded, user};
use crate::hooks::{quarantines, script};
use crate::support::Node;
use crate::support::git::Format;
use cairn_proto::gitaly::custom_hook_error::HookType;
use cairn_proto::gitaly::*;
use tonic::Code;

fn create(relative: &str, tag: &str, target: &str, message: &str) -> UserCreateTagRequest {
    UserCreateTagRequest {
        repository: Some(repository(relative)),
        tag_name: tag.into(),
        user: Some(user()),
        target_revision: target.into(),
        message: message.into(),
        timestamp: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 }),
    }
}

fn delete(relative: &str, tag: &str, expected: &str) -> UserDeleteTagRequest {
    UserDeleteTagRequest {
        repository: Some(repository(relative)),
        tag_name: tag.into(),
        user: Some(user()),
        expected_old_oid: expected.into(),
    }
}

async fn creates_tags(format: Format) {
    let node = Node::start().await;
    let (repo, first, second) = seeded(&node, "r.git", format);
    let mut ops = client(&node).await;

    // Lightweight: the reference points at the commit.
    let tag = ops.user_create_tag(create("r.git", "v1", "main~1", "")).await.expect("created").into_inner();
    let tag = tag.tag.expect("tag");
    assert_eq!((tag.name.as_slice(), tag.id.as_str()), (b"v1".as_slice(), first.as_str()));
    assert_eq!(tag.target_commit.expect("commit").id, first);
    assert_eq!(resolve(&repo, "refs/tags/v1").as_deref(), Some(first.as_str()));

    // Annotated: a tag object written by mktag, tagger = user at the timestamp.
    let tag = ops.user_create_tag(create("r.git", "v2", "main", "Release v2\n")).await.expect("created").into_inner();
    let tag = tag.tag.expect("tag");
    assert_eq!(resolve(&repo, "refs/tags/v2").as_deref(), Some(tag.id.as_str()));
    assert_eq!(repo.git(&["cat-file", "-t", "refs/tags/v2"]), "tag");
    assert_eq!(tag.message, b"Release v2");
    assert_eq!(tag.target_commit.expect("commit").id, second);
    let object = repo.git(&["cat-file", "-p", "refs/tags/v2"]);
    assert_eq!(
        object,
        format!(
            "object {second}\ntype commit\ntag v2\ntagger Jane Doe <jane@example.com> 1700000000 +0000\n\nRelease v2"
        )
    );
    repo.git(&["fsck", "--strict"]);

    // Annotated tag of a tag, and of a tree.
    ops.user_create_tag(create("r.git", "v2-again", "v2", "again")).await.expect("created");
    assert_eq!(repo.git(&["cat-file", "-p", "refs/tags/v2-again"]).lines().nth(1), Some("type tag"));
    let tree = repo.git(&["rev-parse", "main^{tree}"]);
    let t = ops.user_create_tag(create("r.git", "tree", &tree, "")).await.expect("created").into_inner();
    assert!(t.tag.expect("tag").target_commit.is_none());
    assert_eq!(resolve(&repo, "refs/tags/tree").as_deref(), Some(tree.as_str()));
    // A lightweight tag of an annotated tag points at what it peels to.
    ops.user_create_tag(create("r.git", "light", "v2", "  \n")).await.expect("created");
    assert_eq!(resolve(&repo, "refs/tags/light").as_deref(), Some(second.as_str()));
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());

    // The same request with a timestamp writes the same tag object on a
    // copy of the repository (what a router's replicas compare).
    let copy = super::copy_repo(&node, &repo, "copy.git");
    crate::support::git::git(Some(&copy), &["update-ref", "-d", "refs/tags/v2"]);
    let again = ops.user_create_tag(create("copy.git", "v2", "main", "Release v2\n")).await.expect("created");
    assert_eq!(again.into_inner().tag.expect("tag").id, resolve(&repo, "refs/tags/v2").expect("tag"));
    drop(copy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_tags_sha1() {
    creates_tags(Format::Sha1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_tags_sha256() {
    creates_tags(Format::Sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_tag_refuses_bad_requests_and_existing_tags() {
    let node = Node::start().await;
    let (repo, first, _) = seeded(&node, "r.git", Format::Sha1);
    repo.git(&["update-ref", "refs/tags/old", &first]);
    let mut ops = client(&node).await;
    let cases = [
        (create("r.git", "", "main", ""), Code::InvalidArgument, "empty tag name"),
        (create("r.git", "a b", "main", ""), Code::InvalidArgument, "invalid tag name"),
        (UserCreateTagRequest { user: None, ..create("r.git", "x", "main", "") }, Code::InvalidArgument, "empty user"),
        (create("r.git", "x", "", ""), Code::InvalidArgument, "empty target revision"),
        (create("r.git", "x", "main", "a\0b"), Code::InvalidArgument, "tag message contains NUL byte"),
        (create("r.git", "x", "nope", ""), Code::FailedPrecondition, "revspec 'nope' not found"),
        (create("missing.git", "x", "main", ""), Code::NotFound, "not found"),
    ];
    for (req, code, message) in cases {
        let status = ops.user_create_tag(req).await.expect_err("refused");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(message), "{message:?} in {status:?}");
    }
    let status = ops.user_create_tag(create("r.git", "old", "main", "msg")).await.expect_err("exists");
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(status.message(), "tag reference exists already");
    let err: UserCreateTagError = detail(&status);
    let Some(user_create_tag_error::Error::ReferenceExists(exists)) = err.error else { panic!("{err:?}") };
    assert_eq!((exists.reference_name.as_slice(), exists.oid.as_str()), (b"refs/tags/old".as_slice(), first.as_str()));
    assert_eq!(resolve(&repo, "refs/tags/old").as_deref(), Some(first.as_str()));
    assert_eq!(repo.git(&["tag", "-l"]), "old");
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_refusing_a_tag_leaves_nothing_behind() {
    let node = Node::start().await;
    let (repo, _, _) = seeded(&node, "r.git", Format::Sha1);
    script(&repo.path.join("custom_hooks/pre-receive"), "echo 'no tags today' >&2; exit 1");
    let objects_before = repo.git(&["count-objects"]);
    let mut ops = client(&node).await;
    let status = ops.user_create_tag(create("r.git", "v1", "main", "annotated")).await.expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "reference update denied by custom hooks");
    let err: UserCreateTagError = detail(&status);
    let Some(user_create_tag_error::Error::CustomHook(hook)) = err.error else { panic!("{err:?}") };
    assert_eq!(hook.hook_type(), HookType::Prereceive);
    assert_eq!(hook.stderr, b"no tags today\n");
    assert_eq!(resolve(&repo, "refs/tags/v1"), None);
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
    assert_eq!(repo.git(&["count-objects"]), objects_before, "the tag object never joined the repository");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_tags() {
    let node = Node::start().await;
    let (repo, first, second) = seeded(&node, "r.git", Format::Sha256);
    repo.git(&["tag", "v1", &first]);
    repo.git(&["tag", "-a", "-m", "annotated", "v2", &second]);
    let mut ops = client(&node).await;
    ops.user_delete_tag(delete("r.git", "v1", "")).await.expect("deleted");
    assert_eq!(resolve(&repo, "refs/tags/v1"), None);

    let v2 = resolve(&repo, "refs/tags/v2").expect("v2");
    let status = ops.user_delete_tag(delete("r.git", "v2", &second)).await.expect_err("stale");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(resolve(&repo, "refs/tags/v2").as_deref(), Some(v2.as_str()));
    ops.user_delete_tag(delete("r.git", "v2", &v2)).await.expect("deleted");
    assert_eq!(repo.git(&["tag", "-l"]), "");

    let status = ops.user_delete_tag(delete("r.git", "gone", "")).await.expect_err("missing");
    assert_eq!((status.code(), status.message()), (Code::FailedPrecondition, "tag not found: gone"));
    let status = ops.user_delete_tag(delete("r.git", "", "")).await.expect_err("empty");
    assert_eq!((status.code(), status.message()), (Code::InvalidArgument, "empty tag name"));

    // A custom hook refusing answers with its output, as upstream does.
    repo.git(&["tag", "v3", &first]);
    script(&repo.path.join("custom_hooks/pre-receive"), "echo 'GitLab: protected tag' >&2; exit 1");
    let resp = ops.user_delete_tag(delete("r.git", "v3", "")).await.expect("answered").into_inner();
    assert_eq!(resp.pre_receive_error, "GitLab: protected tag\n");
    assert_eq!(resolve(&repo, "refs/tags/v3").as_deref(), Some(first.as_str()));
}
