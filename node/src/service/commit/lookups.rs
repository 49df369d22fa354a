//! Commit lookups by name: ListCommitsByOid, ListCommitsByRefName,
//! GetCommitMessages and CommitIsAncestor. Names that resolve to nothing
//! (or to no commit) are skipped, as upstream's `cat-file` lookups do.

use super::internal;
use crate::error::{Error, Result};
use crate::git::{commit, objects, walk};
use crate::service::stream::Chunker;
use crate::service::{CHUNK_SIZE, Deps, convert};
use cairn_proto::gitaly::list_commits_by_ref_name_response::CommitForRef;
use cairn_proto::gitaly::{
    CommitIsAncestorRequest, CommitIsAncestorResponse, GetCommitMessagesRequest, GetCommitMessagesResponse,
    ListCommitsByOidRequest, ListCommitsByOidResponse, ListCommitsByRefNameRequest, ListCommitsByRefNameResponse,
};
use tonic::codegen::BoxStream;

pub(super) fn list_commits_by_oid(
    deps: &Deps,
    req: ListCommitsByOidRequest,
) -> Result<BoxStream<ListCommitsByOidResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let mut chunker = Chunker::new(sink, |commits| ListCommitsByOidResponse { commits });
        for oid in &req.oid {
            if let Some(c) = commit::find(repo, oid.as_bytes())? {
                chunker.push(convert::git_commit(&c))?;
            }
        }
        chunker.flush()
    }))
}

pub(super) fn list_commits_by_ref_name(
    deps: &Deps,
    req: ListCommitsByRefNameRequest,
) -> Result<BoxStream<ListCommitsByRefNameResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let mut chunker = Chunker::new(sink, |commit_refs| ListCommitsByRefNameResponse { commit_refs });
        for name in &req.ref_names {
            if let Some(c) = commit::find(repo, name)? {
                chunker.push(CommitForRef { commit: Some(convert::git_commit(&c)), ref_name: name.clone() })?;
            }
        }
        chunker.flush()
    }))
}

/// Each commit's full message: a message naming the commit, then the
/// message bytes in chunks. A name that resolves to no commit fails the
/// stream, as upstream.
pub(super) fn get_commit_messages(
    deps: &Deps,
    req: GetCommitMessagesRequest,
) -> Result<BoxStream<GetCommitMessagesResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    Ok(deps.stream_at(path, move |repo, _, sink| {
        for id in &req.commit_ids {
            let c = commit::find(repo, id.as_bytes())?
                .ok_or_else(|| Error::internal_msg(format!("failed to get commit message: object not found: {id}")))?;
            sink.send(GetCommitMessagesResponse { commit_id: id.clone(), message: Vec::new() })?;
            for chunk in c.message.chunks(CHUNK_SIZE) {
                sink.send(GetCommitMessagesResponse { commit_id: String::new(), message: chunk.to_vec() })?;
            }
        }
        Ok(())
    }))
}

/// `git merge-base --is-ancestor`: false whenever either side names no
/// commit.
pub(super) async fn commit_is_ancestor(deps: &Deps, req: CommitIsAncestorRequest) -> Result<CommitIsAncestorResponse> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    if req.ancestor_id.is_empty() {
        return Err(Error::invalid_argument("empty ancestor sha"));
    }
    if req.child_id.is_empty() {
        return Err(Error::invalid_argument("empty child sha"));
    }
    deps.read_at(path, move |repo, _| {
        let resolve = |rev: &str| -> Result<Option<objects::ObjectId>> {
            // git would read an option-like argument as an option and fail.
            if rev.starts_with('-') {
                return Ok(None);
            }
            Ok(objects::resolve_commit(repo, rev.as_bytes())?)
        };
        let (Some(a), Some(c)) = (resolve(&req.ancestor_id)?, resolve(&req.child_id)?) else {
            return Ok(CommitIsAncestorResponse { value: false });
        };
        Ok(CommitIsAncestorResponse { value: walk::is_ancestor(repo, a, c).map_err(internal)? })
    })
    .await
}
