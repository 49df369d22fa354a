//! Trees read in-process: entry parsing, path lookups the way
//! `git rev-parse <rev>:<path>` resolves them, listings in `git ls-tree`
//! order, git's pathspecs (literal, glob and `:(magic)` forms) and the
//! pathspec-limited tree comparison history simplification is built on.

use super::objects::{self, Kind, ObjectId};
use super::{GitError, Repo, object_cache};

/// Mode of a tree entry naming a subtree.
pub const MODE_TREE: u32 = 0o40000;
/// Mode of a symbolic link.
pub const MODE_LINK: u32 = 0o120000;
/// Mode of a gitlink (submodule commit).
pub const MODE_COMMIT: u32 = 0o160000;

/// One entry of a tree object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub mode: u32,
    pub name: Vec<u8>,
    pub id: ObjectId,
}

/// What a tree entry points at, by its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    Tree,
    Blob,
    /// A gitlink (submodule).
    Commit,
}

impl Entry {
    pub fn kind(&self) -> EntryKind {
        kind_of(self.mode)
    }

    pub fn is_tree(&self) -> bool {
        self.kind() == EntryKind::Tree
    }

    pub fn is_link(&self) -> bool {
        self.mode & 0o170000 == MODE_LINK
    }

    pub fn is_gitlink(&self) -> bool {
        self.mode & 0o170000 == MODE_COMMIT
    }

    /// A regular file (executable or not).
    pub fn is_file(&self) -> bool {
        self.mode & 0o170000 == 0o100000
    }

    pub fn is_executable(&self) -> bool {
        self.is_file() && self.mode & 0o111 != 0
    }
}

/// The kind a tree entry mode denotes.
pub fn kind_of(mode: u32) -> EntryKind {
    match mode & 0o170000 {
        0o040000 => EntryKind::Tree,
        0o160000 => EntryKind::Commit,
        _ => EntryKind::Blob,
    }
}

/// Parses a tree object's bytes (`<octal mode> <name>\0<raw id>`...).
pub fn parse(data: &[u8], hash: gix::hash::Kind) -> Result<Vec<Entry>, GitError> {
    let mut out = Vec::new();
    let mut entries = RawEntries::new(data, hash);
    while let Some(e) = entries.next_entry()? {
        out.push(Entry { mode: e.mode, name: e.name.to_vec(), id: ObjectId::from_bytes_or_panic(e.id) });
    }
    Ok(out)
}

/// A tree entry borrowed from the tree's bytes.
#[derive(Debug, Clone, Copy)]
struct RawEntry<'a> {
    mode: u32,
    name: &'a [u8],
    id: &'a [u8],
}

impl RawEntry<'_> {
    fn is_tree(&self) -> bool {
        kind_of(self.mode) == EntryKind::Tree
    }

    fn object_id(&self) -> ObjectId {
        ObjectId::from_bytes_or_panic(self.id)
    }
}

/// Entries of a tree's bytes in stored order, without allocating.
struct RawEntries<'a> {
    rest: &'a [u8],
    id_len: usize,
}

impl<'a> RawEntries<'a> {
    fn new(data: &'a [u8], hash: gix::hash::Kind) -> Self {
        Self { rest: data, id_len: hash.len_in_bytes() }
    }

    fn next_entry(&mut self) -> Result<Option<RawEntry<'a>>, GitError> {
        let rest = self.rest;
        if rest.is_empty() {
            return Ok(None);
        }
        let sp = rest.iter().position(|b| *b == b' ').ok_or_else(|| corrupt("tree entry without mode"))?;
        let mut mode = 0u32;
        for d in &rest[..sp] {
            if !(b'0'..=b'7').contains(d) {
                return Err(corrupt("tree entry mode is not octal"));
            }
            mode = mode.wrapping_mul(8) + u32::from(d - b'0');
        }
        let rest = &rest[sp + 1..];
        let nul = rest.iter().position(|b| *b == 0).ok_or_else(|| corrupt("tree entry without name"))?;
        let (name, rest) = (&rest[..nul], &rest[nul + 1..]);
        if rest.len() < self.id_len {
            return Err(corrupt("truncated tree entry"));
        }
        let (id, rest) = rest.split_at(self.id_len);
        self.rest = rest;
        Ok(Some(RawEntry { mode, name, id }))
    }
}

