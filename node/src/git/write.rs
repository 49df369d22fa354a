//! Objects that changes on a user's behalf create: blobs, trees, commits
//! (written straight into a quarantine's object directory, byte for byte
//! as git would, so two nodes given the same request write the same ids),
//! annotated tags (through `git mktag`, which checks them as fsck does) and
//! in-memory edits of a tree.

use super::objects::{Kind, ObjectId};
use super::quarantine::QuarantineDir;
use super::{CommandError, CommandFactory, GitCommand, GitError, ObjectFormat, Repo, Subcommand, tree};
use gix::objs::Write as _;
use std::collections::BTreeMap;
use std::path::Path;

/// A person and a moment as a commit or tag header records them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: Vec<u8>,
    pub email: Vec<u8>,
    pub seconds: i64,
    /// `+hhmm` / `-hhmm`.
    pub offset: String,
}

impl Identity {
    /// `name <email>` at `seconds` (now when `None`) in the IANA time zone
    /// `timezone` (UTC when empty), as upstream derives signatures from a
    /// request's user and timestamp. Characters that would break the
    /// header (`<`, `>`, newlines) are dropped as upstream does.
    pub fn new(name: &[u8], email: &[u8], seconds: Option<i64>, timezone: &str) -> Result<Self, GitError> {
        let seconds = seconds.unwrap_or_else(|| jiff::Timestamp::now().as_second());
        let zone = if timezone.is_empty() || timezone == "UTC" {
            jiff::tz::TimeZone::UTC
        } else {
            jiff::tz::TimeZone::get(timezone).map_err(|_| GitError::Invalid(format!("unknown time zone {timezone}")))?
        };
        let at =
            jiff::Timestamp::from_second(seconds).map_err(|e| GitError::Invalid(format!("invalid timestamp: {e}")))?;
        let clean = |s: &[u8]| s.iter().copied().filter(|b| !b"<>\n".contains(b)).collect::<Vec<u8>>();
        Ok(Self {
            name: clean(name),
            email: clean(email),
            seconds,
            offset: format_offset(zone.to_offset(at).seconds()),
        })
    }

    /// The identity a commit recorded (`signature`), kept as written:
    /// replayed commits (cherry-picks, rebases) keep their author's name,
    /// time and zone. A zone that isn't `+hhmm` reads as UTC.
    pub fn recorded(signature: &super::objects::Signature) -> Self {
        Self {
            name: signature.name.clone(),
            email: signature.email.clone(),
            seconds: signature.seconds.unwrap_or_default(),
            offset: format_offset(offset_of(&signature.timezone)),
        }
    }

    /// git's raw date: `seconds offset`.
    pub fn raw_date(&self) -> String {
        format!("{} {}", self.seconds, self.offset)
    }

    /// `name <email> seconds offset`.
    pub fn line(&self) -> Vec<u8> {
        let mut out = self.name.clone();
        out.extend_from_slice(b" <");
        out.extend_from_slice(&self.email);
        out.extend_from_slice(format!("> {}", self.raw_date()).as_bytes());
        out
    }
}

/// `+hhmm` / `-hhmm` for an offset from UTC in seconds (east positive).
pub fn format_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let minutes = seconds.unsigned_abs() / 60;
    format!("{sign}{:02}{:02}", minutes / 60, minutes % 60)
}

/// The offset from UTC in seconds of a `+hhmm` / `-hhmm` zone (0 if it
/// is not one).
fn offset_of(zone: &[u8]) -> i32 {
    let Ok(text) = std::str::from_utf8(zone) else { return 0 };
    let (sign, digits) = match text.split_at_checked(1) {
        Some(("-", d)) => (-1, d),
        Some(("+", d)) => (1, d),
        _ => return 0,
    };
    if digits.len() != 4 {
        return 0;
    }
    let Ok(value) = digits.parse::<i32>() else { return 0 };
    sign * ((value / 100) * 3600 + (value % 100) * 60)
}

/// Writes loose objects into a quarantine.
pub struct ObjectWriter {
    store: gix::odb::loose::Store,
}

impl std::fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWriter").field("dir", &self.store.path()).finish()
    }
}

fn write_error(e: impl std::fmt::Display) -> GitError {
    GitError::Io { step: "write object", source: std::io::Error::other(e.to_string()) }
}

