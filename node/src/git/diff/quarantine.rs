//! A throw-away object directory layered over a repository's objects, for
//! the few objects a diff needs that the repository does not have (the
//! empty blob of an added file, trees pairing arbitrary blobs). git sees
//! it through `GIT_OBJECT_DIRECTORY` with the repository's objects as
//! alternates; nothing is written into the repository, and the directory
//! is removed when dropped.

use super::cli::Target;
use crate::git::GitError;
use crate::git::objects::ObjectId;
use gix::objs::Write as _;
use std::path::Path;

/// A temporary object directory.
pub struct Quarantine {
    dir: tempfile::TempDir,
    store: gix::odb::loose::Store,
}

impl std::fmt::Debug for Quarantine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quarantine").field("dir", &self.dir.path()).finish()
    }
}

fn write_error(e: impl std::fmt::Display) -> GitError {
    GitError::Io { step: "write temporary object", source: std::io::Error::other(e.to_string()) }
}

impl Quarantine {
    /// Creates the directory below `parent`.
    pub fn new(parent: &Path, kind: gix::hash::Kind) -> Result<Self, GitError> {
        std::fs::create_dir_all(parent).map_err(GitError::io("create temporary directory"))?;
        let dir = tempfile::Builder::new()
            .prefix("diff-objects-")
            .tempdir_in(parent)
            .map_err(GitError::io("create temporary directory"))?;
        let store = gix::odb::loose::Store::at(dir.path(), kind);
        Ok(Self { dir, store })
    }

    /// Writes a blob.
    pub fn write_blob(&self, data: &[u8]) -> Result<ObjectId, GitError> {
        self.store.write_buf(gix::objs::Kind::Blob, data).map_err(write_error)
    }

    /// Writes a tree of `(mode, name, id)` entries, given in git's order.
    pub fn write_tree(&self, entries: Vec<(u32, Vec<u8>, ObjectId)>) -> Result<ObjectId, GitError> {
        let mut tree = gix::objs::Tree::empty();
        for (mode, name, oid) in entries {
            let mode = gix::objs::tree::EntryMode::try_from(mode)
                .map_err(|m| GitError::Invalid(format!("invalid file mode {m:o}")))?;
            tree.entries.push(gix::objs::tree::Entry { mode, filename: name.into(), oid });
        }
        self.store.write(&tree).map_err(write_error)
    }

    /// `base` with this directory in front of its objects.
    pub fn over(&self, base: &Target) -> Target {
        let mut alternates = vec![base.object_dir.clone().unwrap_or_else(|| base.git_dir.join("objects"))];
        alternates.extend(base.alternate_object_dirs.iter().cloned());
        Target {
            git_dir: base.git_dir.clone(),
            object_dir: Some(self.dir.path().to_owned()),
            alternate_object_dirs: alternates,
        }
    }
}