/// git's tree order: names compared bytewise, a tree's name as if it
/// ended in `/`.
fn tree_order(a: &RawEntry<'_>, b: &RawEntry<'_>) -> std::cmp::Ordering {
    let n = a.name.len().min(b.name.len());
    a.name[..n].cmp(&b.name[..n]).then_with(|| {
        let end = |e: &RawEntry<'_>| e.name.get(n).copied().unwrap_or(if e.is_tree() { b'/' } else { 0 });
        end(a).cmp(&end(b))
    })
}

fn corrupt(what: &'static str) -> GitError {
    GitError::gix("parse tree", std::io::Error::new(std::io::ErrorKind::InvalidData, what))
}

/// The entries of tree `id`; `None` when the object is missing or is not a tree.
pub fn read(repo: &Repo, id: ObjectId) -> Result<Option<Vec<Entry>>, GitError> {
    match objects::read(repo, id)? {
        Some(o) if o.kind == Kind::Tree => Ok(Some(parse(&o.data, repo.gix().object_hash())?)),
        _ => Ok(None),
    }
}

/// The root tree of a commit (or tree) id; `None` when it names no tree.
pub fn root_of(repo: &Repo, id: ObjectId) -> Result<Option<ObjectId>, GitError> {
    peel_to_tree(repo, id)
}

/// Follows tags and commits from `id` to a tree.
pub fn peel_to_tree(repo: &Repo, id: ObjectId) -> Result<Option<ObjectId>, GitError> {
    let mut current = id;
    for _ in 0..64 {
        let Some(obj) = objects::read(repo, current)? else { return Ok(None) };
        match obj.kind {
            Kind::Tree => return Ok(Some(current)),
            Kind::Commit => {
                let c = objects::parse_commit(&current, &obj.data);
                return Ok(ObjectId::from_hex(c.tree.as_bytes()).ok());
            }
            Kind::Tag => match objects::peel_to(repo, current, Kind::Commit)? {
                Some(c) => current = c,
                None => return objects::peel_to(repo, current, Kind::Tree),
            },
            Kind::Blob => return Ok(None),
        }
    }
    Ok(None)
}

/// Path components of a repository path as `<rev>:<path>` accepts them:
/// no empty, `.` or `..` components and no leading slash (git rejects
/// relative syntax outside a work tree); one trailing slash is allowed.
pub fn path_components(path: &[u8]) -> Option<Vec<&[u8]>> {
    let path = path.strip_suffix(b"/").unwrap_or(path);
    if path.is_empty() {
        return Some(Vec::new());
    }
    let parts: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
    if parts.iter().any(|p| p.is_empty() || *p == b"." || *p == b"..") {
        return None;
    }
    Some(parts)
}

/// The entry at `path` below tree `root` (`None` when some component is
/// missing or a non-tree is traversed).
pub fn lookup(repo: &Repo, root: ObjectId, components: &[&[u8]]) -> Result<Option<Entry>, GitError> {
    let mut tree = root;
    let mut found = None;
    for (i, name) in components.iter().enumerate() {
        let Some(entries) = read(repo, tree)? else { return Ok(None) };
        let Some(e) = entries.into_iter().find(|e| e.name == *name) else { return Ok(None) };
        if i + 1 < components.len() {
            if !e.is_tree() {
                return Ok(None);
            }
            tree = e.id;
        }
        found = Some(e);
    }
    Ok(found)
}

/// Joins a directory prefix and a name with `/` (no slash for the root).
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// An entry with its full path, as listings report it.
#[derive(Debug, Clone)]
pub struct PathEntry {
    pub path: Vec<u8>,
    pub mode: u32,
    pub id: ObjectId,
}

impl PathEntry {
    pub fn kind(&self) -> EntryKind {
        kind_of(self.mode)
    }
}

