//! Blob reads: resolving what a request names, finding tree entries by
//! path, reading object contents with bounded memory, and enumerating every
//! object of a repository.
//!
//! Small objects are read whole through gitoxide. gitoxide has no streaming
//! object reader, and its lookups load an object completely, so objects
//! above [`STREAM_THRESHOLD`] are streamed from disk here instead: loose
//! objects are inflated as they are read, and undeltified pack entries
//! (git stores blobs above `core.bigFileThreshold` that way) are inflated
//! straight from the pack file. Only a large object stored as a delta, which
//! git does not produce for big files, is still read whole.

pub mod walk;

use super::objects::{self, Kind, ObjectId};
use super::{GitError, Repo};
use gix::bstr::ByteSlice as _;
use std::io::{BufRead, BufReader, Read, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

/// Objects larger than this (in bytes) are streamed instead of loaded.
pub const STREAM_THRESHOLD: u64 = 16 * 1024 * 1024;

/// What a revision names, for callers that answer "missing" and
/// "ambiguous" differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    Found(ObjectId),
    Missing,
    /// A short object id that matches more than one object.
    Ambiguous,
}

/// Resolves any revision git's object reader would accept (`main`,
/// `v1.0^{}`, `HEAD:README.md`, full or short object ids).
pub fn resolve(repo: &Repo, revision: &[u8]) -> Resolved {
    match repo.gix().rev_parse_single(revision.as_bstr()) {
        Ok(id) => Resolved::Found(id.detach()),
        Err(e) => {
            use gix::revision::spec::parse::Error as P;
            match e.downcast_any_ref::<P>() {
                Some(P::AmbiguousPrefix { .. } | P::AmbiguousRefAndObject { .. }) => Resolved::Ambiguous,
                _ => short_id(repo.gix(), revision).unwrap_or(Resolved::Missing),
            }
        }
    }
}

/// Looks up an abbreviated object id directly. gitoxide's revision parser
/// reads short ids as SHA-1 prefixes, so in SHA-256 repositories it never
/// finds them; `None` when `hex` is no abbreviated id.
pub(crate) fn short_id(repo: &gix::Repository, hex: &[u8]) -> Option<Resolved> {
    let kind = repo.object_hash();
    if !(4..kind.len_in_hex()).contains(&hex.len()) || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut padded = hex.to_ascii_lowercase();
    padded.resize(kind.len_in_hex(), b'0');
    let id = ObjectId::from_hex(&padded).ok()?;
    let prefix = gix::hash::Prefix::new(&id, hex.len()).ok()?;
    Some(match repo.objects.lookup_prefix(prefix, None) {
        Ok(Some(Ok(id))) => Resolved::Found(id),
        Ok(Some(Err(()))) => Resolved::Ambiguous,
        _ => Resolved::Missing,
    })
}

/// An entry of a tree, found by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    pub id: ObjectId,
    /// The mode as git stores it (`0o100644`, `0o40000`, `0o160000`, ...).
    pub mode: u32,
    pub kind: EntryKind,
}

/// What a tree entry points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Blob,
    Tree,
    /// A gitlink: a submodule's commit, not stored in this repository.
    Commit,
}

