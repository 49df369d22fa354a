//! RefService writes: UpdateReferences and DeleteRefs, checked with the
//! git CLI.

use crate::operations::resolve;
use crate::support::git::{Format, TestRepo};
use crate::support::{Node, STORAGE};
use cairn_proto::gitaly::ref_service_client::RefServiceClient;
use cairn_proto::gitaly::*;
use tonic::Code;

fn repository(relative: &str) -> Option<Repository> {
    Some(Repository { storage_name: STORAGE.into(), relative_path: relative.into(), ..Default::default() })
}

fn seeded(node: &Node, format: Format) -> (TestRepo, String, String) {
    let repo = node.create_repo("r.git", format);
    let first = repo.commit_on("main", &[("a", "a\n")], "first");
    let second = repo.commit_on("main", &[("a", "b\n")], "second");
    (repo, first, second)
}

fn change(reference: &str, old: &str, new: &str) -> update_references_request::Update {
    update_references_request::Update {
        reference: reference.into(),
        old_object_id: old.into(),
        new_object_id: new.into(),
    }
}

async fn update(
    node: &Node,
    batches: Vec<Vec<update_references_request::Update>>,
) -> Result<UpdateReferencesResponse, tonic::Status> {
    let messages: Vec<UpdateReferencesRequest> = batches
        .into_iter()
        .enumerate()
        .map(|(i, updates)| UpdateReferencesRequest {
            repository: if i == 0 { repository("r.git") } else { None },
            updates,
        })
        .collect();
    let mut refs = RefServiceClient::new(node.channel().await);
    refs.update_references(tokio_stream::iter(messages)).await.map(tonic::Response::into_inner)
}

fn detail<M: prost::Message + prost::Name + Default>(status: &tonic::Status) -> M {
    crate::operations::detail(status)
}

