//! Storages and the repositories inside them.
//!
//! A request names a repository by storage name and relative path. This
//! module turns that into an absolute path that is guaranteed to lie inside
//! the storage: lexically (no `..` escape), physically (no symlink escape)
//! and outside the node's private `+gitaly` area. Every handler goes through
//! [`Storages::repo`] or [`Storages::repo_for_create`]; nothing else joins
//! request strings onto storage paths.

pub mod metadata;
pub mod walk;

use crate::config;
use crate::error::{Error, Result};
use cairn_proto::gitaly::Repository;
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

/// Private per-storage directory (temporary files, caches). `+` cannot appear
/// in GitLab project paths, so it never collides with a repository.
pub const PRIVATE_DIR: &str = "+gitaly";

/// What a directory must contain to count as a git directory (upstream's
/// `storage.ValidateGitDirectory`).
const GIT_DIR_ENTRIES: [&str; 3] = ["objects", "refs", "HEAD"];

/// Longest relative path accepted (Linux PATH_MAX leaves room for the root).
const MAX_RELATIVE_PATH: usize = 3072;
/// Longest single path component (NAME_MAX).
const MAX_COMPONENT: usize = 255;

/// One configured storage.
#[derive(Debug, Clone)]
pub struct StorageRoot {
    /// The configured name.
    pub name: String,
    /// The configured path.
    pub path: PathBuf,
}

impl StorageRoot {
    /// `<storage>/+gitaly/tmp`, for temporary directories that must be on
    /// the same file system as the repositories (so renames are atomic).
    pub fn tmp_dir(&self) -> PathBuf {
        self.path.join(PRIVATE_DIR).join("tmp")
    }
}

/// The configured storages.
#[derive(Debug, Clone, Default)]
pub struct Storages {
    roots: Vec<StorageRoot>,
}

/// A repository resolved to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPath {
    /// Storage name, as requested.
    pub storage: String,
    /// Relative path, cleaned (no `.` or `..` components, no leading `/`).
    pub relative_path: String,
    /// The storage's root directory.
    pub storage_root: PathBuf,
    /// Absolute path of the repository (a bare git directory).
    pub path: PathBuf,
    /// Absolute quarantine object directory, when the request names one.
    pub object_dir: Option<PathBuf>,
    /// Absolute alternate object directories of a quarantined request.
    pub alternate_object_dirs: Vec<PathBuf>,
    /// GitLab's identifier of the repository (`project-1`), for hooks.
    pub gl_repository: String,
    /// GitLab's path of the project, for logs and hooks.
    pub gl_project_path: String,
}

impl Storages {
    /// The storages of a validated config.
    pub fn new(storages: &[config::Storage]) -> Self {
        Self { roots: storages.iter().map(|s| StorageRoot { name: s.name.clone(), path: s.path.clone() }).collect() }
    }

    /// All storages, in configuration order.
    pub fn all(&self) -> &[StorageRoot] {
        &self.roots
    }

    /// The storage called `name`, or INVALID_ARGUMENT as upstream answers.
    pub fn root(&self, name: &str) -> Result<&StorageRoot> {
        if name.is_empty() {
            return Err(Error::invalid_argument("storage name not set"));
        }
        self.roots
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| Error::invalid_argument("storage name not found").with_metadata("storage_name", name))
    }

    /// Resolves an existing repository: it must be a directory with
    /// `objects`, `refs` and `HEAD`.
    pub fn repo(&self, repo: Option<&Repository>) -> Result<RepoPath> {
        let resolved = self.resolve(repo)?;
        validate_git_dir(&resolved)?;
        Ok(resolved)
    }

    /// Whether a valid repository exists at a valid address. Bad addresses
    /// are errors; a missing or broken repository is `false`.
    pub fn repo_exists(&self, repo: Option<&Repository>) -> Result<bool> {
        let resolved = self.resolve(repo)?;
        match validate_git_dir(&resolved) {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.code(), tonic::Code::NotFound | tonic::Code::FailedPrecondition) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Resolves where a repository is or will be, without requiring it to
    /// exist (creation RPCs, RepositoryExists).
    pub fn repo_for_create(&self, repo: Option<&Repository>) -> Result<RepoPath> {
        self.resolve(repo)
    }

    fn resolve(&self, repo: Option<&Repository>) -> Result<RepoPath> {
        let repo = match repo {
            Some(r) if !(r.storage_name.is_empty() && r.relative_path.is_empty()) => r,
            _ => return Err(Error::invalid_argument("repository not set")),
        };
        if repo.relative_path.is_empty() {
            return Err(Error::invalid_argument("repository path not set"));
        }
        let root = self.root(&repo.storage_name)?;
        let storage_meta = std::fs::metadata(&root.path);
        if !storage_meta.as_ref().is_ok_and(std::fs::Metadata::is_dir) {
            return Err(Error::not_found("storage does not exist")
                .with_metadata("storage_path", root.path.display().to_string()));
        }
        let relative = clean_relative(&repo.relative_path)
            .map_err(|e| e.with_metadata("relative_path", repo.relative_path.clone()))?;
        let path = root.path.join(&relative);
        ensure_no_symlink_escape(&root.path, &path)?;

        let object_dir = if repo.git_object_directory.is_empty() {
            None
        } else {
            Some(self.object_dir(root, &path, &repo.git_object_directory)?)
        };
        let alternate_object_dirs = repo
            .git_alternate_object_directories
            .iter()
            .filter(|d| !d.is_empty())
            .map(|d| self.object_dir(root, &path, d))
            .collect::<Result<Vec<_>>>()?;

        Ok(RepoPath {
            storage: repo.storage_name.clone(),
            relative_path: relative.to_string_lossy().into_owned(),
            storage_root: root.path.clone(),
            path,
            object_dir,
            alternate_object_dirs,
            gl_repository: repo.gl_repository.clone(),
            gl_project_path: repo.gl_project_path.clone(),
        })
    }

    /// A quarantine object directory, given relative to the repository. It
    /// must stay inside the repository (git's own `objects/incoming-*`
    /// quarantine) or inside the storage's private temporary directory (the
    /// node's quarantine for operations), and it must exist.
    fn object_dir(&self, root: &StorageRoot, repo_path: &Path, dir: &str) -> Result<PathBuf> {
        let invalid = || Error::invalid_argument("invalid object directory").with_metadata("object_directory", dir);
        if dir.contains('\0') || Path::new(dir).is_absolute() {
            return Err(invalid());
        }
        let joined = lexical_join(repo_path, Path::new(dir)).ok_or_else(invalid)?;
        let inside_repo = joined.starts_with(repo_path) && joined != repo_path;
        let inside_tmp = joined.starts_with(root.tmp_dir()) && joined != root.tmp_dir();
        if !inside_repo && !inside_tmp {
            return Err(invalid());
        }
        ensure_no_symlink_escape(&root.path, &joined)?;
        if !joined.is_dir() {
            return Err(Error::not_found("object directory does not exist").with_metadata("object_directory", dir));
        }
        Ok(joined)
    }
}

