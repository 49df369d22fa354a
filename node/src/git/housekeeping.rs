//! Repository housekeeping (OptimizeRepository, PruneUnreachableObjects,
//! object pools after a fetch): cleaning stale files git leaves behind,
//! repacking objects, packing references, writing the commit-graph and
//! pruning unreachable loose objects.
//!
//! What to do is decided from [`stats::repository_info`] by a strategy
//! ([`Strategy::Heuristic`] does only what the repository's state calls for,
//! [`Strategy::Eager`] does everything), following upstream's heuristics.
//! Object pools, and repositories borrowing objects through alternates,
//! never lose unreachable objects here: a pool's members may need objects
//! no reference of the pool reaches.

use super::stats::{self, RepositoryInfo};
use super::{CommandFactory, GitCommand, GitError, Subcommand, lifecycle::FULL_REPACK_TIMESTAMP};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// More loose objects than this call for a repack (or a prune, when stale).
const LOOSE_OBJECT_LIMIT: u64 = 1024;
/// A multi-pack repository is fully repacked at most this often.
const FULL_REPACK_COOLDOWN: Duration = Duration::from_secs(5 * 24 * 3600);
/// Unreachable objects younger than this survive housekeeping (git
/// approxidate; matches [`stats::STALE_OBJECT_AGE`]).
const HOUSEKEEPING_EXPIRY: &str = "10.days.ago";
/// PruneUnreachableObjects' grace period (upstream's 30 minutes).
pub const PRUNE_UNREACHABLE_EXPIRY: &str = "30.minutes.ago";

// Grace periods of stale files, as upstream chose them.
const TEMP_OBJECT_AGE: Duration = Duration::from_secs(24 * 3600);
const LOCKFILE_AGE: Duration = Duration::from_secs(15 * 60);
const REFERENCE_LOCK_AGE: Duration = Duration::from_secs(3600);
const BROKEN_REF_AGE: Duration = Duration::from_secs(24 * 3600);
const EMPTY_REF_DIR_AGE: Duration = Duration::from_secs(24 * 3600);
const PACKED_REFS_LOCK_AGE: Duration = Duration::from_secs(3600);
const PACKED_REFS_NEW_AGE: Duration = Duration::from_secs(15 * 60);
const PACK_KEEP_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Removes reference lock files under `refs/` older than `min_age`: git
/// holds them for milliseconds, so an old one is what a killed process left,
/// and it would fail every later update of that reference. Returns how many.
pub fn remove_stale_reference_locks(repo: &Path, min_age: Duration) -> usize {
    let now = SystemTime::now();
    let mut stale = Vec::new();
    walk_files(&repo.join("refs"), |p, m| {
        if p.extension().is_some_and(|e| e == "lock") && older_than(m, now, min_age) {
            stale.push(p.to_owned());
        }
    });
    stale.into_iter().filter(|p| std::fs::remove_file(p).is_ok()).count()
}

/// Lock files git may leave behind when killed, relative to the repository.
/// Only these are removed, never every `*.lock`.
const LOCKFILES: [&str; 6] = [
    "config.lock",
    "HEAD.lock",
    "info/attributes.lock",
    "objects/info/alternates.lock",
    "objects/info/commit-graphs/commit-graph-chain.lock",
    "objects/pack/multi-pack-index.lock",
];

/// How OptimizeRepository decides what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Only what the repository's state calls for.
    Heuristic,
    /// Everything, regardless of state.
    Eager,
}

/// How objects are repacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepackKind {
    /// Loose objects into one new pack; existing packs untouched.
    Incremental,
    /// Packs merged so their sizes form a geometric progression.
    Geometric,
    /// One pack of reachable objects plus a cruft pack of unreachable ones,
    /// expiring old unreachable objects.
    FullWithCruft,
    /// One pack of everything, unreachable objects included (object pools).
    FullWithUnreachable,
}

