//! The paths a commit (or a pair of trees) changed, answering like
//! `git diff-tree -r --root -z --stdin` as upstream's FindChangedPaths runs
//! it: a commit is compared with each of its parents (`-m`) or with all of
//! them at once (`-c`: only paths that differ from every parent, one entry
//! per parent), a root commit with the empty tree; renames are detected at
//! 30% when asked for; a status filter (`--diff-filter`) applies to each
//! parent's diff.

use super::{Change, Status, rename, tree};
use crate::git::objects::ObjectId;
use crate::git::{GitError, Repo, commit};
use std::collections::HashMap;

/// How a merge commit is compared with its parents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeMode {
    /// With each parent in turn (`-m`).
    EachParent,
    /// With all parents at once (`-c`).
    AllParents,
}

/// What to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A commit with the given parents (its own when empty).
    Commit { commit: ObjectId, parents: Vec<ObjectId> },
    /// Two trees.
    Trees { left: ObjectId, right: ObjectId },
}

/// Options of a whole FindChangedPaths request.
#[derive(Debug, Clone)]
pub struct Options {
    pub merge_mode: MergeMode,
    /// Rename threshold in [`rename::MAX_SCORE`] units; `None` for none.
    pub renames: Option<u32>,
    /// Statuses to keep.
    pub filter: Vec<Status>,
}

/// One changed path against one parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedPath {
    pub change: Change,
    /// The commit compared (commit requests only).
    pub commit: Option<ObjectId>,
    /// Part of a combined (`-c`) entry, where git prints only the new path.
    pub combined: bool,
}

fn commit_tree(repo: &Repo, id: ObjectId) -> Result<ObjectId, GitError> {
    tree::tree_of(repo, id)?.ok_or_else(|| GitError::RevisionNotFound(id.to_string()))
}

fn filtered(repo: &Repo, old: Option<ObjectId>, new: ObjectId, opts: &Options) -> Result<Vec<Change>, GitError> {
    let mut changes = tree::diff_trees(repo, old, Some(new), None, opts.renames)?;
    changes.retain(|c| opts.filter.contains(&c.status));
    Ok(changes)
}

/// The changed paths of one request, in git's order, handed to `emit`.
pub fn changed_paths<E: From<GitError>>(
    repo: &Repo,
    request: &Request,
    opts: &Options,
    emit: &mut dyn FnMut(ChangedPath) -> Result<(), E>,
) -> Result<(), E> {
    match request {
        Request::Trees { left, right } => {
            for change in filtered(repo, Some(*left), *right, opts)? {
                emit(ChangedPath { change, commit: None, combined: false })?;
            }
            Ok(())
        }
        Request::Commit { commit: id, parents } => {
            let parents = if parents.is_empty() {
                let c = commit::read(repo, *id)?.ok_or_else(|| GitError::RevisionNotFound(id.to_string()))?;
                c.parents
                    .iter()
                    .map(|p| {
                        crate::git::objects::parse_oid(repo, p.as_bytes())
                            .ok_or_else(|| GitError::RevisionNotFound(p.clone()))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            } else {
                parents.clone()
            };
            let tree = commit_tree(repo, *id)?;
            let with_commit = |change| ChangedPath { change, commit: Some(*id), combined: false };
            match (parents.as_slice(), opts.merge_mode) {
                ([], _) => {
                    for change in filtered(repo, None, tree, opts)? {
                        emit(with_commit(change))?;
                    }
                }
                ([_], _) | (_, MergeMode::EachParent) => {
                    for parent in &parents {
                        let parent_tree = commit_tree(repo, *parent)?;
                        for change in filtered(repo, Some(parent_tree), tree, opts)? {
                            emit(with_commit(change))?;
                        }
                    }
                }
                (_, MergeMode::AllParents) => {
                    for change in combined(repo, &parents, tree, opts)? {
                        emit(ChangedPath { combined: true, ..with_commit(change) })?;
                    }
                }
            }
            Ok(())
        }
    }
}

/// git's combined diff of raw entries: the paths (new names) that are in
/// every parent's diff, each followed by its entry against each parent.
fn combined(repo: &Repo, parents: &[ObjectId], tree: ObjectId, opts: &Options) -> Result<Vec<Change>, GitError> {
    let mut per_parent = Vec::with_capacity(parents.len());
    for parent in parents {
        let parent_tree = commit_tree(repo, *parent)?;
        let changes = filtered(repo, Some(parent_tree), tree, opts)?;
        let by_path: HashMap<Vec<u8>, Change> = changes.into_iter().map(|c| (c.path.clone(), c)).collect();
        per_parent.push(by_path);
    }
    let (first, rest) = per_parent.split_first_mut().expect("a merge has parents");
    let mut paths: Vec<Vec<u8>> = first.keys().filter(|p| rest.iter().all(|r| r.contains_key(*p))).cloned().collect();
    paths.sort();
    let mut out = Vec::with_capacity(paths.len() * parents.len());
    for path in paths {
        for changes in per_parent.iter_mut() {
            out.push(changes.remove(&path).expect("path is in every parent's diff"));
        }
    }
    Ok(out)
}

/// The threshold upstream asks for when renames are wanted (30%).
pub fn rename_score() -> u32 {
    rename::score_from_percent(30)
}
