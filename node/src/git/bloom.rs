//! Changed-path Bloom filters from the commit-graph (`git commit-graph
//! write --changed-paths`), which gix does not read. A filter answers
//! "did this commit change this path relative to its first parent?" with
//! "certainly not" or "maybe"; path-limited walks skip the tree comparison
//! on "certainly not", as git does.
//!
//! Only a single `objects/info/commit-graph` file is read (not split
//! chains). The parsed file is kept per repository and re-read when its
//! size or modification time changes.

use super::objects::ObjectId;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

const SEED0: u32 = 0x293a_e76f;
const SEED1: u32 = 0x7e64_6e2c;
/// Files kept parsed at once; beyond that the cache starts over.
const MAX_CACHED: usize = 256;

/// The filters of one commit-graph file.
#[derive(Debug)]
pub struct ChangedPaths {
    data: Vec<u8>,
    hash_len: usize,
    commits: usize,
    fanout: usize,
    lookup: usize,
    index: usize,
    filters: usize,
    filters_end: usize,
    version: u32,
    num_hashes: u32,
}

/// The keys of one path: the path and each directory above it, each as
/// `num_hashes` bit positions.
#[derive(Debug, Clone)]
pub struct PathKeys {
    keys: Vec<Vec<u32>>,
}

type Stamp = (u64, Option<SystemTime>);
type Cache = Mutex<HashMap<PathBuf, (Stamp, Option<Arc<ChangedPaths>>)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// The changed-path filters of the repository whose object directory is
/// `objects`, if its commit-graph has them.
pub fn load(objects: &Path, hash_len: usize) -> Option<Arc<ChangedPaths>> {
    let file = objects.join("info/commit-graph");
    let meta = std::fs::metadata(&file).ok()?;
    let stamp = (meta.len(), meta.modified().ok());
    if let Some((cached, parsed)) = cache().lock().expect("bloom cache lock is never poisoned").get(&file)
        && *cached == stamp
    {
        return parsed.clone();
    }
    let parsed = std::fs::read(&file).ok().and_then(|data| ChangedPaths::parse(data, hash_len)).map(Arc::new);
    let mut c = cache().lock().expect("bloom cache lock is never poisoned");
    if c.len() >= MAX_CACHED {
        c.clear();
    }
    c.insert(file, (stamp, parsed.clone()));
    parsed
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl ChangedPaths {
    /// Parses a commit-graph file; `None` when it is malformed, belongs to
    /// a chain, or has no changed-path chunks.
    fn parse(data: Vec<u8>, hash_len: usize) -> Option<Self> {
        if data.get(..4)? != b"CGPH" || data[4] != 1 || data[7] != 0 {
            return None;
        }
        let chunk_count = usize::from(data[6]);
        let (mut fanout, mut lookup, mut index, mut filters, mut filters_end) = (None, None, None, None, None);
        for i in 0..chunk_count {
            let at = 8 + i * 12;
            let id = data.get(at..at + 4)?;
            let start = usize::try_from(be64(&data, at + 4)?).ok()?;
            let end = usize::try_from(be64(&data, at + 16)?).ok()?;
            if start > end || end > data.len() {
                return None;
            }
            match id {
                b"OIDF" => fanout = Some(start),
                b"OIDL" => lookup = Some(start),
                b"BIDX" => index = Some(start),
                b"BDAT" => (filters, filters_end) = (Some(start), Some(end)),
                _ => {}
            }
        }
        let (fanout, lookup, index, filters, filters_end) = (fanout?, lookup?, index?, filters?, filters_end?);
        let commits = usize::try_from(be32(&data, fanout + 255 * 4)?).ok()?;
        if data.len() < lookup + commits * hash_len || data.len() < index + commits * 4 {
            return None;
        }
        let version = be32(&data, filters)?;
        let num_hashes = be32(&data, filters + 4)?;
        if !(1..=2).contains(&version) || num_hashes == 0 || num_hashes > 32 {
            return None;
        }
        Some(Self {
            data,
            hash_len,
            commits,
            fanout,
            lookup,
            index,
            filters: filters + 12,
            filters_end,
            version,
            num_hashes,
        })
    }

    /// The keys git derives for `path` (no trailing slash).
    pub fn keys(&self, path: &[u8]) -> PathKeys {
        let mut keys = vec![self.key(path)];
        let mut rest = path;
        while let Some(slash) = rest.iter().rposition(|b| *b == b'/') {
            rest = &rest[..slash];
            keys.push(self.key(rest));
        }
        PathKeys { keys }
    }

    fn key(&self, data: &[u8]) -> Vec<u32> {
        let h0 = murmur3(SEED0, data, self.version);
        let h1 = murmur3(SEED1, data, self.version);
        (0..self.num_hashes).map(|i| h0.wrapping_add(i.wrapping_mul(h1))).collect()
    }

    fn position(&self, id: &ObjectId) -> Option<usize> {
        let bytes = id.as_bytes();
        if bytes.len() != self.hash_len {
            return None;
        }
        let first = usize::from(bytes[0]);
        let lo = if first == 0 { 0 } else { be32(&self.data, self.fanout + (first - 1) * 4)? as usize };
        let hi = (be32(&self.data, self.fanout + first * 4)? as usize).min(self.commits);
        let (mut lo, mut hi) = (lo, hi);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let at = self.lookup + mid * self.hash_len;
            match self.data[at..at + self.hash_len].cmp(bytes) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// Whether commit `id` certainly did not change any of `paths`
    /// against its first parent. `false` means "maybe" (or no filter).
    pub fn certainly_unchanged(&self, id: &ObjectId, paths: &[PathKeys]) -> bool {
        let Some(pos) = self.position(id) else { return false };
        let end = be32(&self.data, self.index + pos * 4).map(|e| e as usize);
        let start = if pos == 0 { Some(0) } else { be32(&self.data, self.index + (pos - 1) * 4).map(|e| e as usize) };
        let (Some(start), Some(end)) = (start, end) else { return false };
        let (from, to) = (self.filters + start, self.filters + end);
        if start >= end || to > self.filters_end {
            // No filter (or an empty one): git compares the trees.
            return false;
        }
        let filter = &self.data[from..to];
        let bits = (filter.len() * 8) as u64;
        let contains = |key: &Vec<u32>| {
            key.iter().all(|h| filter[(u64::from(*h) % bits / 8) as usize] & (1 << (u64::from(*h) % 8)) != 0)
        };
        // A path maybe changed when it and all its directories are in the
        // filter; the commit is skipped only when no path maybe changed.
        !paths.iter().any(|p| p.keys.iter().all(contains))
    }
}

/// git's murmur3 (32-bit). Version 1 filters were written with bytes read
/// as signed chars; version 2 reads them unsigned.
fn murmur3(seed: u32, data: &[u8], version: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let byte = |b: u8| if version == 1 { i32::from(b as i8) as u32 } else { u32::from(b) };
    let mut h = seed;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = byte(c[0]) | (byte(c[1]) << 8) | (byte(c[2]) << 16) | (byte(c[3]) << 24);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = chunks.remainder();
    let mut k = 0u32;
    if tail.len() == 3 {
        k ^= byte(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        k ^= byte(tail[1]) << 8;
    }
    if !tail.is_empty() {
        k ^= byte(tail[0]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[cfg(test)]
mod tests {
    use super::murmur3;

    #[test]
    fn murmur3_matches_known_values() {
        // Reference values of murmur3_x86_32 (as in git's t/helper tests).
        assert_eq!(murmur3(0, b"", 2), 0x0000_0000);
        assert_eq!(murmur3(0, b"Hello world!", 2), 0x627b_0c2c);
        assert_eq!(murmur3(0, b"The quick brown fox jumps over the lazy dog", 2), 0x2e4f_f723);
        assert_eq!(murmur3(0, b"\x99\xaa\xbb\xcc\xdd\xee\xff", 2), 0xa183_ccfd);
        // Version 1 differs only where a byte has its high bit set.
        assert_ne!(murmur3(0, b"\x99\xaa\xbb\xcc\xdd\xee\xff", 1), 0xa183_ccfd);
        assert_eq!(murmur3(7, b"plain/ascii.txt", 1), murmur3(7, b"plain/ascii.txt", 2));
    }
}
