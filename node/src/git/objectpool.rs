//! Object pools: a bare repository holding the objects of a fork network,
//! which members borrow through `objects/info/alternates` (a path relative
//! to the member's `objects` directory). The pool keeps its origin's
//! references under `refs/remotes/origin/*` and every object that ever
//! became unreachable under `refs/dangling/<oid>`, because a member may
//! still need it; housekeeping never prunes a pool (see [`housekeeping`]).
//!
//! [`housekeeping`]: super::housekeeping

use super::housekeeping::{self, Strategy};
use super::refs::{self, RefUpdate};
use super::wire::Hooks;
use super::{CommandFactory, GitCommand, GitError, Subcommand};
use crate::transaction::{Phase, Vote, vote_of};
use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

/// Where a pool keeps its origin's references.
pub const POOL_REF_NAMESPACE: &str = "refs/remotes/origin";
/// Where a pool keeps objects nothing else references.
const DANGLING_NAMESPACE: &str = "refs/dangling/";

/// The alternates file of the repository at `repo`.
fn alternates_file(repo: &Path) -> PathBuf {
    repo.join("objects/info/alternates")
}

/// The object directories listed in the alternates file of `repo` (comments
/// and blank lines skipped); empty when there is no file.
pub fn alternates(repo: &Path) -> Result<Vec<String>, GitError> {
    match std::fs::read_to_string(alternates_file(repo)) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(GitError::Io { step: "read alternates", source: e }),
    }
}

/// The repository whose object directory the first alternate of `repo`
/// names, relative to `storage_root`; `None` without alternates or when it
/// lies outside the storage. Existence is the caller's to check.
pub fn pool_of(repo: &Path, storage_root: &Path) -> Result<Option<String>, GitError> {
    // Upstream reads only the first line: a comment there means no pool.
    let text = match std::fs::read_to_string(alternates_file(repo)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(GitError::Io { step: "read alternates", source: e }),
    };
    let first = text.lines().next().unwrap_or_default().trim_end();
    if first.is_empty() || first.starts_with('#') {
        return Ok(None);
    }
    let objects = normalize(&repo.join("objects").join(first));
    let Some(pool) = objects.parent() else { return Ok(None) };
    let Ok(relative) = pool.strip_prefix(storage_root) else { return Ok(None) };
    if relative.as_os_str().is_empty() {
        return Ok(None);
    }
    Ok(Some(relative.to_string_lossy().into_owned()))
}

/// `path` with `.` and `..` resolved lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The relative path from directory `from` to `to` (both absolute).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let (from, to) = (normalize(from), normalize(to));
    let from_parts: Vec<Component<'_>> = from.components().collect();
    let to_parts: Vec<Component<'_>> = to.components().collect();
    let common = from_parts.iter().zip(&to_parts).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from_parts.len() {
        out.push("..");
    }
    for c in &to_parts[common..] {
        out.push(c);
    }
    out
}

/// The alternates line linking `member` to `pool`: the pool's object
/// directory relative to the member's.
pub fn link_line(pool: &Path, member: &Path) -> String {
    relative_path(&member.join("objects"), &pool.join("objects")).to_string_lossy().into_owned()
}

/// Creates a pool at `staged` (a fresh path; the caller moves it into
/// place) from the repository at `origin`: a local bare clone, which
/// hard-links the origin's objects, without the `origin` remote.
pub async fn create(
    factory: &CommandFactory,
    origin: &Path,
    staged: &Path,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    let clone =
        GitCommand::new(Subcommand::Clone).flag("--quiet").flag("--bare").flag("--local").arg(origin).arg(staged);
    factory.run(clone, correlation_id).await?;
    super::remote::remove_origin(factory, staged, correlation_id).await?;
    // Pools never run hooks; upstream's pools have no hooks directory.
    match std::fs::remove_dir_all(staged.join("hooks")) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(GitError::Io { step: "remove pool hooks", source: e }),
    }
}

