//! In-process repository reads through gitoxide.
//!
//! Repositories are opened once and cached per path: gix re-reads loose and
//! packed references on every lookup (packed-refs by modification time) and
//! refreshes its pack list when an object is missing, so a cached handle sees
//! pushes without re-opening. Entries are dropped when a repository is
//! removed or replaced. Opening is isolated: no system or global config,
//! no environment overrides, only the repository's own config.
//!
//! A request that names a push's quarantine (`git_object_directory`,
//! `git_alternate_object_directories`) reads objects from those directories
//! instead of the repository's own: such openings are never cached and get
//! a serial of their own, so objects cached for one are never served to
//! readers of the other.
//!
//! Everything here is synchronous; callers run it under `spawn_blocking`.

use super::{GitError, ObjectFormat};
use gix::bstr::ByteSlice as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Most repositories kept open at once; beyond that the cache is cleared
/// (a rare event, far cheaper than unbounded growth).
const MAX_OPEN: usize = 4096;

/// An opened repository. Only the git layer sees the gitoxide handle
/// inside, so handlers cannot bypass it.
pub struct Repo {
    inner: gix::Repository,
    /// Distinguishes this opening of the repository from any other, so
    /// cached objects are never served for a removed or replaced one.
    serial: u64,
    /// The object directory a quarantined opening reads through; it lives
    /// as long as the handle.
    _view: Option<std::sync::Arc<tempfile::TempDir>>,
}

impl Repo {
    /// The gitoxide handle, for the git layer's own modules.
    pub(in crate::git) fn gix(&self) -> &gix::Repository {
        &self.inner
    }

    /// See [`Repo::serial`]'s field: unique per opened repository.
    pub(in crate::git) fn serial(&self) -> u64 {
        self.serial
    }

    /// The repository's object format.
    pub fn object_format(&self) -> ObjectFormat {
        match self.inner.object_hash() {
            gix::hash::Kind::Sha256 => ObjectFormat::Sha256,
            _ => ObjectFormat::Sha1,
        }
    }
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Repo").field(&self.inner.path()).finish()
    }
}

/// The cache of opened repositories.
#[derive(Clone, Default)]
pub struct Repositories {
    open: Arc<Mutex<HashMap<PathBuf, (gix::ThreadSafeRepository, u64)>>>,
}

static NEXT_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl std::fmt::Debug for Repositories {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repositories").finish_non_exhaustive()
    }
}

impl Repositories {
    /// A thread-local handle on the repository at `path`.
    pub fn open(&self, path: &Path) -> Result<Repo, GitError> {
        let mut open = self.open.lock().expect("repository cache lock is never poisoned by a panic-free section");
        if let Some((repo, serial)) = open.get(path) {
            return Ok(Repo { inner: repo.to_thread_local(), serial: *serial, _view: None });
        }
        let mut options = gix::open::Options::isolated();
        options = options.strict_config(false);
        let repo =
            gix::ThreadSafeRepository::open_opts(path, options).map_err(|e| GitError::gix("open repository", e))?;
        if open.len() >= MAX_OPEN {
            open.clear();
        }
        let serial = NEXT_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        open.insert(path.to_owned(), (repo.clone(), serial));
        Ok(Repo { inner: repo.to_thread_local(), serial, _view: None })
    }

    /// The repository at `path` reading objects the way git does with
    /// `GIT_OBJECT_DIRECTORY=<object_dir>` and
    /// `GIT_ALTERNATE_OBJECT_DIRECTORIES=<alternates>` (absolute paths,
    /// already validated): references are the repository's. Without either,
    /// this is [`Repositories::open`].
    ///
    /// gitoxide only knows an object directory plus its `info/alternates`,
    /// so the opening reads through an empty directory made in `scratch`
    /// whose alternates file lists every directory in git's order.
    pub fn open_with_objects(
        &self,
        path: &Path,
        object_dir: Option<&Path>,
        alternates: &[PathBuf],
        scratch: &Path,
    ) -> Result<Repo, GitError> {
        if object_dir.is_none() && alternates.is_empty() {
            return self.open(path);
        }
        let base = self.open(path)?;
        let primary = object_dir.map_or_else(|| path.join("objects"), Path::to_owned);
        let dirs = object_directories(&primary, alternates);
        std::fs::create_dir_all(scratch).map_err(|e| GitError::Io { step: "create scratch directory", source: e })?;
        let view = tempfile::Builder::new()
            .prefix("objects-view-")
            .tempdir_in(scratch)
            .map_err(|e| GitError::Io { step: "create object view", source: e })?;
        std::fs::create_dir(view.path().join("info"))
            .map_err(|e| GitError::Io { step: "create object view", source: e })?;
        let mut list = Vec::new();
        for d in &dirs {
            use std::os::unix::ffi::OsStrExt as _;
            list.extend_from_slice(d.as_os_str().as_bytes());
            list.push(b'\n');
        }
        std::fs::write(view.path().join("info/alternates"), list)
            .map_err(|e| GitError::Io { step: "write object view", source: e })?;
        let mut repo = base.inner.into_sync();
        let store = gix::odb::Store::at_opts(
            view.path().to_owned(),
            repo.objects.object_hash(),
            &mut std::iter::empty(),
            gix::odb::store::init::Options { current_dir: Some(view.path().to_owned()), ..Default::default() },
        )
        .map_err(|e| GitError::Io { step: "open quarantined objects", source: e })?;
        repo.objects = std::sync::Arc::new(store);
        let serial = NEXT_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Repo { inner: repo.to_thread_local(), serial, _view: Some(std::sync::Arc::new(view)) })
    }

    /// Forgets a repository (after it was removed, replaced or renamed).
    pub fn forget(&self, path: &Path) {
        self.open.lock().expect("repository cache lock is never poisoned by a panic-free section").remove(path);
    }
}

