//! A repository's custom server hooks (`<repo>/custom_hooks`), exchanged as
//! tar archives whose members live under `custom_hooks/`.
//!
//! Setting hooks extracts into a temporary directory first and swaps the
//! whole directory in, so hooks are never half-updated. Only directories and
//! regular files are accepted: a link in an archive could point anywhere.

use super::GitError;
use crate::transaction::Vote;
use sha1::Digest as _;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

/// Directory name inside the repository and prefix inside archives.
pub const DIR: &str = "custom_hooks";

/// The hooks of the repository at `repo` as a tar archive; empty when the
/// repository has none.
pub fn archive(repo: &Path) -> Result<Vec<u8>, GitError> {
    let hooks = repo.join(DIR);
    match std::fs::symlink_metadata(&hooks) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(GitError::Io { step: "stat custom hooks", source: e }),
        Ok(_) => {}
    }
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    builder.append_dir_all(DIR, &hooks).map_err(GitError::io("archive custom hooks"))?;
    builder.into_inner().map_err(GitError::io("archive custom hooks"))
}

/// The path of an archive member inside `custom_hooks`, or `None` for
/// members outside it (ignored, as upstream extracts only that directory).
fn member_path(raw: &Path) -> Result<Option<PathBuf>, GitError> {
    let mut parts = Vec::new();
    for c in raw.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(p) => parts.push(p.to_owned()),
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(GitError::Invalid(format!("archive member {raw:?} escapes the hooks directory")));
            }
        }
    }
    if parts.first().is_none_or(|p| p != DIR) {
        return Ok(None);
    }
    Ok(Some(parts.iter().skip(1).collect()))
}

fn extract(archive: &[u8], dest: &Path) -> Result<(), GitError> {
    std::fs::create_dir_all(dest).map_err(GitError::io("create hooks directory"))?;
    let mut ar = tar::Archive::new(archive);
    let entries = ar.entries().map_err(|e| GitError::Invalid(format!("read hooks archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| GitError::Invalid(format!("read hooks archive: {e}")))?;
        let raw = entry.path().map_err(|e| GitError::Invalid(format!("read hooks archive: {e}")))?.into_owned();
        let Some(rel) = member_path(&raw)? else { continue };
        let target = dest.join(&rel);
        let mode = entry.header().mode().unwrap_or(0o755) & 0o777;
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&target).map_err(GitError::io("create hooks directory"))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(GitError::io("create hooks directory"))?;
                }
                let mut data = Vec::new();
                entry.read_to_end(&mut data).map_err(|e| GitError::Invalid(format!("read hooks archive: {e}")))?;
                std::fs::write(&target, &data).map_err(GitError::io("write hook"))?;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
                    .map_err(GitError::io("set hook permissions"))?;
            }
            other => {
                return Err(GitError::Invalid(format!(
                    "archive member {raw:?} has unsupported type {other:?}: only files and directories are allowed"
                )));
            }
        }
    }
    Ok(())
}

/// Replaces the hooks of the repository at `repo` with the archive's
/// `custom_hooks/` members (an empty archive removes all hooks).
pub fn replace(repo: &Path, tmp_root: &Path, archive: &[u8]) -> Result<(), GitError> {
    stage(repo, tmp_root, archive)?.install()?;
    Ok(())
}

/// New hooks extracted next to the repository, its hooks locked until this
/// is dropped; [`Staged::install`] swaps them in. Dropping it without
/// installing changes nothing.
#[derive(Debug)]
pub struct Staged {
    repo: PathBuf,
    staging: tempfile::TempDir,
    new_hooks: PathBuf,
    _lock: LockFile,
}

/// Locks the hooks of the repository at `repo` and extracts the archive's
/// `custom_hooks/` members aside (an empty archive: no hooks).
pub fn stage(repo: &Path, tmp_root: &Path, archive: &[u8]) -> Result<Staged, GitError> {
    let lock_path = repo.join(format!("{DIR}.lock"));
    let lock = match std::fs::OpenOptions::new().write(true).create_new(true).open(&lock_path) {
        Ok(f) => LockFile(lock_path, f),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(GitError::ReferenceLocked("custom hooks are being updated concurrently".into()));
        }
        Err(e) => return Err(GitError::Io { step: "lock custom hooks", source: e }),
    };
    std::fs::create_dir_all(tmp_root).map_err(GitError::io("create temporary directory"))?;
    let staging = tempfile::Builder::new()
        .prefix("hooks-")
        .tempdir_in(tmp_root)
        .map_err(GitError::io("create temporary directory"))?;
    let new_hooks = staging.path().join(DIR);
    if archive.is_empty() {
        std::fs::create_dir_all(&new_hooks).map_err(GitError::io("create hooks directory"))?;
    } else {
        extract(archive, &new_hooks)?;
    }
    std::fs::set_permissions(&new_hooks, std::fs::Permissions::from_mode(0o755))
        .map_err(GitError::io("set hooks directory permissions"))?;
    Ok(Staged { repo: repo.to_owned(), staging, new_hooks, _lock: lock })
}