impl ObjectWriter {
    /// A writer into `quarantine` for a repository of `format`.
    pub fn new(quarantine: &QuarantineDir, format: ObjectFormat) -> Self {
        let kind = match format {
            ObjectFormat::Sha1 => gix::hash::Kind::Sha1,
            ObjectFormat::Sha256 => gix::hash::Kind::Sha256,
        };
        Self { store: gix::odb::loose::Store::at(quarantine.dir(), kind) }
    }

    pub fn blob(&self, data: &[u8]) -> Result<ObjectId, GitError> {
        self.store.write_buf(Kind::Blob, data).map_err(write_error)
    }

    /// A tree of `(mode, name, id)` entries in any order.
    pub fn tree(&self, entries: Vec<(u32, Vec<u8>, ObjectId)>) -> Result<ObjectId, GitError> {
        let mut tree = gix::objs::Tree::empty();
        for (mode, name, oid) in entries {
            let mode = gix::objs::tree::EntryMode::try_from(mode)
                .map_err(|m| GitError::Invalid(format!("invalid file mode {m:o}")))?;
            tree.entries.push(gix::objs::tree::Entry { mode, filename: name.into(), oid });
        }
        tree.entries.sort();
        self.store.write(&tree).map_err(write_error)
    }

    /// A commit of `tree` on `parents`.
    pub fn commit(
        &self,
        tree: ObjectId,
        parents: &[ObjectId],
        author: &Identity,
        committer: &Identity,
        message: &[u8],
    ) -> Result<ObjectId, GitError> {
        let mut out = format!("tree {tree}\n").into_bytes();
        for p in parents {
            out.extend_from_slice(format!("parent {p}\n").as_bytes());
        }
        out.extend_from_slice(b"author ");
        out.extend_from_slice(&author.line());
        out.extend_from_slice(b"\ncommitter ");
        out.extend_from_slice(&committer.line());
        out.extend_from_slice(b"\n\n");
        out.extend_from_slice(message);
        self.store.write_buf(Kind::Commit, &out).map_err(write_error)
    }
}

/// Why `git mktag` did not write a tag.
#[derive(Debug, thiserror::Error)]
pub enum TagError {
    /// A tag name or tagger that would add header lines.
    #[error("formatting tag: {0}")]
    Format(String),
    /// git refused the tag.
    #[error("mktag: {0}")]
    Rejected(String),
    #[error(transparent)]
    Git(#[from] GitError),
}

/// Writes an annotated tag of `target` (of `kind`) named `name` into
/// `quarantine` with `git mktag`, which checks it as fsck would.
#[allow(clippy::too_many_arguments)]
pub async fn mktag(
    factory: &CommandFactory,
    repo: &Path,
    quarantine: &QuarantineDir,
    target: ObjectId,
    kind: Kind,
    name: &[u8],
    tagger: &Identity,
    message: &[u8],
    correlation_id: Option<&str>,
) -> Result<ObjectId, TagError> {
    let mut body = format!("object {target}\ntype {kind}\ntag ").into_bytes();
    body.extend_from_slice(name);
    body.extend_from_slice(b"\ntagger ");
    body.extend_from_slice(&tagger.line());
    body.push(b'\n');
    let lines = body.iter().filter(|b| **b == b'\n').count();
    if lines != 4 {
        return Err(TagError::Format(format!("expected 4 tag header lines, got {lines}")));
    }
    body.push(b'\n');
    body.extend_from_slice(message);
    let cmd = quarantine.apply(GitCommand::new(Subcommand::Mktag).git_dir(repo).stdin(body));
    match factory.run(cmd, correlation_id).await {
        Ok(out) => {
            let hex = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            ObjectId::from_hex(hex.as_bytes()).map_err(|e| TagError::Git(GitError::gix("parse tag id", e)))
        }
        Err(CommandError::Failed { stderr, .. }) => Err(TagError::Rejected(stderr)),
        Err(e) => Err(TagError::Git(e.into())),
    }
}

/// Why a tree edit failed, by upstream's index error kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditError {
    FileExists,
    DirectoryExists,
    FileNotFound,
}

/// What a path in the edited tree holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Leaf { mode: u32, id: ObjectId },
    Tree,
}

