//! History walks done in-process the way `git rev-list` and `git log` do
//! them, so answers match git commit for commit (commit headers come from
//! the commit-graph when there is one, as in git):
//!
//! - revision arguments: names, `^x`, `a..b`, `a...b`, `x^@`, `x^!`,
//!   `x^-n`, and the pseudo-revisions `--not`, `--all`, `--branches[=]`,
//!   `--tags[=]`, `--glob=`, `--alternate-refs`;
//! - the default walk pops commits newest-first (committer date, ties in
//!   insertion order) and expands parents as it goes; with negative
//!   revisions or `--topo-order`/`--date-order` the walk is "limited" first
//!   (git's `limit_list`, including its five-commit slop) and sorted
//!   topologically afterwards;
//! - pathspec pruning with git's default history simplification (a commit
//!   TREESAME to a parent follows only that parent and is not shown);
//! - `--follow` of a single path through renames;
//! - filters (`--max-parents`, `--before`, `--after`, `--author`,
//!   `--grep` with POSIX basic regular expressions), `--skip`,
//!   `--max-count` and `--reverse` applied in git's order.

use super::objects::{self, Kind, ObjectId};
use super::tree::{self, Pathspec};
use super::{GitError, Repo, bloom};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

// ---------------------------------------------------------------------------
// Revision arguments

/// A starting point of a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tip {
    pub id: ObjectId,
    /// Excluded along with its ancestry (`^x`).
    pub negative: bool,
    /// The left side of a symmetric difference (`a` in `a...b`).
    pub left: bool,
}