impl Staged {
    /// The vote on the new hooks (see [`directory_vote`]).
    pub fn vote(&self) -> Result<Vote, GitError> {
        directory_vote(&self.new_hooks).map_err(GitError::io("hash new hooks"))
    }

    /// Swaps the new hooks in; the vote on the hooks now installed.
    pub fn install(&self) -> Result<Vote, GitError> {
        let current = self.repo.join(DIR);
        let previous = self.staging.path().join("previous");
        match std::fs::rename(&current, &previous) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(GitError::Io { step: "move current hooks aside", source: e }),
        }
        std::fs::rename(&self.new_hooks, &current).map_err(GitError::io("move new hooks into place"))?;
        File::open(&self.repo).and_then(|d| d.sync_all()).map_err(GitError::io("sync repository directory"))?;
        directory_vote(&current).map_err(GitError::io("hash installed hooks"))
    }
}

/// The vote on a hooks directory, as upstream computes it: for every entry
/// in lexical path order (the directory itself first, as `.`), its path
/// relative to `dir`, its mode as Go reports it (big-endian, the directory
/// bit on top), and a file's contents.
pub fn directory_vote(dir: &Path) -> std::io::Result<Vote> {
    fn entry(path: &Path, rel: &Path, hash: &mut sha1::Sha1) -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(path)?;
        let name = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
        hash.update(name.as_os_str().as_encoded_bytes());
        let mode = meta.permissions().mode() & 0o777 | if meta.is_dir() { GO_MODE_DIR } else { 0 };
        hash.update(mode.to_be_bytes());
        if meta.is_dir() {
            let mut children: Vec<_> = std::fs::read_dir(path)?.collect::<Result<_, _>>()?;
            children.sort_by_key(|e| e.file_name());
            for child in children {
                entry(&child.path(), &rel.join(child.file_name()), hash)?;
            }
        } else {
            std::io::copy(&mut File::open(path)?, hash)?;
        }
        Ok(())
    }
    let mut hash = sha1::Sha1::new();
    entry(dir, Path::new(""), &mut hash)?;
    Ok(hash.finalize().into())
}

/// Go's `fs.ModeDir`.
const GO_MODE_DIR: u32 = 1 << 31;

#[derive(Debug)]
struct LockFile(PathBuf, #[allow(dead_code, reason = "held open for the lock's lifetime")] File);

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8], tar::EntryType)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data, kind) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            if *kind == tar::EntryType::Symlink {
                h.set_link_name("/etc/passwd").expect("link name");
            }
            // Bypass the builder's own path checks to test hostile names.
            let name = h.as_old_mut().name.as_mut();
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, *data).expect("append");
        }
        b.into_inner().expect("finish")
    }

    #[test]
    fn round_trip_and_replace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo.git");
        std::fs::create_dir(&repo).expect("mkdir");
        assert!(archive(&repo).expect("empty").is_empty());
        let input = tar_of(&[
            ("custom_hooks/", b"", tar::EntryType::Directory),
            ("custom_hooks/pre-receive", b"#!/bin/sh\nexit 0\n", tar::EntryType::Regular),
            ("other/ignored", b"x", tar::EntryType::Regular),
        ]);
        replace(&repo, &dir.path().join("tmp"), &input).expect("set");
        let hook = repo.join("custom_hooks/pre-receive");
        assert_eq!(std::fs::read(&hook).expect("hook"), b"#!/bin/sh\nexit 0\n");
        assert_eq!(std::fs::metadata(&hook).expect("meta").permissions().mode() & 0o777, 0o755);
        assert!(!dir.path().join("repo.git/other").exists());
        let out = archive(&repo).expect("archive");
        let names: Vec<String> = tar::Archive::new(out.as_slice())
            .entries()
            .expect("entries")
            .map(|e| e.expect("entry").path().expect("path").display().to_string())
            .collect();
        assert!(names.contains(&"custom_hooks/pre-receive".to_owned()), "{names:?}");
        replace(&repo, &dir.path().join("tmp"), &[]).expect("clear");
        assert!(!hook.exists());
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).expect("tmp").count(), 0, "staging cleaned up");
    }

    #[test]
    fn hostile_archives_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo.git");
        std::fs::create_dir_all(repo.join("custom_hooks")).expect("mkdir");
        std::fs::write(repo.join("custom_hooks/update"), "old").expect("hook");
        for bad in [
            tar_of(&[("custom_hooks/../../escape", b"x", tar::EntryType::Regular)]),
            tar_of(&[("custom_hooks/link", b"", tar::EntryType::Symlink)]),
            b"this is not a tar archive at all, but long enough to be read as a header block.....".repeat(8),
        ] {
            assert!(replace(&repo, &dir.path().join("tmp"), &bad).is_err());
            assert_eq!(std::fs::read(repo.join("custom_hooks/update")).expect("kept"), b"old");
        }
        assert!(!dir.path().join("escape").exists());
    }
}
