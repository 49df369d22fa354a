//! Archives of a tree, written in-process and streamed: what `git archive
//! --format=<tar|zip> --prefix=<prefix>/ <tree-ish> -- <path> :(exclude)…`
//! produces, member for member (names, modes, contents, directory entries,
//! the commit id as pax comment or zip comment), with the tree's
//! `export-ignore` attributes honoured.
//!
//! gix-archive was not used: it buffers whole entries for tar, needs a
//! seekable output for zip and writes neither the pax comment nor git's
//! directory entries. Here only one blob is in memory at a time and every
//! byte goes straight to the caller's writer.
//!
//! Not done (as documented in docs/compatibility.md): `export-subst`
//! placeholders are archived verbatim, and LFS pointers cannot be smudged
//! (the node has no GitLab API client).

use super::objects::{self, Kind, ObjectId};
use super::search;
use super::tree::Entry as TreeEntry;
use super::{GitError, Repo};
use gix::bstr::ByteSlice as _;
use std::io::Write;

/// Container formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tar,
    TarGz,
    TarBz2,
    Zip,
}

/// What to archive, with paths already cleaned (`search::clean_path`).
#[derive(Debug, Clone)]
pub struct Request {
    pub revision: Vec<u8>,
    /// Empty: the whole tree.
    pub path: Vec<u8>,
    pub exclude: Vec<Vec<u8>>,
    pub elide_path: bool,
    /// Put in front of every member; ends with `/` (upstream passes
    /// `--prefix=<prefix>/`, so an empty prefix gives members `/README`).
    pub prefix: Vec<u8>,
    pub format: Format,
    pub include_lfs_blobs: bool,
}

/// Why a request cannot be archived (upstream's precondition answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The path, or the root tree, does not exist (or is empty).
    PathMissing,
    /// `exclude[i]` does not exist.
    ExcludeMissing(usize),
    /// With `elide_path`, an exclude not below the path.
    ExcludeOutsidePath { exclude: Vec<u8>, path: Vec<u8> },
    /// The revision names nothing when archiving the root.
    RevisionMissing,
    /// With `elide_path`, the path is not a directory.
    NotATree,
}

/// A checked request, ready to write.
#[derive(Debug, Clone)]
pub struct Plan {
    tree: ObjectId,
    commit: Option<ObjectId>,
    mtime: i64,
    pathspec: Vec<u8>,
    exclude: Vec<Vec<u8>>,
    prefix: Vec<u8>,
    format: Format,
    include_lfs_blobs: bool,
}