/// The entry at `path` in the tree `revision` names. `path` must be a
/// clean relative path (`a/b.txt`): anything else (`./a`, `a//b`, `../x`,
/// a leading `/`) names no entry, as upstream's exact-path lookup finds
/// none for it. `None` when the revision or path does not exist.
pub fn tree_entry(repo: &Repo, revision: &[u8], path: &[u8]) -> Result<Option<TreeEntry>, GitError> {
    if path.is_empty() || path.split(|b| *b == b'/').any(|c| c.is_empty() || c == b"." || c == b"..") {
        return Ok(None);
    }
    // `<revision>:<path>` peels the revision to a tree (a commit's tree).
    let Some(start) = objects::resolve(repo, revision) else { return Ok(None) };
    let mut tree = match objects::peel_to(repo, start, Kind::Tree)? {
        Some(tree) => tree,
        None => {
            match objects::peel_to(repo, start, Kind::Commit)?.map(|c| objects::read(repo, c)).transpose()?.flatten() {
                Some(c) => match objects::parse_oid(repo, objects::parse_commit(&c.id, &c.data).tree.as_bytes()) {
                    Some(tree) => tree,
                    None => return Ok(None),
                },
                None => return Ok(None),
            }
        }
    };
    let hash = repo.gix().object_hash();
    let mut components = path.split(|b| *b == b'/').peekable();
    while let Some(name) = components.next() {
        let Some(obj) = objects::read(repo, tree)? else { return Ok(None) };
        if obj.kind != Kind::Tree {
            return Ok(None);
        }
        let found = gix::objs::TreeRefIter::from_bytes(&obj.data, hash)
            .filter_map(Result::ok)
            .find(|e| e.filename.as_bytes() == name)
            .map(|e| (e.oid.to_owned(), e.mode));
        let Some((id, mode)) = found else { return Ok(None) };
        if components.peek().is_none() {
            let kind = if mode.is_tree() {
                EntryKind::Tree
            } else if mode.is_commit() {
                EntryKind::Commit
            } else {
                EntryKind::Blob
            };
            return Ok(Some(TreeEntry { id, mode: entry_mode(mode), kind }));
        }
        if !mode.is_tree() {
            return Ok(None);
        }
        tree = id;
    }
    Ok(None)
}

/// A tree entry's mode as the octal number git writes.
pub(crate) fn entry_mode(mode: gix::objs::tree::EntryMode) -> u32 {
    if mode.is_tree() { 0o40000 } else { u32::from(mode.value()) }
}

/// An object opened for reading: its kind and size are known, its contents
/// are read on demand.
pub struct ObjectReader {
    pub id: ObjectId,
    pub kind: Kind,
    pub size: u64,
    inner: Box<dyn Read + Send>,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("size", &self.size)
            .finish()
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl ObjectReader {
    /// Fills `buf` as far as the object allows; returns how much was read
    /// (less than `buf.len()` only at the end of the object).
    pub fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, GitError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(GitError::Io { step: "read object", source: e }),
            }
        }
        Ok(filled)
    }
}

/// Opens an object of the repository; `None` when it does not exist.
pub fn open(repo: &Repo, id: ObjectId) -> Result<Option<ObjectReader>, GitError> {
    let Some((kind, size)) = objects::header(repo, id)? else { return Ok(None) };
    if size > STREAM_THRESHOLD
        && let Some(inner) = open_stream(&object_dirs(repo), id, repo.gix().object_hash(), kind, size)?
    {
        return Ok(Some(ObjectReader { id, kind, size, inner }));
    }
    let Some(obj) = objects::read(repo, id)? else { return Ok(None) };
    let size = obj.data.len() as u64;
    Ok(Some(ObjectReader { id, kind: obj.kind, size, inner: Box::new(std::io::Cursor::new(obj.data)) }))
}

/// The repository's object directory and those of its alternates.
fn object_dirs(repo: &Repo) -> Vec<PathBuf> {
    let main = repo.gix().objects.store_ref().path().to_owned();
    let mut dirs = vec![main.clone()];
    // Alternates that cannot be read are skipped: the caller falls back to
    // gitoxide's lookup, which reports real problems.
    if let Ok(alternates) = gix::odb::alternate::resolve(main, Path::new("/")) {
        dirs.extend(alternates);
    }
    dirs
}

