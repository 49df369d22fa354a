//! `git rev-list --objects --in-commit-order --object-names` in-process, as
//! upstream runs it for ListBlobs, ListLFSPointers and GetTagSignatures:
//! the same revision arguments (`--all`, `--not`, `--branches[=]`,
//! `--tags[=]`, `--glob=`, `--alternate-refs`, `^rev`, `a..b`, `a...b`,
//! `rev^@`, `rev^!`, `rev:path`), the same commit order (newest committer
//! date first, ties in the order commits were queued), the same exclusion
//! rules (commits reachable from an excluded revision are hidden, and the
//! trees of the excluded commits at the boundary hide their objects) and
//! the same object order and names (after each commit, the objects given
//! on the command line, then the commit's tree depth-first).
//!
//! Objects are handed to the caller as they are found; only commit
//! bookkeeping and the set of objects already seen are kept, as git keeps
//! them in its object flags.

use super::super::objects::{Kind, ObjectId};
use super::super::{GitError, Repo};
use gix::bstr::ByteSlice as _;
use std::collections::{BinaryHeap, HashMap};

/// Which objects a walk reports (`--filter=object:type=...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Blobs, optionally only those smaller than `below` bytes
    /// (`--filter=blob:limit=<below>`).
    Blobs { below: Option<u64> },
    /// Annotated tags.
    Tags,
}

/// Whether the walk should go on after an object was reported.
pub type Continue = bool;

/// Walks the objects the `revisions` name, calling `emit` with each object
/// the filter admits and its path (empty when it has none) until `emit`
/// returns `false`. A revision that names nothing is an error, as it is for
/// git.
pub fn walk(
    repo: &Repo,
    revisions: &[impl AsRef<[u8]>],
    filter: Filter,
    emit: impl FnMut(ObjectId, &[u8]) -> Result<Continue, GitError>,
) -> Result<(), GitError> {
    let tips = parse_revisions(repo, revisions)?;
    let mut w = Walker {
        repo: repo.gix(),
        hash: repo.gix().object_hash(),
        filter,
        emit,
        nodes: HashMap::new(),
        seen: Default::default(),
        queue: BinaryHeap::new(),
        queued: 0,
        queued_interesting: 0,
        pending: Vec::new(),
        buf: Vec::new(),
        stopped: false,
    };
    w.run(tips)
}

/// One starting point: an object named on the command line.
#[derive(Debug, Clone)]
struct Tip {
    id: ObjectId,
    exclude: bool,
    /// The path part of a `rev:path` argument.
    path: Vec<u8>,
}

/// Pseudo-revisions upstream lets through to git-rev-list.
fn pseudo_refs(repo: &Repo, arg: &[u8]) -> Result<Option<Vec<ObjectId>>, GitError> {
    let refs = |pattern: Option<(&[u8], bool)>| -> Result<Vec<ObjectId>, GitError> {
        let mut out = Vec::new();
        for (name, id) in super::super::references::resolved(repo)? {
            if let Some((pattern, _)) = pattern
                && !gix::glob::wildmatch(pattern.as_bstr(), name.as_bstr(), gix::glob::wildmatch::Mode::empty())
            {
                continue;
            }
            out.push(id);
        }
        Ok(out)
    };
    // `--branches=x` lists refs/heads/x/*, `--branches=x*` those matching
    // the glob; `--glob` adds `refs/` unless it is there already.
    let glob = |prefix: &[u8], pattern: &[u8]| -> Vec<u8> {
        let mut p =
            if prefix.is_empty() && !pattern.starts_with(b"refs/") { b"refs/".to_vec() } else { prefix.to_vec() };
        p.extend_from_slice(pattern);
        if !pattern.iter().any(|b| b"?*[\\".contains(b)) {
            if !p.ends_with(b"/") {
                p.push(b'/');
            }
            p.push(b'*');
        }
        p
    };
    Ok(Some(match arg {
        b"--all" => {
            let mut ids = refs(None)?;
            if let Some(head) = super::super::references::head_id(repo) {
                ids.push(head);
            }
            ids
        }
        b"--branches" => refs(Some((b"refs/heads/*", false)))?,
        b"--tags" => refs(Some((b"refs/tags/*", false)))?,
        b"--alternate-refs" => super::super::references::alternate_ref_ids(repo),
        _ => {
            let pattern = if let Some(p) = arg.strip_prefix(b"--branches=") {
                glob(b"refs/heads/", p)
            } else if let Some(p) = arg.strip_prefix(b"--tags=") {
                glob(b"refs/tags/", p)
            } else if let Some(p) = arg.strip_prefix(b"--glob=") {
                glob(b"", p)
            } else {
                return Ok(None);
            };
            refs(Some((&pattern, false)))?
        }
    }))
}