/// Links `member` to `pool` by writing its alternates file atomically.
/// `vote` takes part in a router's transaction: when the member is linked
/// already, one committed vote on "repository linked"; otherwise the vote
/// on the new file's contents, prepared before it replaces the old one and
/// committed after. Alternates naming anything but this pool are refused.
pub async fn link<E, V, VFut>(pool: &Path, member: &Path, vote: V) -> Result<(), E>
where
    E: From<GitError>,
    V: Fn(Phase, Vote) -> VFut,
    VFut: std::future::Future<Output = Result<(), E>>,
{
    let line = link_line(pool, member);
    let current = alternates(member)?;
    if let Some(first) = current.first() {
        if *first == line {
            return vote(Phase::Committed, vote_of(b"repository linked")).await;
        }
        // An absolute path to the same pool is rewritten; anything else is
        // another pool or a hand-made file, which is not ours to replace.
        if normalize(Path::new(first)) != normalize(&pool.join("objects")) {
            return Err(GitError::Invalid(format!("unexpected alternates content: {first:?}")).into());
        }
    }
    let info_dir = member.join("objects/info");
    std::fs::create_dir_all(&info_dir).map_err(GitError::io("create objects/info"))?;
    let lock_path = info_dir.join("alternates.lock");
    let lock = LockFile::create(&lock_path)?;
    lock.write(line.as_bytes())?;
    let hash = vote_of(line.as_bytes());
    vote(Phase::Prepared, hash).await?;
    lock.commit(&alternates_file(member))?;
    remove_member_bitmaps(pool, member)?;
    vote(Phase::Committed, hash).await
}

/// A `<file>.lock` created exclusively, removed on drop unless committed.
struct LockFile {
    path: PathBuf,
    committed: std::cell::Cell<bool>,
}

impl LockFile {
    fn create(path: &Path) -> Result<Self, GitError> {
        match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(_) => Ok(Self { path: path.to_owned(), committed: false.into() }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(GitError::Invalid(format!("file already locked: {}", path.display())))
            }
            Err(e) => Err(GitError::Io { step: "lock alternates", source: e }),
        }
    }

    fn write(&self, data: &[u8]) -> Result<(), GitError> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.path)
            .map_err(GitError::io("open lock"))?;
        f.write_all(data).map_err(GitError::io("write alternates"))?;
        f.sync_all().map_err(GitError::io("sync alternates"))
    }

    fn commit(&self, target: &Path) -> Result<(), GitError> {
        std::fs::rename(&self.path, target).map_err(GitError::io("commit alternates"))?;
        self.committed.set(true);
        if let Some(dir) = target.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(GitError::io("sync objects/info"))?;
        }
        Ok(())
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        if !self.committed.get() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn pack_bitmaps(repo: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(repo.join("objects/pack")) else { return Vec::new() };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("pack-") && n.ends_with(".bitmap"))
        })
        .collect()
}

/// git uses one bitmap per object store chain: when the pool has one, the
/// member's would shadow it, so the member's go.
fn remove_member_bitmaps(pool: &Path, member: &Path) -> Result<(), GitError> {
    if pack_bitmaps(pool).is_empty() {
        return Ok(());
    }
    for bitmap in pack_bitmaps(member) {
        match std::fs::remove_file(&bitmap) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(GitError::Io { step: "remove member bitmap", source: e }),
        }
    }
    Ok(())
}