impl RepackKind {
    /// Upstream's name, used in the `housekeeping_task` metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Incremental => "incremental_with_unreachable",
            Self::Geometric => "geometric",
            Self::FullWithCruft => "full_with_cruft",
            Self::FullWithUnreachable => "full_with_unreachable",
        }
    }

    fn is_full(self) -> bool {
        matches!(self, Self::FullWithCruft | Self::FullWithUnreachable)
    }
}

/// One repack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repack {
    pub kind: RepackKind,
    pub write_bitmap: bool,
    pub write_multi_pack_index: bool,
    /// With [`RepackKind::FullWithCruft`]: unreachable objects older than
    /// this (approxidate) are dropped.
    pub cruft_expiry: Option<&'static str>,
}

/// What one housekeeping run will do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Plan {
    pub repack: Option<Repack>,
    pub prune: bool,
    pub pack_refs: bool,
    /// `Some(replace_chain)` when the commit-graph is written.
    pub commit_graph: Option<bool>,
}

/// Whether unreachable objects must be kept: in object pools (members
/// borrow them) and in repositories with alternates.
fn keeps_unreachable(info: &RepositoryInfo) -> bool {
    info.is_object_pool || info.alternates.as_ref().is_some_and(|a| !a.object_directories.is_empty())
}

fn has_alternates(info: &RepositoryInfo) -> bool {
    info.alternates.as_ref().is_some_and(|a| !a.object_directories.is_empty())
}

/// A full repack as the repository's kind allows it.
fn full_repack(info: &RepositoryInfo) -> Repack {
    let (kind, cruft_expiry) = if keeps_unreachable(info) {
        (RepackKind::FullWithUnreachable, None)
    } else {
        (RepackKind::FullWithCruft, Some(HOUSEKEEPING_EXPIRY))
    };
    // Bitmaps cannot cover objects that live in another repository.
    Repack { kind, write_bitmap: !has_alternates(info), write_multi_pack_index: true, cruft_expiry }
}

/// Decides what to do with a repository in state `info` at `now`.
pub fn plan(info: &RepositoryInfo, strategy: Strategy, now: SystemTime) -> Plan {
    match strategy {
        Strategy::Eager => Plan {
            repack: Some(full_repack(info)),
            prune: !keeps_unreachable(info),
            pack_refs: true,
            commit_graph: Some(true),
        },
        Strategy::Heuristic => {
            let repack = heuristic_repack(info, now);
            let prune = !keeps_unreachable(info) && info.objects.stale_loose_objects_count > LOOSE_OBJECT_LIMIT;
            let refs = &info.references;
            let pack_refs = refs.loose_count > 0 && {
                let allowed = ((refs.packed_size as f64 / 100.0).ln() / 1.15f64.ln()).max(16.0);
                refs.loose_count as f64 > allowed
            };
            let commit_graph = if refs.loose_count == 0 && refs.packed_size == 0 {
                None
            } else if prune || graph_needs_rewrite(&info.commit_graph) {
                Some(true)
            } else {
                repack.map(|r| r.kind == RepackKind::FullWithCruft)
            };
            Plan { repack, prune, pack_refs, commit_graph }
        }
    }
}

fn graph_needs_rewrite(g: &stats::CommitGraphInfo) -> bool {
    g.chain_length == 0 || !g.has_bloom_filters || !g.has_generation_data
}

