//! CommitStats: lines added and deleted, and files changed, between a
//! commit's first parent (or the empty tree) and the commit, as
//! `git diff --numstat` counts them (renames detected, binary files
//! counted without lines).

use super::{RevisionRules, internal, valid_revision};
use crate::error::{Error, Result};
use crate::git::commit;
use crate::git::objects::ObjectId;
use crate::service::Deps;
use cairn_proto::gitaly::{CommitStatsRequest, CommitStatsResponse};

pub(super) async fn handle(deps: &Deps, req: CommitStatsRequest) -> Result<CommitStatsResponse> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    valid_revision(&req.revision, RevisionRules::default())?;
    deps.read_at(path, move |repo, _| {
        let c = commit::find(repo, &req.revision)?.ok_or_else(|| Error::internal_msg("object not found"))?;
        let tree = ObjectId::from_hex(c.tree.as_bytes()).ok();
        let parent_tree = match c.parents.first() {
            Some(p) => {
                let p = ObjectId::from_hex(p.as_bytes()).map_err(|e| Error::internal("parse parent id", e))?;
                let parent =
                    commit::read(repo, p)?.ok_or_else(|| Error::internal_msg(format!("object not found: {p}")))?;
                ObjectId::from_hex(parent.tree.as_bytes()).ok()
            }
            None => None,
        };
        let stat = commit::diff_stat(repo, parent_tree, tree).map_err(internal)?;
        let n = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
        Ok(CommitStatsResponse {
            oid: c.id,
            additions: n(stat.additions),
            deletions: n(stat.deletions),
            files: n(stat.files),
        })
    })
    .await
}
