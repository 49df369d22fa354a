//! Repository snapshots: a tar archive of exactly the files that make up a
//! repository's references and objects, as GetSnapshot streams them and
//! ReplicateRepository unpacks them.
//!
//! Files are picked by name, so a snapshot can be taken of a damaged
//! repository. Left out on purpose: `config` (may hold credentials),
//! `custom_hooks` and `hooks` (site-specific), `info/*`, `logs/*`,
//! `objects/info/*` and anything else git fetch would not carry. Object
//! files of alternates inside the same storage are added under `objects/`,
//! so the snapshot stands on its own. Links are never followed.

use super::GitError;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

/// Whether `rel` (relative to an objects directory) is a loose object or a
/// packfile or its index, in either object format.
fn is_object_file(rel: &Path) -> bool {
    let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    match parts.as_slice() {
        ["pack", file] => {
            let Some(stem) = file.strip_prefix("pack-") else { return false };
            let Some(id) = stem.strip_suffix(".pack").or_else(|| stem.strip_suffix(".idx")) else { return false };
            (id.len() == 40 || id.len() == 64) && hex(id)
        }
        [dir, file] => dir.len() == 2 && hex(dir) && (file.len() == 38 || file.len() == 62) && hex(file),
        _ => false,
    }
}

/// Writes the snapshot of the repository at `repo` to `out`. Alternates are
/// followed only when they lie inside `storage_root`.
pub fn write(repo: &Path, storage_root: &Path, out: impl Write) -> Result<(), GitError> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    for file in ["HEAD", "packed-refs"] {
        add_file(&mut tar, &repo.join(file), Path::new(file))?;
    }
    for dir in ["refs", "branches"] {
        add_tree(&mut tar, repo, Path::new(dir), &|_| true)?;
    }
    add_tree(&mut tar, repo, Path::new("objects"), &|rel| rel.strip_prefix("objects").is_ok_and(is_object_file))?;
    add_file(&mut tar, &repo.join("shallow"), Path::new("shallow"))?;
    for alternate in alternates(repo, storage_root) {
        add_alternate(&mut tar, &alternate)?;
    }
    tar.into_inner().map_err(GitError::io("finish snapshot"))?.flush().map_err(GitError::io("write snapshot"))
}

/// One regular file, skipped when absent or not a regular file.
fn add_file<W: Write>(tar: &mut tar::Builder<W>, path: &Path, name: &Path) -> Result<(), GitError> {
    // O_NOFOLLOW: a link swapped in after listing is refused, not followed.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        // Vanished (a concurrent repack or ref update) or a link: left out.
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) =>
        {
            return Ok(());
        }
        Err(e) => return Err(GitError::Io { step: "open file for snapshot", source: e }),
    };
    let meta = file.metadata().map_err(GitError::io("stat file for snapshot"))?;
    if !meta.is_file() {
        return Ok(());
    }
    let mut header = header_for(&meta);
    header.set_size(meta.len());
    // A file that changes size while it is read would corrupt the archive;
    // exactly the stated length is copied.
    tar.append_data(&mut header, name, file.take(meta.len())).map_err(GitError::io("add file to snapshot"))
}

fn header_for(meta: &std::fs::Metadata) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_mode(meta.permissions().mode() & 0o7777);
    header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
    header
}

/// A directory below `base` with every subdirectory and the regular files
/// `keep` accepts (paths relative to `base`).
fn add_tree<W: Write>(
    tar: &mut tar::Builder<W>,
    base: &Path,
    rel: &Path,
    keep: &dyn Fn(&Path) -> bool,
) -> Result<(), GitError> {
    let path = base.join(rel);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(GitError::Io { step: "stat directory for snapshot", source: e }),
    };
    if meta.is_file() {
        return if keep(rel) { add_file(tar, &path, rel) } else { Ok(()) };
    }
    if !meta.is_dir() {
        return Ok(());
    }
    // Object directories are not listed themselves (only their files are
    // picked), matching upstream's pattern walk; reference directories are.
    if keep(rel) {
        let mut header = header_for(&meta);
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        tar.append_data(&mut header, rel, std::io::empty()).map_err(GitError::io("add directory to snapshot"))?;
    }
    let mut entries: Vec<_> = match std::fs::read_dir(&path) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(GitError::Io { step: "list directory for snapshot", source: e }),
    };
    entries.sort();
    for name in entries {
        add_tree(tar, base, &rel.join(name), keep)?;
    }
    Ok(())
}