fn heuristic_repack(info: &RepositoryInfo, now: SystemTime) -> Option<Repack> {
    let o = &info.objects;
    if o.packfile_count == 0 && o.loose_objects_count == 0 {
        return None;
    }
    let last_full = info.last_full_repack.unwrap_or(SystemTime::UNIX_EPOCH);
    // Newly linked to a pool: a full repack drops what the pool now has.
    if info.alternates.as_ref().and_then(|a| a.last_modified).is_some_and(|m| m > last_full) {
        return Some(full_repack(info));
    }
    let non_cruft = o.packfile_count.saturating_sub(o.cruft_count);
    if non_cruft > 1 && now.duration_since(last_full).unwrap_or_default() > FULL_REPACK_COOLDOWN {
        return Some(full_repack(info));
    }
    let geometric = Repack {
        kind: RepackKind::Geometric,
        write_bitmap: !has_alternates(info),
        write_multi_pack_index: true,
        cruft_expiry: None,
    };
    let Some(midx) = &info.multi_pack_index else { return Some(geometric) };
    let megabytes = (o.size / 1024 / 1024) as f64;
    let allowed = (megabytes.ln() / 1.8f64.ln()).max(2.0);
    if o.packfile_count.saturating_sub(midx.packfile_count) as f64 > allowed.floor() {
        return Some(geometric);
    }
    if o.loose_objects_count > LOOSE_OBJECT_LIMIT {
        return Some(Repack {
            kind: RepackKind::Incremental,
            write_bitmap: false,
            write_multi_pack_index: false,
            cruft_expiry: None,
        });
    }
    None
}

/// What a run did: `(task, succeeded)` in upstream's task names (the
/// `housekeeping_task` label of `gitaly_housekeeping_tasks_total`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub tasks: Vec<(String, bool)>,
    /// How long each step took, by upstream's `housekeeping_task` latency
    /// label (`repack`, `prune`, `pack-refs`, `commit-graph`, `total`...).
    pub durations: Vec<(&'static str, Duration)>,
    /// Stale files and directories removed.
    pub stale_removed: usize,
    /// Another run held the repository, so this one did nothing.
    pub skipped: bool,
}

impl Report {
    /// Whether `task` ran and succeeded.
    pub fn did(&self, task: &str) -> bool {
        self.tasks.iter().any(|(t, ok)| t == task && *ok)
    }
}

/// Repositories being housekept right now: a second run on the same
/// repository returns at once instead of racing the first (upstream does
/// the same per process).
fn running() -> &'static Mutex<HashSet<PathBuf>> {
    static RUNNING: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    RUNNING.get_or_init(Default::default)
}

struct RunningGuard(PathBuf);

impl RunningGuard {
    fn acquire(path: &Path) -> Option<Self> {
        let mut set = running().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        set.insert(path.to_owned()).then(|| Self(path.to_owned()))
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        running().lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.0);
    }
}

/// Housekeeps the repository at `path` (relative path `relative`, which
/// tells object pools apart). The report lists what ran, failures included;
/// the first failure ends the run.
pub async fn optimize(
    factory: &CommandFactory,
    path: &Path,
    relative: &str,
    strategy: Strategy,
    correlation_id: Option<&str>,
) -> (Report, Result<(), GitError>) {
    let mut report = Report::default();
    let Some(_guard) = RunningGuard::acquire(path) else {
        report.skipped = true;
        return (report, Ok(()));
    };
    let started = Instant::now();
    let result = run(factory, path, relative, strategy, correlation_id, &mut report).await;
    report.tasks.push(("total".into(), result.is_ok()));
    report.durations.push(("total", started.elapsed()));
    (report, result)
}