/// Checks the request as upstream does before it starts `git archive`.
pub fn plan(repo: &Repo, req: &Request) -> Result<Result<Plan, Refusal>, GitError> {
    let id = objects::resolve(repo, &req.revision);
    let root = match id {
        Some(id) => search::tree_of(repo, id)?,
        None => None,
    };
    let Some(root) = root else {
        return Ok(Err(if req.path.is_empty() { Refusal::RevisionMissing } else { Refusal::PathMissing }));
    };
    if req.path.is_empty() {
        if search::read_tree(repo, root)?.is_empty() {
            return Ok(Err(Refusal::PathMissing));
        }
    } else if search::entry_at(repo, root, &req.path)?.is_none() {
        return Ok(Err(Refusal::PathMissing));
    }
    for (i, ex) in req.exclude.iter().enumerate() {
        if ex.is_empty() || search::entry_at(repo, root, ex)?.is_none() {
            return Ok(Err(Refusal::ExcludeMissing(i)));
        }
    }
    let mut exclude = req.exclude.clone();
    let (tree, pathspec, commit) = if req.elide_path {
        // Upstream strips `<path>/` from excludes, with `.` standing for
        // the root (so excludes never pass at the root).
        let mut base = if req.path.is_empty() { b".".to_vec() } else { req.path.clone() };
        base.push(b'/');
        for ex in &mut exclude {
            if !ex.starts_with(&base) {
                let path = if req.path.is_empty() { b".".to_vec() } else { req.path.clone() };
                return Ok(Err(Refusal::ExcludeOutsidePath { exclude: ex.clone(), path }));
            }
            ex.drain(..base.len());
        }
        if req.path.is_empty() {
            (root, Vec::new(), id.map(|id| objects::peel_to(repo, id, Kind::Commit)).transpose()?.flatten())
        } else {
            // `<rev>:<path>` is a tree, not a commit: no commit id, and
            // git stamps the members with the current time.
            match search::entry_at(repo, root, &req.path)? {
                Some(e) if e.is_tree() => (e.id, Vec::new(), None),
                _ => return Ok(Err(Refusal::NotATree)),
            }
        }
    } else {
        let commit = id.map(|id| objects::peel_to(repo, id, Kind::Commit)).transpose()?.flatten();
        (root, req.path.clone(), commit)
    };
    let mtime = match commit {
        Some(c) => commit_time(repo, c)?,
        None => now(),
    };
    Ok(Ok(Plan {
        tree,
        commit,
        mtime,
        pathspec,
        exclude,
        prefix: req.prefix.clone(),
        format: req.format,
        include_lfs_blobs: req.include_lfs_blobs,
    }))
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn commit_time(repo: &Repo, id: ObjectId) -> Result<i64, GitError> {
    let raw = objects::read(repo, id)?.ok_or_else(|| GitError::Invalid(format!("commit {id} is missing")))?;
    let c = objects::parse_commit(&id, &raw.data);
    Ok(c.committer.and_then(|s| s.seconds).filter(|s| *s < i64::from(u32::MAX)).unwrap_or(0))
}

/// Writes the archive to `out`, which sees the bytes as they are produced.
pub fn write(repo: &Repo, plan: &Plan, out: impl Write) -> Result<(), GitError> {
    let commit_hex = plan.commit.map(|c| c.to_string());
    match plan.format {
        Format::Tar => {
            let mut w = TarWriter::new(out, plan.mtime, commit_hex.as_deref()).map_err(io_err)?;
            walk(repo, plan, &mut w)?;
            w.finish().map_err(io_err)?;
        }
        Format::TarGz => {
            // `gzip -c -n`: default level, no name, no timestamp.
            let gz = flate2::GzBuilder::new().write(out, flate2::Compression::default());
            let mut w = TarWriter::new(gz, plan.mtime, commit_hex.as_deref()).map_err(io_err)?;
            walk(repo, plan, &mut w)?;
            w.finish().map_err(io_err)?.finish().map_err(io_err)?;
        }
        Format::TarBz2 => {
            // `bzip2 -c`: 900k blocks.
            let bz = bzip2::write::BzEncoder::new(out, bzip2::Compression::best());
            let mut w = TarWriter::new(bz, plan.mtime, commit_hex.as_deref()).map_err(io_err)?;
            walk(repo, plan, &mut w)?;
            w.finish().map_err(io_err)?.finish().map_err(io_err)?;
        }
        Format::Zip => {
            let mut w = ZipWriter::new(out, plan.mtime);
            walk(repo, plan, &mut w)?;
            w.finish(commit_hex.as_deref().unwrap_or("").as_bytes()).map_err(io_err)?;
        }
    }
    Ok(())
}

fn io_err(e: std::io::Error) -> GitError {
    GitError::Io { step: "write archive", source: e }
}

/// What the two container writers accept.
trait Members {
    fn dir(&mut self, path: &[u8]) -> std::io::Result<()>;
    fn file(&mut self, path: &[u8], executable: bool, data: &[u8]) -> std::io::Result<()>;
    fn link(&mut self, path: &[u8], target: &[u8]) -> std::io::Result<()>;
}

/// Whether `path` is `spec` or below it.
fn within(path: &[u8], spec: &[u8]) -> bool {
    spec.is_empty() || path == spec || (path.starts_with(spec) && path.get(spec.len()) == Some(&b'/'))
}

/// Attributes archive cares about, read from the archived tree itself as
/// git archive does (it loads the tree into an in-memory index).
struct Attributes<'r> {
    stack: gix::AttributeStack<'r>,
    outcome: gix::attrs::search::Outcome,
}

#[derive(Default)]
struct EntryAttributes {
    export_ignore: bool,
    lfs: bool,
}

impl<'r> Attributes<'r> {
    fn new(repo: &'r gix::Repository, tree: ObjectId) -> Result<Self, GitError> {
        let index = repo.index_from_tree(&tree).map_err(|e| GitError::gix("load tree for attributes", e))?;
        let stack = repo
            .attributes_only(&index, gix::worktree::stack::state::attributes::Source::IdMapping)
            .map_err(|e| GitError::gix("load attributes", e))?;
        let outcome = stack.selected_attribute_matches(["export-ignore", "filter"]);
        Ok(Self { stack, outcome })
    }