/// Every entry below `tree` in `git ls-tree -r -t` order (a tree before
/// its contents), paths prefixed with `prefix`. `visit` returns `false` to
/// stop early. Missing subtrees are an error, as for git.
pub fn walk_recursive<E: From<GitError>>(
    repo: &Repo,
    tree: ObjectId,
    prefix: &[u8],
    visit: &mut dyn FnMut(PathEntry) -> Result<bool, E>,
) -> Result<bool, E> {
    let entries = read(repo, tree)?.ok_or_else(|| GitError::RevisionNotFound(tree.to_string()))?;
    for e in entries {
        let path = join(prefix, &e.name);
        let is_tree = e.is_tree();
        let id = e.id;
        if !visit(PathEntry { path: path.clone(), mode: e.mode, id })? {
            return Ok(false);
        }
        if is_tree && !walk_recursive(repo, id, &path, visit)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The flat path of directory `path` (tree `id`): descends while a tree
/// holds exactly one entry that is itself a tree, at most `depth - 1`
/// levels, so GitLab can show `a/b/c` for chains of single directories.
pub fn flat_path(repo: &Repo, path: &[u8], id: ObjectId, depth: usize) -> Result<Vec<u8>, GitError> {
    let mut flat = path.to_vec();
    let mut current = id;
    for _ in 1..depth {
        let Some(entries) = read(repo, current)? else { break };
        match entries.as_slice() {
            [only] if only.is_tree() => {
                flat = join(&flat, &only.name);
                current = only.id;
            }
            _ => break,
        }
    }
    Ok(flat)
}

// ---------------------------------------------------------------------------
// Pathspecs

/// One parsed pathspec element.
#[derive(Debug, Clone)]
struct Item {
    /// Normalised pattern (no `./`, no `..`, duplicate slashes collapsed).
    pattern: Vec<u8>,
    /// Length of the leading part without wildcards.
    nowildcard_len: usize,
    /// `:(glob)`: wildcards do not cross `/`.
    pathname: bool,
    icase: bool,
    exclude: bool,
}

/// A list of pathspecs as git parses them (`git help glossary`).
#[derive(Debug, Clone, Default)]
pub struct Pathspec {
    items: Vec<Item>,
}

/// Pathspec parsing failures (git would die on these).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathspecError {
    #[error("invalid pathspec magic in {0:?}")]
    Magic(String),
    #[error("{0:?} is outside repository")]
    Outside(String),
    #[error("empty string is not a valid pathspec")]
    Empty,
}

impl Pathspec {
    /// Parses pathspec arguments. With `literal` (git's
    /// `--literal-pathspecs`), neither magic nor wildcards are recognised.
    /// `wildcards: false` gives `git ls-tree`'s matching, which supports
    /// magic but compares literally.
    pub fn parse(args: &[&[u8]], literal: bool, wildcards: bool) -> Result<Self, PathspecError> {
        let mut items = Vec::new();
        for arg in args {
            items.push(parse_item(arg, literal, wildcards)?);
        }
        Ok(Self { items })
    }

    /// The normalised pattern of a lone, non-excluding element (what
    /// `git ls-tree` compares literally).
    pub fn single_pattern(&self) -> Option<Vec<u8>> {
        match self.items.as_slice() {
            [only] if !only.exclude => Some(only.pattern.clone()),
            _ => None,
        }
    }

    /// Whether there are no elements (everything matches).
    /// The paths when every item is a plain literal path (no wildcards,
    /// no case folding, no exclusions, not the root): what changed-path
    /// Bloom filters can answer for.
    pub fn literal_paths(&self) -> Option<Vec<&[u8]>> {
        let mut out = Vec::new();
        for i in &self.items {
            let path = i.pattern.strip_suffix(b"/").unwrap_or(&i.pattern);
            if i.exclude || i.icase || i.nowildcard_len != i.pattern.len() || path.is_empty() || path == b"." {
                return None;
            }
            out.push(path);
        }
        (!out.is_empty()).then_some(out)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether the pathspec matches every path (`.`, empty elements).
    pub fn matches_everything(&self) -> bool {
        self.items.is_empty() || self.items.iter().any(|i| !i.exclude && i.pattern.is_empty())
    }

    /// Whether a file (or gitlink) at `path` is selected.
    pub fn matches(&self, path: &[u8]) -> bool {
        if self.items.is_empty() {
            return true;
        }
        let has_include = self.items.iter().any(|i| !i.exclude);
        let included = !has_include || self.items.iter().any(|i| !i.exclude && item_matches(i, path));
        included && !self.items.iter().any(|i| i.exclude && item_matches(i, path))
    }

    /// Whether something below directory `dir` may be selected (used to
    /// skip subtrees that cannot matter).
    pub fn may_match_inside(&self, dir: &[u8]) -> bool {
        let includes: Vec<&Item> = self.items.iter().filter(|i| !i.exclude).collect();
        if includes.is_empty() {
            return true;
        }
        let mut dir_slash = dir.to_vec();
        dir_slash.push(b'/');
        includes.iter().any(|i| {
            if i.pattern.is_empty() {
                return true;
            }
            let lit = &i.pattern[..i.nowildcard_len];
            let (a, b) = if i.icase {
                (lit.to_ascii_lowercase(), dir_slash.to_ascii_lowercase())
            } else {
                (lit.to_vec(), dir_slash.clone())
            };
            if i.nowildcard_len == i.pattern.len() {
                let pat = a.strip_suffix(b"/").unwrap_or(&a);
                // The pattern names something inside `dir`, or `dir` itself
                // (or one of its ancestors).
                a.starts_with(&b) || b.starts_with(pat) && (b.len() == pat.len() || b[pat.len()] == b'/')
            } else {
                a.starts_with(&b) || b.starts_with(&a)
            }
        })
    }
}

fn parse_item(arg: &[u8], literal: bool, wildcards: bool) -> Result<Item, PathspecError> {
    let mut item = Item { pattern: Vec::new(), nowildcard_len: 0, pathname: false, icase: false, exclude: false };
    let mut is_literal = literal;
    let mut rest = arg;
    if !literal && arg.first() == Some(&b':') {
        if arg.get(1) == Some(&b'(') {
            let close = arg.iter().position(|b| *b == b')').ok_or_else(|| magic_err(arg))?;
            for word in arg[2..close].split(|b| *b == b',') {
                match word {
                    b"top" | b"" => {}
                    b"literal" => is_literal = true,
                    b"glob" => item.pathname = true,
                    b"icase" => item.icase = true,
                    b"exclude" => item.exclude = true,
                    w if w.starts_with(b"prefix:") => {}
                    _ => return Err(magic_err(arg)),
                }
            }
            rest = &arg[close + 1..];
        } else {
            let mut i = 1;
            while i < arg.len() {
                match arg[i] {
                    b'/' => {}
                    b'!' | b'^' => item.exclude = true,
                    b':' => {
                        i += 1;
                        break;
                    }
                    _ => break,
                }
                i += 1;
            }
            rest = &arg[i.min(arg.len())..];
        }
    }
    item.pattern = normalize(rest).ok_or_else(|| PathspecError::Outside(String::from_utf8_lossy(arg).into_owned()))?;
    item.nowildcard_len = if is_literal || !wildcards {
        item.pattern.len()
    } else {
        item.pattern.iter().position(|b| b"*?[\\".contains(b)).unwrap_or(item.pattern.len())
    };
    Ok(item)
}

fn magic_err(arg: &[u8]) -> PathspecError {
    PathspecError::Magic(String::from_utf8_lossy(arg).into_owned())
}

/// git's path normalisation: collapses `//`, drops `.` components and
/// resolves `..`; `None` when the path climbs out of the repository. A
/// trailing slash is kept.
pub fn normalize(path: &[u8]) -> Option<Vec<u8>> {
    let trailing = path.ends_with(b"/") && path.len() > 1;
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    let mut out = parts.join(&b'/');
    if trailing && !out.is_empty() {
        out.push(b'/');
    }
    Some(out)
}

fn item_matches(i: &Item, path: &[u8]) -> bool {
    if i.pattern.is_empty() {
        return true;
    }
    let eq = |a: &[u8], b: &[u8]| if i.icase { a.eq_ignore_ascii_case(b) } else { a == b };
    if i.nowildcard_len == i.pattern.len() {
        let pat = &i.pattern;
        if pat.ends_with(b"/") {
            return path.len() >= pat.len() && eq(&path[..pat.len()], pat);
        }
        if path.len() == pat.len() {
            return eq(path, pat);
        }
        return path.len() > pat.len() && path[pat.len()] == b'/' && eq(&path[..pat.len()], pat);
    }
    let lit = i.nowildcard_len;
    if path.len() < lit || !eq(&path[..lit], &i.pattern[..lit]) {
        return false;
    }
    wildmatch(&i.pattern, path, i.pathname, i.icase)
}

/// git's `wildmatch`: `*`, `?`, `[...]` classes (with `!`/`^` negation,
/// ranges and `[:class:]`), backslash escapes. With `pathname`, wildcards do not
/// match `/` except `**` between slashes.
pub fn wildmatch(pattern: &[u8], text: &[u8], pathname: bool, icase: bool) -> bool {
    wild(pattern, text, pathname, icase, pattern)
}

fn fold(b: u8, icase: bool) -> u8 {
    if icase { b.to_ascii_lowercase() } else { b }
}

fn wild(p: &[u8], t: &[u8], pathname: bool, icase: bool, whole: &[u8]) -> bool {
    let Some(&pc) = p.first() else { return t.is_empty() };
    match pc {
        b'*' => {
            let stars = p.iter().take_while(|b| **b == b'*').count();
            let rest = &p[stars..];
            let at_start = whole.len() == p.len() || whole[whole.len() - p.len() - 1] == b'/';
            let double = pathname && stars >= 2 && at_start && (rest.is_empty() || rest[0] == b'/');
            let cross = !pathname || double;
            if double && rest.first() == Some(&b'/') && wild(&rest[1..], t, pathname, icase, whole) {
                return true;
            }
            for i in 0..=t.len() {
                if wild(rest, &t[i..], pathname, icase, whole) {
                    return true;
                }
                if i < t.len() && !cross && t[i] == b'/' {
                    return false;
                }
            }
            false
        }
        _ if t.is_empty() => false,
        b'?' => !(pathname && t[0] == b'/') && wild(&p[1..], &t[1..], pathname, icase, whole),
        b'\\' if p.len() > 1 => {
            fold(p[1], icase) == fold(t[0], icase) && wild(&p[2..], &t[1..], pathname, icase, whole)
        }
        b'[' => match class(&p[1..], t[0], icase) {
            Some((matched, used)) => {
                matched && !(pathname && t[0] == b'/') && wild(&p[1 + used..], &t[1..], pathname, icase, whole)
            }
            None => t[0] == b'[' && wild(&p[1..], &t[1..], pathname, icase, whole),
        },
        _ => fold(pc, icase) == fold(t[0], icase) && wild(&p[1..], &t[1..], pathname, icase, whole),
    }
}

/// Matches `c` against a bracket expression (after its `[`); returns
/// whether it matched and how many pattern bytes the class used, or `None`
/// when the class is unterminated.
fn class(p: &[u8], c: u8, icase: bool) -> Option<(bool, usize)> {
    let mut i = 0;
    let negate = matches!(p.first(), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let lc = fold(c, icase);
    let mut matched = false;
    let mut first = true;
    loop {
        let mut pc = *p.get(i)?;
        if pc == b']' && !first {
            break;
        }
        first = false;
        if pc == b'['
            && p.get(i + 1) == Some(&b':')
            && let Some(e) = p[i + 2..].windows(2).position(|w| w == b":]")
        {
            matched |= class_matches(&p[i + 2..i + 2 + e], c, icase);
            i += 2 + e + 2;
            continue;
        }
        if pc == b'\\' {
            i += 1;
            pc = *p.get(i)?;
        }
        if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|b| *b != b']') {
            let mut hi = p[i + 2];
            i += 2;
            if hi == b'\\' {
                i += 1;
                hi = *p.get(i)?;
            }
            matched |= (pc..=hi).contains(&c) || icase && (fold(pc, true)..=fold(hi, true)).contains(&lc);
        } else {
            matched |= fold(pc, icase) == lc;
        }
        i += 1;
    }
    Some((matched != negate, i + 1))
}

fn class_matches(class: &[u8], c: u8, icase: bool) -> bool {
    match class {
        b"alnum" => c.is_ascii_alphanumeric(),
        b"alpha" => c.is_ascii_alphabetic(),
        b"blank" => c == b' ' || c == b'\t',
        b"cntrl" => c.is_ascii_control(),
        b"digit" => c.is_ascii_digit(),
        b"graph" => c.is_ascii_graphic(),
        b"lower" => c.is_ascii_lowercase() || icase && c.is_ascii_uppercase(),
        b"print" => c.is_ascii_graphic() || c == b' ',
        b"punct" => c.is_ascii_punctuation(),
        b"space" => c.is_ascii_whitespace() || c == 0x0b,
        b"upper" => c.is_ascii_uppercase() || icase && c.is_ascii_lowercase(),
        b"xdigit" => c.is_ascii_hexdigit(),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Pathspec-limited comparison

/// Whether anything selected by `spec` differs between trees `a` and `b`
/// (`None` = the empty tree): the TREESAME test of history simplification.
pub fn differs(repo: &Repo, a: Option<ObjectId>, b: Option<ObjectId>, spec: &Pathspec) -> Result<bool, GitError> {
    if a == b {
        return Ok(false);
    }
    differs_below(repo, a, b, b"", spec)
}

fn differs_below(
    repo: &Repo,
    a: Option<ObjectId>,
    b: Option<ObjectId>,
    dir: &[u8],
    spec: &Pathspec,
) -> Result<bool, GitError> {
    // Both trees are walked side by side in their stored (git) order, so
    // identical entries are skipped without a path or an allocation: most
    // of a commit's tree equals its parent's.
    let (mut buf_a, mut buf_b) = (Vec::new(), Vec::new());
    let hash = repo.gix().object_hash();
    let mut ea = RawEntries::new(raw_tree(repo, a, &mut buf_a)?, hash);
    let mut eb = RawEntries::new(raw_tree(repo, b, &mut buf_b)?, hash);
    let (mut x, mut y) = (ea.next_entry()?, eb.next_entry()?);
    loop {
        let (left, right) = match (x, y) {
            (None, None) => return Ok(false),
            (Some(l), None) => (Some(l), None),
            (None, Some(r)) => (None, Some(r)),
            (Some(l), Some(r)) => match tree_order(&l, &r) {
                std::cmp::Ordering::Less => (Some(l), None),
                std::cmp::Ordering::Greater => (None, Some(r)),
                std::cmp::Ordering::Equal => (Some(l), Some(r)),
            },
        };
        if left.is_some() {
            x = ea.next_entry()?;
        }
        if right.is_some() {
            y = eb.next_entry()?;
        }
        if let (Some(l), Some(r)) = (left, right)
            && l.mode == r.mode
            && l.id == r.id
        {
            continue;
        }
        let name = left.or(right).expect("one side is present").name;
        let path = join(dir, name);
        // Equal names in tree order mean equal kinds, so a leaf on one side
        // is a leaf on both (or the other side is absent).
        let leaf = |e: Option<RawEntry<'_>>| e.is_some_and(|e| !e.is_tree());
        if (leaf(left) || leaf(right)) && spec.matches(&path) {
            return Ok(true);
        }
        let sub = |e: Option<RawEntry<'_>>| e.filter(RawEntry::is_tree).map(|e| e.object_id());
        let (sa, sb) = (sub(left), sub(right));
        if (sa.is_some() || sb.is_some())
            && sa != sb
            && spec.may_match_inside(&path)
            && differs_below(repo, sa, sb, &path, spec)?
        {
            return Ok(true);
        }
    }
}

/// The bytes of tree `id` read into `buf` (empty for `None`, a missing
/// object or a non-tree, as an empty tree compares).
fn raw_tree<'b>(repo: &Repo, id: Option<ObjectId>, buf: &'b mut Vec<u8>) -> Result<&'b [u8], GitError> {
    let Some(id) = id else { return Ok(&[]) };
    if let Some((kind, data)) = object_cache::get(repo.serial(), &id) {
        buf.clear();
        if kind == Kind::Tree {
            buf.extend_from_slice(&data);
        }
        return Ok(buf.as_slice());
    }
    match gix::objs::Find::try_find(&repo.gix().objects, &id, buf) {
        Ok(Some(data)) if data.kind == Kind::Tree => {
            if object_cache::cacheable(Kind::Tree, data.data.len()) {
                object_cache::put(repo.serial(), id, Kind::Tree, std::sync::Arc::from(data.data));
            }
            Ok(data.data)
        }
        Ok(_) => Ok(&[]),
        Err(e) => Err(GitError::gix("read tree", e)),
    }
}

/// Whether tree `t` holds anything `spec` selects (a root commit is
/// TREESAME when it holds nothing selected).
pub fn has_match(repo: &Repo, t: ObjectId, spec: &Pathspec) -> Result<bool, GitError> {
    differs_below(repo, None, Some(t), b"", spec)
}

/// `git ls-tree <tree> -- <path>` for one path, without `-r`: the entry the
/// path names, or with a trailing slash (or `.`/empty) the entries of that
/// directory. Paths are full paths from the root.
pub fn ls_tree(repo: &Repo, root: ObjectId, path: &[u8]) -> Result<Vec<PathEntry>, GitError> {
    let list_dir = path.is_empty() || path.ends_with(b"/");
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    let components: Vec<&[u8]> = if trimmed.is_empty() { Vec::new() } else { trimmed.split(|b| *b == b'/').collect() };
    let mut tree = root;
    let mut prefix: Vec<u8> = Vec::new();
    for (i, name) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        let Some(entries) = read(repo, tree)? else { return Ok(Vec::new()) };
        let Some(e) = entries.into_iter().find(|e| e.name == *name) else { return Ok(Vec::new()) };
        if last && !list_dir {
            return Ok(vec![PathEntry { path: join(&prefix, name), mode: e.mode, id: e.id }]);
        }
        if !e.is_tree() {
            // `a/file/` selects nothing below a file, but `a/file` was
            // already handled above.
            return Ok(Vec::new());
        }
        prefix = join(&prefix, name);
        tree = e.id;
    }
    let entries = read(repo, tree)?.unwrap_or_default();
    Ok(entries.into_iter().map(|e| PathEntry { path: join(&prefix, &e.name), mode: e.mode, id: e.id }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_like_git() {
        assert!(wildmatch(b"a-*", b"a-foo", false, false));
        assert!(wildmatch(b"a-*", b"a-foo/bar", false, false));
        assert!(!wildmatch(b"a-*", b"a-foo/bar", true, false));
        assert!(wildmatch(b"**/b", b"x/y/b", true, false));
        assert!(wildmatch(b"*.r[sb]", b"x.rs", false, false));
        assert!(!wildmatch(b"*.r[!sb]", b"x.rs", false, false));
        assert!(wildmatch(b"[[:digit:]]x", b"7x", false, false));
        assert!(wildmatch(b"README*", b"readme.md", false, true));
        assert!(!wildmatch(b"a?c", b"ac", false, false));
        assert!(wildmatch(b"a\\*", b"a*", false, false));
    }

    #[test]
    fn pathspecs() {
        let p = Pathspec::parse(&[b"src"], false, true).expect("parse");
        assert!(p.matches(b"src/lib.rs") && p.matches(b"src") && !p.matches(b"srcx"));
        assert!(p.may_match_inside(b"src") && !p.may_match_inside(b"docs"));
        let deep = Pathspec::parse(&[b"deep/a/b"], false, true).expect("parse");
        assert!(deep.may_match_inside(b"deep") && deep.may_match_inside(b"deep/a/b/c"));
        let glob = Pathspec::parse(&[b"*.md"], false, true).expect("parse");
        assert!(glob.matches(b"docs/release notes.md") && glob.may_match_inside(b"docs"));
        let magic = Pathspec::parse(&[b":wq"], false, true).expect("parse");
        assert!(magic.matches(b"wq") && !magic.matches(b":wq"));
        let literal = Pathspec::parse(&[b":wq"], true, true).expect("parse");
        assert!(literal.matches(b":wq"));
        let exclude = Pathspec::parse(&[b":!src"], false, true).expect("parse");
        assert!(exclude.matches(b"README.md") && !exclude.matches(b"src/x"));
        let everything = Pathspec::parse(&[b"."], false, true).expect("parse");
        assert!(everything.matches_everything());
        assert!(Pathspec::parse(&[b"../x"], false, true).is_err());
        assert_eq!(normalize(b"a//b/./c/../d/"), Some(b"a/b/d/".to_vec()));
    }
}