async fn run(
    factory: &CommandFactory,
    path: &Path,
    relative: &str,
    strategy: Strategy,
    correlation_id: Option<&str>,
    report: &mut Report,
) -> Result<(), GitError> {
    let mut step = Instant::now();
    let mut timed = |report: &mut Report, name: &'static str| {
        report.durations.push((name, step.elapsed()));
        step = Instant::now();
    };
    report.stale_removed = clean_stale_data(path).await?;
    timed(report, "clean-stale-data");
    let (p, rel) = (path.to_owned(), relative.to_owned());
    let info = blocking(move || stats::repository_info(&p, &rel, SystemTime::now())).await?;
    let plan = plan(&info, strategy, SystemTime::now());
    tracing::debug!(?plan, repository = %relative, "housekeeping plan");

    if let Some(cfg) = plan.repack {
        let result = repack(factory, path, relative, cfg, correlation_id).await;
        let ok = result.is_ok();
        report.tasks.push((format!("packed_objects_{}", cfg.kind.label()), ok));
        if cfg.write_bitmap {
            report.tasks.push(("written_bitmap".into(), ok));
        }
        if cfg.write_multi_pack_index {
            report.tasks.push(("written_multi_pack_index".into(), ok));
        }
        timed(report, "repack");
        result?;
    }
    if plan.prune {
        let result = prune(factory, path, HOUSEKEEPING_EXPIRY, correlation_id).await;
        report.tasks.push(("pruned_objects".into(), result.is_ok()));
        timed(report, "prune");
        result?;
    }
    if plan.pack_refs {
        let cmd = GitCommand::new(Subcommand::PackRefs).git_dir(path).flag("--all");
        let result = factory.run(cmd, correlation_id).await.map(drop).map_err(GitError::from);
        report.tasks.push(("packed_refs".into(), result.is_ok()));
        timed(report, "pack-refs");
        result?;
    }
    if let Some(replace) = plan.commit_graph {
        let result = write_commit_graph(factory, path, replace, correlation_id).await;
        let task = if replace { "written_commit_graph_full" } else { "written_commit_graph_incremental" };
        report.tasks.push((task.into(), result.is_ok()));
        timed(report, "commit-graph");
        result?;
    }
    Ok(())
}

/// Repacks objects as `cfg` says. A full repack first records its time in
/// the repository (the heuristics read it back).
pub async fn repack(
    factory: &CommandFactory,
    path: &Path,
    relative: &str,
    cfg: Repack,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    if cfg.kind.is_full() {
        let stamp = path.join(FULL_REPACK_TIMESTAMP);
        blocking(move || std::fs::File::create(&stamp).map(drop).map_err(GitError::io("write full-repack timestamp")))
            .await?;
    }
    if cfg.kind == RepackKind::Incremental {
        let mut pack_base = path.join("objects/pack").into_os_string();
        pack_base.push("/pack");
        // With no revisions on stdin every loose object counts as
        // unreachable, so all of them are packed.
        let cmd = GitCommand::new(Subcommand::PackObjects)
            .git_dir(path)
            .flag("--pack-loose-unreachable")
            .flag("--local")
            .flag("--incremental")
            .flag("--non-empty")
            .flag("--quiet")
            .arg(pack_base)
            .stdin(Vec::new());
        factory.run(cmd, correlation_id).await?;
        factory.run(GitCommand::new(Subcommand::PrunePacked).git_dir(path).flag("--quiet"), correlation_id).await?;
        return Ok(());
    }
    let mut cmd = GitCommand::new(Subcommand::Repack).git_dir(path).flag("-d").flag("-l").flag("--quiet");
    cmd = match cfg.kind {
        RepackKind::FullWithCruft => {
            let cmd = cmd.flag("--cruft").flag("--pack-kept-objects");
            match cfg.cruft_expiry {
                Some(expiry) => cmd.flag_value("--cruft-expiration", expiry),
                None => cmd,
            }
        }
        RepackKind::FullWithUnreachable => cmd.flag("-a").flag("--keep-unreachable"),
        RepackKind::Geometric => cmd.flag_value("--geometric", "2"),
        RepackKind::Incremental => unreachable!("handled above"),
    };
    if cfg.write_multi_pack_index {
        cmd = cmd.flag("--write-midx");
    }
    cmd = cmd
        .config("repack.useDeltaIslands", "true")
        .config("repack.writeBitmaps", if cfg.write_bitmap { "true" } else { "false" })
        .config("pack.writeBitmapLookupTable", "true");
    // Delta islands keep deltas within what one fork can see.
    cmd = if stats::is_pool_path(relative) {
        cmd.config("pack.island", "refs/remotes/origin/he(a)ds")
            .config("pack.island", "refs/remotes/origin/t(a)gs")
            .config("pack.islandCore", "a")
    } else {
        cmd.config("pack.island", "r(e)fs/heads").config("pack.island", "r(e)fs/tags").config("pack.islandCore", "e")
    };
    factory.run(cmd, correlation_id).await?;
    Ok(())
}