    fn at(&mut self, path: &[u8], is_dir: bool) -> Result<EntryAttributes, GitError> {
        let mode = is_dir.then_some(gix::index::entry::Mode::DIR);
        let platform = self.stack.at_entry(path.as_bstr(), mode).map_err(|e| GitError::gix("read attributes", e))?;
        self.outcome.reset();
        platform.matching_attributes(&mut self.outcome);
        let mut attrs = EntryAttributes::default();
        for m in self.outcome.iter_selected() {
            match (m.assignment.name.as_str(), m.assignment.state) {
                ("export-ignore", gix::attrs::StateRef::Set) => attrs.export_ignore = true,
                ("filter", gix::attrs::StateRef::Value(v)) if v.as_bstr() == "lfs" => attrs.lfs = true,
                _ => {}
            }
        }
        Ok(attrs)
    }
}

/// Whether a blob is a Git LFS pointer file.
fn is_lfs_pointer(data: &[u8]) -> bool {
    data.len() < 1024 && data.starts_with(b"version https://git-lfs.github.com/spec/") && data.contains_str("\noid ")
}

/// Walks the tree in git's order and writes members. Directories are
/// written when the first member below them is (git's behaviour with a
/// pathspec), submodules as empty directories.
fn walk(repo: &Repo, plan: &Plan, out: &mut dyn Members) -> Result<(), GitError> {
    let mut attrs = Attributes::new(repo.gix(), plan.tree)?;
    let member = |rel: &[u8], dir: bool| {
        let mut p = plan.prefix.clone();
        p.extend_from_slice(rel);
        if dir {
            p.push(b'/');
        }
        p
    };
    out.dir(&plan.prefix).map_err(io_err)?;
    // (directory path, remaining entries, written yet)
    let mut stack: Vec<(Vec<u8>, std::vec::IntoIter<TreeEntry>, bool)> =
        vec![(Vec::new(), search::read_tree(repo, plan.tree)?.into_iter(), true)];
    while let Some((dir, entries, _)) = stack.last_mut() {
        let Some(entry) = entries.next() else {
            stack.pop();
            continue;
        };
        let mut rel = dir.clone();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(&entry.name);
        if plan.exclude.iter().any(|ex| within(&rel, ex)) {
            continue;
        }
        let interesting = within(&rel, &plan.pathspec) || (entry.is_tree() && within(&plan.pathspec, &rel));
        if !interesting {
            continue;
        }
        let a = attrs.at(&rel, entry.is_tree() || entry.is_gitlink())?;
        if a.export_ignore {
            continue;
        }
        if entry.is_tree() {
            let children = search::read_tree(repo, entry.id)?.into_iter();
            stack.push((rel, children, false));
            continue;
        }
        // Write the directories leading here that are still pending.
        for (d, _, written) in stack.iter_mut() {
            if !*written {
                out.dir(&member(d, true)).map_err(io_err)?;
                *written = true;
            }
        }
        if entry.is_gitlink() {
            out.dir(&member(&rel, true)).map_err(io_err)?;
            continue;
        }
        let blob =
            objects::read(repo, entry.id)?.ok_or_else(|| GitError::Invalid(format!("blob {} is missing", entry.id)))?;
        if entry.is_link() {
            out.link(&member(&rel, false), &blob.data).map_err(io_err)?;
        } else {
            if plan.include_lfs_blobs && a.lfs && is_lfs_pointer(&blob.data) {
                // Upstream fetches the object from GitLab's API through its
                // smudge filter; with no API to ask, the filter (and so the
                // archive) fails the same way.
                return Err(GitError::Io {
                    step: "smudge LFS object",
                    source: std::io::Error::other("error loading LFS object: no GitLab API available"),
                });
            }
            out.file(&member(&rel, false), entry.is_executable(), &blob.data).map_err(io_err)?;
        }
    }
    Ok(())
}

/// A writer that counts what passed through it.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// tar as git writes it: ustar headers owned by root, modes after git's
/// default `tar.umask` of 002, pax headers for long names, a global pax
/// header carrying the commit id, and 10 KiB records.
struct TarWriter<W: Write> {
    out: Counting<W>,
    mtime: u64,
}

const BLOCK: usize = 512;
const RECORD: u64 = 10240;
const UMASK: u32 = 0o002;