/// Why a disconnection failed.
#[derive(Debug, thiserror::Error)]
pub enum DisconnectError {
    #[error("multiple alternate object directories")]
    MultipleAlternates,
    #[error("alternate object entry is not a directory")]
    NotADirectory,
    /// The repository lacked objects without its alternate; the alternates
    /// file was restored.
    #[error("git connectivity error while disconnected: {0}")]
    Connectivity(String),
    #[error(transparent)]
    Git(#[from] GitError),
}

/// Makes `member` stand alone: every object file of its alternate object
/// directory is hard-linked (or copied across file systems) into its own,
/// then the alternates file is moved aside and connectivity checked; on a
/// failure the file is put back. `vote` is called as upstream votes:
/// "no alternates" (committed) when there is nothing to do, otherwise
/// "migrate objects" and "disconnect alternate", prepared and committed.
pub async fn disconnect<E, V, VFut>(
    factory: &CommandFactory,
    member: &Path,
    vote: V,
    correlation_id: Option<&str>,
) -> Result<(), E>
where
    E: From<DisconnectError>,
    V: Fn(Phase, Vote) -> VFut,
    VFut: std::future::Future<Output = Result<(), E>>,
{
    let dirs = alternates(member).map_err(DisconnectError::from)?;
    if dirs.is_empty() {
        return vote(Phase::Committed, vote_of(b"no alternates")).await;
    }
    let migrate = vote_of(b"migrate objects");
    vote(Phase::Prepared, migrate).await?;
    if dirs.len() > 1 {
        return Err(DisconnectError::MultipleAlternates.into());
    }
    let source = normalize(&member.join("objects").join(&dirs[0]));
    if !source.is_dir() {
        return Err(DisconnectError::NotADirectory.into());
    }
    let (src, dst) = (source.clone(), member.join("objects"));
    tokio::task::spawn_blocking(move || migrate_objects(&src, &dst))
        .await
        .map_err(|e| GitError::Io { step: "migrate objects", source: std::io::Error::other(e) })
        .map_err(DisconnectError::from)?
        .map_err(DisconnectError::from)?;
    vote(Phase::Committed, migrate).await?;

    let detach = vote_of(b"disconnect alternate");
    vote(Phase::Prepared, detach).await?;
    let file = alternates_file(member);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let backup =
        file.with_file_name(format!("alternates.{}.{:x}{:x}", now.as_secs(), now.subsec_nanos(), std::process::id()));
    std::fs::rename(&file, &backup).map_err(GitError::io("move alternates aside")).map_err(DisconnectError::from)?;
    let check = GitCommand::new(Subcommand::RevList).git_dir(member).flag("--objects").flag("--all").flag("--quiet");
    if let Err(e) = factory.run(check, correlation_id).await {
        // Put the file back through a second link, so the backup survives
        // whatever happens to the rename.
        let tmp = backup.with_extension("restore");
        let restored = std::fs::hard_link(&backup, &tmp).and_then(|()| std::fs::rename(&tmp, &file));
        if let Err(r) = restored {
            tracing::error!(error = %r, repository = %member.display(), "restore alternates file");
        }
        return Err(DisconnectError::Connectivity(crate::error::error_chain(&e)).into());
    }
    vote(Phase::Committed, detach).await
}

/// Order of object files to migrate: loose objects, then `.keep`, packs,
/// indexes, and the rest, so a pack is never visible without its object
/// data and no pack is repacked away for lack of its keep file.
fn migration_rank(rel: &Path) -> u8 {
    let name = rel.to_string_lossy();
    if !name.starts_with("pack") {
        0
    } else if name.ends_with(".keep") {
        1
    } else if name.ends_with(".pack") {
        2
    } else if name.ends_with(".idx") {
        3
    } else {
        4
    }
}

fn migrate_objects(source: &Path, dest: &Path) -> Result<(), GitError> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut stack = vec![source.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(GitError::io("walk pool objects"))?.flatten() {
            let path = entry.path();
            let Ok(rel) = path.strip_prefix(source).map(Path::to_owned) else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            // info/ (alternates, commit-graphs) and derived files (bitmaps,
            // multi-pack-index) describe the pool, not the member; the
            // member's housekeeping writes its own.
            if rel.starts_with("info") || name.starts_with("tmp_") || name.starts_with("incoming-") {
                continue;
            }
            if name.ends_with(".bitmap") || name.starts_with("multi-pack-index") {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => files.push(rel),
                _ => {}
            }
        }
    }
    files.sort_by_key(|f| migration_rank(f));
    for rel in files {
        let (from, to) = (source.join(&rel), dest.join(&rel));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(GitError::io("create object directory"))?;
        }
        match std::fs::hard_link(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                copy_new(&from, &to)?;
            }
            Err(e) => return Err(GitError::Io { step: "link object file", source: e }),
        }
    }
    Ok(())
}

/// Copies `from` to a temporary name beside `to`, then renames it, so a
/// half-copied object file is never visible.
fn copy_new(from: &Path, to: &Path) -> Result<(), GitError> {
    let tmp = to.with_extension("tmp-copy");
    std::fs::copy(from, &tmp).map_err(GitError::io("copy object file"))?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(GitError::io("sync object file"))?;
    std::fs::rename(&tmp, to).map_err(GitError::io("move object file"))
}

/// Updates the pool at `pool` from its origin at `origin`: references the
/// origin no longer has are deleted (with `hooks`, so a router's
/// transaction sees the change), the origin's references are fetched into
/// `refs/remotes/origin/*`, objects nothing references any more are kept
/// under `refs/dangling/`, and the pool is housekept.
pub async fn fetch_from_origin(
    factory: &CommandFactory,
    pool: &Path,
    pool_relative: &str,
    origin: &Path,
    hooks: Option<&Hooks>,
    correlation_id: Option<&str>,
) -> Result<housekeeping::Report, GitError> {
    housekeeping::clean_stale_data(pool).await?;
    prune_references(factory, pool, origin, hooks, correlation_id).await?;

    let mut fetch = GitCommand::new(Subcommand::Fetch)
        .git_dir(pool)
        .flag("--quiet")
        .flag("--atomic")
        .flag("--no-tags")
        .flag("--no-write-fetch-head")
        .flag("--no-show-forced-updates")
        .config("advice.fetchShowForcedUpdates", "false")
        .arg(origin)
        .arg(format!("+refs/*:{POOL_REF_NAMESPACE}/*"));
    if let Some(h) = hooks {
        fetch = h.apply(fetch);
    }
    factory.run(fetch, correlation_id).await?;

    rescue_dangling_objects(factory, pool, correlation_id).await?;
    let (report, result) =
        housekeeping::optimize(factory, pool, pool_relative, Strategy::Heuristic, correlation_id).await;
    result?;
    Ok(report)
}