fn parse_revisions(repo: &Repo, revisions: &[impl AsRef<[u8]>]) -> Result<Vec<Tip>, GitError> {
    let mut tips = Vec::new();
    let mut not = false;
    for arg in revisions {
        let arg = arg.as_ref();
        if arg == b"--not" {
            not = !not;
            continue;
        }
        if let Some(ids) = pseudo_refs(repo, arg)? {
            tips.extend(ids.into_iter().map(|id| Tip { id, exclude: not, path: Vec::new() }));
            continue;
        }
        // The name git gives objects of a `rev:path` argument is its path.
        let body = arg.strip_prefix(b"^").unwrap_or(arg);
        let path = body.find_byte(b':').map(|i| body[i + 1..].to_vec()).unwrap_or_default();
        use gix::revision::plumbing::Spec;
        let spec = match repo.gix().rev_parse(arg.as_bstr()) {
            Ok(spec) => spec.detach(),
            // Abbreviated ids gitoxide cannot find (SHA-256) are looked up directly.
            Err(_) => match super::short_id(repo.gix(), body) {
                Some(super::Resolved::Found(id)) if arg.starts_with(b"^") => Spec::Exclude(id),
                Some(super::Resolved::Found(id)) => Spec::Include(id),
                _ => return Err(GitError::RevisionNotFound(arg.to_str_lossy().into_owned())),
            },
        };
        let mut push =
            |id: ObjectId, exclude: bool, path: Vec<u8>| tips.push(Tip { id, exclude: exclude != not, path });
        match spec {
            Spec::Include(id) => push(id, false, path),
            Spec::Exclude(id) => push(id, true, Vec::new()),
            Spec::Range { from, to } => {
                push(from, true, Vec::new());
                push(to, false, Vec::new());
            }
            Spec::Merge { theirs, ours } => {
                push(theirs, false, Vec::new());
                push(ours, false, Vec::new());
                let bases = repo
                    .gix()
                    .merge_bases_many(theirs, &[ours])
                    .map_err(|e| GitError::gix("compute merge bases", e))?;
                for base in bases {
                    push(base.detach(), true, Vec::new());
                }
            }
            Spec::IncludeOnlyParents(id) => {
                for parent in commit_parents(repo.gix(), id)? {
                    push(parent, false, Vec::new());
                }
            }
            Spec::ExcludeParents(id) => {
                push(id, false, Vec::new());
                for parent in commit_parents(repo.gix(), id)? {
                    push(parent, true, Vec::new());
                }
            }
        }
    }
    Ok(tips)
}

fn commit_parents(repo: &gix::Repository, id: ObjectId) -> Result<Vec<ObjectId>, GitError> {
    let commit = repo.find_commit(id).map_err(|e| GitError::gix("read commit", e))?;
    Ok(commit.parent_ids().map(gix::Id::detach).collect())
}

const SEEN: u8 = 1;
const UNINTERESTING: u8 = 2;
const QUEUED: u8 = 4;

/// How long the walk goes on once only excluded commits are queued, to
/// allow for clock skew (git's `SLOP`).
const SLOP: u32 = 5;

#[derive(Debug, Default)]
struct Node {
    flags: u8,
    parsed: Option<Parsed>,
}

#[derive(Debug)]
struct Parsed {
    tree: ObjectId,
    parents: Vec<ObjectId>,
    date: i64,
}

/// A non-commit object waiting to be traversed.
#[derive(Debug)]
struct Pending {
    id: ObjectId,
    kind: Kind,
    path: Vec<u8>,
}

