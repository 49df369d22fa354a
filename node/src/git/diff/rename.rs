//! git's rename detection (`-M`, no copies, no break detection), ported so
//! in-process diffs pair files exactly as `git diff --find-renames` does.
//! gitoxide's own tracker scores similarity differently and pairs files
//! greedily, so its answers differ from git's on inexact renames.
//!
//! The steps are git's: deleted files are sources and added files are
//! destinations, both in path order. First exact renames (same object; a
//! source whose file name matches is preferred). Then files whose base
//! names are unique on both sides are compared, and paired when their
//! similarity reaches half way from the threshold to 100%. Finally every
//! remaining destination is scored against every remaining source (when
//! the matrix stays within the rename limit), each destination keeps its
//! four best candidates, and candidates are taken best first, each file
//! used once. Similarity is git's estimate: both files are cut into
//! chunks at newlines or every 64 bytes, chunks are hashed and counted,
//! and the score is the bytes of the destination found in the source over
//! the size of the larger file.
//!
//! One deviation: git decides whether a file is text (to ignore the CR of
//! CRLF when hashing) from `.gitattributes` first; here only the content
//! decides (a NUL byte in the first 8000 bytes makes it binary).

use super::{Change, Side, Status, is_regular};
use crate::git::objects::{self, ObjectId};
use crate::git::{GitError, Repo};
use std::collections::HashMap;

/// git's scale of similarity scores (100%).
pub const MAX_SCORE: u32 = 60_000;

/// A score from a percentage, as `-M<n>%` parses it.
pub fn score_from_percent(percent: u32) -> u32 {
    percent.min(100) * MAX_SCORE / 100
}

/// git's default threshold, 50%.
pub const DEFAULT_SCORE: u32 = 30_000;

/// git's default `diff.renameLimit`.
pub const DEFAULT_LIMIT: usize = 1000;

/// Candidates kept per destination in the matrix.
const CANDIDATES_PER_DST: usize = 4;

/// Same-object sources examined per destination before one is picked.
const MAX_IDENTICAL_CANDIDATES: usize = 100;

/// Modulus of the chunk hashes (a prime git chose between 2^16 and 2^17).
const HASHBASE: u32 = 107_927;

/// Bytes whose first NUL makes a file binary.
const FIRST_FEW_BYTES: usize = 8000;

/// Whether the last path components are equal (`a/x.c` and `b/x.c`).
fn basename_same(src: &[u8], dst: &[u8]) -> bool {
    let (mut s, mut d) = (src.len(), dst.len());
    while s > 0 && d > 0 {
        s -= 1;
        d -= 1;
        if src[s] != dst[d] {
            return false;
        }
        if src[s] == b'/' {
            return true;
        }
    }
    (s == 0 || src[s - 1] == b'/') && (d == 0 || dst[d - 1] == b'/')
}

fn basename(path: &[u8]) -> &[u8] {
    path.iter().rposition(|b| *b == b'/').map_or(path, |i| &path[i + 1..])
}

/// Chunk hashes of a file and how many bytes each stands for, sorted by
/// hash.
type SpanHashes = Vec<(u32, u32)>;

fn span_hashes(data: &[u8]) -> SpanHashes {
    let is_text = !data[..data.len().min(FIRST_FEW_BYTES)].contains(&0);
    let mut counts: HashMap<u32, u32> = HashMap::new();
    let (mut accum1, mut accum2, mut n) = (0u32, 0u32, 0u32);
    let mut add = |accum1: u32, accum2: u32, n: u32| {
        let hash = accum1.wrapping_add(accum2.wrapping_mul(0x61)) % HASHBASE;
        let c = counts.entry(hash).or_default();
        *c = c.wrapping_add(n);
    };
    for (i, &c) in data.iter().enumerate() {
        if is_text && c == b'\r' && data.get(i + 1) == Some(&b'\n') {
            continue;
        }
        let old1 = accum1;
        accum1 = (accum1 << 7) ^ (accum2 >> 25);
        accum2 = (accum2 << 7) ^ (old1 >> 25);
        accum1 = accum1.wrapping_add(u32::from(c));
        n += 1;
        if n < 64 && c != b'\n' {
            continue;
        }
        add(accum1, accum2, n);
        n = 0;
        accum1 = 0;
        accum2 = 0;
    }
    if n > 0 {
        add(accum1, accum2, n);
    }
    let mut out: SpanHashes = counts.into_iter().filter(|(_, c)| *c > 0).collect();
    out.sort_unstable();
    out
}