/// Revision arguments git would reject, in git's categories.
#[derive(Debug, thiserror::Error)]
pub enum RevError {
    /// `ambiguous argument '<arg>': unknown revision or path`.
    #[error("ambiguous argument {:?}: unknown revision", String::from_utf8_lossy(.0))]
    Unknown(Vec<u8>),
    /// A full object id naming no object (`bad object <id>`).
    #[error("bad object {}", String::from_utf8_lossy(.0))]
    BadObject(Vec<u8>),
    /// A range whose ends do not name commits (`Invalid revision range`).
    #[error("invalid revision range {}", String::from_utf8_lossy(.0))]
    InvalidRange(Vec<u8>),
    #[error(transparent)]
    Git(#[from] GitError),
}

impl From<RevError> for GitError {
    fn from(e: RevError) -> Self {
        match e {
            RevError::Git(g) => g,
            other => GitError::RevisionNotFound(other.to_string()),
        }
    }
}

/// Resolves revision arguments as `git rev-list` does, in order.
pub fn resolve_args<A: AsRef<[u8]>>(repo: &Repo, args: &[A]) -> Result<Vec<Tip>, RevError> {
    let mut tips = Vec::new();
    let mut not = false;
    for arg in args {
        let arg = arg.as_ref();
        match arg {
            b"--not" => not = !not,
            b"--all" => refs_matching(repo, not, &mut tips, |name| name == "HEAD" || name.starts_with("refs/"))?,
            b"--branches" => refs_matching(repo, not, &mut tips, |n| n.starts_with("refs/heads/"))?,
            b"--tags" => refs_matching(repo, not, &mut tips, |n| n.starts_with("refs/tags/"))?,
            // Alternates' references are not read by this node.
            b"--alternate-refs" => {}
            _ if arg.starts_with(b"--branches=") => glob_refs(repo, not, &mut tips, b"refs/heads/", &arg[11..])?,
            _ if arg.starts_with(b"--tags=") => glob_refs(repo, not, &mut tips, b"refs/tags/", &arg[7..])?,
            _ if arg.starts_with(b"--glob=") => {
                let pattern = &arg[7..];
                let prefix: &[u8] = if pattern.starts_with(b"refs/") { b"" } else { b"refs/" };
                glob_refs(repo, not, &mut tips, prefix, pattern)?
            }
            _ => revision_arg(repo, arg, not, &mut tips)?,
        }
    }
    Ok(tips)
}

fn refs_matching(
    repo: &Repo,
    negative: bool,
    tips: &mut Vec<Tip>,
    keep: impl Fn(&str) -> bool,
) -> Result<(), RevError> {
    for (name, id) in super::repo::resolved_references(repo)? {
        if keep(&name)
            && let Some(c) = objects::peel_to(repo, id, Kind::Commit)?
        {
            tips.push(Tip { id: c, negative, left: false });
        }
    }
    Ok(())
}

fn glob_refs(repo: &Repo, negative: bool, tips: &mut Vec<Tip>, prefix: &[u8], pattern: &[u8]) -> Result<(), RevError> {
    let mut full = prefix.to_vec();
    full.extend_from_slice(pattern);
    if !pattern.iter().any(|b| b"*?[".contains(b)) {
        if !full.ends_with(b"/") {
            full.push(b'/');
        }
        full.push(b'*');
    }
    refs_matching(repo, negative, tips, |name| name != "HEAD" && tree::wildmatch(&full, name.as_bytes(), false, false))
}

/// The object a revision names without requiring it to exist when it is a
/// full object id (git's `get_oid`).
fn get_oid(repo: &Repo, rev: &[u8]) -> Option<ObjectId> {
    objects::parse_oid(repo, rev).or_else(|| objects::resolve(repo, rev))
}

fn exists(repo: &Repo, id: ObjectId) -> Result<bool, GitError> {
    Ok(objects::header(repo, id)?.is_some())
}

fn revision_arg(repo: &Repo, arg: &[u8], not: bool, tips: &mut Vec<Tip>) -> Result<(), RevError> {
    if let Some(at) = find_dotdot(arg) {
        let symmetric = arg[at..].starts_with(b"...");
        let (a, b) = (&arg[..at], &arg[at + if symmetric { 3 } else { 2 }..]);
        let a = if a.is_empty() { &b"HEAD"[..] } else { a };
        let b = if b.is_empty() { &b"HEAD"[..] } else { b };
        if let (Some(ao), Some(bo)) = (get_oid(repo, a), get_oid(repo, b)) {
            let ac = objects::peel_to(repo, ao, Kind::Commit)?;
            let bc = objects::peel_to(repo, bo, Kind::Commit)?;
            let (Some(ac), Some(bc)) = (ac, bc) else { return Err(RevError::InvalidRange(arg.to_vec())) };
            if symmetric {
                tips.push(Tip { id: ac, negative: not, left: true });
                tips.push(Tip { id: bc, negative: not, left: false });
                for base in merge_bases(repo, ac, bc)? {
                    tips.push(Tip { id: base, negative: !not, left: false });
                }
            } else {
                tips.push(Tip { id: ac, negative: !not, left: false });
                tips.push(Tip { id: bc, negative: not, left: false });
            }
            return Ok(());
        }
    }
    let (rev, negative) = match arg.strip_prefix(b"^") {
        Some(r) => (r, !not),
        None => (arg, not),
    };
    if let Some(base) = rev.strip_suffix(b"^@") {
        let id = named_commit(repo, base, arg)?;
        for p in parents_of(repo, id)? {
            tips.push(Tip { id: p, negative, left: false });
        }
        return Ok(());
    }
    if let Some(base) = rev.strip_suffix(b"^!") {
        let id = named_commit(repo, base, arg)?;
        tips.push(Tip { id, negative, left: false });
        for p in parents_of(repo, id)? {
            tips.push(Tip { id: p, negative: !negative, left: false });
        }
        return Ok(());
    }
    if let Some(pos) = rev.windows(2).rposition(|w| w == b"^-") {
        let n = &rev[pos + 2..];
        if n.iter().all(u8::is_ascii_digit) {
            let nth: usize =
                if n.is_empty() { 1 } else { std::str::from_utf8(n).ok().and_then(|s| s.parse().ok()).unwrap_or(0) };
            let id = named_commit(repo, &rev[..pos], arg)?;
            let parents = parents_of(repo, id)?;
            let Some(p) = nth.checked_sub(1).and_then(|i| parents.get(i)) else {
                return Err(RevError::Unknown(arg.to_vec()));
            };
            tips.push(Tip { id, negative, left: false });
            tips.push(Tip { id: *p, negative: !negative, left: false });
            return Ok(());
        }
    }
    let Some(id) = get_oid(repo, rev) else { return Err(RevError::Unknown(arg.to_vec())) };
    if !exists(repo, id)? {
        return Err(RevError::BadObject(rev.to_vec()));
    }
    // Trees and blobs (and tags of them) are ignored by a commit walk.
    if let Some(c) = objects::peel_to(repo, id, Kind::Commit)? {
        tips.push(Tip { id: c, negative, left: false });
    }
    Ok(())
}

fn find_dotdot(arg: &[u8]) -> Option<usize> {
    arg.windows(2).position(|w| w == b"..")
}

fn named_commit(repo: &Repo, rev: &[u8], arg: &[u8]) -> Result<ObjectId, RevError> {
    let id = get_oid(repo, rev).ok_or_else(|| RevError::Unknown(arg.to_vec()))?;
    objects::peel_to(repo, id, Kind::Commit)?.ok_or_else(|| RevError::Unknown(arg.to_vec()))
}

fn parents_of(repo: &Repo, id: ObjectId) -> Result<Vec<ObjectId>, GitError> {
    let raw = objects::read(repo, id)?.ok_or_else(|| GitError::RevisionNotFound(id.to_string()))?;
    Ok(parse_header(&raw.data).parents)
}

/// All best common ancestors of two commits (`git merge-base --all`).
pub fn merge_bases(repo: &Repo, a: ObjectId, b: ObjectId) -> Result<Vec<ObjectId>, GitError> {
    let bases = repo.gix().merge_bases_many(a, &[b]).map_err(|e| GitError::gix("compute merge bases", e))?;
    Ok(bases.into_iter().map(gix::Id::detach).collect())
}

/// Whether `ancestor` is reachable from `child` (`git merge-base
/// --is-ancestor`); a commit is its own ancestor.
pub fn is_ancestor(repo: &Repo, ancestor: ObjectId, child: ObjectId) -> Result<bool, GitError> {
    if ancestor == child {
        return Ok(true);
    }
    Ok(merge_bases(repo, ancestor, child)?.contains(&ancestor))
}

// ---------------------------------------------------------------------------
// Commit headers

/// What a walk needs of a commit.
#[derive(Debug, Clone, Default)]
struct Header {
    tree: Option<ObjectId>,
    parents: Vec<ObjectId>,
    date: i64,
}

/// Parses the headers a walk needs, the way git's `parse_commit_buffer`
/// does: the committer date is the number after the last `>` of the
/// committer line (0 when malformed).
fn parse_header(data: &[u8]) -> Header {
    let mut h = Header::default();
    for line in data.split(|b| *b == b'\n') {
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix(b"tree ") {
            h.tree = ObjectId::from_hex(v).ok();
        } else if let Some(v) = line.strip_prefix(b"parent ") {
            if let Ok(id) = ObjectId::from_hex(v) {
                h.parents.push(id);
            }
        } else if let Some(v) = line.strip_prefix(b"committer ") {
            h.date = committer_date(v);
        }
    }
    h
}

fn committer_date(value: &[u8]) -> i64 {
    let Some(gt) = value.iter().rposition(|b| *b == b'>') else { return 0 };
    let rest = &value[gt + 1..];
    let rest = &rest[rest.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(rest.len())..];
    let digits: &[u8] = &rest[..rest.iter().position(|b| !b.is_ascii_digit()).unwrap_or(rest.len())];
    std::str::from_utf8(digits).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Message and author filters

/// `--author` and `--grep` patterns (POSIX basic regular expressions, as
/// git compiles them by default).
#[derive(Debug, Clone)]
pub struct Grep {
    author: Vec<regex::bytes::Regex>,
    message: Vec<regex::bytes::Regex>,
}

impl Grep {
    pub fn new(author: &[&[u8]], message: &[&[u8]], ignore_case: bool) -> Result<Self, GitError> {
        let compile = |p: &&[u8]| {
            let mut re = String::new();
            if ignore_case {
                re.push_str("(?i)");
            }
            re.push_str(&bre_to_regex(p));
            regex::bytes::Regex::new(&re).map_err(|e| GitError::gix("compile pattern", e))
        };
        Ok(Self {
            author: author.iter().map(compile).collect::<Result<_, _>>()?,
            message: message.iter().map(compile).collect::<Result<_, _>>()?,
        })
    }

    fn is_empty(&self) -> bool {
        self.author.is_empty() && self.message.is_empty()
    }

    /// git's `commit_match`: some message line matches some `--grep`
    /// pattern, and the author ("Name <email>") matches some `--author`.
    fn matches(&self, commit: &[u8]) -> bool {
        let (headers, body) = match commit.windows(2).position(|w| w == b"\n\n") {
            Some(at) => (&commit[..at], &commit[at + 2..]),
            None => (commit, &b""[..]),
        };
        if !self.author.is_empty() {
            let author = headers.split(|b| *b == b'\n').find_map(|l| l.strip_prefix(b"author ")).map(|v| {
                let end = v.iter().rposition(|b| *b == b'>').map_or(v.len(), |i| i + 1);
                &v[..end]
            });
            let Some(author) = author else { return false };
            if !self.author.iter().any(|re| re.is_match(author)) {
                return false;
            }
        }
        self.message.is_empty()
            || body.split(|b| *b == b'\n').any(|line| self.message.iter().any(|re| re.is_match(line)))
    }
}

/// Translates a POSIX basic regular expression (with GNU extensions, as
/// glibc implements them) into Rust regex syntax.
fn bre_to_regex(p: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    let mut at_start = true;
    while i < p.len() {
        let c = p[i];
        let mut next_start = false;
        match c {
            b'\\' if i + 1 < p.len() => {
                i += 1;
                match p[i] {
                    b'(' => {
                        out.push('(');
                        next_start = true;
                    }
                    b')' => out.push(')'),
                    b'{' => out.push('{'),
                    b'}' => out.push('}'),
                    b'|' => {
                        out.push('|');
                        next_start = true;
                    }
                    b'+' => out.push('+'),
                    b'?' => out.push('?'),
                    b'<' | b'>' => out.push_str(r"\b"),
                    b'`' => out.push_str(r"\A"),
                    b'\'' => out.push_str(r"\z"),
                    b @ (b'w' | b'W' | b's' | b'S' | b'b' | b'B') => {
                        out.push('\\');
                        out.push(char::from(b));
                    }
                    b => push_literal(&mut out, b),
                }
            }
            b'*' if at_start => out.push_str(r"\*"),
            b'*' => out.push('*'),
            b'^' if at_start => {
                out.push('^');
                next_start = true;
            }
            b'$' if i + 1 == p.len() || p[i + 1..].starts_with(b"\\)") || p[i + 1..].starts_with(b"\\|") => {
                out.push('$')
            }
            b'.' => out.push('.'),
            b'[' => {
                if let Some(end) = bracket_end(p, i) {
                    out.push('[');
                    let mut j = i + 1;
                    if p[j] == b'^' {
                        out.push('^');
                        j += 1;
                    }
                    let mut first = true;
                    while j < end {
                        let b = p[j];
                        if b == b'[' && p.get(j + 1) == Some(&b':') {
                            let close = p[j + 2..end].windows(2).position(|w| w == b":]").map(|k| j + 2 + k + 2);
                            if let Some(close) = close {
                                out.push_str(&String::from_utf8_lossy(&p[j..close]));
                                j = close;
                                first = false;
                                continue;
                            }
                        }
                        match b {
                            b']' if first => out.push_str(r"\]"),
                            b'\\' | b'[' | b'&' | b'~' | b']' => {
                                out.push('\\');
                                out.push(char::from(b));
                            }
                            b'-' => out.push('-'),
                            b if b.is_ascii() => out.push(char::from(b)),
                            b => out.push_str(&format!(r"\x{{{b:02X}}}")),
                        }
                        first = false;
                        j += 1;
                    }
                    out.push(']');
                    i = end;
                } else {
                    out.push_str(r"\[");
                }
            }
            b if b < 0x80 => push_literal(&mut out, b),
            _ => {
                // A UTF-8 sequence is kept as characters; invalid bytes are
                // matched as raw bytes.
                let len = match c {
                    0xC0..=0xDF => 2,
                    0xE0..=0xEF => 3,
                    0xF0..=0xF7 => 4,
                    _ => 1,
                };
                match p.get(i..i + len).and_then(|s| std::str::from_utf8(s).ok()) {
                    Some(s) => {
                        out.push_str(&regex::escape(s));
                        i += len - 1;
                    }
                    None => out.push_str(&format!(r"(?-u:\x{c:02X})")),
                }
            }
        }
        at_start = next_start;
        i += 1;
    }
    out
}

fn push_literal(out: &mut String, b: u8) {
    let s = char::from(b).to_string();
    out.push_str(&regex::escape(&s));
}

/// Index of the `]` closing the bracket expression opened at `start`.
fn bracket_end(p: &[u8], start: usize) -> Option<usize> {
    let mut j = start + 1;
    if p.get(j) == Some(&b'^') {
        j += 1;
    }
    if p.get(j) == Some(&b']') {
        j += 1;
    }
    while j < p.len() {
        if p[j] == b'['
            && p.get(j + 1) == Some(&b':')
            && let Some(k) = p[j + 2..].windows(2).position(|w| w == b":]")
        {
            j += 2 + k + 2;
            continue;
        }
        if p[j] == b']' {
            return Some(j);
        }
        j += 1;
    }
    None
}

// ---------------------------------------------------------------------------
// The walk

/// Output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// git's default: newest first as the walk finds them.
    #[default]
    Default,
    /// `--topo-order`.
    Topo,
    /// `--date-order`.
    Date,
}

/// What to walk and what to show, in git's option terms.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub order: Order,
    pub reverse: bool,
    pub first_parent: bool,
    /// `--no-walk`: only the given commits, newest first.
    pub no_walk: bool,
    pub min_parents: usize,
    pub max_parents: Option<usize>,
    /// `--after`/`--since` (seconds).
    pub after: Option<i64>,
    /// `--before`/`--until` (seconds).
    pub before: Option<i64>,
    pub grep: Option<Grep>,
    /// Pathspec limiting with history simplification (or, with `follow`,
    /// the single path followed through renames).
    pub paths: Option<Pathspec>,
    pub follow: Option<FollowPath>,
    pub skip: usize,
    pub max_count: Option<usize>,
}