impl<W: Write> TarWriter<W> {
    fn new(out: W, mtime: i64, commit: Option<&str>) -> std::io::Result<Self> {
        let mut w = Self { out: Counting { inner: out, written: 0 }, mtime: mtime.max(0) as u64 };
        if let Some(commit) = commit {
            let record = pax_record("comment", commit.as_bytes());
            w.header(b"pax_global_header", 0o666, record.len() as u64, b'g', b"")?;
            w.data(&record)?;
        }
        Ok(w)
    }

    fn header(&mut self, name: &[u8], mode: u32, size: u64, kind: u8, link: &[u8]) -> std::io::Result<()> {
        let mut h = [0u8; BLOCK];
        let (prefix, name) = split_name(name).unwrap_or((b"", name));
        let n = name.len().min(100);
        h[..n].copy_from_slice(&name[..n]);
        octal(&mut h[100..108], u64::from(mode & 0o7777));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], self.mtime);
        h[156] = kind;
        let l = link.len().min(100);
        h[157..157 + l].copy_from_slice(&link[..l]);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[265..269].copy_from_slice(b"root");
        h[297..301].copy_from_slice(b"root");
        octal(&mut h[329..337], 0);
        octal(&mut h[337..345], 0);
        let p = prefix.len().min(155);
        h[345..345 + p].copy_from_slice(&prefix[..p]);
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        let cksum = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(cksum.as_bytes());
        self.out.write_all(&h)
    }

    /// Content padded to whole blocks.
    fn data(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.out.write_all(data)?;
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.out.write_all(&[0u8; BLOCK][..pad])
    }

    /// A member, preceded by a pax header when its name or link target
    /// does not fit the ustar fields.
    fn member(&mut self, path: &[u8], mode: u32, kind: u8, link: &[u8], data: &[u8]) -> std::io::Result<()> {
        let mut pax = Vec::new();
        if split_name(path).is_none() {
            pax.extend_from_slice(&pax_record("path", path));
        }
        if link.len() > 100 {
            pax.extend_from_slice(&pax_record("linkpath", link));
        }
        if !pax.is_empty() {
            self.header(b"pax_header", 0o666, pax.len() as u64, b'x', b"")?;
            self.data(&pax)?;
        }
        // git applies tar.umask to everything but symlinks.
        let mode = if kind == b'2' { mode } else { mode & !UMASK };
        self.header(path, mode, data.len() as u64, kind, link)?;
        self.data(data)
    }

    fn finish(mut self) -> std::io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        let pad = (RECORD - self.out.written % RECORD) % RECORD;
        self.out.write_all(&vec![0u8; pad as usize])?;
        self.out.flush()?;
        Ok(self.out.inner)
    }
}

impl<W: Write> Members for TarWriter<W> {
    fn dir(&mut self, path: &[u8]) -> std::io::Result<()> {
        self.member(path, 0o40777, b'5', b"", b"")
    }

    fn file(&mut self, path: &[u8], executable: bool, data: &[u8]) -> std::io::Result<()> {
        self.member(path, if executable { 0o100777 } else { 0o100666 }, b'0', b"", data)
    }

    fn link(&mut self, path: &[u8], target: &[u8]) -> std::io::Result<()> {
        self.member(path, 0o120777, b'2', target, b"")
    }
}

/// Splits a name into ustar's prefix (≤155) and name (≤100) fields;
/// `None` when it cannot be.
fn split_name(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= 100 {
        return Some((b"", path));
    }
    // The split point is a `/` leaving at most 155 bytes before it and
    // 1..=100 after it (a trailing `/` of a directory counts).
    let start = path.len().saturating_sub(101);
    (start..path.len().min(156))
        .find(|&i| path[i] == b'/' && path.len() - i - 1 <= 100 && i + 1 < path.len())
        .map(|i| (&path[..i], &path[i + 1..]))
}

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    let s = s.as_bytes();
    let s = &s[s.len().saturating_sub(digits)..];
    field[..s.len()].copy_from_slice(s);
    field[digits] = 0;
}