/// `git prune --expire=<expiry>`: removes loose objects no reference
/// reaches that are older than `expiry` (approxidate).
pub async fn prune(
    factory: &CommandFactory,
    path: &Path,
    expiry: &str,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    let cmd = GitCommand::new(Subcommand::Prune).git_dir(path).flag_value("--expire", expiry);
    factory.run(cmd, correlation_id).await?;
    Ok(())
}

/// Writes a split commit-graph with Bloom filters; `replace_chain`
/// rewrites the whole chain instead of appending to it.
pub async fn write_commit_graph(
    factory: &CommandFactory,
    path: &Path,
    replace_chain: bool,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    let cmd = GitCommand::new(Subcommand::CommitGraphWrite)
        .git_dir(path)
        .flag("--reachable")
        .flag("--changed-paths")
        .flag_value("--size-multiple", "4")
        .flag(if replace_chain { "--split=replace" } else { "--split" });
    factory.run(cmd, correlation_id).await?;
    Ok(())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, GitError> + Send + 'static,
) -> Result<T, GitError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| GitError::Io { step: "housekeeping", source: std::io::Error::other(e) })?
}

/// Removes what crashed or killed git processes leave behind; returns how
/// many files and directories went.
pub async fn clean_stale_data(path: &Path) -> Result<usize, GitError> {
    let path = path.to_owned();
    blocking(move || clean_stale_data_sync(&path, SystemTime::now())).await
}

fn older_than(meta: &std::fs::Metadata, now: SystemTime, age: Duration) -> bool {
    meta.modified().is_ok_and(|m| now.duration_since(m).unwrap_or_default() > age)
}

/// Every file below `root` (not following symlinks), with its metadata.
fn walk_files(root: &Path, mut visit: impl FnMut(&Path, &std::fs::Metadata)) {
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                visit(&entry.path(), &meta);
            }
        }
    }
}

fn clean_stale_data_sync(repo: &Path, now: SystemTime) -> Result<usize, GitError> {
    let mut stale: Vec<PathBuf> = Vec::new();
    let mut stale_dirs: Vec<PathBuf> = Vec::new();

    // Temporary objects and packs of interrupted writes.
    walk_files(&repo.join("objects"), |p, m| {
        let tmp = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("tmp_"));
        if tmp && older_than(m, now, TEMP_OBJECT_AGE) {
            stale.push(p.to_owned());
        }
    });
    // Quarantines of pushes that never finished.
    if let Ok(entries) = std::fs::read_dir(repo.join("objects")) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let incoming = name.to_str().is_some_and(|n| n.starts_with("incoming-"));
            if incoming
                && entry.path().symlink_metadata().is_ok_and(|m| m.is_dir() && older_than(&m, now, TEMP_OBJECT_AGE))
            {
                stale_dirs.push(entry.path());
            }
        }
    }
    let fixed: [(&str, Duration); 2] =
        [("packed-refs.lock", PACKED_REFS_LOCK_AGE), ("packed-refs.new", PACKED_REFS_NEW_AGE)];
    for (file, age) in LOCKFILES.iter().map(|f| (*f, LOCKFILE_AGE)).chain(fixed) {
        let p = repo.join(file);
        if p.symlink_metadata().is_ok_and(|m| m.is_file() && older_than(&m, now, age)) {
            stale.push(p);
        }
    }
    // Reference locks, and empty loose references (a crash mid-write).
    walk_files(&repo.join("refs"), |p, m| {
        let lock = p.extension().is_some_and(|e| e == "lock");
        if (lock && older_than(m, now, REFERENCE_LOCK_AGE)) || (m.len() == 0 && older_than(m, now, BROKEN_REF_AGE)) {
            stale.push(p.to_owned());
        }
    });
    // Pack locks of killed fetches and pushes; other `.keep` files may be
    // an admin's and stay.
    if let Ok(entries) = std::fs::read_dir(repo.join("objects/pack")) {
        for entry in entries.flatten() {
            let p = entry.path();
            let keep =
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("pack-") && n.ends_with(".keep"));
            if !keep || !p.symlink_metadata().is_ok_and(|m| older_than(&m, now, PACK_KEEP_AGE)) {
                continue;
            }
            let content = std::fs::read(&p).unwrap_or_default();
            if content.starts_with(b"receive-pack ") || content.starts_with(b"fetch-pack ") {
                stale.push(p);
            }
        }
    }
    // Dumb-HTTP server info: the node never serves it, and it goes stale.
    for (dir, base) in [("info", "refs"), ("objects/info", "packs")] {
        let Ok(entries) = std::fs::read_dir(repo.join(dir)) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if (name == base || name.starts_with(&format!("{base}_"))) && entry.file_type().is_ok_and(|t| t.is_file()) {
                stale.push(entry.path());
            }
        }
    }

    let mut removed = 0;
    for p in stale {
        match std::fs::remove_file(&p) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(GitError::Io { step: "remove stale file", source: e }),
        }
    }
    for d in stale_dirs {
        match std::fs::remove_dir_all(&d) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(GitError::Io { step: "remove stale directory", source: e }),
        }
    }
    if let Ok(entries) = std::fs::read_dir(repo.join("refs")) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                removed += remove_empty_dirs(&entry.path(), now)?;
            }
        }
    }
    Ok(removed)
}