/// `--follow <path>`.
#[derive(Debug, Clone)]
pub struct FollowPath {
    pub path: Vec<u8>,
    pub literal: bool,
}

const SEEN: u16 = 1;
const ADDED: u16 = 1 << 1;
const UNINTERESTING: u16 = 1 << 2;
const TREESAME: u16 = 1 << 3;
const SHOWN: u16 = 1 << 4;
const BOTTOM: u16 = 1 << 5;
const LEFT: u16 = 1 << 6;
const IN_QUEUE: u16 = 1 << 7;

/// git's slop: commits walked past the point where everything left is
/// uninteresting, in case of clock skew.
const SLOP: u32 = 5;

#[derive(Debug)]
struct Node {
    id: ObjectId,
    parsed: bool,
    tree: Option<ObjectId>,
    /// Parents, rewritten by history simplification.
    parents: Vec<u32>,
    /// Parents as recorded in the commit.
    real_parents: Vec<u32>,
    date: i64,
    flags: u16,
}

/// A revision walk; call [`Walk::next`] for each commit to show.
pub struct Walk<'r> {
    repo: &'r Repo,
    nodes: Vec<Node>,
    index: gix::hashtable::HashMap<ObjectId, u32>,
    queue: BinaryHeap<(i64, Reverse<u64>, u32)>,
    seq: u64,
    interesting_in_queue: usize,
    opts: Options,
    tips: Vec<Tip>,
    limited: bool,
    prepared: bool,
    /// The limited (and possibly sorted) list, or the `--no-walk` list.
    list: VecDeque<u32>,
    use_list: bool,
    reversed: Option<Vec<u32>>,
    skip_left: usize,
    max_left: Option<usize>,
    follow: Option<FollowPath>,
    /// The commit-graph, when git would use one: parents, tree and date
    /// come from it without inflating the commit object.
    graph: Option<Arc<gix::commitgraph::Graph>>,
    /// Changed-path filters and the keys of the walk's literal paths.
    bloom: Option<(Arc<bloom::ChangedPaths>, Vec<bloom::PathKeys>)>,
}

