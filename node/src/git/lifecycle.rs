//! Creating and removing whole repositories, atomically.
//!
//! A repository is built in the storage's private temporary directory and
//! renamed into place, so a crash leaves either nothing or a complete
//! repository. Removal renames the repository aside first, so readers never
//! see a half-deleted one. Both hold `<repository>.lock` (created
//! exclusively) while they change the target path, which serialises
//! concurrent creates and removes of the same repository.

use super::{CommandFactory, GitCommand, GitError, ObjectFormat, Subcommand};
use crate::transaction::{Phase, Vote};
use sha1::Digest as _;
use std::fs::File;
use std::path::{Path, PathBuf};

/// File whose modification time records the last full repack; written at
/// creation so housekeeping does not immediately repack a new repository.
pub const FULL_REPACK_TIMESTAMP: &str = ".gitaly-full-repack-timestamp";

/// Options of [`create`].
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Initial branch HEAD points to; git's default when `None`.
    pub default_branch: Option<String>,
    pub object_format: ObjectFormat,
}

/// Holds `<path>.lock` until dropped.
#[derive(Debug)]
struct RepoLock {
    path: PathBuf,
}

impl RepoLock {
    fn acquire(repo: &Path) -> Result<Self, GitError> {
        let parent = repo.parent().ok_or(GitError::Invalid("repository has no parent directory".into()))?;
        std::fs::create_dir_all(parent).map_err(GitError::io("create parent directories"))?;
        let mut name = repo.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(_) => Ok(Self { path }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(GitError::Locked),
            Err(e) => Err(GitError::Io { step: "lock repository", source: e }),
        }
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

/// Flushes every file and directory below `root` to disk.
fn sync_tree(root: &Path) -> std::io::Result<()> {
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                File::open(entry.path())?.sync_all()?;
            }
        }
        sync_dir(&dir)?;
    }
    Ok(())
}

/// Casts no vote: a creation outside any router transaction.
pub async fn no_vote<E>(_: Phase, _: Vote) -> Result<(), E> {
    Ok(())
}

/// Creates an empty bare repository at `target`. `tmp_root` must be on the
/// same file system (the storage's `+gitaly/tmp`). `vote` is called as for
/// [`create_seeded`].
pub async fn create<E, V, VFut>(
    factory: &CommandFactory,
    target: &Path,
    tmp_root: &Path,
    options: &CreateOptions,
    vote: V,
    correlation_id: Option<&str>,
) -> Result<(), E>
where
    E: From<GitError>,
    V: Fn(Phase, Vote) -> VFut,
    VFut: std::future::Future<Output = Result<(), E>>,
{
    let mut init = GitCommand::new(Subcommand::Init).flag("--bare").flag("--quiet");
    if let Some(branch) = &options.default_branch {
        init = init.flag_value("--initial-branch", branch);
    }
    init = init.flag_value("--object-format", options.object_format.as_str());
    create_seeded(
        target,
        tmp_root,
        |new_repo| async move {
            factory.run(init.arg(&new_repo), correlation_id).await.map_err(GitError::from)?;
            Ok(())
        },
        vote,
    )
    .await
}

/// Removes the repository at `target`: renamed into `tmp_root` under the
/// lock, then deleted. Readers see it either whole or gone. `vote` takes
/// part in a router's transaction: called in the prepared phase under the
/// lock before the rename (a failure leaves the repository in place) and in
/// the committed phase after it.
pub async fn remove<E, V, VFut>(target: &Path, tmp_root: &Path, vote: V) -> Result<(), E>
where
    E: From<GitError>,
    V: Fn(Phase) -> VFut,
    VFut: std::future::Future<Output = Result<(), E>>,
{
    let (path, tmp) = (target.to_owned(), tmp_root.to_owned());
    let lock = blocking("remove repository", move || -> Result<RepoLock, GitError> {
        if !exists(&path) {
            return Err(GitError::NotFound("repository does not exist"));
        }
        std::fs::create_dir_all(&tmp).map_err(GitError::io("create temporary directory"))?;
        let lock = RepoLock::acquire(&path)?;
        if !exists(&path) {
            return Err(GitError::NotFound("repository was concurrently removed"));
        }
        Ok(lock)
    })
    .await?;
    vote(Phase::Prepared).await?;
    let (target, tmp_root) = (target.to_owned(), tmp_root.to_owned());
    let staged = blocking("remove repository", move || -> Result<tempfile::TempDir, GitError> {
        let base = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let dest = tempfile::Builder::new()
            .prefix(&format!("{base}+removed-"))
            .tempdir_in(&tmp_root)
            .map_err(GitError::io("create removal directory"))?;
        std::fs::rename(&target, dest.path().join("repo")).map_err(GitError::io("stage repository for removal"))?;
        if let Some(parent) = target.parent() {
            sync_dir(parent).map_err(GitError::io("sync parent directory"))?;
        }
        Ok(dest)
    })
    .await?;
    // Deleting a large repository takes a while; the repository is already
    // gone from its path, so the RPC does not wait for it.
    tokio::task::spawn_blocking(move || drop(staged));
    vote(Phase::Committed).await?;
    drop(lock);
    Ok(())
}

