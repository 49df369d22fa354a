//! CommitDelta: the files changed between two commits with their modes and
//! ids, as `git diff --raw --find-renames` lists them, computed in-process.
//! A type change is a deletion followed by an addition, as upstream's
//! parser splits it. Deltas are batched until a batch passes 5 KiB of ids,
//! modes and paths, as upstream batches them.

use super::{PATCH_CHUNK, check_commit_ids, reject_option_like};
use crate::error::{Error, Result};
use crate::git::diff::tree::{self, Pathspec};
use crate::git::diff::{Change, Status, rename};
use crate::git::{Repo, objects};
use crate::service::Deps;
use cairn_proto::gitaly::{CommitDelta, CommitDeltaRequest, CommitDeltaResponse};
use tonic::codegen::BoxStream;

/// The tree a request's revision names, or FAILED_PRECONDITION as upstream
/// answers when git cannot resolve it.
pub(super) fn resolve_tree(repo: &Repo, revision: &str) -> Result<objects::ObjectId> {
    objects::resolve(repo, revision.as_bytes())
        .map(|id| tree::tree_of(repo, id))
        .transpose()?
        .flatten()
        .ok_or_else(|| Error::failed_precondition(format!("bad revision {revision:?}")))
}

/// The deltas of one change (two for a type change).
fn deltas(change: &Change, zero: &str) -> Vec<CommitDelta> {
    let delta = |old: Option<crate::git::diff::Side>, new: Option<crate::git::diff::Side>| CommitDelta {
        from_path: change.old_path.clone(),
        to_path: change.path.clone(),
        from_id: old.map_or_else(|| zero.to_owned(), |s| s.id.to_string()),
        to_id: new.map_or_else(|| zero.to_owned(), |s| s.id.to_string()),
        old_mode: old.map_or(0, |s| s.mode as i32),
        new_mode: new.map_or(0, |s| s.mode as i32),
    };
    if change.status == Status::TypeChanged {
        vec![delta(change.old, None), delta(None, change.new)]
    } else {
        vec![delta(change.old, change.new)]
    }
}

/// Upstream's estimate of a delta's size for batching.
fn delta_size(d: &CommitDelta) -> usize {
    d.from_id.len() + d.to_id.len() + 4 + 4 + d.from_path.len() + d.to_path.len()
}

pub(super) fn handle(deps: &Deps, req: CommitDeltaRequest) -> Result<BoxStream<CommitDeltaResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    check_commit_ids(&req.left_commit_id, &req.right_commit_id)?;
    reject_option_like(req.left_commit_id.as_bytes())?;
    reject_option_like(req.right_commit_id.as_bytes())?;
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let left = resolve_tree(repo, &req.left_commit_id)?;
        let right = resolve_tree(repo, &req.right_commit_id)?;
        let mut pathspec = match req.paths.is_empty() {
            true => None,
            false => Some(Pathspec::parse(repo, &req.paths).map_err(Error::failed_precondition)?),
        };
        let changes = tree::diff_trees(repo, Some(left), Some(right), pathspec.as_mut(), Some(rename::DEFAULT_SCORE))?;
        let zero = repo.object_format().zero_oid();
        let mut batch = Vec::new();
        let mut size = 0;
        for change in &changes {
            for delta in deltas(change, &zero) {
                size += delta_size(&delta);
                batch.push(delta);
                if size > PATCH_CHUNK {
                    sink.send(CommitDeltaResponse { deltas: std::mem::take(&mut batch) })?;
                    size = 0;
                }
            }
        }
        if !batch.is_empty() {
            sink.send(CommitDeltaResponse { deltas: batch })?;
        }
        Ok(())
    }))
}