impl<'r> Walk<'r> {
    pub fn new(repo: &'r Repo, tips: Vec<Tip>, opts: Options) -> Self {
        let skip_left = opts.skip;
        let max_left = opts.max_count;
        let follow = opts.follow.clone();
        let g = repo.gix();
        let graph = super::commit_graph::open(repo);
        let bloom = match (&graph, opts.paths.as_ref().and_then(Pathspec::literal_paths)) {
            (Some(_), Some(paths)) => {
                bloom::load(g.objects.store_ref().path(), g.object_hash().len_in_bytes()).map(|filters| {
                    let keys = paths.iter().map(|p| filters.keys(p)).collect();
                    (filters, keys)
                })
            }
            _ => None,
        };
        Self {
            repo,
            nodes: Vec::new(),
            index: Default::default(),
            queue: BinaryHeap::new(),
            seq: 0,
            interesting_in_queue: 0,
            opts,
            tips,
            limited: false,
            prepared: false,
            list: VecDeque::new(),
            use_list: false,
            reversed: None,
            skip_left,
            max_left,
            follow,
            graph,
            bloom,
        }
    }

    /// The next commit to show.
    pub fn next_id(&mut self) -> Result<Option<ObjectId>, GitError> {
        Ok(self.next_with_side()?.map(|(id, _)| id))
    }