/// Streams an object of the expected kind and size from a loose file or an
/// undeltified pack entry; `None` when it is stored some other way.
fn open_stream(
    dirs: &[PathBuf],
    id: ObjectId,
    hash: gix::hash::Kind,
    kind: Kind,
    size: u64,
) -> Result<Option<Box<dyn Read + Send>>, GitError> {
    let hex = id.to_hex().to_string();
    for dir in dirs {
        let loose = dir.join(&hex[..2]).join(&hex[2..]);
        match std::fs::File::open(&loose) {
            Ok(file) => return open_loose(file, kind, size).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(GitError::Io { step: "open loose object", source: e }),
        }
    }
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir.join("pack")) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("idx") {
                continue;
            }
            // A pack that vanishes or is unreadable (concurrent repack) is
            // skipped; gitoxide's own lookup takes over if nothing matches.
            let Ok(index) = gix::odb::pack::index::File::at(&path, hash) else { continue };
            let Some(i) = index.lookup(id) else { continue };
            let offset = index.pack_offset_at_index(i);
            let Ok(mut pack) = std::fs::File::open(path.with_extension("pack")) else { continue };
            pack.seek(SeekFrom::Start(offset)).map_err(GitError::io("seek in pack"))?;
            let entry = gix::odb::pack::data::Entry::from_read(&mut pack, offset, hash.len_in_bytes())
                .map_err(GitError::io("read pack entry"))?;
            use gix::odb::pack::data::entry::Header as H;
            let stored = match entry.header {
                H::Blob => Kind::Blob,
                H::Tree => Kind::Tree,
                H::Commit => Kind::Commit,
                H::Tag => Kind::Tag,
                H::OfsDelta { .. } | H::RefDelta { .. } => return Ok(None),
            };
            if stored != kind || entry.decompressed_size != size {
                return Ok(None);
            }
            pack.seek(SeekFrom::Start(entry.data_offset)).map_err(GitError::io("seek in pack"))?;
            return Ok(Some(Box::new(Inflater::new(BufReader::with_capacity(64 * 1024, pack), size))));
        }
    }
    Ok(None)
}

fn open_loose(file: std::fs::File, kind: Kind, size: u64) -> Result<Box<dyn Read + Send>, GitError> {
    let mut inflater = Inflater::new(BufReader::with_capacity(64 * 1024, file), u64::MAX);
    // The header is `<kind> <size>\0`, a few dozen bytes at most.
    let mut header = Vec::with_capacity(32);
    let mut byte = [0u8; 1];
    loop {
        let n = inflater.read(&mut byte).map_err(GitError::io("read loose object"))?;
        if n == 0 || header.len() > 64 {
            return Err(GitError::Invalid("corrupt loose object header".into()));
        }
        if byte[0] == 0 {
            break;
        }
        header.push(byte[0]);
    }
    let expected = format!("{} {size}", kind);
    if header != expected.as_bytes() {
        return Err(GitError::Invalid(format!("loose object header {:?} is not {expected:?}", header.as_bstr())));
    }
    inflater.remaining = size;
    Ok(Box::new(inflater))
}

/// Inflates a zlib stream, yielding at most `remaining` bytes and failing
/// if the stream ends early.
struct Inflater<R> {
    src: R,
    state: gix::zlib::Decompress,
    remaining: u64,
}

impl<R: BufRead> Inflater<R> {
    fn new(src: R, remaining: u64) -> Self {
        Self { src, state: gix::zlib::Decompress::new(), remaining }
    }
}

impl<R: BufRead> Read for Inflater<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = gix::zlib::stream::inflate::read(&mut self.src, &mut self.state, &mut buf[..want])?;
        if n == 0 && self.remaining != u64::MAX {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "object data ends early"));
        }
        if self.remaining != u64::MAX {
            self.remaining -= n as u64;
        }
        Ok(n)
    }
}

/// Where [`each_object`] enumerates objects: the repository itself (with
/// its alternates), or explicit object directories (a quarantine).
#[derive(Debug, Clone)]
pub enum ObjectSource {
    Repository,
    Directories(Vec<PathBuf>),
}

/// An object found by [`each_object`], with its header.
#[derive(Debug, Clone, Copy)]
pub struct ObjectInfo {
    pub id: ObjectId,
    pub kind: Kind,
    pub size: u64,
}