/// The alternate object directories of `repo` that exist and lie inside
/// `storage_root`; others are ignored (upstream warns and skips them too).
fn alternates(repo: &Path, storage_root: &Path) -> Vec<PathBuf> {
    let objects = repo.join("objects");
    let Ok(text) = std::fs::read_to_string(objects.join("info").join("alternates")) else { return Vec::new() };
    let Ok(root) = storage_root.canonicalize() else { return Vec::new() };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| objects.join(l).canonicalize().ok())
        .filter(|p| p.starts_with(&root) && p.is_dir())
        .collect()
}

/// The object files of an alternate, named as if they were the repository's.
fn add_alternate<W: Write>(tar: &mut tar::Builder<W>, dir: &Path) -> Result<(), GitError> {
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(dir.join(&rel)) else { continue };
        let mut names: Vec<_> = rd.filter_map(|e| e.ok()).collect();
        names.sort_by_key(std::fs::DirEntry::file_name);
        for entry in names {
            let child = rel.join(entry.file_name());
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(child),
                Ok(t) if t.is_file() && is_object_file(&child) => {
                    add_file(tar, &entry.path(), &Path::new("objects").join(&child))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Unpacks a snapshot into the repository directory `dest` (which exists).
/// Only directories and regular files below `dest` are accepted; anything
/// else (links, devices, paths leaving `dest`) fails the whole extraction.
pub fn extract(archive: impl Read, dest: &Path) -> Result<(), GitError> {
    let mut ar = tar::Archive::new(archive);
    let invalid = |e: std::io::Error| GitError::Invalid(format!("read snapshot: {e}"));
    for entry in ar.entries().map_err(invalid)? {
        let mut entry = entry.map_err(invalid)?;
        let raw = entry.path().map_err(invalid)?.into_owned();
        let mut rel = PathBuf::new();
        for c in raw.components() {
            match c {
                Component::Normal(p) => rel.push(p),
                Component::CurDir => {}
                _ => return Err(GitError::Invalid(format!("snapshot member {raw:?} leaves the repository"))),
            }
        }
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(&rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&target).map_err(GitError::io("create snapshot directory"))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(GitError::io("create snapshot directory"))?;
                }
                let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
                // Replaces what `git init` wrote (HEAD); removing first means
                // a link in its place is never written through.
                match std::fs::remove_file(&target) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(GitError::Io { step: "replace snapshot file", source: e }),
                }
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode | 0o400)
                    .open(&target)
                    .map_err(GitError::io("create snapshot file"))?;
                std::io::copy(&mut entry, &mut file).map_err(GitError::io("write snapshot file"))?;
            }
            other => {
                return Err(GitError::Invalid(format!("snapshot member {raw:?} has unsupported type {other:?}")));
            }
        }
    }
    Ok(())
}

/// Writes `data` to `path` atomically (a sibling lock file renamed over it),
/// failing if another writer holds the lock. Used for `config`.
pub fn replace_file(path: &Path, data: &[u8]) -> Result<(), GitError> {
    let mut lock_name = path.as_os_str().to_owned();
    lock_name.push(".lock");
    let lock = PathBuf::from(lock_name);
    let mut file = match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(&lock) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(GitError::ReferenceLocked(format!("{} is locked", path.display())));
        }
        Err(e) => return Err(GitError::Io { step: "lock file", source: e }),
    };
    let written = file.write_all(data).and_then(|()| file.sync_all()).and_then(|()| std::fs::rename(&lock, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&lock);
        return Err(GitError::Io { step: "replace file", source: e });
    }
    if let Some(parent) = path.parent() {
        File::open(parent).and_then(|d| d.sync_all()).map_err(GitError::io("sync directory"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_file_names() {
        let sha1 = "a".repeat(38);
        let sha256 = "b".repeat(62);
        assert!(is_object_file(&Path::new("ab").join(&sha1)));
        assert!(is_object_file(&Path::new("ab").join(&sha256)));
        assert!(is_object_file(Path::new(&format!("pack/pack-{}.pack", "c".repeat(40)))));
        assert!(is_object_file(Path::new(&format!("pack/pack-{}.idx", "c".repeat(64)))));
        assert!(!is_object_file(Path::new(&format!("pack/pack-{}.bitmap", "c".repeat(40)))));
        assert!(!is_object_file(Path::new("info/alternates")));
        assert!(!is_object_file(&Path::new("zz").join(&sha1)));
    }

    #[test]
    fn hostile_snapshots_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_link_name("/etc").expect("link");
        b.append_data(&mut h, "refs", std::io::empty()).expect("append");
        let data = b.into_inner().expect("finish");
        assert!(extract(data.as_slice(), dir.path()).is_err());
        assert!(std::fs::symlink_metadata(dir.path().join("refs")).is_err());
    }
}