    /// The next commit to show and whether it came from the left side of a
    /// symmetric difference.
    pub fn next_with_side(&mut self) -> Result<Option<(ObjectId, bool)>, GitError> {
        if !self.prepared {
            self.prepare()?;
        }
        let idx = if self.opts.reverse {
            if self.reversed.is_none() {
                let mut all = Vec::new();
                while let Some(i) = self.next_internal()? {
                    all.push(i);
                }
                self.reversed = Some(all);
            }
            self.reversed.as_mut().and_then(Vec::pop)
        } else {
            self.next_internal()?
        };
        Ok(idx.map(|i| (self.nodes[i as usize].id, self.nodes[i as usize].flags & LEFT != 0)))
    }

    fn node_index(&mut self, id: ObjectId) -> u32 {
        if let Some(i) = self.index.get(&id) {
            return *i;
        }
        let i = u32::try_from(self.nodes.len()).expect("fewer than 4 billion commits in one walk");
        self.nodes.push(Node {
            id,
            parsed: false,
            tree: None,
            parents: Vec::new(),
            real_parents: Vec::new(),
            date: 0,
            flags: 0,
        });
        self.index.insert(id, i);
        i
    }

    /// Reads a commit's headers; `Ok(false)` when it is missing or not a commit.
    fn parse(&mut self, idx: u32) -> Result<bool, GitError> {
        if self.nodes[idx as usize].parsed {
            return Ok(true);
        }
        let id = self.nodes[idx as usize].id;
        let h = match self.graph_header(id) {
            Some(h) => h,
            None => {
                let Some(raw) = objects::read(self.repo, id)? else { return Ok(false) };
                if raw.kind != Kind::Commit {
                    return Ok(false);
                }
                parse_header(&raw.data)
            }
        };
        let parents: Vec<u32> = h.parents.into_iter().map(|p| self.node_index(p)).collect();
        let n = &mut self.nodes[idx as usize];
        n.parsed = true;
        n.tree = h.tree;
        n.date = h.date;
        n.real_parents = parents.clone();
        n.parents = parents;
        Ok(true)
    }

    /// A commit's walk headers from the commit-graph; `None` when it is
    /// not in the graph (or the graph entry is corrupt), so the object is
    /// read instead.
    fn graph_header(&self, id: ObjectId) -> Option<Header> {
        let graph = self.graph.as_ref()?;
        let c = graph.commit_by_id(id)?;
        let mut parents = Vec::new();
        for p in c.iter_parents() {
            parents.push(graph.id_at(p.ok()?).to_owned());
        }
        let date = i64::try_from(c.committer_timestamp()).ok()?;
        Some(Header { tree: Some(c.root_tree_id().to_owned()), parents, date })
    }

    fn must_parse(&mut self, idx: u32) -> Result<(), GitError> {
        if self.parse(idx)? { Ok(()) } else { Err(GitError::RevisionNotFound(self.nodes[idx as usize].id.to_string())) }
    }