/// `"<len> key=value\n"`, where len counts the whole record.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + 1;
    while body + len.to_string().len() != len {
        len = body + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// zip as git writes it: members stored or deflated (whichever is
/// smaller), an extended-timestamp extra field, Unix modes for executables
/// and symlinks, the UTF-8 flag for non-ASCII names, and the commit id as
/// archive comment. ZIP64 records are added when offsets or counts need them.
struct ZipWriter<W: Write> {
    out: Counting<W>,
    mtime: i64,
    dos: (u16, u16),
    central: Vec<u8>,
    entries: u64,
}

const ZIP64_LIMIT: u64 = 0xFFFF_FFFF;

impl<W: Write> ZipWriter<W> {
    fn new(out: W, mtime: i64) -> Self {
        Self { out: Counting { inner: out, written: 0 }, mtime, dos: dos_time(mtime), central: Vec::new(), entries: 0 }
    }

    #[allow(clippy::too_many_arguments, reason = "one zip record's fields")]
    fn entry(
        &mut self,
        path: &[u8],
        method: u16,
        crc: u32,
        size: u64,
        stored: &[u8],
        creator: u16,
        external: u32,
        text: bool,
    ) -> std::io::Result<()> {
        let offset = self.out.written;
        let flags: u16 = if !path.is_ascii() && std::str::from_utf8(path).is_ok() { 0x800 } else { 0 };
        let version: u16 = if method == 8 { 20 } else { 10 };
        let mut extra = Vec::with_capacity(9);
        extra.extend_from_slice(&0x5455u16.to_le_bytes());
        extra.extend_from_slice(&5u16.to_le_bytes());
        extra.push(1);
        extra.extend_from_slice(&(self.mtime as u32).to_le_bytes());
        let mut local = Vec::with_capacity(30 + path.len() + extra.len());
        local.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        local.extend_from_slice(&version.to_le_bytes());
        local.extend_from_slice(&flags.to_le_bytes());
        local.extend_from_slice(&method.to_le_bytes());
        local.extend_from_slice(&self.dos.1.to_le_bytes());
        local.extend_from_slice(&self.dos.0.to_le_bytes());
        local.extend_from_slice(&crc.to_le_bytes());
        local.extend_from_slice(&(stored.len() as u32).to_le_bytes());
        local.extend_from_slice(&(size as u32).to_le_bytes());
        local.extend_from_slice(&(path.len() as u16).to_le_bytes());
        local.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        local.extend_from_slice(path);
        local.extend_from_slice(&extra);
        self.out.write_all(&local)?;
        self.out.write_all(stored)?;

        let mut central_extra = extra;
        let offset32 = if offset >= ZIP64_LIMIT {
            central_extra.extend_from_slice(&1u16.to_le_bytes());
            central_extra.extend_from_slice(&8u16.to_le_bytes());
            central_extra.extend_from_slice(&offset.to_le_bytes());
            u32::MAX
        } else {
            offset as u32
        };
        let c = &mut self.central;
        c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        c.extend_from_slice(&creator.to_le_bytes());
        c.extend_from_slice(&version.to_le_bytes());
        c.extend_from_slice(&flags.to_le_bytes());
        c.extend_from_slice(&method.to_le_bytes());
        c.extend_from_slice(&self.dos.1.to_le_bytes());
        c.extend_from_slice(&self.dos.0.to_le_bytes());
        c.extend_from_slice(&crc.to_le_bytes());
        c.extend_from_slice(&(stored.len() as u32).to_le_bytes());
        c.extend_from_slice(&(size as u32).to_le_bytes());
        c.extend_from_slice(&(path.len() as u16).to_le_bytes());
        c.extend_from_slice(&(central_extra.len() as u16).to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes()); // comment
        c.extend_from_slice(&0u16.to_le_bytes()); // disk
        c.extend_from_slice(&u16::from(text).to_le_bytes());
        c.extend_from_slice(&external.to_le_bytes());
        c.extend_from_slice(&offset32.to_le_bytes());
        c.extend_from_slice(path);
        c.extend_from_slice(&central_extra);
        self.entries += 1;
        Ok(())
    }

    fn finish(mut self, comment: &[u8]) -> std::io::Result<W> {
        let cd_offset = self.out.written;
        let cd_size = self.central.len() as u64;
        let central = std::mem::take(&mut self.central);
        self.out.write_all(&central)?;
        let zip64 = cd_offset >= ZIP64_LIMIT || self.entries >= 0xFFFF;
        if zip64 {
            let eocd64 = self.out.written;
            let mut r = Vec::with_capacity(76);
            r.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
            r.extend_from_slice(&44u64.to_le_bytes());
            r.extend_from_slice(&0x031eu16.to_le_bytes());
            r.extend_from_slice(&45u16.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&self.entries.to_le_bytes());
            r.extend_from_slice(&self.entries.to_le_bytes());
            r.extend_from_slice(&cd_size.to_le_bytes());
            r.extend_from_slice(&cd_offset.to_le_bytes());
            r.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&eocd64.to_le_bytes());
            r.extend_from_slice(&1u32.to_le_bytes());
            self.out.write_all(&r)?;
        }
        let mut e = Vec::with_capacity(22 + comment.len());
        e.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        let count = self.entries.min(0xFFFF) as u16;
        e.extend_from_slice(&count.to_le_bytes());
        e.extend_from_slice(&count.to_le_bytes());
        e.extend_from_slice(&(cd_size.min(ZIP64_LIMIT) as u32).to_le_bytes());
        e.extend_from_slice(&(cd_offset.min(ZIP64_LIMIT) as u32).to_le_bytes());
        e.extend_from_slice(&(comment.len() as u16).to_le_bytes());
        e.extend_from_slice(comment);
        self.out.write_all(&e)?;
        self.out.flush()?;
        Ok(self.out.inner)
    }
}