/// Cleans a request's relative path the way upstream joins it onto the
/// storage (a leading `/` is relative, `a/../b` is `b`), rejecting anything
/// that leaves the storage, names the storage root itself, or reaches into
/// the private area.
fn clean_relative(relative: &str) -> Result<PathBuf> {
    let escapes = || Error::invalid_argument("relative path escapes root directory");
    if relative.contains('\0') {
        return Err(Error::invalid_argument("relative path contains a NUL byte"));
    }
    if relative.len() > MAX_RELATIVE_PATH {
        return Err(Error::invalid_argument("relative path too long"));
    }
    let mut parts: Vec<&OsStr> = Vec::new();
    for c in Path::new(relative).components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                parts.pop().ok_or_else(escapes)?;
            }
            Component::Normal(p) => {
                if p.len() > MAX_COMPONENT {
                    return Err(Error::invalid_argument("relative path component too long"));
                }
                parts.push(p);
            }
        }
    }
    if parts.is_empty() {
        return Err(Error::invalid_argument("relative path points at the storage root"));
    }
    if parts[0] == PRIVATE_DIR {
        return Err(Error::invalid_argument("relative path points into the reserved +gitaly directory"));
    }
    Ok(parts.iter().collect())
}

/// `base` joined with a relative `rel`, with `.` and `..` resolved lexically.
fn lexical_join(base: &Path, rel: &Path) -> Option<PathBuf> {
    let mut out = base.to_path_buf();
    for c in rel.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Rejects a path whose existing part resolves (through symlinks) outside
/// the storage root.
fn ensure_no_symlink_escape(root: &Path, path: &Path) -> Result<()> {
    // The relative part is already free of `..`; if none of its existing
    // components is a symlink it cannot leave the root, and one lstat per
    // component is all this costs on the hot path.
    let mut checked = root.to_path_buf();
    let mut symlink = false;
    for component in path.strip_prefix(root).map(Path::components).into_iter().flatten() {
        checked.push(component);
        match std::fs::symlink_metadata(&checked) {
            Ok(m) if m.file_type().is_symlink() => {
                symlink = true;
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if !symlink && path.starts_with(root) {
        return Ok(());
    }
    resolve_and_check(root, path)
}

fn resolve_and_check(root: &Path, path: &Path) -> Result<()> {
    let Ok(canonical_root) = std::fs::canonicalize(root) else {
        return Err(Error::not_found("storage does not exist"));
    };
    let existing = path.ancestors().find(|a| std::fs::symlink_metadata(a).is_ok()).unwrap_or(root);
    let resolved = match std::fs::canonicalize(existing) {
        Ok(p) => p,
        // A dangling symlink: it leads nowhere we can check, so refuse it.
        Err(_) => return Err(Error::invalid_argument("relative path escapes root directory")),
    };
    if resolved.starts_with(&canonical_root) {
        Ok(())
    } else {
        Err(Error::invalid_argument("relative path escapes root directory")
            .with_metadata("resolved_path", resolved.display().to_string()))
    }
}

fn validate_git_dir(repo: &RepoPath) -> Result<()> {
    let not_found = || {
        Error::not_found("repository not found")
            .with_metadata("storage_name", repo.storage.clone())
            .with_metadata("relative_path", repo.relative_path.clone())
    };
    match std::fs::metadata(&repo.path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(not_found()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
        Err(e) => return Err(Error::internal("stat repository", e)),
    }
    for entry in GIT_DIR_ENTRIES {
        if std::fs::symlink_metadata(repo.path.join(entry)).is_err() {
            return Err(Error::failed_precondition(format!("repository not valid: {entry:?} does not exist"))
                .with_metadata("repository_path", repo.path.display().to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