    fn push(&mut self, idx: u32) {
        let n = &mut self.nodes[idx as usize];
        n.flags |= IN_QUEUE;
        if n.flags & UNINTERESTING == 0 {
            self.interesting_in_queue += 1;
        }
        self.seq += 1;
        self.queue.push((n.date, Reverse(self.seq), idx));
    }

    fn pop(&mut self) -> Option<u32> {
        let (_, _, idx) = self.queue.pop()?;
        let n = &mut self.nodes[idx as usize];
        n.flags &= !IN_QUEUE;
        if n.flags & UNINTERESTING == 0 {
            self.interesting_in_queue -= 1;
        }
        Some(idx)
    }

    fn set_uninteresting(&mut self, idx: u32) -> bool {
        let n = &mut self.nodes[idx as usize];
        if n.flags & UNINTERESTING != 0 {
            return false;
        }
        n.flags |= UNINTERESTING;
        if n.flags & IN_QUEUE != 0 {
            self.interesting_in_queue -= 1;
        }
        true
    }

    fn mark_parents_uninteresting(&mut self, idx: u32) {
        let mut stack: Vec<u32> = self.nodes[idx as usize].parents.clone();
        while let Some(p) = stack.pop() {
            if self.set_uninteresting(p) {
                stack.extend_from_slice(&self.nodes[p as usize].parents);
            }
        }
    }

    fn prepare(&mut self) -> Result<(), GitError> {
        self.prepared = true;
        let tips = std::mem::take(&mut self.tips);
        let mut starts: Vec<u32> = Vec::new();
        for tip in &tips {
            let idx = self.node_index(tip.id);
            self.must_parse(idx)?;
            if tip.left {
                self.nodes[idx as usize].flags |= LEFT;
            }
            if tip.negative {
                self.set_uninteresting(idx);
                self.nodes[idx as usize].flags |= BOTTOM;
                self.mark_parents_uninteresting(idx);
                self.limited = true;
            }
            if self.nodes[idx as usize].flags & SEEN == 0 {
                self.nodes[idx as usize].flags |= SEEN;
                starts.push(idx);
            }
        }
        starts.sort_by_key(|i| Reverse(self.nodes[*i as usize].date));
        if self.opts.order != Order::Default {
            self.limited = true;
        }
        for idx in starts {
            self.push(idx);
        }
        if self.opts.no_walk {
            return Ok(());
        }
        if self.limited {
            let list = self.limit_list()?;
            let list = match self.opts.order {
                Order::Default => list,
                order => self.topo_sort(list, order),
            };
            self.list = list.into();
            self.use_list = true;
        }
        Ok(())
    }

    fn limit_list(&mut self) -> Result<Vec<u32>, GitError> {
        let mut date = i64::MAX;
        let mut slop = SLOP;
        let mut out = Vec::new();
        while let Some(idx) = self.pop() {
            if self.opts.after.is_some_and(|a| self.nodes[idx as usize].date < a) {
                self.set_uninteresting(idx);
            }
            self.process_parents(idx)?;
            if self.nodes[idx as usize].flags & UNINTERESTING != 0 {
                self.mark_parents_uninteresting(idx);
                slop = self.still_interesting(date, slop);
                if slop > 0 {
                    continue;
                }
                break;
            }
            let d = self.nodes[idx as usize].date;
            if self.opts.before.is_some_and(|b| d > b) {
                continue;
            }
            date = d;
            out.push(idx);
        }
        Ok(out)
    }

    fn still_interesting(&self, date: i64, slop: u32) -> u32 {
        let Some((top, _, _)) = self.queue.peek() else { return 0 };
        if date <= *top || self.interesting_in_queue > 0 {
            return SLOP;
        }
        slop - 1
    }

    fn topo_sort(&mut self, list: Vec<u32>, order: Order) -> Vec<u32> {
        let mut indegree: HashMap<u32, u32> = list.iter().map(|i| (*i, 1)).collect();
        for i in &list {
            for p in &self.nodes[*i as usize].parents {
                if let Some(d) = indegree.get_mut(p)
                    && *d > 0
                {
                    *d += 1;
                }
            }
        }
        let tips: Vec<u32> = list.iter().copied().filter(|i| indegree[i] == 1).collect();
        // Graph order uses a stack (the first tip on top); date order a
        // queue by committer date, ties in insertion order.
        let mut stack: Vec<u32> = Vec::new();
        let mut heap: BinaryHeap<(i64, Reverse<u64>, u32)> = BinaryHeap::new();
        let mut ctr = 0u64;
        let date_order = order == Order::Date;
        let mut put = |idx: u32, nodes: &[Node], stack: &mut Vec<u32>, heap: &mut BinaryHeap<_>| {
            if date_order {
                ctr += 1;
                heap.push((nodes[idx as usize].date, Reverse(ctr), idx));
            } else {
                stack.push(idx);
            }
        };
        if date_order {
            for t in &tips {
                put(*t, &self.nodes, &mut stack, &mut heap);
            }
        } else {
            stack.extend(tips.iter().rev());
        }
        let mut out = Vec::with_capacity(list.len());
        loop {
            let next = if date_order { heap.pop().map(|(_, _, i)| i) } else { stack.pop() };
            let Some(c) = next else { break };
            let parents = self.nodes[c as usize].parents.clone();
            for p in parents {
                if let Some(d) = indegree.get_mut(&p)
                    && *d > 0
                {
                    *d -= 1;
                    if *d == 1 {
                        put(p, &self.nodes, &mut stack, &mut heap);
                    }
                }
            }
            indegree.insert(c, 0);
            out.push(c);
        }
        out
    }

