//! ListFiles: every blob path of a revision's tree (`git ls-tree -r
//! --full-tree`), the default branch when no revision is given.

use super::{RevisionRules, valid_revision};
use crate::error::{Error, Result};
use crate::git::tree::{self, EntryKind};
use crate::git::{commit, objects};
use crate::service::Deps;
use crate::service::stream::Chunker;
use cairn_proto::gitaly::{ListFilesRequest, ListFilesResponse};
use tonic::codegen::BoxStream;

pub(super) fn handle(deps: &Deps, req: ListFilesRequest) -> Result<BoxStream<ListFilesResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    valid_revision(&req.revision, RevisionRules { allow_empty: true, ..Default::default() })?;
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let revision = if req.revision.is_empty() {
            commit::default_branch(repo)?
                .ok_or_else(|| Error::failed_precondition("repository does not have a default branch"))?
        } else {
            req.revision.clone()
        };
        let Some(id) = objects::resolve(repo, &revision) else {
            // Upstream answers one empty message for an unknown revision.
            return sink.send(ListFilesResponse::default());
        };
        let root = tree::peel_to_tree(repo, id)?.ok_or_else(|| {
            Error::internal_msg(format!("ls-tree: not a tree object: {}", String::from_utf8_lossy(&revision)))
        })?;
        let mut chunker = Chunker::new(sink, |items: Vec<ListFilesResponse>| ListFilesResponse {
            paths: items.into_iter().flat_map(|i| i.paths).collect(),
        });
        tree::walk_recursive(repo, root, b"", &mut |e| -> Result<bool> {
            if e.kind() == EntryKind::Blob {
                chunker.push(ListFilesResponse { paths: vec![e.path] })?;
            }
            Ok(true)
        })?;
        chunker.flush()
    }))
}
