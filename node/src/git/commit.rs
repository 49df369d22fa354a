//! Reading commits: lookups, the default branch, every commit of the
//! object database, reference decorations (`git log --decorate=full`) and
//! diff statistics (`git diff --numstat`, `git log --shortstat`) with git's
//! default rename detection.

use super::objects::{self, Commit, Kind, ObjectId};
use super::tree::{self, EntryKind};
use super::{GitError, Repo};
use std::collections::HashMap;

/// The commit a revision names (tags peeled), or `None`.
pub fn find(repo: &Repo, revision: &[u8]) -> Result<Option<Commit>, GitError> {
    let Some(id) = objects::resolve_commit(repo, revision)? else { return Ok(None) };
    read(repo, id)
}

/// The commit with this id, or `None` when it is missing or not a commit.
pub fn read(repo: &Repo, id: objects::ObjectId) -> Result<Option<Commit>, GitError> {
    match objects::read(repo, id)? {
        Some(o) if o.kind == Kind::Commit => Ok(Some(objects::parse_commit(&id, &o.data))),
        _ => Ok(None),
    }
}

/// The commit `id` names, following tags; `None` when it names none. A
/// commit (what branches point at) is read once.
pub fn read_peeled(repo: &Repo, id: objects::ObjectId) -> Result<Option<Commit>, GitError> {
    let Some(obj) = objects::read(repo, id)? else { return Ok(None) };
    if obj.kind == Kind::Commit {
        return Ok(Some(objects::parse_commit(&id, &obj.data)));
    }
    match objects::peel_to(repo, id, Kind::Commit)? {
        Some(commit) => read(repo, commit),
        None => Ok(None),
    }
}

/// The raw bytes of the commit a revision names (tags peeled).
pub fn find_raw(repo: &Repo, revision: &[u8]) -> Result<Option<(ObjectId, Vec<u8>)>, GitError> {
    let Some(id) = objects::resolve_commit(repo, revision)? else { return Ok(None) };
    match objects::read(repo, id)? {
        Some(o) if o.kind == Kind::Commit => Ok(Some((id, o.data))),
        _ => Ok(None),
    }
}

/// The branch GitLab treats as default, as upstream determines it: HEAD's
/// target if it exists, else `main`, else `master`, else the first branch.
/// `None` when the repository has no branch at all.
pub fn default_branch(repo: &Repo) -> Result<Option<Vec<u8>>, GitError> {
    let g = repo.gix();
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    if let Ok(Some(head)) = g.head_name() {
        candidates.push(head.as_bstr().to_vec());
    }
    candidates.push(b"refs/heads/main".to_vec());
    candidates.push(b"refs/heads/master".to_vec());
    for c in candidates {
        if objects::parse_oid(repo, &c).is_none() && reference_target(repo, &c)?.is_some() {
            return Ok(Some(c));
        }
    }
    let refs = g.references().map_err(|e| GitError::gix("read references", e))?;
    let mut heads = refs.prefixed("refs/heads/").map_err(|e| GitError::gix("read branches", e))?;
    match heads.next() {
        Some(r) => {
            let r = r.map_err(|e| GitError::gix("read branch", e))?;
            Ok(Some(r.name().as_bstr().to_vec()))
        }
        None => Ok(None),
    }
}

/// The object a full reference name points to (symbolic references
/// followed), or `None`.
fn reference_target(repo: &Repo, name: &[u8]) -> Result<Option<ObjectId>, GitError> {
    use gix::bstr::ByteSlice as _;
    let Ok(name) = name.to_str() else { return Ok(None) };
    let Ok(Some(mut r)) = repo.gix().try_find_reference(name) else { return Ok(None) };
    Ok(r.peel_to_id().ok().map(gix::Id::detach))
}