/// A request's quarantine as git processes take it (absolute, validated
/// directories): `GIT_OBJECT_DIRECTORY` and `GIT_ALTERNATE_OBJECT_DIRECTORIES`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quarantine {
    pub object_dir: Option<PathBuf>,
    pub alternates: Vec<PathBuf>,
}

impl Quarantine {
    /// `cmd` reading objects as the request asks.
    pub(in crate::git) fn apply(&self, mut cmd: super::GitCommand) -> super::GitCommand {
        if let Some(dir) = &self.object_dir {
            cmd = cmd.env("GIT_OBJECT_DIRECTORY", dir);
        }
        if !self.alternates.is_empty() {
            let joined = std::env::join_paths(&self.alternates).unwrap_or_default();
            cmd = cmd.env("GIT_ALTERNATE_OBJECT_DIRECTORIES", joined);
        }
        cmd
    }
}

/// `primary`, the `alternates` and, recursively, the directories their
/// `info/alternates` files name (relative entries relative to the directory
/// whose file names them, as git resolves them), each once.
fn object_directories(primary: &Path, alternates: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut pending: Vec<PathBuf> =
        std::iter::once(primary.to_owned()).chain(alternates.iter().cloned()).rev().collect();
    // git gives up on deeper chains too.
    while let Some(dir) = pending.pop() {
        if out.contains(&dir) || out.len() >= 64 {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("info/alternates")) {
            let nested: Vec<PathBuf> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| dir.join(l))
                .collect();
            pending.extend(nested.into_iter().rev());
        }
        out.push(dir);
    }
    out
}

/// Whether any branch (`refs/heads/*`) exists.
pub fn has_branches(repo: &Repo) -> Result<bool, GitError> {
    let repo = repo.gix();
    let refs = repo.references().map_err(|e| GitError::gix("read references", e))?;
    let mut heads = refs.prefixed("refs/heads/").map_err(|e| GitError::gix("read branches", e))?;
    Ok(heads.next().is_some())
}

/// Every reference with the object it resolves to (following symbolic
/// references, not peeling tags), plus `HEAD` when it resolves: what
/// `git show-ref --head` prints. Dangling symbolic references are skipped.
pub fn resolved_references(repo: &Repo) -> Result<Vec<(String, gix::ObjectId)>, GitError> {
    let repo = repo.gix();
    let mut out = Vec::new();
    if let Ok(Some(head)) = repo.head_ref()
        && let Some(id) = follow_symbolic(repo, head)
    {
        out.push(("HEAD".to_owned(), id));
    } else if let Ok(head) = repo.head()
        && let Some(id) = head.id()
    {
        // Detached HEAD.
        out.push(("HEAD".to_owned(), id.detach()));
    }
    let refs = repo.references().map_err(|e| GitError::gix("read references", e))?;
    for r in refs.all().map_err(|e| GitError::gix("read references", e))? {
        let r = r.map_err(|e| GitError::gix("read reference", e))?;
        let name = r.name().as_bstr().to_str_lossy().into_owned();
        if let Some(id) = follow_symbolic(repo, r) {
            out.push((name, id));
        }
    }
    Ok(out)
}

fn follow_symbolic<'r>(repo: &'r gix::Repository, mut r: gix::Reference<'r>) -> Option<gix::ObjectId> {
    // git gives up after five levels of symbolic references too.
    for _ in 0..5 {
        match r.target() {
            gix::refs::TargetRef::Object(id) => return Some(id.to_owned()),
            gix::refs::TargetRef::Symbolic(name) => {
                r = repo.try_find_reference(name).ok()??;
            }
        }
    }
    None
}

/// Whether HEAD is a well-formed reference (symbolic, possibly unborn, or
/// an object id), as git requires of a repository.
pub fn head_is_valid(repo: &Repo) -> bool {
    repo.inner.head().is_ok()
}

/// Resolves a revision to the object it names (`<rev>^{object}`); `None`
/// when it names nothing.
pub fn resolve_revision(repo: &Repo, revision: &[u8]) -> Option<gix::ObjectId> {
    super::objects::resolve(repo, revision)
}

/// The best common ancestor of the first revision and all others, as
/// `git merge-base A B...` prints it; `None` when there is none or a
/// revision does not resolve to a commit.
pub fn merge_base(repo: &Repo, revisions: &[Vec<u8>]) -> Result<Option<gix::ObjectId>, GitError> {
    let repo = repo.gix();
    let mut commits = Vec::with_capacity(revisions.len());
    for rev in revisions {
        let Ok(id) = repo.rev_parse_single(rev.as_bstr()) else { return Ok(None) };
        let Ok(Ok(commit)) = id.object().map(|o| o.peel_to_commit()) else { return Ok(None) };
        commits.push(commit.id);
    }
    let Some((first, others)) = commits.split_first() else { return Ok(None) };
    let bases = repo.merge_bases_many(*first, others).map_err(|e| GitError::gix("compute merge base", e))?;
    Ok(bases.first().map(|id| id.detach()))
}
