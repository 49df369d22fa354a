//! Facts about a repository's on-disk state (RepositoryInfo, housekeeping
//! heuristics), read from the files git writes: loose objects and
//! references, packfiles and their companions, commit-graphs, bitmaps and
//! multi-pack-indexes. Only file headers are read, never whole files.

use super::{GitError, lifecycle::FULL_REPACK_TIMESTAMP};
use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Loose objects older than this are stale (upstream's grace period).
pub const STALE_OBJECT_AGE: Duration = Duration::from_secs(10 * 24 * 3600);

/// Reference storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefBackend {
    #[default]
    Files,
    Reftable,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferencesInfo {
    pub loose_count: u64,
    pub packed_size: u64,
    pub backend: RefBackend,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectsInfo {
    pub size: u64,
    pub recent_size: u64,
    pub stale_size: u64,
    pub keep_size: u64,
    pub packfile_count: u64,
    pub reverse_index_count: u64,
    pub cruft_count: u64,
    pub keep_count: u64,
    pub loose_objects_count: u64,
    pub stale_loose_objects_count: u64,
    pub loose_objects_garbage_count: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitGraphInfo {
    pub chain_length: u64,
    pub has_bloom_filters: bool,
    pub has_generation_data: bool,
    pub has_generation_data_overflow: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BitmapInfo {
    pub has_hash_cache: bool,
    pub has_lookup_table: bool,
    pub version: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiPackIndexInfo {
    pub packfile_count: u64,
    pub version: u64,
    pub has_large_offsets: bool,
    pub has_bitmapped_packs: bool,
    pub has_reverse_index: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlternatesInfo {
    pub object_directories: Vec<String>,
    pub last_modified: Option<SystemTime>,
}

/// Everything RepositoryInfo reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepositoryInfo {
    pub size: u64,
    pub references: ReferencesInfo,
    pub objects: ObjectsInfo,
    pub commit_graph: CommitGraphInfo,
    pub bitmap: Option<BitmapInfo>,
    pub multi_pack_index: Option<MultiPackIndexInfo>,
    pub multi_pack_index_bitmap: Option<BitmapInfo>,
    pub alternates: Option<AlternatesInfo>,
    pub is_object_pool: bool,
    pub last_full_repack: Option<SystemTime>,
}

/// Whether a relative path names an object pool: Rails'
/// `@pools/xx/yy/<64 hex>.git` or the router's `@cluster/pools/xx/yy/<id>`.
pub fn is_pool_path(relative: &str) -> bool {
    let parts: Vec<&str> = relative.split('/').collect();
    let hex2 = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_hexdigit());
    match parts.as_slice() {
        ["@pools", a, b, name] => {
            hex2(a)
                && hex2(b)
                && name.strip_suffix(".git").is_some_and(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()))
                && name[..4] == format!("{a}{b}")
        }
        ["@cluster", "pools", a, b, id] => {
            hex2(a) && hex2(b) && !id.is_empty() && id.bytes().all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

/// Gathers [`RepositoryInfo`] for the repository at `path` (whose relative
/// path is `relative`), as of `now`.
pub fn repository_info(path: &Path, relative: &str, now: SystemTime) -> Result<RepositoryInfo, GitError> {
    let mut info = RepositoryInfo {
        size: super::dir_size(path)?,
        references: references_info(path)?,
        is_object_pool: is_pool_path(relative),
        ..Default::default()
    };
    loose_objects(path, now, &mut info.objects)?;
    packfiles(path, &mut info)?;
    info.commit_graph = commit_graph_info(path);
    info.alternates = alternates_info(path)?;
    info.last_full_repack = std::fs::metadata(path.join(FULL_REPACK_TIMESTAMP)).and_then(|m| m.modified()).ok();
    Ok(info)
}

fn references_info(path: &Path) -> Result<ReferencesInfo, GitError> {
    let mut loose_count = 0;
    let mut stack = vec![path.join("refs")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(_) => loose_count += 1,
                Err(_) => {}
            }
        }
    }
    let packed_size = std::fs::metadata(path.join("packed-refs")).map(|m| m.len()).unwrap_or(0);
    let config = std::fs::read_to_string(path.join("config")).unwrap_or_default();
    let backend = if config.lines().any(|l| {
        let l = l.trim().to_ascii_lowercase().replace(' ', "");
        l.starts_with("refstorage=reftable")
    }) {
        RefBackend::Reftable
    } else {
        RefBackend::Files
    };
    Ok(ReferencesInfo { loose_count, packed_size, backend })
}

fn loose_objects(path: &Path, now: SystemTime, objects: &mut ObjectsInfo) -> Result<(), GitError> {
    let cutoff = now.checked_sub(STALE_OBJECT_AGE).unwrap_or(SystemTime::UNIX_EPOCH);
    let (mut size, mut stale_size) = (0u64, 0u64);
    for shard in 0..=0xffu32 {
        let Ok(entries) = std::fs::read_dir(path.join("objects").join(format!("{shard:02x}"))) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let name = entry.file_name();
            let valid =
                name.to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            if !valid {
                objects.loose_objects_garbage_count += 1;
                continue;
            }
            objects.loose_objects_count += 1;
            size += meta.len();
            if meta.modified().is_ok_and(|m| m < cutoff) {
                objects.stale_loose_objects_count += 1;
                stale_size += meta.len();
            }
        }
    }
    objects.size += size;
    objects.recent_size += size - stale_size;
    objects.stale_size += stale_size;
    Ok(())
}

fn packfiles(path: &Path, info: &mut RepositoryInfo) -> Result<(), GitError> {
    let pack_dir = path.join("objects/pack");
    let entries = match std::fs::read_dir(&pack_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(GitError::Io { step: "read pack directory", source: e }),
    };
    let names: Vec<String> = entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
    let has = |stem: &str, ext: &str| names.iter().any(|n| n == &format!("{stem}.{ext}"));
    let o = &mut info.objects;
    for name in &names {
        if let Some(stem) = name.strip_suffix(".pack").filter(|s| s.starts_with("pack-")) {
            let size = std::fs::metadata(pack_dir.join(name)).map(|m| m.len()).unwrap_or(0);
            o.packfile_count += 1;
            o.size += size;
            if has(stem, "keep") {
                o.keep_count += 1;
                o.keep_size += size;
                o.recent_size += size;
            } else if has(stem, "mtimes") {
                o.cruft_count += 1;
                o.stale_size += size;
            } else {
                o.recent_size += size;
            }
        } else if name.starts_with("pack-") && name.ends_with(".rev") {
            o.reverse_index_count += 1;
        } else if name.starts_with("pack-") && name.ends_with(".bitmap") {
            info.bitmap = bitmap_info(&pack_dir.join(name));
        } else if name == "multi-pack-index" {
            info.multi_pack_index = multi_pack_index_info(&pack_dir.join(name));
        } else if name.starts_with("multi-pack-index-") && name.ends_with(".bitmap") {
            info.multi_pack_index_bitmap = bitmap_info(&pack_dir.join(name));
        }
    }
    Ok(())
}

fn read_prefix(path: &Path, len: usize) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    std::fs::File::open(path).ok()?.take(len as u64).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// Bitmap header: `BITM`, version (u16), flags (u16); flag 0x4 is the
/// name-hash cache, 0x10 the lookup table.
fn bitmap_info(path: &Path) -> Option<BitmapInfo> {
    let h = read_prefix(path, 8)?;
    if h.len() < 8 || &h[..4] != b"BITM" {
        return None;
    }
    let version = u16::from_be_bytes([h[4], h[5]]);
    let flags = u16::from_be_bytes([h[6], h[7]]);
    Some(BitmapInfo { version: version.into(), has_hash_cache: flags & 0x4 != 0, has_lookup_table: flags & 0x10 != 0 })
}

/// The chunk ids of a chunked file (commit-graph, multi-pack-index) whose
/// chunk count is at `count_at` and whose table starts at `table_at`.
fn chunk_ids(data: &[u8], count_at: usize, table_at: usize) -> Vec<[u8; 4]> {
    let Some(&count) = data.get(count_at) else { return Vec::new() };
    (0..usize::from(count))
        .filter_map(|i| data.get(table_at + i * 12..table_at + i * 12 + 4))
        .map(|id| [id[0], id[1], id[2], id[3]])
        .collect()
}

/// multi-pack-index header: `MIDX`, version, hash id, chunk count, base
/// count, pack count (u32); then the chunk table.
fn multi_pack_index_info(path: &Path) -> Option<MultiPackIndexInfo> {
    let data = read_prefix(path, 12 + 13 * 12)?;
    if data.len() < 12 || &data[..4] != b"MIDX" {
        return None;
    }
    let ids = chunk_ids(&data, 6, 12);
    Some(MultiPackIndexInfo {
        version: data[4].into(),
        packfile_count: u32::from_be_bytes([data[8], data[9], data[10], data[11]]).into(),
        has_large_offsets: ids.contains(b"LOFF"),
        has_bitmapped_packs: ids.contains(b"BTMP"),
        has_reverse_index: ids.contains(b"RIDX"),
    })
}

fn commit_graph_chunks(path: &Path) -> Option<Vec<[u8; 4]>> {
    let data = read_prefix(path, 8 + 16 * 12)?;
    if data.len() < 8 || &data[..4] != b"CGPH" {
        return None;
    }
    Some(chunk_ids(&data, 6, 8))
}

fn commit_graph_info(path: &Path) -> CommitGraphInfo {
    let info_dir = path.join("objects/info");
    let chain = std::fs::read_to_string(info_dir.join("commit-graphs/commit-graph-chain")).ok();
    let graphs: Vec<std::path::PathBuf> = match &chain {
        Some(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|h| info_dir.join(format!("commit-graphs/graph-{}.graph", h.trim())))
            .collect(),
        None => vec![info_dir.join("commit-graph")],
    };
    let chunks: Vec<Vec<[u8; 4]>> = graphs.iter().filter_map(|g| commit_graph_chunks(g)).collect();
    let all = |id: &[u8; 4]| !chunks.is_empty() && chunks.iter().all(|c| c.contains(id));
    let any = |id: &[u8; 4]| chunks.iter().any(|c| c.contains(id));
    CommitGraphInfo {
        chain_length: if chain.is_some() { graphs.len() as u64 } else { 0 },
        has_bloom_filters: all(b"BIDX") && all(b"BDAT"),
        has_generation_data: all(b"GDA2"),
        has_generation_data_overflow: any(b"GDO2"),
    }
}

fn alternates_info(path: &Path) -> Result<Option<AlternatesInfo>, GitError> {
    let file = path.join("objects/info/alternates");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(GitError::Io { step: "read alternates", source: e }),
    };
    Ok(Some(AlternatesInfo {
        object_directories: text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect(),
        last_modified: std::fs::metadata(&file).and_then(|m| m.modified()).ok(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_paths() {
        let h = "ab".to_owned() + "cd" + &"0".repeat(60);
        assert!(is_pool_path(&format!("@pools/ab/cd/{h}.git")));
        assert!(!is_pool_path(&format!("@pools/ab/ce/{h}.git")));
        assert!(is_pool_path("@cluster/pools/ab/cd/42"));
        assert!(!is_pool_path("@cluster/repositories/ab/cd/42"));
        assert!(!is_pool_path("@hashed/ab/cd/x.git"));
    }

    #[test]
    fn chunk_tables() {
        let mut data = b"CGPH\x01\x01\x02\x00".to_vec();
        data.extend_from_slice(b"BIDX\0\0\0\0\0\0\0\0BDAT\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
        assert_eq!(chunk_ids(&data, 6, 8), vec![*b"BIDX", *b"BDAT"]);
        assert!(chunk_ids(&data[..10], 6, 8).is_empty());
    }
}