/// Runs file-system work of `step` on the blocking pool.
async fn blocking<T: Send + 'static>(
    step: &'static str,
    work: impl FnOnce() -> Result<T, GitError> + Send + 'static,
) -> Result<T, GitError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| GitError::Io { step, source: std::io::Error::other(e) })?
}

/// Creates the repository at `target` by letting `seed` build it at a fresh
/// path inside `tmp_root` (by `git init`, `git clone`, a snapshot...), then
/// moving the result into place. A failing seed leaves
/// nothing behind; so does a target that appeared meanwhile.
///
/// `vote` takes part in a router's transaction (see [`no_vote`] outside
/// one): it gets the hash of the new repository (see [`repository_vote`])
/// in the prepared phase, under the repository lock just before the rename,
/// and in the committed phase after it. A failed prepared vote leaves
/// nothing behind either.
pub async fn create_seeded<E, F, Fut, V, VFut>(target: &Path, tmp_root: &Path, seed: F, vote: V) -> Result<(), E>
where
    E: From<GitError>,
    F: FnOnce(PathBuf) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    V: Fn(Phase, Vote) -> VFut,
    VFut: std::future::Future<Output = Result<(), E>>,
{
    if exists(target) {
        return Err(GitError::AlreadyExists("repository exists already").into());
    }
    std::fs::create_dir_all(tmp_root).map_err(GitError::io("create temporary directory"))?;
    let staging = tempfile::Builder::new()
        .prefix("create-")
        .tempdir_in(tmp_root)
        .map_err(GitError::io("create temporary directory"))?;
    let new_repo = staging.path().join("repo.git");
    seed(new_repo.clone()).await?;
    let (lock, hash) = prepare_move(new_repo.clone(), target).await?;
    vote(Phase::Prepared, hash).await?;
    move_into_place(new_repo, target).await?;
    drop(staging);
    vote(Phase::Committed, hash).await?;
    drop(lock);
    Ok(())
}

/// Moves whatever sits at `target` (a directory that is not a valid
/// repository) out of the way into `tmp_root`, where it is deleted.
pub async fn discard_invalid(target: &Path, tmp_root: &Path) -> Result<(), GitError> {
    if !exists(target) {
        return Ok(());
    }
    remove(target, tmp_root, no_vote_on).await
}

/// Casts no vote on a removal outside any router transaction.
pub async fn no_vote_on<E>(_: Phase) -> Result<(), E> {
    Ok(())
}

/// Hashes the new repository, makes it durable and takes the repository
/// lock, unless something appeared at `target` meanwhile.
async fn prepare_move(new_repo: PathBuf, target: &Path) -> Result<(RepoLock, Vote), GitError> {
    let target = target.to_owned();
    tokio::task::spawn_blocking(move || -> Result<(RepoLock, Vote), GitError> {
        // Before the timestamp, which differs between replicas.
        let hash = repository_vote(&new_repo).map_err(GitError::io("hash new repository"))?;
        File::create(new_repo.join(FULL_REPACK_TIMESTAMP)).map_err(GitError::io("write full-repack timestamp"))?;
        sync_tree(&new_repo).map_err(GitError::io("sync new repository"))?;
        let lock = RepoLock::acquire(&target)?;
        if exists(&target) {
            return Err(GitError::AlreadyExists("repository exists already"));
        }
        Ok((lock, hash))
    })
    .await
    .map_err(|e| GitError::Io { step: "create repository", source: std::io::Error::other(e) })?
}

/// Renames the new repository to `target` (whose lock the caller holds).
async fn move_into_place(new_repo: PathBuf, target: &Path) -> Result<(), GitError> {
    let target = target.to_owned();
    tokio::task::spawn_blocking(move || -> Result<(), GitError> {
        std::fs::rename(&new_repo, &target).map_err(GitError::io("move repository into place"))?;
        if let Some(parent) = target.parent() {
            sync_dir(parent).map_err(GitError::io("sync parent directory"))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| GitError::Io { step: "create repository", source: std::io::Error::other(e) })?
}

/// The vote on a new repository, as upstream computes it: the SHA-1 over
/// the contents of every file below `repo` in lexical path order, leaving
/// out the object database (packing is not deterministic) and `FETCH_HEAD`
/// (it names where objects came from). References, HEAD and configuration
/// are all in it.
pub fn repository_vote(repo: &Path) -> std::io::Result<Vote> {
    fn walk(dir: &Path, root: &Path, hash: &mut sha1::Sha1) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                if path != root.join("objects") {
                    walk(&path, root, hash)?;
                }
            } else if path != root.join("FETCH_HEAD") {
                std::io::copy(&mut File::open(&path)?, hash)?;
            }
        }
        Ok(())
    }
    let mut hash = sha1::Sha1::new();
    walk(repo, repo, &mut hash)?;
    Ok(hash.finalize().into())
}
