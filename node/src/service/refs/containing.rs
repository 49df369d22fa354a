//! ListBranchNamesContainingCommit and ListTagNamesContainingCommit: the
//! branches (tags) whose history includes a commit, by name, at most
//! `limit` of them (0: all).

use crate::error::{Error, Result};
use crate::git::objects::{self, Kind};
use crate::git::references::{self, Containment};
use crate::service::Deps;
use crate::service::stream::Chunker;
use cairn_proto::gitaly::{
    ListBranchNamesContainingCommitRequest, ListBranchNamesContainingCommitResponse,
    ListTagNamesContainingCommitRequest, ListTagNamesContainingCommitResponse,
};
use tonic::codegen::BoxStream;

/// A name as upstream batches it (a wrapped string holding the full
/// reference name, stripped only when sent), so batches split where
/// upstream's do.
#[derive(Clone, PartialEq, prost::Message)]
struct Name {
    #[prost(bytes = "vec", tag = "1")]
    value: Vec<u8>,
}

pub(super) fn branches(
    deps: &Deps,
    req: ListBranchNamesContainingCommitRequest,
) -> Result<BoxStream<ListBranchNamesContainingCommitResponse>> {
    names(deps, req.repository.as_ref(), req.commit_id, req.limit, b"refs/heads/", |names| {
        ListBranchNamesContainingCommitResponse { branch_names: strip(names, b"refs/heads/") }
    })
}

pub(super) fn tags(
    deps: &Deps,
    req: ListTagNamesContainingCommitRequest,
) -> Result<BoxStream<ListTagNamesContainingCommitResponse>> {
    names(deps, req.repository.as_ref(), req.commit_id, req.limit, b"refs/tags/", |names| {
        ListTagNamesContainingCommitResponse { tag_names: strip(names, b"refs/tags/") }
    })
}

fn strip(names: Vec<Name>, prefix: &[u8]) -> Vec<Vec<u8>> {
    names.into_iter().map(|n| n.value.strip_prefix(prefix).map(<[u8]>::to_vec).unwrap_or(n.value)).collect()
}

fn names<M: Send + 'static>(
    deps: &Deps,
    repository: Option<&cairn_proto::gitaly::Repository>,
    commit_id: String,
    limit: u32,
    prefix: &'static [u8],
    make: fn(Vec<Name>) -> M,
) -> Result<BoxStream<M>> {
    let path = deps.storages.repo(repository)?;
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let hex_len = repo.object_format().hex_len();
        if commit_id.len() != hex_len || !commit_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid_argument(format!(
                "invalid object ID: {commit_id:?}, expected length {hex_len}, got {}",
                commit_id.len()
            )));
        }
        let id = objects::parse_oid(repo, commit_id.as_bytes())
            .ok_or_else(|| Error::invalid_argument(format!("invalid object ID: {commit_id:?}")))?;
        let commit = objects::peel_to(repo, id, Kind::Commit)?
            .ok_or_else(|| Error::internal_msg(format!("no such commit {commit_id}")))?;
        let mut containment = Containment::new(repo, commit);
        let mut chunker = Chunker::new(sink, make);
        let mut count = 0u32;
        for r in references::list(repo, &[prefix])? {
            // References to anything but commits never contain one.
            let Some(tip) = objects::peel_to(repo, r.target, Kind::Commit)? else { continue };
            if !containment.contains(tip)? {
                continue;
            }
            chunker.push(Name { value: r.name })?;
            count += 1;
            if limit != 0 && count >= limit {
                break;
            }
        }
        chunker.flush()
    }))
}
