//! Finding every repository of a storage, for WalkRepos.
//!
//! The walk goes depth first in byte order of names (as Go's
//! `filepath.WalkDir`, so answers come in upstream's order), reports each
//! directory that looks like a git directory and does not descend into it,
//! and skips the storage's private `+gitaly` directory. Directories that
//! vanish while the walk runs are ignored; other I/O errors end it.
//!
//! Only the names waiting to be visited are held (the sibling lists along
//! the current path), never the whole answer.

use super::{GIT_DIR_ENTRIES, PRIVATE_DIR};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A repository found by [`find_repositories`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRepository {
    /// Path relative to the storage root, `/`-separated.
    pub relative_path: String,
    /// Modification time of the repository directory itself.
    pub modified: SystemTime,
}

/// Walks `root` and hands each repository to `found`, stopping at the first
/// error `found` returns (e.g. the client went away).
pub fn find_repositories<E: From<io::Error>>(
    root: &Path,
    mut found: impl FnMut(FoundRepository) -> Result<(), E>,
) -> Result<(), E> {
    // Directories still to visit, in reverse order so that popping yields
    // them in byte order.
    let mut pending: Vec<(PathBuf, String)> = Vec::new();
    push_children(&mut pending, root, "")?;
    while let Some((path, relative_path)) = pending.pop() {
        if is_git_dir(&path) {
            let modified = match std::fs::metadata(&path).and_then(|m| m.modified()) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            found(FoundRepository { relative_path, modified })?;
            // Nothing inside a repository is another repository worth
            // reporting, and its object directories can be large.
            continue;
        }
        push_children(&mut pending, &path, &relative_path)?;
    }
    Ok(())
}

/// Upstream's test for a git directory: `objects`, `refs` and `HEAD` exist
/// (the same test [`super::Storages::repo`] applies). Any error reading them
/// means "not a repository", as upstream.
fn is_git_dir(path: &Path) -> bool {
    GIT_DIR_ENTRIES.iter().all(|entry| std::fs::symlink_metadata(path.join(entry)).is_ok())
}

/// Queues the subdirectories of `dir` (symbolic links and files are not
/// walked). A directory that no longer exists has none.
fn push_children(pending: &mut Vec<(PathBuf, String)>, dir: &Path, relative: &str) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut children = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let is_dir = match entry.file_type() {
            Ok(t) => t.is_dir(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if !is_dir {
            continue;
        }
        let name = entry.file_name();
        // Relative paths travel as protobuf strings; a directory whose name
        // is not UTF-8 cannot be named in any request, nor can anything
        // below it.
        let Some(name) = name.to_str() else {
            tracing::warn!(path = %entry.path().display(), "skipping directory with a non-UTF-8 name");
            continue;
        };
        if relative.is_empty() && name == PRIVATE_DIR {
            continue;
        }
        let child = if relative.is_empty() { name.to_owned() } else { format!("{relative}/{name}") };
        children.push((entry.path(), child));
    }
    // Reverse byte order of the last component, so the stack pops in order.
    children.sort_unstable_by(|a, b| b.0.file_name().cmp(&a.0.file_name()));
    pending.extend(children);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(root: &Path, rel: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.join("objects")).expect("objects");
        std::fs::create_dir_all(path.join("refs")).expect("refs");
        std::fs::write(path.join("HEAD"), "ref: refs/heads/main\n").expect("HEAD");
    }

    fn walk(root: &Path) -> Vec<String> {
        let mut found = Vec::new();
        find_repositories::<io::Error>(root, |r| {
            found.push(r.relative_path);
            Ok(())
        })
        .expect("walk");
        found
    }

    #[test]
    fn finds_repositories_in_order_and_skips_private_and_broken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        repo(root, "b.git");
        repo(root, "a/x.git");
        repo(root, "a.git");
        repo(root, "a.git/nested.git");
        repo(root, "+gitaly/tmp/r.git");
        repo(root, "sub/+gitaly/r.git");
        repo(root, "broken.git");
        std::fs::remove_dir(root.join("broken.git/objects")).expect("break");
        std::fs::write(root.join("file"), "x").expect("file");
        std::os::unix::fs::symlink(root.join("b.git"), root.join("link.git")).expect("symlink");
        assert_eq!(walk(root), ["a/x.git", "a.git", "b.git", "sub/+gitaly/r.git"]);
    }

    #[test]
    fn directories_vanishing_during_the_walk_are_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        repo(root, "a.git");
        repo(root, "b/x.git");
        repo(root, "c.git");
        repo(root, "d.git");
        let mut found = Vec::new();
        find_repositories::<io::Error>(root, |r| {
            if r.relative_path == "a.git" {
                // Already queued, not yet visited.
                std::fs::remove_dir_all(root.join("b")).expect("remove b");
                std::fs::remove_dir_all(root.join("c.git")).expect("remove c.git");
            }
            found.push(r.relative_path);
            Ok(())
        })
        .expect("walk");
        assert_eq!(found, ["a.git", "d.git"]);
    }

    #[test]
    fn missing_root_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(walk(&dir.path().join("gone")).is_empty());
        assert!(walk(dir.path()).is_empty());
    }

    #[test]
    fn stops_at_callback_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        repo(dir.path(), "a.git");
        repo(dir.path(), "b.git");
        let mut calls = 0;
        let r = find_repositories(dir.path(), |_| {
            calls += 1;
            Err(io::Error::other("stop"))
        });
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
