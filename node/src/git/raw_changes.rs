//! Raw changes between two trees: what `git diff --raw -z <from> <to>`
//! lists (renames detected at git's default 50% similarity, no copies),
//! with each side's blob id and size, computed in-process.

use super::objects::{self, ObjectId};
use super::{GitError, Repo, search, tree};

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Added,
    Deleted,
    Modified,
    Renamed,
    TypeChanged,
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawChange {
    pub operation: Operation,
    /// Empty for deletions.
    pub new_path: Vec<u8>,
    /// Empty for additions.
    pub old_path: Vec<u8>,
    /// Tree entry modes (0 for the missing side).
    pub old_mode: u32,
    pub new_mode: u32,
    /// The new blob (the old one for deletions); `None` for submodules.
    pub blob: Option<(ObjectId, u64)>,
}

/// A revision that names no object (missing, ambiguous or malformed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unresolved;

/// Resolves a side: `Ok(None)` for the zero id (nothing).
pub fn resolve_side(repo: &Repo, revision: &str) -> Result<Option<ObjectId>, Unresolved> {
    if repo.object_format().is_zero_oid(revision.as_bytes()) {
        return Ok(None);
    }
    objects::resolve(repo, revision.as_bytes()).map(Some).ok_or(Unresolved)
}

/// Changes from `from` (nothing: the empty tree) to `to`, in git's output
/// order. Fails when a side is not tree-ish (git diff would too).
pub fn changes(repo: &Repo, from: Option<ObjectId>, to: ObjectId) -> Result<Vec<RawChange>, GitError> {
    let r = repo.gix();
    let tree = |id: Option<ObjectId>| -> Result<Option<gix::Tree<'_>>, GitError> {
        let Some(id) = id else { return Ok(None) };
        let tree_id =
            search::tree_of(repo, id)?.ok_or_else(|| GitError::Invalid(format!("{id} does not name a tree")))?;
        r.find_tree(tree_id).map(Some).map_err(|e| GitError::gix("read tree", e))
    };
    let old = tree(from)?;
    let new = tree(Some(to))?;
    let mut opts = gix::diff::Options::default();
    opts.track_path();
    opts.track_rewrites(Some(gix::diff::Rewrites {
        copies: None,
        percentage: Some(0.5),
        limit: 1000,
        track_empty: false,
    }));
    let diff = r.diff_tree_to_tree(old.as_ref(), new.as_ref(), opts).map_err(|e| GitError::gix("diff trees", e))?;
    let mut out = Vec::with_capacity(diff.len());
    let blob = |mode: u32, id: ObjectId| -> Result<Option<(ObjectId, u64)>, GitError> {
        if mode & 0o170000 == tree::MODE_COMMIT {
            return Ok(None);
        }
        let (_, size) =
            objects::header(repo, id)?.ok_or_else(|| GitError::Invalid(format!("object {id} is missing")))?;
        Ok(Some((id, size)))
    };
    let is_tree = |mode: u32| mode & 0o170000 == tree::MODE_TREE;
    for change in diff {
        use gix::object::tree::diff::ChangeDetached as C;
        match change {
            C::Addition { location, entry_mode, id, .. } => {
                let mode = u32::from(entry_mode.value());
                if !is_tree(mode) {
                    out.push(added(location.into(), mode, blob(mode, id)?));
                }
            }
            C::Deletion { location, entry_mode, id, .. } => {
                let mode = u32::from(entry_mode.value());
                if !is_tree(mode) {
                    out.push(deleted(location.into(), mode, blob(mode, id)?));
                }
            }
            C::Modification { location, previous_entry_mode, previous_id, entry_mode, id } => {
                let (old_mode, new_mode) = (u32::from(previous_entry_mode.value()), u32::from(entry_mode.value()));
                let path: Vec<u8> = location.into();
                match (is_tree(old_mode), is_tree(new_mode)) {
                    (true, true) => {}
                    // A file replaced by a directory (or back) is a deletion
                    // and an addition for git; the directory's side is
                    // listed entry by entry.
                    (false, true) => out.push(deleted(path, old_mode, blob(old_mode, previous_id)?)),
                    (true, false) => out.push(added(path, new_mode, blob(new_mode, id)?)),
                    (false, false) => {
                        let operation = if old_mode & 0o170000 == new_mode & 0o170000 {
                            Operation::Modified
                        } else {
                            Operation::TypeChanged
                        };
                        out.push(RawChange {
                            operation,
                            new_path: path.clone(),
                            old_path: path,
                            old_mode,
                            new_mode,
                            blob: blob(new_mode, id)?,
                        });
                    }
                }
            }
            C::Rewrite { source_location, source_entry_mode, entry_mode, id, location, copy, .. } => {
                let (old_mode, new_mode) = (u32::from(source_entry_mode.value()), u32::from(entry_mode.value()));
                out.push(RawChange {
                    // Copies are not tracked; the arm only completes the match.
                    operation: if copy { Operation::Added } else { Operation::Renamed },
                    new_path: location.into(),
                    old_path: source_location.into(),
                    old_mode,
                    new_mode,
                    blob: blob(new_mode, id)?,
                });
            }
        }
    }
    // git lists changes by path, a rename at its destination.
    out.sort_by(|a, b| position(a).cmp(position(b)));
    Ok(out)
}

fn position(c: &RawChange) -> &[u8] {
    if c.operation == Operation::Deleted { &c.old_path } else { &c.new_path }
}

fn added(path: Vec<u8>, mode: u32, blob: Option<(ObjectId, u64)>) -> RawChange {
    RawChange { operation: Operation::Added, new_path: path, old_path: Vec::new(), old_mode: 0, new_mode: mode, blob }
}

fn deleted(path: Vec<u8>, mode: u32, blob: Option<(ObjectId, u64)>) -> RawChange {
    RawChange { operation: Operation::Deleted, new_path: Vec::new(), old_path: path, old_mode: mode, new_mode: 0, blob }
}
