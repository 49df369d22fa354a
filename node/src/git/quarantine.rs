//! A quarantine for objects that writes on a user's behalf create (commits,
//! trees, tags): git writes them into a temporary object directory inside
//! the repository's `objects/`, hooks inspect them there, and they join the
//! repository only when the hooks accepted the change. A refused or failed
//! write leaves nothing behind: dropping the quarantine removes it.

use std::path::{Path, PathBuf};

use super::{GitCommand, GitError, Repo, Repositories};

/// Prefix of quarantine directories; housekeeping removes old ones that a
/// crashed process left.
pub const PREFIX: &str = "tmp_objdir-incoming-";

/// A temporary object directory whose alternate is the repository's.
#[derive(Debug)]
pub struct QuarantineDir {
    dir: tempfile::TempDir,
    objects: PathBuf,
}

impl QuarantineDir {
    /// A new, empty quarantine for the repository at `repo`.
    pub fn new(repo: &Path) -> Result<Self, GitError> {
        let objects = repo.join("objects");
        let dir = tempfile::Builder::new()
            .prefix(PREFIX)
            .tempdir_in(&objects)
            .map_err(|e| GitError::Io { step: "create quarantine directory", source: e })?;
        Ok(Self { dir, objects })
    }

    /// The quarantine directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `cmd` writing its objects into the quarantine and reading the
    /// repository's objects (and their alternates) too.
    pub fn apply(&self, cmd: GitCommand) -> GitCommand {
        self.objects().apply(cmd)
    }

    /// The quarantine as git-layer functions taking a request's object
    /// directories read it.
    pub fn objects(&self) -> super::repo::Quarantine {
        super::repo::Quarantine { object_dir: Some(self.dir.path().to_owned()), alternates: vec![self.objects.clone()] }
    }

    /// The environment hooks see while the objects are quarantined, as
    /// `KEY=value` lines.
    pub fn hook_env(&self) -> Vec<String> {
        vec![
            format!("GIT_OBJECT_DIRECTORY={}", self.dir.path().display()),
            format!("GIT_ALTERNATE_OBJECT_DIRECTORIES={}", self.objects.display()),
        ]
    }

    /// The repository at `repo` reading quarantined objects too.
    pub fn open(&self, repos: &Repositories, repo: &Path) -> Result<Repo, GitError> {
        repos.open_with_objects(repo, Some(self.dir.path()), std::slice::from_ref(&self.objects), self.dir.path())
    }

    /// Moves every quarantined object into the repository. Pack data moves
    /// before its index so that a reader never sees an index without its
    /// pack; an object the repository already has stays as it is.
    pub fn migrate(self) -> Result<(), GitError> {
        let io = |step| move |source| GitError::Io { step, source };
        let mut files = Vec::new();
        collect(self.dir.path(), self.dir.path(), &mut files).map_err(io("list quarantined objects"))?;
        files.sort_by_key(|rel| (priority(rel), rel.clone()));
        for rel in files {
            let target = self.objects.join(&rel);
            if target.exists() {
                continue;
            }
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io("create object directory"))?;
            }
            std::fs::rename(self.dir.path().join(&rel), &target).map_err(io("migrate quarantined object"))?;
        }
        Ok(())
    }
}

/// Every file under `dir`, relative to `root`; the scratch views that
/// [`QuarantineDir::open`] makes are not objects.
fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("objects-view-") {
            continue;
        }
        if entry.file_type()?.is_dir() {
            collect(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_owned());
        }
    }
    Ok(())
}

fn priority(rel: &Path) -> u8 {
    match rel.extension().and_then(|e| e.to_str()) {
        Some("pack") => 0,
        Some("rev") | Some("bitmap") => 1,
        Some("idx") => 3,
        _ if rel.starts_with("pack") => 2,
        // Loose objects after packs, as git migrates them.
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_moves_objects_and_leaves_nothing_behind() {
        let repo = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(repo.path().join("objects/pack")).expect("mkdir");
        std::fs::create_dir_all(repo.path().join("objects/ab")).expect("mkdir");
        std::fs::write(repo.path().join("objects/ab/existing"), b"old").expect("write");
        let q = QuarantineDir::new(repo.path()).expect("quarantine");
        let dir = q.dir().to_owned();
        std::fs::create_dir_all(dir.join("ab")).expect("mkdir");
        std::fs::create_dir_all(dir.join("pack")).expect("mkdir");
        std::fs::write(dir.join("ab/cdef"), b"loose").expect("write");
        std::fs::write(dir.join("ab/existing"), b"new").expect("write");
        std::fs::write(dir.join("pack/pack-1.pack"), b"p").expect("write");
        std::fs::write(dir.join("pack/pack-1.idx"), b"i").expect("write");
        q.migrate().expect("migrate");
        let objects = repo.path().join("objects");
        assert_eq!(std::fs::read(objects.join("ab/cdef")).expect("read"), b"loose");
        assert_eq!(std::fs::read(objects.join("ab/existing")).expect("read"), b"old");
        assert!(objects.join("pack/pack-1.pack").exists() && objects.join("pack/pack-1.idx").exists());
        assert!(!dir.exists(), "quarantine removed");
    }

    #[test]
    fn dropping_discards_the_objects() {
        let repo = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(repo.path().join("objects")).expect("mkdir");
        let q = QuarantineDir::new(repo.path()).expect("quarantine");
        let dir = q.dir().to_owned();
        std::fs::write(dir.join("x"), b"x").expect("write");
        drop(q);
        assert!(!dir.exists());
        assert_eq!(std::fs::read_dir(repo.path().join("objects")).expect("ls").count(), 0);
    }

    #[test]
    fn pack_data_moves_before_its_index() {
        let mut v = [PathBuf::from("ab/cd"), PathBuf::from("pack/a.idx"), PathBuf::from("pack/a.pack")];
        v.sort_by_key(|rel| (priority(rel), rel.clone()));
        assert_eq!(v[0], PathBuf::from("pack/a.pack"));
        assert_eq!(v[1], PathBuf::from("pack/a.idx"));
    }
}