/// Unix-made entries (version 2.3) carry the mode; plain files and
/// directories are MS-DOS entries, as git writes them.
const CREATOR_UNIX: u16 = 0x0317;
const CREATOR_DOS: u16 = 0;

impl<W: Write> Members for ZipWriter<W> {
    fn dir(&mut self, path: &[u8]) -> std::io::Result<()> {
        self.entry(path, 0, 0, 0, b"", CREATOR_DOS, 0x10, false)
    }

    fn file(&mut self, path: &[u8], executable: bool, data: &[u8]) -> std::io::Result<()> {
        let crc = crc32fast::hash(data);
        let text = !data[..data.len().min(8000)].contains(&0);
        let (creator, external) = if executable { (CREATOR_UNIX, 0o100755 << 16) } else { (CREATOR_DOS, 0) };
        if data.is_empty() || data.len() as u64 >= ZIP64_LIMIT {
            return self.entry(path, 0, crc, data.len() as u64, data, creator, external, text);
        }
        let mut deflated = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        deflated.write_all(data)?;
        let deflated = deflated.finish()?;
        if deflated.len() < data.len() {
            self.entry(path, 8, crc, data.len() as u64, &deflated, creator, external, text)
        } else {
            self.entry(path, 0, crc, data.len() as u64, data, creator, external, text)
        }
    }

    fn link(&mut self, path: &[u8], target: &[u8]) -> std::io::Result<()> {
        let crc = crc32fast::hash(target);
        self.entry(path, 0, crc, target.len() as u64, target, CREATOR_UNIX, 0o120777 << 16, true)
    }
}

/// MS-DOS (date, time) of a Unix time, in UTC; 1980 at the earliest.
fn dos_time(t: i64) -> (u16, u16) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if year < 1980 {
        return ((1 << 5) | 1, 0);
    }
    let date = (((year - 1980).min(127) << 9) | (month << 5) | day) as u16;
    let time = (((secs / 3600) << 11) | (((secs % 3600) / 60) << 5) | ((secs % 60) / 2)) as u16;
    (date, time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        assert_eq!(pax_record("comment", b"abc"), b"15 comment=abc\n");
        let long = vec![b'a'; 95];
        let r = pax_record("path", &long);
        let len: usize = std::str::from_utf8(&r[..r.iter().position(|b| *b == b' ').expect("space")])
            .expect("ascii")
            .parse()
            .expect("number");
        assert_eq!(len, r.len());
    }

    #[test]
    fn long_names_split_at_a_slash() {
        let short = b"a/b";
        assert_eq!(split_name(short), Some((&b""[..], &short[..])));
        let mut long = vec![b'd'; 120];
        long.extend_from_slice(b"/file");
        let (prefix, name) = split_name(&long).expect("splits");
        assert_eq!((prefix.len(), name), (120, &b"file"[..]));
        assert!(split_name(&[b'x'; 200]).is_none());
    }

    #[test]
    fn dos_dates() {
        // 2020-09-13 12:26:40 UTC
        let (date, time) = dos_time(1_600_000_000);
        assert_eq!((date >> 9, (date >> 5) & 15, date & 31), (40, 9, 13));
        assert_eq!((time >> 11, (time >> 5) & 63, (time & 31) * 2), (12, 26, 40));
    }

    #[test]
    fn octal_fields_are_nul_terminated() {
        let mut f = [0xffu8; 8];
        octal(&mut f, 0o644);
        assert_eq!(&f, b"0000644\0");
    }
}
