//! Tree-to-tree diffs in-process, answering like `git diff-tree -r` (and
//! `git diff --raw` between commits): changed files only, in git's path
//! order, optionally limited by pathspecs (git's pathspec rules, magic
//! included) and with git's rename detection.

use super::{Change, Side, Status, rename};
use crate::git::objects::{self, Kind, ObjectId};
use crate::git::{GitError, Repo};
use gix::bstr::ByteSlice as _;

/// Pathspecs limiting a diff, as after `--` on git's command line.
pub struct Pathspec {
    search: gix::pathspec::Search,
}

impl std::fmt::Debug for Pathspec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pathspec").finish_non_exhaustive()
    }
}

impl Pathspec {
    /// Parses `specs` relative to the repository's top (git's rules: a path
    /// matches itself and everything below it, wildcards match across `/`,
    /// `:(magic)` prefixes). Errors are git's fatal pathspec errors: an
    /// empty spec, bad magic, or a path outside the repository.
    pub fn parse(repo: &Repo, specs: &[Vec<u8>]) -> Result<Self, String> {
        let mut patterns = Vec::with_capacity(specs.len());
        for spec in specs {
            if spec.is_empty() {
                return Err("empty string is not a valid pathspec".into());
            }
            let pattern = gix::pathspec::parse(spec, gix::pathspec::Defaults::default())
                .map_err(|e| format!("invalid pathspec {:?}: {e}", spec.as_bstr()))?;
            patterns.push(pattern);
        }
        let root = repo.gix().git_dir().to_owned();
        let search =
            gix::pathspec::Search::from_specs(patterns, None, &root).map_err(|e| format!("invalid pathspec: {e}"))?;
        Ok(Self { search })
    }

    /// Whether a file's path is selected.
    pub fn matches(&mut self, path: &[u8]) -> bool {
        self.search
            .pattern_matching_relative_path(path.as_bstr(), Some(false), &mut |_, _, _, _| false)
            .is_some_and(|m| !m.is_excluded())
    }
}

/// git's canonical form of a tree entry mode (regular files are 644 or
/// 755 whatever their stored permission bits).
fn canonical_mode(mode: u16) -> u32 {
    let mode = u32::from(mode);
    match mode & 0o170000 {
        0o100000 if mode & 0o111 != 0 => 0o100755,
        0o100000 => 0o100644,
        0o120000 => 0o120000,
        0o040000 => 0o040000,
        _ => 0o160000,
    }
}

/// The tree a revision's object leads to (commits and tags peeled).
pub fn tree_of(repo: &Repo, id: ObjectId) -> Result<Option<ObjectId>, GitError> {
    let Some(obj) = objects::read(repo, id)? else { return Ok(None) };
    match obj.kind {
        Kind::Tree => Ok(Some(id)),
        Kind::Commit => {
            let commit = objects::parse_commit(&id, &obj.data);
            Ok(objects::parse_oid(repo, commit.tree.as_bytes()))
        }
        Kind::Tag => match objects::peel_to(repo, id, Kind::Commit)? {
            Some(commit) => tree_of(repo, commit),
            None => Ok(objects::peel_to(repo, id, Kind::Tree)?),
        },
        Kind::Blob => Ok(None),
    }
}

fn tree_data(repo: &Repo, tree: Option<ObjectId>) -> Result<Vec<u8>, GitError> {
    let Some(id) = tree else { return Ok(Vec::new()) };
    match objects::read(repo, id)? {
        Some(o) if o.kind == Kind::Tree => Ok(o.data),
        _ => Err(GitError::RevisionNotFound(id.to_string())),
    }
}

/// Files that differ between two trees (`None`: the empty tree), in git's
/// order. With `renames` (a threshold in [`rename::MAX_SCORE`] units),
/// deletions and additions are paired into renames as git pairs them.
pub fn diff_trees(
    repo: &Repo,
    old: Option<ObjectId>,
    new: Option<ObjectId>,
    pathspec: Option<&mut Pathspec>,
    renames: Option<u32>,
) -> Result<Vec<Change>, GitError> {
    let kind = repo.gix().object_hash();
    let (old_data, new_data) = (tree_data(repo, old)?, tree_data(repo, new)?);
    let mut recorder = gix::diff::tree::Recorder::default();
    gix::diff::tree(
        gix::objs::TreeRefIter::from_bytes(&old_data, kind),
        gix::objs::TreeRefIter::from_bytes(&new_data, kind),
        gix::diff::tree::State::default(),
        &repo.gix().objects,
        &mut recorder,
    )
    .map_err(|e| GitError::gix("diff trees", e))?;
    let mut pathspec = pathspec;
    let mut changes = Vec::new();
    for record in recorder.records {
        use gix::diff::tree::recorder::Change as R;
        let change = match record {
            R::Addition { entry_mode, oid, path, .. } if !entry_mode.is_tree() => Change {
                status: Status::Added,
                old: None,
                new: Some(Side { mode: canonical_mode(entry_mode.value()), id: oid }),
                old_path: path.to_vec(),
                path: path.into(),
                score: 0,
            },
            R::Deletion { entry_mode, oid, path, .. } if !entry_mode.is_tree() => Change {
                status: Status::Deleted,
                old: Some(Side { mode: canonical_mode(entry_mode.value()), id: oid }),
                new: None,
                old_path: path.to_vec(),
                path: path.into(),
                score: 0,
            },
            R::Modification { previous_entry_mode, previous_oid, entry_mode, oid, path }
                if !entry_mode.is_tree() && !previous_entry_mode.is_tree() =>
            {
                let (old_mode, new_mode) =
                    (canonical_mode(previous_entry_mode.value()), canonical_mode(entry_mode.value()));
                if old_mode == new_mode && previous_oid == oid {
                    continue;
                }
                let status =
                    if old_mode & 0o170000 == new_mode & 0o170000 { Status::Modified } else { Status::TypeChanged };
                Change {
                    status,
                    old: Some(Side { mode: old_mode, id: previous_oid }),
                    new: Some(Side { mode: new_mode, id: oid }),
                    old_path: path.to_vec(),
                    path: path.into(),
                    score: 0,
                }
            }
            _ => continue,
        };
        if let Some(spec) = pathspec.as_deref_mut()
            && !spec.matches(&change.path)
        {
            continue;
        }
        changes.push(change);
    }
    // gitoxide walks breadth first; git lists files depth first in tree
    // order, which for files is byte order of their full paths.
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    match renames {
        Some(score) => rename::detect(repo, changes, score, rename::DEFAULT_LIMIT),
        None => Ok(changes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_canonical() {
        assert_eq!(canonical_mode(0o100664), 0o100644);
        assert_eq!(canonical_mode(0o100775), 0o100755);
        assert_eq!(canonical_mode(0o120000), 0o120000);
        assert_eq!(canonical_mode(0o160000), 0o160000);
        assert_eq!(canonical_mode(0o040000), 0o040000);
    }
}