    fn process_parents(&mut self, idx: u32) -> Result<(), GitError> {
        if self.nodes[idx as usize].flags & ADDED != 0 {
            return Ok(());
        }
        self.nodes[idx as usize].flags |= ADDED;
        if self.nodes[idx as usize].flags & UNINTERESTING != 0 {
            let parents = self.nodes[idx as usize].parents.clone();
            for p in parents {
                self.set_uninteresting(p);
                if !self.parse(p)? {
                    continue;
                }
                if !self.nodes[p as usize].parents.is_empty() {
                    self.mark_parents_uninteresting(p);
                }
                if self.nodes[p as usize].flags & SEEN != 0 {
                    continue;
                }
                self.nodes[p as usize].flags |= SEEN;
                self.push(p);
            }
            return Ok(());
        }
        if self.opts.paths.is_some() && self.follow.is_none() {
            self.simplify(idx)?;
        }
        if self.opts.no_walk {
            return Ok(());
        }
        let left = self.nodes[idx as usize].flags & LEFT;
        let parents = self.nodes[idx as usize].parents.clone();
        for p in parents {
            self.must_parse(p)?;
            self.nodes[p as usize].flags |= left;
            if self.nodes[p as usize].flags & SEEN == 0 {
                self.nodes[p as usize].flags |= SEEN;
                self.push(p);
            }
            if self.opts.first_parent {
                break;
            }
        }
        Ok(())
    }

    fn relevant(&self, idx: u32) -> bool {
        self.nodes[idx as usize].flags & (UNINTERESTING | BOTTOM) != UNINTERESTING
    }

    /// git's `try_to_simplify_commit` with the default (simplified) history.
    fn simplify(&mut self, idx: u32) -> Result<(), GitError> {
        let Some(spec) = self.opts.paths.clone() else { return Ok(()) };
        let Some(tree) = self.nodes[idx as usize].tree else { return Ok(()) };
        let parents = self.nodes[idx as usize].parents.clone();
        if parents.is_empty() {
            if !tree::has_match(self.repo, tree, &spec)? {
                self.nodes[idx as usize].flags |= TREESAME;
            }
            return Ok(());
        }
        let (mut relevant_parents, mut relevant_change, mut irrelevant_change) = (0, false, false);
        for (nth, p) in parents.iter().copied().enumerate() {
            let relevant = self.relevant(p);
            if relevant {
                relevant_parents += 1;
            }
            if nth == 1 && self.opts.first_parent {
                break;
            }
            // The filter describes the change against the first parent only.
            let unchanged_by_filter = nth == 0
                && self
                    .bloom
                    .as_ref()
                    .is_some_and(|(filters, keys)| filters.certainly_unchanged(&self.nodes[idx as usize].id, keys));
            self.must_parse(p)?;
            let ptree = self.nodes[p as usize].tree;
            if unchanged_by_filter || !tree::differs(self.repo, ptree, Some(tree), &spec)? {
                if !relevant {
                    continue;
                }
                let n = &mut self.nodes[idx as usize];
                n.parents = vec![p];
                n.flags |= TREESAME;
                return Ok(());
            }
            if relevant {
                relevant_change = true;
            } else {
                irrelevant_change = true;
            }
        }
        let same = if relevant_parents > 0 { !relevant_change } else { !irrelevant_change };
        if same {
            self.nodes[idx as usize].flags |= TREESAME;
        }
        Ok(())
    }

    fn next_commit(&mut self) -> Result<Option<u32>, GitError> {
        loop {
            let idx = if self.use_list { self.list.pop_front() } else { self.pop() };
            let Some(idx) = idx else { return Ok(None) };
            if !self.limited {
                if self.opts.after.is_some_and(|a| self.nodes[idx as usize].date < a) {
                    continue;
                }
                self.process_parents(idx)?;
            }
            if self.show(idx)? {
                return Ok(Some(idx));
            }
        }
    }