/// Removes empty directories below and including `dir` that are older than
/// the grace period (a fresh one may be about to receive a reference).
fn remove_empty_dirs(dir: &Path, now: SystemTime) -> Result<usize, GitError> {
    // The age is read before children go, which would touch the directory.
    let Ok(meta) = dir.symlink_metadata() else { return Ok(0) };
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(0) };
    let mut removed = 0;
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            removed += remove_empty_dirs(&entry.path(), now)?;
        }
    }
    if !older_than(&meta, now, EMPTY_REF_DIR_AGE) {
        return Ok(removed);
    }
    if std::fs::read_dir(dir).is_ok_and(|mut e| e.next().is_none()) {
        match std::fs::remove_dir(dir) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // A reference appeared meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {}
            Err(e) => return Err(GitError::Io { step: "remove empty reference directory", source: e }),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::stats::{AlternatesInfo, MultiPackIndexInfo, ObjectsInfo, ReferencesInfo};

    fn info() -> RepositoryInfo {
        RepositoryInfo {
            references: ReferencesInfo { loose_count: 1, ..Default::default() },
            last_full_repack: Some(SystemTime::now()),
            ..Default::default()
        }
    }

    #[test]
    fn heuristic_empty_repository_does_nothing_but_the_graph() {
        let p = plan(&info(), Strategy::Heuristic, SystemTime::now());
        assert_eq!(p.repack, None);
        assert!(!p.prune && !p.pack_refs);
        assert_eq!(p.commit_graph, Some(true), "no commit-graph yet");
    }

    #[test]
    fn heuristic_repacks_geometrically_without_midx_and_incrementally_with_many_loose_objects() {
        let mut i = info();
        i.objects = ObjectsInfo { packfile_count: 1, loose_objects_count: 2000, ..Default::default() };
        let p = plan(&i, Strategy::Heuristic, SystemTime::now());
        assert_eq!(p.repack.map(|r| r.kind), Some(RepackKind::Geometric));
        i.multi_pack_index = Some(MultiPackIndexInfo { packfile_count: 1, ..Default::default() });
        let p = plan(&i, Strategy::Heuristic, SystemTime::now());
        assert_eq!(p.repack.map(|r| r.kind), Some(RepackKind::Incremental));
        i.objects.loose_objects_count = 10;
        assert_eq!(plan(&i, Strategy::Heuristic, SystemTime::now()).repack, None);
    }

    #[test]
    fn pools_and_members_keep_unreachable_objects() {
        let mut i = info();
        i.objects = ObjectsInfo { packfile_count: 3, stale_loose_objects_count: 5000, ..Default::default() };
        i.last_full_repack = None;
        let p = plan(&i, Strategy::Heuristic, SystemTime::now());
        assert_eq!(p.repack.map(|r| r.kind), Some(RepackKind::FullWithCruft));
        assert!(p.prune);
        i.is_object_pool = true;
        for s in [Strategy::Heuristic, Strategy::Eager] {
            let p = plan(&i, s, SystemTime::now());
            assert_eq!(p.repack.map(|r| r.kind), Some(RepackKind::FullWithUnreachable), "{s:?}");
            assert!(!p.prune, "{s:?}");
        }
        i.is_object_pool = false;
        i.alternates = Some(AlternatesInfo { object_directories: vec!["../pool/objects".into()], last_modified: None });
        let p = plan(&i, Strategy::Eager, SystemTime::now());
        assert!(!p.prune);
        assert!(!p.repack.is_some_and(|r| r.write_bitmap), "no bitmaps with alternates");
    }

    #[test]
    fn loose_references_are_packed_past_the_threshold() {
        let mut i = info();
        i.references.loose_count = 16;
        assert!(!plan(&i, Strategy::Heuristic, SystemTime::now()).pack_refs);
        i.references.loose_count = 17;
        assert!(plan(&i, Strategy::Heuristic, SystemTime::now()).pack_refs);
        assert!(plan(&info(), Strategy::Eager, SystemTime::now()).pack_refs);
    }

    #[test]
    fn old_reference_locks_are_removed_fresh_ones_stay() {
        let repo = tempfile::tempdir().expect("tempdir");
        let heads = repo.path().join("refs/heads/topic");
        std::fs::create_dir_all(&heads).expect("mkdir");
        std::fs::write(heads.join("a.lock"), b"").expect("write");
        std::fs::write(heads.join("a"), b"x").expect("write");
        assert_eq!(super::remove_stale_reference_locks(repo.path(), Duration::from_secs(3600)), 0);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(super::remove_stale_reference_locks(repo.path(), Duration::from_millis(10)), 1);
        assert!(!heads.join("a.lock").exists() && heads.join("a").exists());
    }

    #[test]
    fn stale_files_go_fresh_ones_stay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path();
        for d in ["objects/pack", "objects/ab", "objects/incoming-x", "refs/heads/empty/deeper", "refs/heads/fresh"] {
            std::fs::create_dir_all(repo.join(d)).expect("mkdir");
        }
        let files = ["objects/ab/tmp_obj_1", "config.lock", "refs/heads/x.lock", "packed-refs.lock", "info/refs"];
        std::fs::create_dir_all(repo.join("info")).expect("mkdir");
        for f in files {
            std::fs::write(repo.join(f), b"x").expect("write");
        }
        std::fs::write(repo.join("refs/heads/main"), b"0000\n").expect("write");
        // Everything is brand new: only server info goes at once.
        assert_eq!(clean_stale_data_sync(repo, SystemTime::now()).expect("clean"), 1);
        assert!(repo.join("config.lock").exists());
        let later = SystemTime::now() + Duration::from_secs(2 * 24 * 3600);
        let removed = clean_stale_data_sync(repo, later).expect("clean");
        // tmp object, config.lock, ref lock, packed-refs.lock, incoming-x,
        // empty/deeper, empty, fresh.
        assert_eq!(removed, 8);
        assert!(repo.join("refs/heads/main").exists(), "a real reference stays");
        assert!(!repo.join("refs/heads/empty").exists());
        assert!(repo.join("objects/pack").exists(), "object directories stay");
    }
}