#[derive(Debug, Clone)]
enum Node {
    Leaf(u32, ObjectId),
    /// A tree not loaded yet.
    Stored(ObjectId),
    Dir(Dir),
}

#[derive(Debug, Clone, Default)]
struct Dir {
    entries: BTreeMap<Vec<u8>, Node>,
}

/// A tree being edited in memory; only the directories an edit touches
/// are read, and only those are written again.
pub struct TreeEditor<'r> {
    repo: &'r Repo,
    root: Dir,
}

impl<'r> TreeEditor<'r> {
    /// An editor starting from tree `base` (empty when `None`).
    pub fn new(repo: &'r Repo, base: Option<ObjectId>) -> Result<Self, GitError> {
        let root = match base {
            Some(id) => load(repo, id)?,
            None => Dir::default(),
        };
        Ok(Self { repo, root })
    }

    /// The directory holding `components`' last one, loading (and with
    /// `create`, creating) directories on the way. `Err(FileExists)` when a
    /// file stands where a directory is needed.
    fn parent(&mut self, components: &[&[u8]], create: bool) -> Result<Option<&mut Dir>, EditOrGit> {
        let mut dir = &mut self.root;
        for c in &components[..components.len().saturating_sub(1)] {
            if !dir.entries.contains_key(*c) {
                if !create {
                    return Ok(None);
                }
                dir.entries.insert(c.to_vec(), Node::Dir(Dir::default()));
            }
            let node = dir.entries.get_mut(*c).ok_or(EditOrGit::Edit(EditError::FileNotFound))?;
            if let Node::Stored(id) = node {
                *node = Node::Dir(load(self.repo, *id)?);
            }
            dir = match node {
                Node::Dir(d) => d,
                _ if create => return Err(EditOrGit::Edit(EditError::FileExists)),
                _ => return Ok(None),
            };
        }
        Ok(Some(dir))
    }

    /// What `path` (cleaned components) holds.
    pub fn get(&mut self, components: &[&[u8]]) -> Result<Option<Entry>, GitError> {
        let Some(last) = components.last() else { return Ok(Some(Entry::Tree)) };
        let dir = match self.parent(components, false) {
            Ok(Some(d)) => d,
            Ok(None) | Err(EditOrGit::Edit(_)) => return Ok(None),
            Err(EditOrGit::Git(e)) => return Err(e),
        };
        Ok(dir.entries.get(*last).map(|n| match n {
            Node::Leaf(mode, id) => Entry::Leaf { mode: *mode, id: *id },
            _ => Entry::Tree,
        }))
    }

    /// Adds a file (or gitlink) at `path`; an existing file there is an
    /// error, an existing directory is replaced only with `over_directory`.
    pub fn add(
        &mut self,
        components: &[&[u8]],
        mode: u32,
        id: ObjectId,
        over_directory: bool,
    ) -> Result<Result<(), EditError>, GitError> {
        let Some(last) = components.last() else { return Ok(Err(EditError::DirectoryExists)) };
        let dir = match self.parent(components, true) {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(Err(EditError::FileNotFound)),
            Err(EditOrGit::Edit(e)) => return Ok(Err(e)),
            Err(EditOrGit::Git(e)) => return Err(e),
        };
        match dir.entries.get(*last) {
            Some(Node::Leaf(..)) => return Ok(Err(EditError::FileExists)),
            Some(_) if !over_directory => return Ok(Err(EditError::DirectoryExists)),
            _ => {}
        }
        dir.entries.insert(last.to_vec(), Node::Leaf(mode, id));
        Ok(Ok(()))
    }

    /// Changes the file at `path` with `change(mode, id)`.
    pub fn modify(
        &mut self,
        components: &[&[u8]],
        change: impl FnOnce(u32, ObjectId) -> (u32, ObjectId),
    ) -> Result<Result<(), EditError>, GitError> {
        let Some(last) = components.last() else { return Ok(Err(EditError::FileNotFound)) };
        let dir = match self.parent(components, false) {
            Ok(Some(d)) => d,
            Ok(None) | Err(EditOrGit::Edit(_)) => return Ok(Err(EditError::FileNotFound)),
            Err(EditOrGit::Git(e)) => return Err(e),
        };
        match dir.entries.get_mut(*last) {
            Some(Node::Leaf(mode, id)) => {
                (*mode, *id) = change(*mode, *id);
                Ok(Ok(()))
            }
            _ => Ok(Err(EditError::FileNotFound)),
        }
    }