/// Bytes of `dst` that also occur in `src` (chunk by chunk).
fn copied_bytes(src: &SpanHashes, dst: &SpanHashes) -> u64 {
    let mut copied = 0u64;
    let mut d = dst.iter().peekable();
    for &(hash, src_cnt) in src {
        while d.next_if(|(h, _)| *h < hash).is_some() {}
        if let Some(&&(h, dst_cnt)) = d.peek()
            && h == hash
        {
            d.next();
            copied += u64::from(src_cnt.min(dst_cnt));
        }
    }
    copied
}

/// Blob sizes and chunk hashes, loaded once per object.
struct Blobs<'r> {
    repo: &'r Repo,
    sizes: HashMap<ObjectId, u64>,
    hashes: HashMap<ObjectId, SpanHashes>,
}

impl Blobs<'_> {
    fn size(&mut self, id: ObjectId) -> Result<u64, GitError> {
        if let Some(s) = self.sizes.get(&id) {
            return Ok(*s);
        }
        let size = objects::header(self.repo, id)?.map_or(0, |(_, size)| size);
        self.sizes.insert(id, size);
        Ok(size)
    }

    fn load_hashes(&mut self, id: ObjectId) -> Result<(), GitError> {
        if !self.hashes.contains_key(&id) {
            let data = objects::read(self.repo, id)?.map(|o| o.data).unwrap_or_default();
            self.hashes.insert(id, span_hashes(&data));
        }
        Ok(())
    }

    /// git's `estimate_similarity`: 0 for non-regular files and for sizes
    /// too far apart to reach `min_score`.
    fn similarity(&mut self, src: Side, dst: Side, min_score: u32) -> Result<u32, GitError> {
        if !is_regular(src.mode) || !is_regular(dst.mode) {
            return Ok(0);
        }
        let (src_size, dst_size) = (self.size(src.id)?, self.size(dst.id)?);
        let max_size = src_size.max(dst_size);
        let delta = max_size - src_size.min(dst_size);
        if max_size * u64::from(MAX_SCORE - min_score) < delta * u64::from(MAX_SCORE) {
            return Ok(0);
        }
        if dst_size == 0 {
            return Ok(0);
        }
        self.load_hashes(src.id)?;
        self.load_hashes(dst.id)?;
        let copied = copied_bytes(&self.hashes[&src.id], &self.hashes[&dst.id]);
        Ok((copied * u64::from(MAX_SCORE) / max_size) as u32)
    }
}

/// A candidate pairing in the matrix.
#[derive(Debug, Clone, Copy)]
struct Score {
    src: usize,
    /// `None` for an empty slot.
    dst: Option<usize>,
    score: u32,
    name_score: bool,
}

/// git's `score_compare`: positive when `a` sorts after `b` (empty slots
/// last, then higher scores, then same base names first).
fn score_compare(a: &Score, b: &Score) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.dst, b.dst) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        _ if a.score == b.score => b.name_score.cmp(&a.name_score),
        _ => b.score.cmp(&a.score),
    }
}

fn record_if_better(slots: &mut [Score], candidate: Score) {
    let mut worst = 0;
    for i in 1..slots.len() {
        if score_compare(&slots[i], &slots[worst]).is_gt() {
            worst = i;
        }
    }
    if score_compare(&slots[worst], &candidate).is_gt() {
        slots[worst] = candidate;
    }
}