struct Walker<'r, E> {
    repo: &'r gix::Repository,
    hash: gix::hash::Kind,
    filter: Filter,
    emit: E,
    nodes: HashMap<ObjectId, Node>,
    /// Objects shown or excluded (git's SEEN and UNINTERESTING on trees,
    /// blobs and tags).
    seen: gix::hashtable::HashSet<ObjectId>,
    queue: BinaryHeap<(i64, std::cmp::Reverse<u64>, ObjectId)>,
    queued: u64,
    queued_interesting: usize,
    pending: Vec<Pending>,
    buf: Vec<u8>,
    stopped: bool,
}

impl<E> Walker<'_, E>
where
    E: FnMut(ObjectId, &[u8]) -> Result<Continue, GitError>,
{
    fn run(&mut self, tips: Vec<Tip>) -> Result<(), GitError> {
        let mut starts = Vec::new();
        for tip in tips {
            self.handle_tip(tip, &mut starts)?;
            if self.stopped {
                return Ok(());
            }
        }
        // Tags are only ever found among the tips: no commit or tree
        // refers to one, so there is nothing to walk.
        if self.filter == Filter::Tags {
            return self.flush_pending();
        }
        let limited = starts.iter().any(|id| self.flags(id) & UNINTERESTING != 0);
        // Git sorts the starting commits by date, keeping the order of the
        // command line for equal dates; the queue's counter does the same.
        for id in starts {
            self.push(id);
        }
        if limited {
            let list = self.limit()?;
            self.mark_edges_uninteresting(&list)?;
            for id in list {
                if self.flags(&id) & UNINTERESTING == 0 {
                    self.show_commit(id)?;
                    if self.stopped {
                        return Ok(());
                    }
                }
            }
        } else {
            while let Some(id) = self.pop() {
                self.process_parents(id)?;
                self.show_commit(id)?;
                if self.stopped {
                    return Ok(());
                }
            }
        }
        self.flush_pending()
    }

    fn flags(&self, id: &ObjectId) -> u8 {
        self.nodes.get(id).map_or(0, |n| n.flags)
    }

    /// What git's handle_commit does with a command-line object: tags are
    /// peeled (and listed themselves), commits start the walk, trees and
    /// blobs wait in the pending list (or are excluded with what they hold).
    fn handle_tip(&mut self, tip: Tip, starts: &mut Vec<ObjectId>) -> Result<(), GitError> {
        let mut id = tip.id;
        for _ in 0..64 {
            let kind = self.header(id)?.ok_or_else(|| GitError::RevisionNotFound(format!("bad object {id}")))?;
            match kind {
                Kind::Tag => {
                    if tip.exclude {
                        self.seen.insert(id);
                    } else {
                        self.pending.push(Pending { id, kind, path: tip.path.clone() });
                    }
                    let data = self.read(id, Kind::Tag)?;
                    let target = gix::objs::TagRefIter::from_bytes(&data, self.hash)
                        .target_id()
                        .map_err(|e| GitError::gix("parse tag", e))?;
                    id = target;
                }
                Kind::Commit => {
                    self.parse(id)?;
                    let node = self.nodes.entry(id).or_default();
                    if node.flags & SEEN == 0 {
                        starts.push(id);
                    }
                    node.flags |= SEEN;
                    if tip.exclude {
                        node.flags |= UNINTERESTING;
                        self.mark_parents_uninteresting(id);
                    }
                    return Ok(());
                }
                Kind::Tree => {
                    if tip.exclude {
                        self.mark_tree_uninteresting(id)?;
                    } else {
                        self.pending.push(Pending { id, kind, path: tip.path });
                    }
                    return Ok(());
                }
                Kind::Blob => {
                    if tip.exclude {
                        self.seen.insert(id);
                    } else {
                        self.pending.push(Pending { id, kind, path: tip.path });
                    }
                    return Ok(());
                }
            }
        }
        Err(GitError::Invalid("tag chain too long".into()))
    }

    fn header(&self, id: ObjectId) -> Result<Option<Kind>, GitError> {
        match self.repo.try_find_header(id) {
            Ok(h) => Ok(h.map(|h| h.kind())),
            Err(e) => Err(GitError::gix("read object header", e)),
        }
    }

    fn read(&mut self, id: ObjectId, kind: Kind) -> Result<Vec<u8>, GitError> {
        let mut buf = std::mem::take(&mut self.buf);
        let found = gix::objs::Find::try_find(&self.repo.objects, &id, &mut buf)
            .map_err(|e| GitError::gix("read object", e))?
            .map(|d| d.kind);
        match found {
            Some(k) if k == kind => Ok(buf),
            Some(k) => Err(GitError::Invalid(format!("object {id} is a {k}, not a {kind}"))),
            None => Err(GitError::RevisionNotFound(format!("missing {kind} {id}"))),
        }
    }

    /// Reads a commit's tree, parents and committer date, once.
    fn parse(&mut self, id: ObjectId) -> Result<(), GitError> {
        if self.nodes.get(&id).is_some_and(|n| n.parsed.is_some()) {
            return Ok(());
        }
        let data = self.read(id, Kind::Commit)?;
        let parsed = {
            let iter = gix::objs::CommitRefIter::from_bytes(&data, self.hash);
            // Each query consumes an iterator; `CommitRefIter` is `Copy`.
            let mut for_tree = iter;
            let tree = for_tree.tree_id().map_err(|e| GitError::gix("parse commit", e))?;
            let parents = iter.parent_ids().collect();
            let date = iter.committer().map(|s| s.seconds()).unwrap_or(0);
            Parsed { tree, parents, date }
        };
        self.buf = data;
        self.nodes.entry(id).or_default().parsed = Some(parsed);
        Ok(())
    }

    fn date(&self, id: &ObjectId) -> i64 {
        self.nodes.get(id).and_then(|n| n.parsed.as_ref()).map_or(0, |p| p.date)
    }

    fn parents(&self, id: &ObjectId) -> Vec<ObjectId> {
        self.nodes.get(id).and_then(|n| n.parsed.as_ref()).map(|p| p.parents.clone()).unwrap_or_default()
    }

    fn push(&mut self, id: ObjectId) {
        let date = self.date(&id);
        self.queued += 1;
        self.queue.push((date, std::cmp::Reverse(self.queued), id));
        let node = self.nodes.entry(id).or_default();
        node.flags |= QUEUED;
        if node.flags & UNINTERESTING == 0 {
            self.queued_interesting += 1;
        }
    }

    fn pop(&mut self) -> Option<ObjectId> {
        let (_, _, id) = self.queue.pop()?;
        let node = self.nodes.entry(id).or_default();
        node.flags &= !QUEUED;
        if node.flags & UNINTERESTING == 0 {
            self.queued_interesting -= 1;
        }
        Some(id)
    }

    fn set_uninteresting(&mut self, id: ObjectId) -> bool {
        let node = self.nodes.entry(id).or_default();
        if node.flags & UNINTERESTING != 0 {
            return false;
        }
        node.flags |= UNINTERESTING;
        if node.flags & QUEUED != 0 {
            self.queued_interesting -= 1;
        }
        true
    }

    /// Marks the ancestors of `id` that are already parsed as excluded
    /// (those not parsed yet inherit the mark when they are reached).
    fn mark_parents_uninteresting(&mut self, id: ObjectId) {
        let mut stack: Vec<ObjectId> = self.parents(&id);
        while let Some(p) = stack.pop() {
            if self.set_uninteresting(p) {
                stack.extend(self.parents(&p));
            }
        }
    }

    /// Queues the parents of `id` not seen yet, passing exclusion on.
    fn process_parents(&mut self, id: ObjectId) -> Result<(), GitError> {
        let excluded = self.flags(&id) & UNINTERESTING != 0;
        for p in self.parents(&id) {
            if excluded {
                self.set_uninteresting(p);
            }
            self.parse(p)?;
            if excluded {
                self.mark_parents_uninteresting(p);
            }
            let node = self.nodes.entry(p).or_default();
            if node.flags & SEEN != 0 {
                continue;
            }
            node.flags |= SEEN;
            self.push(p);
        }
        Ok(())
    }

    /// Git's limit_list: walks until only excluded commits remain queued
    /// (plus a few, for clock skew) and returns the included commits in
    /// the order they were reached.
    fn limit(&mut self) -> Result<Vec<ObjectId>, GitError> {
        let mut list = Vec::new();
        let mut date = i64::MAX;
        let mut slop = SLOP;
        while let Some(id) = self.pop() {
            self.process_parents(id)?;
            if self.flags(&id) & UNINTERESTING != 0 {
                self.mark_parents_uninteresting(id);
                slop = self.still_interesting(date, slop);
                if slop > 0 {
                    continue;
                }
                break;
            }
            date = self.date(&id);
            list.push(id);
        }
        Ok(list)
    }

    fn still_interesting(&self, date: i64, slop: u32) -> u32 {
        let Some(&(newest, _, _)) = self.queue.peek() else { return 0 };
        if date <= newest || self.queued_interesting > 0 {
            return SLOP;
        }
        slop - 1
    }

    /// Hides everything in the trees of excluded commits at the boundary
    /// of the walk.
    fn mark_edges_uninteresting(&mut self, list: &[ObjectId]) -> Result<(), GitError> {
        for id in list {
            if self.flags(id) & UNINTERESTING != 0 {
                if let Some(tree) = self.tree_of(id) {
                    self.mark_tree_uninteresting(tree)?;
                }
                continue;
            }
            for p in self.parents(id) {
                if self.flags(&p) & UNINTERESTING != 0
                    && let Some(tree) = self.tree_of(&p)
                {
                    self.mark_tree_uninteresting(tree)?;
                }
            }
        }
        Ok(())
    }

    fn tree_of(&self, id: &ObjectId) -> Option<ObjectId> {
        self.nodes.get(id).and_then(|n| n.parsed.as_ref()).map(|p| p.tree)
    }

    /// Marks a tree and everything below it as seen, so it is never shown.
    fn mark_tree_uninteresting(&mut self, tree: ObjectId) -> Result<(), GitError> {
        let mut stack = vec![tree];
        while let Some(tree) = stack.pop() {
            if !self.seen.insert(tree) {
                continue;
            }
            let Some(entries) = self.tree_entries(tree)? else { continue };
            for (id, kind, _) in entries {
                match kind {
                    Kind::Tree => stack.push(id),
                    Kind::Blob => {
                        self.seen.insert(id);
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// A tree's entries (gitlinks left out); `None` for a missing tree,
    /// which git treats the same way when marking.
    fn tree_entries(&mut self, tree: ObjectId) -> Result<Option<Vec<Entry>>, GitError> {
        let mut buf = std::mem::take(&mut self.buf);
        let found = gix::objs::Find::try_find(&self.repo.objects, &tree, &mut buf)
            .map_err(|e| GitError::gix("read tree", e))?
            .map(|d| d.kind);
        let out = match found {
            Some(Kind::Tree) => {
                let mut entries = Vec::new();
                for e in gix::objs::TreeRefIter::from_bytes(&buf, self.hash) {
                    let e = e.map_err(|e| GitError::gix("parse tree", e))?;
                    let kind = if e.mode.is_tree() {
                        Kind::Tree
                    } else if e.mode.is_commit() {
                        continue;
                    } else {
                        Kind::Blob
                    };
                    entries.push((e.oid.to_owned(), kind, e.filename.to_vec()));
                }
                Some(entries)
            }
            _ => None,
        };
        self.buf = buf;
        Ok(out)
    }

    fn show_commit(&mut self, id: ObjectId) -> Result<(), GitError> {
        if let Some(tree) = self.tree_of(&id) {
            self.pending.push(Pending { id: tree, kind: Kind::Tree, path: Vec::new() });
        }
        self.flush_pending()
    }

    /// Traverses the pending objects in order (git's traverse_non_commits).
    fn flush_pending(&mut self) -> Result<(), GitError> {
        let pending = std::mem::take(&mut self.pending);
        for p in pending {
            if self.stopped {
                break;
            }
            match p.kind {
                Kind::Tag => {
                    if self.seen.insert(p.id) && self.filter == Filter::Tags {
                        self.emit_object(p.id, &p.path)?;
                    }
                }
                Kind::Tree => self.process_tree(p.id, p.path)?,
                Kind::Blob => self.process_blob(p.id, &p.path)?,
                Kind::Commit => {}
            }
        }
        Ok(())
    }

    fn emit_object(&mut self, id: ObjectId, path: &[u8]) -> Result<(), GitError> {
        if !(self.emit)(id, path)? {
            self.stopped = true;
        }
        Ok(())
    }

    fn process_blob(&mut self, id: ObjectId, path: &[u8]) -> Result<(), GitError> {
        if !self.seen.insert(id) {
            return Ok(());
        }
        let Filter::Blobs { below } = self.filter else { return Ok(()) };
        if let Some(limit) = below {
            let size = match self.repo.try_find_header(id) {
                Ok(Some(h)) => h.size(),
                Ok(None) => return Err(GitError::RevisionNotFound(format!("missing blob {id}"))),
                Err(e) => return Err(GitError::gix("read object header", e)),
            };
            if size >= limit {
                return Ok(());
            }
        }
        self.emit_object(id, path)
    }

    /// Depth-first, entries in tree order, each subtree where it appears.
    fn process_tree(&mut self, tree: ObjectId, path: Vec<u8>) -> Result<(), GitError> {
        if !self.seen.insert(tree) {
            return Ok(());
        }
        let entries =
            self.tree_entries(tree)?.ok_or_else(|| GitError::RevisionNotFound(format!("missing tree {tree}")))?;
        let mut stack = vec![(entries.into_iter(), path)];
        while let Some((entries, base)) = stack.last_mut() {
            if self.stopped {
                return Ok(());
            }
            let Some((id, kind, name)) = entries.next() else {
                stack.pop();
                continue;
            };
            let mut full = base.clone();
            if !full.is_empty() {
                full.push(b'/');
            }
            full.extend_from_slice(&name);
            match kind {
                Kind::Tree => {
                    if self.seen.insert(id) {
                        let sub = self
                            .tree_entries(id)?
                            .ok_or_else(|| GitError::RevisionNotFound(format!("missing tree {id}")))?;
                        stack.push((sub.into_iter(), full));
                    }
                }
                _ => self.process_blob(id, &full)?,
            }
        }
        Ok(())
    }
}

/// Upstream's checks on a git-rev-list argument: the pseudo-revisions it
/// lets through, then the usual revision rules, applied only to the part
/// before a `:` when `path_scoped` revisions (`rev:path`) are allowed.
pub fn validate_argument(arg: &[u8], path_scoped: bool) -> Result<(), &'static str> {
    const PSEUDO: [&[u8]; 5] = [b"--all", b"--not", b"--branches", b"--tags", b"--alternate-refs"];
    const PSEUDO_PREFIXES: [&[u8]; 3] = [b"--branches=", b"--tags=", b"--glob="];
    if PSEUDO.contains(&arg) || PSEUDO_PREFIXES.iter().any(|p| arg.starts_with(p)) {
        return Ok(());
    }
    if arg.starts_with(b"-") {
        return Err("revision can't start with '-'");
    }
    if arg.contains(&0) {
        return Err("revision can't contain NUL");
    }
    let revision = match (path_scoped, arg.find_byte(b':')) {
        (true, Some(i)) => &arg[..i],
        _ => arg,
    };
    super::super::refs::validate_revision(revision)
}

/// A tree entry as the walk needs it: id, kind and name.
type Entry = (ObjectId, Kind, Vec<u8>);

#[cfg(test)]
mod tests {
    use super::validate_argument;

    #[test]
    fn rev_list_arguments() {
        for ok in [&b"--all"[..], b"--not", b"--glob=refs/heads/*", b"main", b"main:dir/a file", b"^main", b"a..b"] {
            assert!(validate_argument(ok, true).is_ok(), "{ok:?}");
        }
        assert!(validate_argument(b"main:path", false).is_err());
        for bad in [&b"--output=x"[..], b"-n1", b"", b":path", b"a b", b"a\0b", b"--foobar"] {
            assert!(validate_argument(bad, true).is_err(), "{bad:?}");
        }
    }
}
