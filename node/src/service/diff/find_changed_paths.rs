//! FindChangedPaths: the paths each requested commit (against its parents
//! or given ones) or tree pair changed, computed in-process as upstream's
//! `git diff-tree -r --root -z --stdin` reports them: merge commits per
//! parent or combined, optional rename detection at 30%, a status filter,
//! blob ids and modes of both sides, and the commit when every request
//! names a commit.

use crate::error::{Error, Result};
use crate::git::diff::changed_paths::{self, ChangedPath, MergeMode, Options, Request};
use crate::git::diff::tree::tree_of;
use crate::git::diff::{Status, rename};
use crate::git::{Repo, objects};
use crate::service::Deps;
use crate::service::stream::Chunker;
use cairn_proto::gitaly::changed_paths::Status as PathStatus;
use cairn_proto::gitaly::find_changed_paths_request::request::{CommitRequest, Type};
use cairn_proto::gitaly::find_changed_paths_request::{self, DiffStatus, MergeCommitDiffMode};
use cairn_proto::gitaly::{ChangedPaths, FindChangedPathsRequest, FindChangedPathsResponse};
use tonic::codegen::BoxStream;

/// Resolves `revision^{commit}` or `revision^{tree}` as upstream does,
/// with its errors: an empty revision is invalid, a missing one not found.
fn resolve(repo: &Repo, revision: &str, tree: bool, what: &str) -> Result<objects::ObjectId> {
    if revision.is_empty() {
        return Err(Error::invalid_argument(format!("resolving {what}: revision cannot be empty")));
    }
    let not_found = || Error::not_found(format!("resolving {what}: revision can not be found: {revision:?}"));
    // A revision with a line break would be cut apart by upstream's object
    // reader and name nothing.
    if revision.contains(['\n', '\0']) {
        return Err(not_found());
    }
    let id = objects::resolve(repo, revision.as_bytes()).ok_or_else(not_found)?;
    let found = if tree { tree_of(repo, id)? } else { objects::peel_to(repo, id, objects::Kind::Commit)? };
    found.ok_or_else(not_found)
}

fn statuses(filters: &[i32]) -> Result<Vec<Status>> {
    if filters.is_empty() {
        return Ok(vec![Status::Added, Status::Modified, Status::Deleted, Status::TypeChanged, Status::Renamed]);
    }
    let mut out = Vec::new();
    for f in filters {
        let status = match DiffStatus::try_from(*f) {
            Ok(DiffStatus::Added) => Status::Added,
            Ok(DiffStatus::Modified) => Status::Modified,
            Ok(DiffStatus::Deleted) => Status::Deleted,
            Ok(DiffStatus::TypeChange) => Status::TypeChanged,
            Ok(DiffStatus::Renamed) => Status::Renamed,
            // Copies are never detected (no `-C`), so the filter keeps nothing.
            Ok(DiffStatus::Copied) => continue,
            _ => return Err(Error::invalid_argument("invalid diff filter requested")),
        };
        if !out.contains(&status) {
            out.push(status);
        }
    }
    Ok(out)
}

fn to_proto(p: ChangedPath, zero: &str) -> ChangedPaths {
    let c = p.change;
    let status = match c.status {
        Status::Added => PathStatus::Added,
        Status::Deleted => PathStatus::Deleted,
        Status::Modified => PathStatus::Modified,
        Status::TypeChanged => PathStatus::TypeChange,
        Status::Renamed => PathStatus::Renamed,
    };
    ChangedPaths {
        old_path: if c.status == Status::Renamed && !p.combined { c.old_path } else { Vec::new() },
        path: c.path,
        status: status.into(),
        old_mode: c.old.map_or(0, |s| s.mode as i32),
        new_mode: c.new.map_or(0, |s| s.mode as i32),
        old_blob_id: c.old.map_or_else(|| zero.to_owned(), |s| s.id.to_string()),
        new_blob_id: c.new.map_or_else(|| zero.to_owned(), |s| s.id.to_string()),
        score: 0,
        commit_id: p.commit.map(|id| id.to_string()).unwrap_or_default(),
    }
}

pub(super) async fn handle(deps: &Deps, req: FindChangedPathsRequest) -> Result<BoxStream<FindChangedPathsResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    #[allow(deprecated, reason = "upstream still accepts the old commits field")]
    let commits = req.commits.clone();
    if !commits.is_empty() && !req.requests.is_empty() {
        return Err(Error::invalid_argument("cannot specify both commits and requests"));
    }
    let mut requests = req.requests.clone();
    if !commits.is_empty() {
        requests = commits
            .into_iter()
            .map(|commit_revision| find_changed_paths_request::Request {
                r#type: Some(Type::CommitRequest(CommitRequest { commit_revision, parent_commit_revisions: vec![] })),
            })
            .collect();
    }
    // Revisions are resolved (and their errors reported) before anything is sent.
    let resolved = deps
        .read_at(path.clone(), move |repo, _| {
            let mut out = Vec::with_capacity(requests.len());
            for r in &requests {
                out.push(match &r.r#type {
                    Some(Type::CommitRequest(c)) => Request::Commit {
                        commit: resolve(repo, &c.commit_revision, false, "commit")?,
                        parents: c
                            .parent_commit_revisions
                            .iter()
                            .map(|p| resolve(repo, p, false, "commit parent"))
                            .collect::<Result<_>>()?,
                    },
                    Some(Type::TreeRequest(t)) => Request::Trees {
                        left: resolve(repo, &t.left_tree_revision, true, "left tree")?,
                        right: resolve(repo, &t.right_tree_revision, true, "right tree")?,
                    },
                    None => return Err(Error::internal_msg("unknown FindChangedPathsRequest type")),
                });
            }
            Ok(out)
        })
        .await?;
    let include_commit = resolved.iter().all(|r| matches!(r, Request::Commit { .. }));
    let opts = Options {
        merge_mode: match req.merge_commit_diff_mode() {
            MergeCommitDiffMode::AllParents => MergeMode::AllParents,
            MergeCommitDiffMode::IncludeMerges | MergeCommitDiffMode::Unspecified => MergeMode::EachParent,
        },
        renames: req.find_renames.then(|| rename::score_from_percent(30)),
        filter: statuses(&req.diff_filters)?,
    };
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let zero = repo.object_format().zero_oid();
        let mut chunker = Chunker::new(sink, |paths| FindChangedPathsResponse { paths });
        for request in &resolved {
            let mut emit = |mut p: ChangedPath| -> Result<()> {
                if !include_commit {
                    p.commit = None;
                }
                chunker.push(to_proto(p, &zero))
            };
            changed_paths::changed_paths(repo, request, &opts, &mut emit)?;
        }
        chunker.flush()
    }))
}