/// Pairs deletions with additions in `changes` (git's order, as a tree diff
/// gives it) and returns the list with renames in place of the paired
/// additions and without the paired deletions. `min_score` is in
/// [`MAX_SCORE`] units; `limit` bounds the inexact matrix (0: unbounded).
pub fn detect(repo: &Repo, changes: Vec<Change>, min_score: u32, limit: usize) -> Result<Vec<Change>, GitError> {
    let min_score = if min_score == 0 { DEFAULT_SCORE } else { min_score.min(MAX_SCORE) };
    let dsts: Vec<usize> =
        changes.iter().enumerate().filter(|(_, c)| c.status == Status::Added).map(|(i, _)| i).collect();
    let all_srcs: Vec<usize> =
        changes.iter().enumerate().filter(|(_, c)| c.status == Status::Deleted).map(|(i, _)| i).collect();
    if dsts.is_empty() || all_srcs.is_empty() {
        return Ok(changes);
    }
    let side = |i: usize, new: bool| -> Side {
        let c = &changes[i];
        if new { c.new } else { c.old }.expect("additions have a new side, deletions an old one")
    };
    // For each destination (by position in `dsts`): the source change and score.
    let mut paired: Vec<Option<(usize, u32)>> = vec![None; dsts.len()];
    let mut used = vec![false; changes.len()];

    // Exact renames.
    let mut by_id: HashMap<ObjectId, Vec<usize>> = HashMap::new();
    for &s in &all_srcs {
        by_id.entry(side(s, false).id).or_default().push(s);
    }
    for (d, &dst) in dsts.iter().enumerate() {
        let target = side(dst, true);
        let Some(candidates) = by_id.get(&target.id) else { continue };
        let mut best: Option<(usize, u32)> = None;
        let mut examined = 0;
        for &s in candidates {
            let source = side(s, false);
            if (!is_regular(source.mode) || !is_regular(target.mode)) && source.mode != target.mode {
                continue;
            }
            if used[s] {
                continue;
            }
            let score = 1 + u32::from(basename_same(&changes[s].path, &changes[dst].path));
            if best.is_none_or(|(_, b)| score > b) {
                best = Some((s, score));
                if score == 2 {
                    break;
                }
            }
            examined += 1;
            if examined == MAX_IDENTICAL_CANDIDATES {
                break;
            }
        }
        if let Some((s, _)) = best {
            used[s] = true;
            paired[d] = Some((s, MAX_SCORE));
        }
    }

    let mut blobs = Blobs { repo, sizes: HashMap::new(), hashes: HashMap::new() };
    if min_score < MAX_SCORE {
        // Files whose base names are unique on both sides.
        let srcs: Vec<usize> = all_srcs.iter().copied().filter(|s| !used[*s]).collect();
        let min_basename_score = min_score + (MAX_SCORE - min_score) / 2;
        let mut src_names: HashMap<&[u8], Option<usize>> = HashMap::new();
        for &s in &srcs {
            src_names.entry(basename(&changes[s].path)).and_modify(|v| *v = None).or_insert(Some(s));
        }
        let mut dst_names: HashMap<&[u8], Option<usize>> = HashMap::new();
        for (d, &dst) in dsts.iter().enumerate() {
            if paired[d].is_none() {
                dst_names.entry(basename(&changes[dst].path)).and_modify(|v| *v = None).or_insert(Some(d));
            }
        }
        for &s in &srcs {
            let name = basename(&changes[s].path);
            let (Some(Some(src)), Some(Some(d))) = (src_names.get(name), dst_names.get(name)) else { continue };
            if *src != s || paired[*d].is_some() {
                continue;
            }
            let score = blobs.similarity(side(s, false), side(dsts[*d], true), min_basename_score)?;
            if score >= min_basename_score {
                used[s] = true;
                paired[*d] = Some((s, score));
            }
        }

        // The matrix of everything left.
        let srcs: Vec<usize> = srcs.into_iter().filter(|s| !used[*s]).collect();
        let open: Vec<usize> = (0..dsts.len()).filter(|d| paired[*d].is_none()).collect();
        let within_limit = limit == 0 || (open.len() as u128) * (srcs.len() as u128) <= (limit as u128).pow(2);
        if !srcs.is_empty() && !open.is_empty() && within_limit {
            let empty = Score { src: 0, dst: None, score: 0, name_score: false };
            let mut matrix = Vec::with_capacity(open.len() * CANDIDATES_PER_DST);
            for &d in &open {
                let mut slots = [empty; CANDIDATES_PER_DST];
                for (j, &s) in srcs.iter().enumerate() {
                    let score = blobs.similarity(side(s, false), side(dsts[d], true), min_score)?;
                    let name_score = basename_same(&changes[s].path, &changes[dsts[d]].path);
                    record_if_better(&mut slots, Score { src: j, dst: Some(d), score, name_score });
                }
                matrix.extend_from_slice(&slots);
            }
            matrix.sort_by(score_compare);
            for m in matrix {
                let Some(d) = m.dst else { break };
                if m.score < min_score {
                    break;
                }
                let s = srcs[m.src];
                if paired[d].is_some() || used[s] {
                    continue;
                }
                used[s] = true;
                paired[d] = Some((s, m.score));
            }
        }
    }

    let mut renamed_to: HashMap<usize, (usize, u32)> = HashMap::new();
    for (d, pair) in paired.iter().enumerate() {
        if let Some(p) = pair {
            renamed_to.insert(dsts[d], *p);
        }
    }
    let mut out = Vec::with_capacity(changes.len());
    for (i, change) in changes.iter().enumerate() {
        if change.status == Status::Deleted && used[i] {
            continue;
        }
        match renamed_to.get(&i) {
            Some(&(s, score)) => out.push(Change {
                status: Status::Renamed,
                old: changes[s].old,
                new: change.new,
                old_path: changes[s].path.clone(),
                path: change.path.clone(),
                score: score * 100 / MAX_SCORE,
            }),
            None => out.push(change.clone()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_names() {
        assert!(basename_same(b"a/x.c", b"b/c/x.c"));
        assert!(basename_same(b"x.c", b"b/x.c"));
        assert!(!basename_same(b"a/yx.c", b"b/x.c"));
        assert!(!basename_same(b"a/x.c", b"b/x.h"));
        assert_eq!(basename(b"a/b/c"), b"c");
    }

    #[test]
    fn similarity_counts_copied_chunks() {
        let a = span_hashes(b"one\ntwo\nthree\n");
        let b = span_hashes(b"one\ntwo\nfour\n");
        assert_eq!(copied_bytes(&a, &b), 8);
        // CRLF counts as LF in text.
        assert_eq!(span_hashes(b"x\r\n"), span_hashes(b"x\n"));
        assert_ne!(span_hashes(b"\0x\r\n"), span_hashes(b"\0x\n"));
        // A 64-byte run without newline is one chunk.
        assert_eq!(span_hashes(&[b'a'; 64]).len(), 1);
        assert_eq!(span_hashes(&[b'a'; 64])[0].1, 64);
    }

    #[test]
    fn matrix_order_is_gits() {
        let s = |score, name_score| Score { src: 0, dst: Some(0), score, name_score };
        let empty = Score { src: 0, dst: None, score: 0, name_score: false };
        let mut v = [empty, s(100, false), s(200, false), s(100, true)];
        v.sort_by(score_compare);
        assert_eq!(
            v.iter().map(|x| (x.score, x.name_score)).collect::<Vec<_>>(),
            [(200, false), (100, true), (100, false), (0, false)]
        );
        let mut slots = [empty; 2];
        record_if_better(&mut slots, s(5, false));
        record_if_better(&mut slots, s(7, false));
        record_if_better(&mut slots, s(6, false));
        assert_eq!((slots[0].score, slots[1].score), (6, 7));
    }
}