/// Calls `each` once for every object in `source` (each id once, in pack
/// then loose order) until it returns `false`. Objects that vanish while
/// enumerating (a concurrent repack) are skipped.
pub fn each_object(
    repo: &Repo,
    source: &ObjectSource,
    mut each: impl FnMut(&ObjectStore, ObjectInfo) -> Result<bool, GitError>,
) -> Result<(), GitError> {
    let hash = repo.gix().object_hash();
    let stores: Vec<ObjectStore> = match source {
        ObjectSource::Repository => {
            vec![ObjectStore { handle: (*repo.gix().objects).clone(), dirs: object_dirs(repo) }]
        }
        ObjectSource::Directories(dirs) => dirs
            .iter()
            .map(|d| {
                gix::odb::at(d, hash)
                    .map(|handle| ObjectStore { handle, dirs: vec![d.clone()] })
                    .map_err(GitError::io("open object directory"))
            })
            .collect::<Result<_, _>>()?,
    };
    let mut seen = gix::hashtable::HashSet::<ObjectId>::default();
    for store in &stores {
        let iter = store
            .handle
            .iter()
            .map_err(|e| GitError::gix("list objects", e))?
            .with_ordering(gix::odb::store::iter::Ordering::PackAscendingOffsetThenLooseLexicographical);
        for id in iter {
            let id = id.map_err(|e| GitError::gix("list objects", e))?;
            if !seen.insert(id) {
                continue;
            }
            let Some((kind, size)) = store.header(id)? else { continue };
            if !each(store, ObjectInfo { id, kind, size })? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// One object database opened on its own (for enumerations over explicit
/// object directories).
pub struct ObjectStore {
    handle: gix::odb::Handle,
    dirs: Vec<PathBuf>,
}

impl ObjectStore {
    fn header(&self, id: ObjectId) -> Result<Option<(Kind, u64)>, GitError> {
        match gix::odb::Header::try_header(&self.handle, &id) {
            Ok(Some(h)) => Ok(Some((h.kind(), h.size()))),
            Ok(None) => Ok(None),
            Err(e) => Err(GitError::gix("read object header", e)),
        }
    }

    /// Opens an object of this store for reading (streamed when large, as
    /// [`open`] does); `None` when it vanished.
    pub fn open(&self, id: ObjectId) -> Result<Option<ObjectReader>, GitError> {
        let Some((kind, size)) = self.header(id)? else { return Ok(None) };
        if size > STREAM_THRESHOLD
            && let Some(inner) = open_stream(&self.dirs, id, self.handle.store_ref().object_hash(), kind, size)?
        {
            return Ok(Some(ObjectReader { id, kind, size, inner }));
        }
        let mut buf = Vec::new();
        match gix::objs::Find::try_find(&self.handle, &id, &mut buf) {
            Ok(Some(data)) => {
                let kind = data.kind;
                let size = buf.len() as u64;
                Ok(Some(ObjectReader { id, kind, size, inner: Box::new(std::io::Cursor::new(buf)) }))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(GitError::gix("read object", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_that_match_two_objects_are_ambiguous() {
        for format in ["sha1", "sha256"] {
            ambiguous_in(format);
        }
    }

    fn ambiguous_in(format: &str) {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = |args: &[&str], input: Option<&[u8]>| {
            use std::io::Write as _;
            #[allow(clippy::disallowed_methods, reason = "test setup with the git CLI")]
            let mut child = std::process::Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("git");
            child.stdin.take().expect("stdin").write_all(input.unwrap_or_default()).expect("write");
            String::from_utf8(child.wait_with_output().expect("git").stdout).expect("utf-8").trim().to_owned()
        };
        run(&["init", "--bare", "-q", &format!("--object-format={format}")], None);
        // Blobs until two ids share four hex digits.
        let mut seen = std::collections::HashMap::new();
        let prefix = (0..)
            .find_map(|i| {
                let id = run(&["hash-object", "-w", "--stdin"], Some(format!("ambiguous {i}\n").as_bytes()));
                seen.insert(id[..4].to_owned(), id.clone()).map(|_| id[..4].to_owned())
            })
            .expect("a collision");
        let repos = crate::git::Repositories::default();
        let repo = repos.open(dir.path()).expect("open");
        assert_eq!(resolve(&repo, prefix.as_bytes()), Resolved::Ambiguous);
        assert_eq!(resolve(&repo, b"does-not-exist"), Resolved::Missing);
        let unique = &seen[&prefix];
        assert_eq!(
            resolve(&repo, &unique.as_bytes()[..12]),
            Resolved::Found(ObjectId::from_hex(unique.as_bytes()).expect("hex"))
        );
    }
}