    /// Removes `path` (a file or a whole directory); directories left
    /// empty disappear, as they would from an index.
    pub fn delete(&mut self, components: &[&[u8]]) -> Result<Result<(), EditError>, GitError> {
        let Some(last) = components.last() else { return Ok(Err(EditError::FileNotFound)) };
        let dir = match self.parent(components, false) {
            Ok(Some(d)) => d,
            Ok(None) | Err(EditOrGit::Edit(_)) => return Ok(Err(EditError::FileNotFound)),
            Err(EditOrGit::Git(e)) => return Err(e),
        };
        if dir.entries.remove(*last).is_none() {
            return Ok(Err(EditError::FileNotFound));
        }
        Ok(Ok(()))
    }

    /// Writes the edited directories; the root tree's id (the empty tree
    /// when nothing is left).
    pub fn write(self, writer: &ObjectWriter) -> Result<ObjectId, GitError> {
        Ok(write_dir(&self.root, writer)?.unwrap_or_else(|| writer_empty_tree(writer)))
    }
}

fn writer_empty_tree(writer: &ObjectWriter) -> ObjectId {
    ObjectId::empty_tree(writer.store.object_hash())
}

enum EditOrGit {
    Edit(EditError),
    Git(GitError),
}

impl From<GitError> for EditOrGit {
    fn from(e: GitError) -> Self {
        Self::Git(e)
    }
}

fn load(repo: &Repo, id: ObjectId) -> Result<Dir, GitError> {
    let entries = tree::read(repo, id)?.ok_or_else(|| GitError::RevisionNotFound(id.to_string()))?;
    let mut dir = Dir::default();
    for e in entries {
        let node = if e.is_tree() { Node::Stored(e.id) } else { Node::Leaf(e.mode, e.id) };
        dir.entries.insert(e.name, node);
    }
    Ok(dir)
}

/// `None` for a directory with nothing in it.
fn write_dir(dir: &Dir, writer: &ObjectWriter) -> Result<Option<ObjectId>, GitError> {
    let mut entries = Vec::with_capacity(dir.entries.len());
    for (name, node) in &dir.entries {
        match node {
            Node::Leaf(mode, id) => entries.push((*mode, name.clone(), *id)),
            Node::Stored(id) => entries.push((0o040000, name.clone(), *id)),
            Node::Dir(d) => {
                if let Some(id) = write_dir(d, writer)? {
                    entries.push((0o040000, name.clone(), id));
                }
            }
        }
    }
    if entries.is_empty() {
        return Ok(None);
    }
    writer.tree(entries).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_follow_the_time_zone() {
        let id = Identity::new(b"Jane <x>", b"j@e\n", Some(1_700_000_000), "Europe/Berlin").expect("zone");
        assert_eq!(id.line(), b"Jane x <j@e> 1700000000 +0100");
        let utc = Identity::new(b"a", b"b", Some(0), "").expect("utc");
        assert_eq!(utc.offset, "+0000");
        let ny = Identity::new(b"a", b"b", Some(1_700_000_000), "America/New_York").expect("zone");
        assert_eq!(ny.offset, "-0500");
        assert_eq!(ny.raw_date(), "1700000000 -0500");
        assert_eq!(super::format_offset(5 * 3600 + 30 * 60), "+0530");
        assert_eq!(super::format_offset(-7 * 3600), "-0700");
        assert!(Identity::new(b"a", b"b", None, "Nowhere/Nothing").is_err());
    }

    #[test]
    fn recorded_identities_keep_their_zone() {
        let sig = |zone: &[u8]| super::super::objects::Signature {
            name: b"Ann".to_vec(),
            email: b"ann@example.com".to_vec(),
            seconds: Some(1_600_000_000),
            timezone: zone.to_vec(),
        };
        assert_eq!(Identity::recorded(&sig(b"-0530")).raw_date(), "1600000000 -0530");
        assert_eq!(Identity::recorded(&sig(b"+0100")).offset, "+0100");
        assert_eq!(Identity::recorded(&sig(b"junk")).offset, "+0000");
        assert_eq!(Identity::recorded(&sig(b"+01")).offset, "+0000");
    }
}