async fn updates_references(format: Format) {
    let node = Node::start().await;
    let (repo, first, second) = seeded(&node, format);
    let zero = "0".repeat(first.len());
    update(
        &node,
        vec![
            vec![change("refs/heads/new", &zero, &first), change("refs/heads/main", &second, &first)],
            vec![change("refs/tags/t", "", &second)],
        ],
    )
    .await
    .expect("updated");
    assert_eq!(resolve(&repo, "refs/heads/new").as_deref(), Some(first.as_str()));
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(first.as_str()));
    assert_eq!(resolve(&repo, "refs/tags/t").as_deref(), Some(second.as_str()));

    // One stale update: nothing changes, the detail names it.
    let status =
        update(&node, vec![vec![change("refs/heads/x", "", &second), change("refs/heads/main", &second, &second)]])
            .await
            .expect_err("stale");
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    let err: UpdateReferencesError = detail(&status);
    let Some(update_references_error::Error::ReferenceStateMismatch(m)) = err.error else { panic!("{err:?}") };
    assert_eq!(m.reference_name, b"refs/heads/main");
    assert_eq!(m.expected_object_id, second.as_bytes());
    assert_eq!(m.actual_object_id, first.as_bytes());
    assert_eq!(resolve(&repo, "refs/heads/x"), None);

    // Deletion with the zero id.
    update(&node, vec![vec![change("refs/heads/new", &first, &zero)]]).await.expect("deleted");
    assert_eq!(resolve(&repo, "refs/heads/new"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_references_sha1() {
    updates_references(Format::Sha1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_references_sha256() {
    updates_references(Format::Sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_references_refuses_bad_input() {
    let node = Node::start().await;
    let (repo, first, _) = seeded(&node, Format::Sha1);
    let status = update(&node, vec![vec![change("refs/heads/a..b", "", &first)]]).await.expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    let err: UpdateReferencesError = detail(&status);
    let Some(update_references_error::Error::InvalidFormat(f)) = err.error else { panic!("{err:?}") };
    assert_eq!(f.refs, vec![b"refs/heads/a..b".to_vec()]);
    let status = update(&node, vec![vec![change("HEAD", "", &first)]]).await.expect_err("HEAD");
    assert_eq!(status.message(), "validating reference: HEAD reference not allowed");
    let status = update(&node, vec![vec![change("refs/heads/x", "", "abc")]]).await.expect_err("bad id");
    assert!(status.message().starts_with("validating new object ID"), "{status:?}");
    let status = update(&node, vec![vec![]]).await.expect_err("empty");
    assert_eq!((status.code(), status.message()), (Code::InvalidArgument, "no updates specified"));
    let missing = "1".repeat(40);
    let status = update(&node, vec![vec![change("refs/heads/x", "", &missing)]]).await.expect_err("missing");
    assert_eq!((status.code(), status.message()), (Code::NotFound, "target object missing"));

    // A locked reference.
    std::fs::write(repo.path.join("refs/heads/main.lock"), "").expect("lock");
    let status = update(&node, vec![vec![change("refs/heads/main", "", &first)]]).await.expect_err("locked");
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    let err: UpdateReferencesError = detail(&status);
    let Some(update_references_error::Error::ReferencesLocked(l)) = err.error else { panic!("{err:?}") };
    assert_eq!(l.refs, vec![b"refs/heads/main".to_vec()]);
    assert_eq!(repo.git(&["for-each-ref", "--format=%(refname)"]), "refs/heads/main");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_refs() {
    let node = Node::start().await;
    let (repo, first, second) = seeded(&node, Format::Sha256);
    for r in ["refs/heads/a", "refs/heads/b", "refs/tags/t", "refs/keep-around/k", "refs/merge-requests/1/head"] {
        repo.git(&["update-ref", r, &first]);
    }
    let mut refs = RefServiceClient::new(node.channel().await);
    let req = |refs: &[&str], except: &[&str]| DeleteRefsRequest {
        repository: repository("r.git"),
        refs: refs.iter().map(|r| r.as_bytes().to_vec()).collect(),
        except_with_prefix: except.iter().map(|r| r.as_bytes().to_vec()).collect(),
    };
    refs.delete_refs(req(&["refs/heads/a", "refs/tags/t"], &[])).await.expect("deleted");
    assert_eq!(resolve(&repo, "refs/heads/a"), None);
    assert_eq!(resolve(&repo, "refs/tags/t"), None);
    refs.delete_refs(req(&[], &["refs/heads/", "refs/keep-around/"])).await.expect("deleted");
    assert_eq!(repo.git(&["for-each-ref", "--format=%(refname)"]), "refs/heads/b\nrefs/heads/main\nrefs/keep-around/k");
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(second.as_str()));

    let cases = [
        (req(&["refs/heads/b"], &["refs/heads/"]), "ExceptWithPrefix and Refs are mutually exclusive"),
        (req(&[], &[]), "empty ExceptWithPrefix and Refs"),
        (req(&[], &[""]), "empty prefix for exclusion"),
        (req(&[""], &[]), "empty ref"),
    ];
    for (r, message) in cases {
        let status = refs.delete_refs(r).await.expect_err("refused");
        assert_eq!((status.code(), status.message()), (Code::InvalidArgument, message));
    }
    let status = refs.delete_refs(req(&["refs/heads/b c"], &[])).await.expect_err("invalid");
    assert_eq!((status.code(), status.message()), (Code::InvalidArgument, "invalid references"));
    let err: DeleteRefsError = detail(&status);
    assert!(matches!(err.error, Some(delete_refs_error::Error::InvalidFormat(_))), "{err:?}");

    std::fs::write(repo.path.join("refs/heads/b.lock"), "").expect("lock");
    let status = refs.delete_refs(req(&["refs/heads/b"], &[])).await.expect_err("locked");
    assert_eq!((status.code(), status.message()), (Code::Aborted, "cannot lock references"));
    let err: DeleteRefsError = detail(&status);
    let Some(delete_refs_error::Error::ReferencesLocked(l)) = err.error else { panic!("{err:?}") };
    assert_eq!(l.refs, vec![b"refs/heads/b".to_vec()]);
    assert_eq!(resolve(&repo, "refs/heads/b").as_deref(), Some(first.as_str()));
}