    /// git's `get_commit_action` (plus `--follow`'s diff filter).
    fn show(&mut self, idx: u32) -> Result<bool, GitError> {
        let n = &self.nodes[idx as usize];
        if n.flags & (SHOWN | UNINTERESTING) != 0 {
            return Ok(false);
        }
        if self.opts.before.is_some_and(|b| n.date > b) {
            return Ok(false);
        }
        let count = n.parents.len();
        if count < self.opts.min_parents || self.opts.max_parents.is_some_and(|m| count > m) {
            return Ok(false);
        }
        if let Some(grep) = &self.opts.grep
            && !grep.is_empty()
        {
            let raw = objects::read(self.repo, n.id)?.ok_or_else(|| GitError::RevisionNotFound(n.id.to_string()))?;
            if !grep.matches(&raw.data) {
                return Ok(false);
            }
        }
        if self.opts.paths.is_some() && self.follow.is_none() && n.flags & TREESAME != 0 {
            return Ok(false);
        }
        if self.follow.is_some() {
            return self.follow_shows(idx);
        }
        Ok(true)
    }

    fn next_internal(&mut self) -> Result<Option<u32>, GitError> {
        if self.max_left == Some(0) {
            return Ok(None);
        }
        let mut c = self.next_commit()?;
        if c.is_some() {
            while self.skip_left > 0 {
                self.skip_left -= 1;
                c = self.next_commit()?;
                if c.is_none() {
                    break;
                }
            }
        }
        if let Some(m) = self.max_left.as_mut() {
            *m -= 1;
        }
        if let Some(i) = c {
            self.nodes[i as usize].flags |= SHOWN;
        }
        Ok(c)
    }

    /// Whether the followed path changed in this (non-merge) commit; when
    /// it was added, the path followed from here on becomes its rename
    /// source, as `git log --follow` does.
    fn follow_shows(&mut self, idx: u32) -> Result<bool, GitError> {
        let Some(follow) = self.follow.clone() else { return Ok(true) };
        let real = self.nodes[idx as usize].real_parents.clone();
        if real.len() > 1 {
            return Ok(false);
        }
        let parent_tree = match real.first() {
            Some(p) => {
                self.must_parse(*p)?;
                self.nodes[*p as usize].tree
            }
            None => None,
        };
        let Some(tree) = self.nodes[idx as usize].tree else { return Ok(false) };
        let spec = Pathspec::parse(&[follow.path.as_slice()], follow.literal, true)
            .map_err(|e| GitError::Invalid(e.to_string()))?;
        if !tree::differs(self.repo, parent_tree, Some(tree), &spec)? {
            return Ok(false);
        }
        let components = tree::path_components(&follow.path).unwrap_or_default();
        let in_commit = tree::lookup(self.repo, tree, &components)?;
        let in_parent = match parent_tree {
            Some(t) => tree::lookup(self.repo, t, &components)?,
            None => None,
        };
        if let (Some(_), None, Some(parent_tree)) = (in_commit, in_parent, parent_tree)
            && let Some(source) = super::commit::rename_source(self.repo, parent_tree, tree, &follow.path)?
        {
            self.follow = Some(FollowPath { path: source, literal: follow.literal });
        }
        Ok(true)
    }
}

/// Counts what a walk shows.
pub fn count(mut walk: Walk<'_>) -> Result<usize, GitError> {
    let mut n = 0;
    while walk.next_id()?.is_some() {
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_regexes_translate() {
        assert_eq!(bre_to_regex(b"a+b"), r"a\+b");
        assert_eq!(bre_to_regex(b"a\\+b"), "a+b");
        assert_eq!(bre_to_regex(b"\\(x\\|y\\)*"), "(x|y)*");
        assert_eq!(bre_to_regex(b"*x"), r"\*x");
        assert_eq!(bre_to_regex(b"^a$"), "^a$");
        assert_eq!(bre_to_regex(b"a^b$c"), r"a\^b\$c");
        assert_eq!(bre_to_regex(b"[]a]"), r"[\]a]");
        assert_eq!(bre_to_regex(b"x{2}"), r"x\{2\}");
        assert_eq!(bre_to_regex(b"x\\{2\\}"), "x{2}");
    }

    #[test]
    fn grep_matches_body_lines_and_author() {
        let commit = b"tree 1\nauthor Ann Author <ann@example.com> 1600000000 +0100\ncommitter C <c> 1 +0000\n\nSubject line\n\nBody Text\n";
        let g = |a: &[&[u8]], m: &[&[u8]], i| Grep::new(a, m, i).expect("compiles").matches(commit);
        assert!(g(&[], &[b"^Body"], false));
        assert!(!g(&[], &[b"^body"], false));
        assert!(g(&[], &[b"^body"], true));
        assert!(!g(&[], &[b"tree"], false));
        assert!(g(&[b"Ann"], &[], false));
        assert!(g(&[b"example.com>$"], &[], false));
        assert!(!g(&[b"1600000000"], &[], false));
        assert!(!g(&[b"Ann"], &[b"nothing"], false));
    }

    #[test]
    fn committer_dates_like_git() {
        assert_eq!(committer_date(b"C O <c@o> 1600000000 +0200"), 1_600_000_000);
        assert_eq!(committer_date(b"C O <c@o> garbage"), 0);
        assert_eq!(committer_date(b"no email"), 0);
    }
}