async fn ref_names(
    factory: &CommandFactory,
    repo: &Path,
    prefix: &str,
    correlation_id: Option<&str>,
) -> Result<Vec<String>, GitError> {
    let cmd = GitCommand::new(Subcommand::ForEachRef).git_dir(repo).flag("--format=%(refname)").arg(prefix);
    let out = factory.run(cmd, correlation_id).await?;
    Ok(String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect())
}

/// Deletes the pool's copies of references the origin no longer has
/// (what `git remote prune` would), before the fetch: a deleted `a` may
/// have become `a/b`, which could not be fetched next to it.
async fn prune_references(
    factory: &CommandFactory,
    pool: &Path,
    origin: &Path,
    hooks: Option<&Hooks>,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    let origin_refs: HashSet<String> = ref_names(factory, origin, "refs/", correlation_id).await?.into_iter().collect();
    let prefix = format!("{POOL_REF_NAMESPACE}/");
    let format = format_of(factory, pool, correlation_id).await?;
    let updates: Vec<RefUpdate> = ref_names(factory, pool, &prefix, correlation_id)
        .await?
        .into_iter()
        .filter(|name| {
            let origin_name = format!("refs/{}", &name[prefix.len()..]);
            !origin_refs.contains(&origin_name)
        })
        .map(|name| RefUpdate { name: name.into_bytes(), new: format.clone(), old: None })
        .collect();
    if updates.is_empty() {
        return Ok(());
    }
    refs::update(factory, pool, &updates, hooks, correlation_id).await
}

/// The zero object id of the repository's object format.
async fn format_of(factory: &CommandFactory, repo: &Path, correlation_id: Option<&str>) -> Result<String, GitError> {
    let cmd = GitCommand::new(Subcommand::RevParse).git_dir(repo).flag("--show-object-format");
    let out = factory.run(cmd, correlation_id).await?;
    let format = if String::from_utf8_lossy(&out.stdout).trim() == "sha256" {
        super::ObjectFormat::Sha256
    } else {
        super::ObjectFormat::Sha1
    };
    Ok(format.zero_oid())
}

/// Points `refs/dangling/<oid>` at every object no reference reaches, so
/// no repack or prune of the pool can drop an object a member relies on.
async fn rescue_dangling_objects(
    factory: &CommandFactory,
    pool: &Path,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    let fsck = GitCommand::new(Subcommand::Fsck).git_dir(pool).flag("--connectivity-only").flag("--dangling");
    let out = factory.run(fsck, correlation_id).await?;
    let updates: Vec<RefUpdate> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("dangling"), Some(_), Some(oid)) if oid.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    Some(RefUpdate {
                        name: format!("{DANGLING_NAMESPACE}{oid}").into_bytes(),
                        new: oid.to_owned(),
                        old: None,
                    })
                }
                _ => None,
            }
        })
        .collect();
    if updates.is_empty() {
        return Ok(());
    }
    // Bookkeeping of this node's copy: not voted on, as upstream.
    refs::update(factory, pool, &updates, None, correlation_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_lines_are_relative_to_the_member_objects() {
        let root = Path::new("/srv/storage");
        let pool = root.join("@pools/ab/cd/abcd.git");
        let member = root.join("@hashed/12/34/1234.git");
        assert_eq!(link_line(&pool, &member), "../../../../../@pools/ab/cd/abcd.git/objects");
    }

    #[test]
    fn pool_of_reads_the_first_alternate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let member = dir.path().join("@hashed/12/34/1234.git");
        std::fs::create_dir_all(member.join("objects/info")).expect("mkdir");
        assert_eq!(pool_of(&member, dir.path()).expect("read"), None);
        std::fs::write(member.join("objects/info/alternates"), "../../../../../@pools/ab/cd/abcd.git/objects\n")
            .expect("write");
        assert_eq!(pool_of(&member, dir.path()).expect("read").as_deref(), Some("@pools/ab/cd/abcd.git"));
        std::fs::write(member.join("objects/info/alternates"), "# comment\n").expect("write");
        assert_eq!(pool_of(&member, dir.path()).expect("read"), None);
        std::fs::write(member.join("objects/info/alternates"), "/elsewhere/objects").expect("write");
        assert_eq!(pool_of(&member, dir.path()).expect("read"), None, "outside the storage");
    }
}