/// Every commit in the object database (reachable or not, packed or
/// loose, alternates included), sorted by object id.
pub fn all_ids(repo: &Repo) -> Result<Vec<ObjectId>, GitError> {
    let iter = repo.gix().objects.iter().map_err(|e| GitError::gix("list objects", e))?;
    let mut ids = Vec::new();
    for id in iter {
        let id = id.map_err(|e| GitError::gix("list objects", e))?;
        if let Some((Kind::Commit, _)) = objects::header(repo, id)? {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Reference names decorating each commit, as `git log --decorate=full
/// --decorate-refs=<pattern>...` prints them (`%D`, with `tag: ` and
/// `HEAD -> ` split off): HEAD first (followed by its branch when both are
/// selected), then the other references in reverse name order. Annotated
/// tags decorate the commits they point to.
pub fn decorations(repo: &Repo, patterns: &[&[u8]]) -> Result<HashMap<ObjectId, Vec<Vec<u8>>>, GitError> {
    let selected = |name: &[u8]| {
        patterns.iter().any(|p| {
            if p.iter().any(|b| b"*?[\\".contains(b)) {
                tree::wildmatch(p, name, false, false)
            } else {
                let p = p.strip_suffix(b"/").unwrap_or(p);
                name == p || name.len() > p.len() && name.starts_with(p) && name[p.len()] == b'/'
            }
        })
    };
    let mut refs = super::repo::resolved_references(repo)?;
    let head_target = repo.gix().head_name().ok().flatten().map(|n| n.as_bstr().to_vec());
    let head = refs.iter().position(|(n, _)| n == "HEAD").map(|i| refs.remove(i));
    refs.sort_by(|a, b| b.0.cmp(&a.0));
    let mut out: HashMap<ObjectId, Vec<Vec<u8>>> = HashMap::new();
    let mut head_pair: Option<(ObjectId, Vec<u8>)> = None;
    if let Some((_, id)) = &head
        && selected(b"HEAD")
        && let Some(c) = objects::peel_to(repo, *id, Kind::Commit)?
    {
        let mut names = vec![b"HEAD".to_vec()];
        if let Some(t) = &head_target
            && selected(t)
            && refs.iter().any(|(n, i)| n.as_bytes() == t.as_slice() && i == id)
        {
            names.push(t.clone());
            head_pair = Some((c, t.clone()));
        }
        out.insert(c, names);
    }
    for (name, id) in refs {
        if !selected(name.as_bytes()) {
            continue;
        }
        let Some(c) = objects::peel_to(repo, id, Kind::Commit)? else { continue };
        if head_pair.as_ref().is_some_and(|(hc, hn)| *hc == c && hn.as_slice() == name.as_bytes()) {
            continue;
        }
        out.entry(c).or_default().push(name.into_bytes());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Diff statistics

/// Changed files and lines between two trees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffStat {
    pub files: usize,
    pub additions: usize,
    pub deletions: usize,
}

/// A changed path: `(mode, id)` before and after (`None` = absent).
#[derive(Debug, Clone)]
struct Change {
    path: Vec<u8>,
    /// The source path of a rename.
    old_path: Option<Vec<u8>>,
    old: Option<(u32, ObjectId)>,
    new: Option<(u32, ObjectId)>,
}

/// Bytes git inspects for NUL to call a file binary.
const BINARY_PROBE: usize = 8000;
/// git's default rename similarity threshold (50%).
const RENAME_SCORE: f64 = 0.5;
/// Most add/delete pairs scored for inexact renames (git's default
/// `diff.renameLimit` is 1000 sources by 1000 destinations).
const RENAME_PAIRS: usize = 1000 * 1000;

/// `git diff --numstat <old> <new>` summed: every changed file counts,
/// binary files add no lines, renames (exact, then at least 50% similar)
/// are one file whose lines are diffed against their source.
pub fn diff_stat(repo: &Repo, old: Option<ObjectId>, new: Option<ObjectId>) -> Result<DiffStat, GitError> {
    let mut changes = Vec::new();
    collect_changes(repo, old, new, b"", &mut changes)?;
    let pairs = pair_renames(repo, changes)?;
    let mut stat = DiffStat::default();
    for c in pairs {
        stat.files += 1;
        let (old_lines, new_lines) = (content(repo, c.old)?, content(repo, c.new)?);
        if is_binary(&old_lines) || is_binary(&new_lines) {
            continue;
        }
        let (added, removed) = line_changes(&old_lines, &new_lines);
        stat.additions += added;
        stat.deletions += removed;
    }
    Ok(stat)
}

/// What a side of a change shows in a diff: blob contents, or for a
/// gitlink git's `Subproject commit <id>` line.
fn content(repo: &Repo, side: Option<(u32, ObjectId)>) -> Result<Vec<u8>, GitError> {
    match side {
        None => Ok(Vec::new()),
        Some((mode, id)) if tree::kind_of(mode) == EntryKind::Commit => {
            Ok(format!("Subproject commit {id}\n").into_bytes())
        }
        Some((_, id)) => Ok(objects::read(repo, id)?.map(|o| o.data).unwrap_or_default()),
    }
}

fn is_binary(data: &[u8]) -> bool {
    data[..data.len().min(BINARY_PROBE)].contains(&0)
}

fn collect_changes(
    repo: &Repo,
    a: Option<ObjectId>,
    b: Option<ObjectId>,
    dir: &[u8],
    out: &mut Vec<Change>,
) -> Result<(), GitError> {
    if a == b {
        return Ok(());
    }
    let load = |id: Option<ObjectId>| -> Result<Vec<tree::Entry>, GitError> {
        Ok(match id {
            Some(id) => tree::read(repo, id)?.unwrap_or_default(),
            None => Vec::new(),
        })
    };
    let (ea, eb) = (load(a)?, load(b)?);
    let mut names: Vec<&[u8]> = ea.iter().chain(eb.iter()).map(|e| e.name.as_slice()).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let x = ea.iter().find(|e| e.name == name);
        let y = eb.iter().find(|e| e.name == name);
        if let (Some(x), Some(y)) = (x, y)
            && x.mode == y.mode
            && x.id == y.id
        {
            continue;
        }
        let path = tree::join(dir, name);
        let sub = |e: Option<&tree::Entry>| e.filter(|e| e.is_tree()).map(|e| e.id);
        let leaf = |e: Option<&tree::Entry>| e.filter(|e| !e.is_tree()).map(|e| (e.mode, e.id));
        let (sx, sy) = (sub(x), sub(y));
        if sx.is_some() || sy.is_some() {
            collect_changes(repo, sx, sy, &path, out)?;
        }
        let (lx, ly) = (leaf(x), leaf(y));
        if lx.is_some() || ly.is_some() {
            out.push(Change { path, old_path: None, old: lx, new: ly });
        }
    }
    Ok(())
}

/// git's rename detection over add/delete pairs of regular files and
/// symlinks: exact renames by object id, then the most similar source of
/// each destination when at least 50% similar.
fn pair_renames(repo: &Repo, changes: Vec<Change>) -> Result<Vec<Change>, GitError> {
    let (mut added, mut deleted, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    for c in changes {
        let renameable = |s: Option<(u32, ObjectId)>| s.is_some_and(|(m, _)| tree::kind_of(m) == EntryKind::Blob);
        match (c.old, c.new) {
            (None, Some(_)) if renameable(c.new) => added.push(c),
            (Some(_), None) if renameable(c.old) => deleted.push(c),
            _ => rest.push(c),
        }
    }
    let mut used = vec![false; deleted.len()];
    let mut unmatched = Vec::new();
    for a in added {
        let id = a.new.map(|(_, id)| id);
        match deleted.iter().enumerate().position(|(i, d)| !used[i] && d.old.map(|(_, id)| id) == id) {
            Some(i) => {
                used[i] = true;
                rest.push(Change {
                    path: a.path,
                    old_path: Some(deleted[i].path.clone()),
                    old: deleted[i].old,
                    new: a.new,
                });
            }
            None => unmatched.push(a),
        }
    }
    if !unmatched.is_empty() && unmatched.len() * deleted.len() <= RENAME_PAIRS {
        let mut sources: Vec<Option<Vec<u8>>> = vec![None; deleted.len()];
        let mut remaining = Vec::new();
        for a in unmatched {
            let dst = content(repo, a.new)?;
            let mut best: Option<(f64, usize)> = None;
            for (i, d) in deleted.iter().enumerate() {
                if used[i] {
                    continue;
                }
                if sources[i].is_none() {
                    sources[i] = Some(content(repo, d.old)?);
                }
                let score = similarity(sources[i].as_deref().unwrap_or_default(), &dst);
                if score >= RENAME_SCORE && best.is_none_or(|(s, _)| score > s) {
                    best = Some((score, i));
                }
            }
            match best {
                Some((_, i)) => {
                    used[i] = true;
                    rest.push(Change {
                        path: a.path,
                        old_path: Some(deleted[i].path.clone()),
                        old: deleted[i].old,
                        new: a.new,
                    });
                }
                None => remaining.push(a),
            }
        }
        rest.extend(remaining);
    } else {
        rest.extend(unmatched);
    }
    rest.extend(deleted.into_iter().enumerate().filter(|(i, _)| !used[*i]).map(|(_, d)| d));
    Ok(rest)
}

/// git's similarity estimate: bytes of `src` found again in `dst`, counted
/// per chunk (lines, split every 64 bytes), over the larger size.
fn similarity(src: &[u8], dst: &[u8]) -> f64 {
    if src.is_empty() || dst.is_empty() {
        return if src == dst { 1.0 } else { 0.0 };
    }
    let (a, b) = (chunk_bytes(src), chunk_bytes(dst));
    let copied: usize = a.iter().map(|(k, n)| (*n).min(*b.get(k).unwrap_or(&0))).sum();
    copied as f64 / src.len().max(dst.len()) as f64
}

/// Bytes per chunk (a line, cut every 64 bytes) of `data`.
fn chunk_bytes(data: &[u8]) -> HashMap<&[u8], usize> {
    let mut counts: HashMap<&[u8], usize> = HashMap::new();
    let mut start = 0;
    for i in 0..data.len() {
        if data[i] == b'\n' || i + 1 - start == 64 {
            *counts.entry(&data[start..=i]).or_default() += i + 1 - start;
            start = i + 1;
        }
    }
    if start < data.len() {
        *counts.entry(&data[start..]).or_default() += data.len() - start;
    }
    counts
}

/// The path `path` was renamed from in this commit (for `--follow`): a
/// deleted file with the same contents, or the most similar deleted one
/// when at least 50% similar.
pub fn rename_source(
    repo: &Repo,
    parent_tree: ObjectId,
    tree: ObjectId,
    path: &[u8],
) -> Result<Option<Vec<u8>>, GitError> {
    let mut changes = Vec::new();
    collect_changes(repo, Some(parent_tree), Some(tree), b"", &mut changes)?;
    Ok(pair_renames(repo, changes)?.into_iter().find(|c| c.path == path).and_then(|c| c.old_path))
}

/// Lines added and removed by a minimal line diff (git's Myers diff finds
/// the same counts for all but pathological inputs).
pub fn line_changes(a: &[u8], b: &[u8]) -> (usize, usize) {
    let (la, lb) = (split_lines(a), split_lines(b));
    let mut ids: HashMap<&[u8], u32> = HashMap::new();
    let x = intern(&mut ids, &la);
    let y = intern(&mut ids, &lb);
    let prefix = x.iter().zip(&y).take_while(|(p, q)| p == q).count();
    let suffix = x[prefix..].iter().rev().zip(y[prefix..].iter().rev()).take_while(|(p, q)| p == q).count();
    let (x, y) = (&x[prefix..x.len() - suffix], &y[prefix..y.len() - suffix]);
    let lcs = lcs_len(x, y);
    (y.len() - lcs, x.len() - lcs)
}

fn split_lines(d: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in d.iter().enumerate() {
        if *c == b'\n' {
            out.push(&d[start..=i]);
            start = i + 1;
        }
    }
    if start < d.len() {
        out.push(&d[start..]);
    }
    out
}

fn intern<'a>(ids: &mut HashMap<&'a [u8], u32>, lines: &[&'a [u8]]) -> Vec<u32> {
    lines
        .iter()
        .map(|l| {
            let next = u32::try_from(ids.len()).unwrap_or(u32::MAX);
            *ids.entry(*l).or_insert(next)
        })
        .collect()
}

/// Work bound above which the exact diff gives way to a multiset estimate
/// (git's own diff stops optimising at a cost bound too).
const MAX_DIFF_WORK: usize = 50_000_000;

/// Length of a longest common subsequence via Myers' O((N+M)D) search.
fn lcs_len(x: &[u32], y: &[u32]) -> usize {
    let (n, m) = (x.len(), y.len());
    if n == 0 || m == 0 {
        return 0;
    }
    let max = n + m;
    let offset = max as isize;
    let mut v = vec![0usize; 2 * max + 2];
    let mut work = 0usize;
    for d in 0..=max as isize {
        let mut k = -d;
        while k <= d {
            let idx = (k + offset) as usize;
            let mut px = if k == -d || (k != d && v[idx - 1] < v[idx + 1]) { v[idx + 1] } else { v[idx - 1] + 1 };
            let mut py = (px as isize - k) as usize;
            while px < n && py < m && x[px] == y[py] {
                px += 1;
                py += 1;
            }
            v[idx] = px;
            if px >= n && py >= m {
                return (n + m - d as usize) / 2;
            }
            k += 2;
        }
        work += 2 * d as usize + 1;
        if work > MAX_DIFF_WORK {
            return multiset_common(x, y);
        }
    }
    0
}

fn multiset_common(x: &[u32], y: &[u32]) -> usize {
    let mut counts: HashMap<u32, isize> = HashMap::new();
    for a in x {
        *counts.entry(*a).or_default() += 1;
    }
    y.iter()
        .filter(|b| {
            let c = counts.entry(**b).or_default();
            *c -= 1;
            *c >= 0
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_counts_like_numstat() {
        assert_eq!(line_changes(b"", b"a\nb\n"), (2, 0));
        assert_eq!(line_changes(b"a\nb\nc\n", b"a\nB\nc\n"), (1, 1));
        assert_eq!(line_changes(b"a\nb", b"a\nb\n"), (1, 1));
        assert_eq!(line_changes(b"one\ntwo\nthree\n", b"zero\none\nthree\nfour\n"), (2, 1));
        assert_eq!(line_changes(b"x\n", b"x\n"), (0, 0));
    }

    #[test]
    fn similarity_scores() {
        assert!(similarity(b"a\nb\nc\nd\n", b"a\nb\nc\nX\n") >= 0.5);
        assert!(similarity(b"a\nb\nc\nd\n", b"w\nx\ny\nz\n") < 0.5);
    }
}
