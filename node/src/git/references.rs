//! Reference listings as `git for-each-ref` makes them: pattern matching
//! (prefix at a `/` boundary, or a glob), symbolic references resolved and
//! broken ones skipped, sorting by name, date or version, `--points-at`,
//! `--contains` and `--merged`; and the default-branch rules upstream
//! applies on top of HEAD.

use super::objects::{self, Kind, ObjectId, SignatureKind};
use super::{GitError, Repo};
use gix::bstr::ByteSlice as _;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A direct reference: its full name and the object it points to
/// (symbolic references are resolved, tags are not peeled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub name: Vec<u8>,
    pub target: ObjectId,
}

fn has_glob(pattern: &[u8]) -> bool {
    pattern.iter().any(|b| b"?*[\\".contains(b))
}

/// Whether `name` matches a `git for-each-ref` pattern: the pattern is a
/// prefix ending at a `/` boundary, or a glob where `*` stops at `/`.
pub fn matches(pattern: &[u8], name: &[u8]) -> bool {
    if name.starts_with(pattern)
        && (name.len() == pattern.len() || name[pattern.len()] == b'/' || pattern.ends_with(b"/"))
    {
        return true;
    }
    gix::glob::wildmatch(pattern.as_bstr(), name.as_bstr(), gix::glob::wildmatch::Mode::NO_MATCH_SLASH_LITERAL)
}

/// Whether a tag name (without `refs/tags/`) matches a `git tag -l`
/// pattern: a glob where `*` also crosses `/`.
pub fn matches_tag(pattern: &[u8], tag: &[u8]) -> bool {
    gix::glob::wildmatch(pattern.as_bstr(), tag.as_bstr(), gix::glob::wildmatch::Mode::empty())
}

/// The references matching any of `patterns` (every reference when there
/// are none), sorted by name.
pub fn list(repo: &Repo, patterns: &[&[u8]]) -> Result<Vec<Reference>, GitError> {
    let g = repo.gix();
    let platform = g.references().map_err(|e| GitError::gix("read references", e))?;
    // Only the directories the patterns can match are read.
    let mut prefixes: Vec<Vec<u8>> = Vec::new();
    let mut exact: Vec<&[u8]> = Vec::new();
    if patterns.is_empty() {
        prefixes.push(b"refs/".to_vec());
    }
    for p in patterns {
        let literal = if has_glob(p) {
            let first = p.iter().position(|b| b"?*[\\".contains(b)).unwrap_or(p.len());
            &p[..first]
        } else {
            exact.push(p);
            p
        };
        let dir = match literal.rfind_byte(b'/') {
            Some(i) if !has_glob(p) && literal.ends_with(b"/") => literal[..=i].to_vec(),
            _ if !has_glob(p) => [literal, b"/"].concat(),
            Some(i) => literal[..=i].to_vec(),
            None => Vec::new(),
        };
        prefixes.push(dir);
    }
    prefixes.sort();
    prefixes.dedup();
    let mut found = BTreeMap::new();
    let mut take = |r: gix::Reference<'_>| {
        let name = r.name().as_bstr().to_vec();
        if (patterns.is_empty() || patterns.iter().any(|p| matches(p, &name)))
            && let Some(id) = follow(g, r)
        {
            found.insert(name, id);
        }
    };
    for prefix in &prefixes {
        // Directory prefixes only; a prefix that is no valid path (or is
        // empty) means every reference has to be looked at.
        let iter = if prefix.is_empty() || !prefix.starts_with(b"refs/") {
            platform.all()
        } else {
            match platform.prefixed(prefix.as_bstr()) {
                Ok(i) => Ok(i),
                Err(_) => platform.all(),
            }
        }
        .map_err(|e| GitError::gix("read references", e))?;
        for r in iter {
            // Unreadable references are skipped, as for-each-ref skips them.
            let Ok(r) = r else { continue };
            take(r);
        }
    }
    // A pattern may name a reference exactly (`refs/heads` could be one).
    for name in exact {
        if let Some(r) = find_exact(g, name) {
            take(r);
        }
    }
    Ok(found.into_iter().map(|(name, target)| Reference { name, target }).collect())
}

/// The reference with exactly this full name, if any.
fn find_exact<'r>(repo: &'r gix::Repository, name: &[u8]) -> Option<gix::Reference<'r>> {
    if !super::refs::valid_ref_name(name) {
        return None;
    }
    let r = repo.try_find_reference(name.as_bstr()).ok()??;
    (r.name().as_bstr() == name).then_some(r)
}

/// Follows symbolic references (five levels at most, as git does).
fn follow<'r>(repo: &'r gix::Repository, mut r: gix::Reference<'r>) -> Option<ObjectId> {
    for _ in 0..5 {
        match r.target() {
            gix::refs::TargetRef::Object(id) => return Some(id.to_owned()),
            gix::refs::TargetRef::Symbolic(name) => r = repo.try_find_reference(name).ok()??,
        }
    }
    None
}

/// Every reference under `refs/` and its target, sorted by name.
pub fn resolved(repo: &Repo) -> Result<Vec<(Vec<u8>, ObjectId)>, GitError> {
    Ok(list(repo, &[b"refs/"])?.into_iter().map(|r| (r.name, r.target)).collect())
}

/// Whether a reference with exactly this name exists and resolves.
pub fn exists(repo: &Repo, name: &[u8]) -> bool {
    find_exact(repo.gix(), name).and_then(|r| follow(repo.gix(), r)).is_some()
}

/// The object a full reference name resolves to.
pub fn resolve_name(repo: &Repo, name: &[u8]) -> Option<ObjectId> {
    find_exact(repo.gix(), name).and_then(|r| follow(repo.gix(), r))
}

/// Whether a reference with exactly this name exists and is symbolic.
pub fn is_symbolic(repo: &Repo, name: &[u8]) -> bool {
    find_exact(repo.gix(), name).is_some_and(|r| matches!(r.target(), gix::refs::TargetRef::Symbolic(_)))
}

/// The object HEAD resolves to, if any.
pub fn head_id(repo: &Repo) -> Option<ObjectId> {
    repo.gix().head_id().ok().map(gix::Id::detach)
}

/// What HEAD points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// A reference name (which may not exist yet).
    Symbolic(Vec<u8>),
    /// An object id.
    Detached,
}

/// HEAD as `git symbolic-ref HEAD` reads it.
pub fn head(repo: &Repo) -> Result<Head, GitError> {
    match repo.gix().head_name() {
        Ok(Some(name)) => Ok(Head::Symbolic(name.as_bstr().to_vec())),
        Ok(None) => Ok(Head::Detached),
        Err(e) => Err(GitError::gix("read HEAD", e)),
    }
}

/// The default branch as upstream guesses it: HEAD's branch if it exists,
/// else `refs/heads/main`, else `refs/heads/master`, else the first branch
/// by name; `None` without branches. A detached HEAD is an error, as
/// upstream reads HEAD with `git symbolic-ref`.
pub fn default_branch(repo: &Repo) -> Result<Option<Vec<u8>>, GitError> {
    let Head::Symbolic(head) = head(repo)? else {
        return Err(GitError::Invalid("HEAD is not a symbolic reference".into()));
    };
    for candidate in [head.as_slice(), b"refs/heads/main", b"refs/heads/master"] {
        if resolve_name(repo, candidate).is_some() {
            return Ok(Some(candidate.to_vec()));
        }
    }
    Ok(list(repo, &[b"refs/heads/"])?.into_iter().next().map(|r| r.name))
}

/// Object ids the references of the repository's alternates point at
/// (`--alternate-refs`); alternates that cannot be opened have none.
pub fn alternate_ref_ids(repo: &Repo) -> Vec<ObjectId> {
    let objects = repo.gix().objects.store_ref().path().to_owned();
    let Ok(alternates) = gix::odb::alternate::resolve(objects, std::path::Path::new("/")) else { return Vec::new() };
    let mut out = Vec::new();
    for alt in alternates {
        let Some(dir) = alt.parent() else { continue };
        let Ok(r) = gix::open_opts(dir, gix::open::Options::isolated()) else { continue };
        let Ok(platform) = r.references() else { continue };
        let Ok(iter) = platform.all() else { continue };
        for reference in iter.flatten() {
            if let Some(id) = follow(&r, reference) {
                out.push(id);
            }
        }
    }
    out
}

/// Follows tags from `id` to the first object that is not a tag: its id
/// and kind, or `None` if an object on the way is missing.
pub fn peel(repo: &Repo, id: ObjectId) -> Result<Option<(ObjectId, Kind)>, GitError> {
    let mut current = id;
    for _ in 0..64 {
        let Some(obj) = objects::read(repo, current)? else { return Ok(None) };
        if obj.kind != Kind::Tag {
            return Ok(Some((current, obj.kind)));
        }
        let tag = objects::parse_tag(&current, &obj.data);
        let Some(next) = objects::parse_oid(repo, tag.target.as_bytes()) else { return Ok(None) };
        current = next;
    }
    Ok(None)
}

/// Whether `target` is one of `oids` or a tag (chain) ending at or passing
/// through one of them, as `--points-at` decides.
pub fn points_at(repo: &Repo, target: ObjectId, oids: &HashSet<ObjectId>) -> Result<bool, GitError> {
    let mut current = target;
    for _ in 0..64 {
        if oids.contains(&current) {
            return Ok(true);
        }
        let Some(obj) = objects::read(repo, current)? else { return Ok(false) };
        if obj.kind != Kind::Tag {
            return Ok(false);
        }
        let tag = objects::parse_tag(&current, &obj.data);
        let Some(next) = objects::parse_oid(repo, tag.target.as_bytes()) else { return Ok(false) };
        current = next;
    }
    Ok(false)
}

/// A `--sort` key of git-for-each-ref.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    RefName,
    /// Committer date for commits, tagger date for tags.
    CreatorDate,
    AuthorDate,
    CommitterDate,
    TaggerDate,
    /// `version:refname`: names compared as version numbers.
    Version,
}

/// A sort order: a key and a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

impl Sort {
    pub const BY_NAME: Sort = Sort { key: SortKey::RefName, descending: false };

    /// Parses a git `--sort` value (`refname`, `-committerdate`,
    /// `version:refname`, ...); `None` for keys not supported here.
    pub fn parse(s: &str) -> Option<Sort> {
        let (descending, key) = match s.strip_prefix('-') {
            Some(k) => (true, k),
            None => (false, s),
        };
        let key = match key {
            "refname" => SortKey::RefName,
            "creatordate" => SortKey::CreatorDate,
            "authordate" => SortKey::AuthorDate,
            "committerdate" => SortKey::CommitterDate,
            "taggerdate" => SortKey::TaggerDate,
            "version:refname" | "v:refname" => SortKey::Version,
            _ => return None,
        };
        Some(Sort { key, descending })
    }
}

/// Sorts references as for-each-ref does: by the key (dates of objects
/// without one count as 0), then by name.
pub fn sort(repo: &Repo, refs: &mut [Reference], sort: Sort) -> Result<(), GitError> {
    let dates = match sort.key {
        SortKey::RefName | SortKey::Version => None,
        key => {
            let mut dates = HashMap::new();
            for r in refs.iter() {
                if let std::collections::hash_map::Entry::Vacant(v) = dates.entry(r.target) {
                    v.insert(date_of(repo, r.target, key)?);
                }
            }
            Some(dates)
        }
    };
    refs.sort_by(|a, b| {
        let by_key = match (&dates, sort.key) {
            (Some(d), _) => d[&a.target].cmp(&d[&b.target]),
            (None, SortKey::Version) => versioncmp(&a.name, &b.name),
            _ => a.name.cmp(&b.name),
        };
        let by_key = if sort.descending { by_key.reverse() } else { by_key };
        by_key.then_with(|| a.name.cmp(&b.name))
    });
    Ok(())
}

fn date_of(repo: &Repo, id: ObjectId, key: SortKey) -> Result<i64, GitError> {
    let Some(obj) = objects::read(repo, id)? else { return Ok(0) };
    let hash = repo.gix().object_hash();
    let seconds = |s: Option<gix::actor::SignatureRef<'_>>| s.map_or(0, |s| s.seconds());
    Ok(match (obj.kind, key) {
        (Kind::Commit, SortKey::CreatorDate | SortKey::CommitterDate) => {
            seconds(gix::objs::CommitRefIter::from_bytes(&obj.data, hash).committer().ok())
        }
        (Kind::Commit, SortKey::AuthorDate) => {
            seconds(gix::objs::CommitRefIter::from_bytes(&obj.data, hash).author().ok())
        }
        (Kind::Tag, SortKey::CreatorDate | SortKey::TaggerDate) => {
            seconds(gix::objs::TagRefIter::from_bytes(&obj.data, hash).tagger().ok().flatten())
        }
        _ => 0,
    })
}

/// Git's `versioncmp` (glibc's strverscmp): digit runs compare as numbers,
/// leading zeros as fractional parts.
pub fn versioncmp(a: &[u8], b: &[u8]) -> Ordering {
    const S_N: usize = 0;
    const S_I: usize = 3;
    const S_F: usize = 6;
    const S_Z: usize = 9;
    const CMP: i8 = 2;
    const LEN: i8 = 3;
    const NEXT: [usize; 12] = [S_N, S_I, S_Z, S_N, S_I, S_I, S_N, S_F, S_F, S_N, S_F, S_Z];
    const RESULT: [i8; 36] = [
        CMP, CMP, CMP, CMP, LEN, CMP, CMP, CMP, CMP, //
        CMP, -1, -1, 1, LEN, LEN, 1, LEN, LEN, //
        CMP, CMP, CMP, CMP, CMP, CMP, CMP, CMP, CMP, //
        CMP, 1, 1, -1, CMP, CMP, -1, CMP, CMP,
    ];
    // Strings end in a NUL, as in C.
    let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    let class = |c: u8| usize::from(c == b'0') + usize::from(c.is_ascii_digit());
    let (mut i, mut j) = (0usize, 0usize);
    let mut c1 = at(a, i);
    let mut c2 = at(b, j);
    i += 1;
    j += 1;
    let mut state = S_N + class(c1);
    loop {
        let diff = i32::from(c1) - i32::from(c2);
        if diff != 0 {
            let result = RESULT[state * 3 + class(c2)];
            return match result {
                CMP => diff.cmp(&0),
                LEN => {
                    loop {
                        let d1 = at(a, i).is_ascii_digit();
                        i += 1;
                        if !d1 {
                            break;
                        }
                        let d2 = at(b, j).is_ascii_digit();
                        j += 1;
                        if !d2 {
                            return Ordering::Greater;
                        }
                    }
                    if at(b, j).is_ascii_digit() { Ordering::Less } else { diff.cmp(&0) }
                }
                r => r.cmp(&0),
            };
        }
        if c1 == 0 {
            return Ordering::Equal;
        }
        state = NEXT[state];
        c1 = at(a, i);
        c2 = at(b, j);
        i += 1;
        j += 1;
        state += class(c1);
    }
}

/// Answers "does this commit have `target` in its history?" for many tips,
/// remembering what earlier answers learned (`--contains`).
pub struct Containment<'r> {
    repo: &'r Repo,
    target: ObjectId,
    memo: HashMap<ObjectId, bool>,
    graph: Option<std::sync::Arc<gix::commitgraph::Graph>>,
    target_generation: Option<u32>,
}

impl<'r> Containment<'r> {
    pub fn new(repo: &'r Repo, target: ObjectId) -> Self {
        let graph = super::commit_graph::open(repo);
        let target_generation = graph.as_ref().and_then(|g| g.commit_by_id(target)).map(|c| c.generation());
        Self { repo, target, memo: HashMap::new(), graph, target_generation }
    }

    /// Commits whose commit-graph generation is not above the target's
    /// cannot descend from it.
    fn cannot_contain(&self, id: &ObjectId) -> bool {
        match (self.target_generation, &self.graph) {
            (Some(t), Some(g)) => g.commit_by_id(id).is_some_and(|c| c.generation() <= t),
            _ => false,
        }
    }

    /// Whether `tip` (a commit) is `target` or descends from it.
    pub fn contains(&mut self, tip: ObjectId) -> Result<bool, GitError> {
        let mut parents_of: HashMap<ObjectId, Vec<ObjectId>> = HashMap::new();
        let mut on_stack = HashSet::new();
        let mut stack = vec![(tip, false)];
        while let Some((id, expanded)) = stack.pop() {
            if self.memo.contains_key(&id) {
                continue;
            }
            if id == self.target {
                self.memo.insert(id, true);
                continue;
            }
            if expanded {
                let parents = parents_of.remove(&id).unwrap_or_default();
                let found = parents.iter().any(|p| self.memo.get(p) == Some(&true));
                self.memo.insert(id, found);
                on_stack.remove(&id);
                continue;
            }
            if self.cannot_contain(&id) {
                self.memo.insert(id, false);
                continue;
            }
            let parents = match objects::read(self.repo, id)? {
                Some(o) if o.kind == Kind::Commit => objects::parse_commit(&id, &o.data)
                    .parents
                    .iter()
                    .filter_map(|p| objects::parse_oid(self.repo, p.as_bytes()))
                    .collect(),
                _ => Vec::new(),
            };
            on_stack.insert(id);
            stack.push((id, true));
            for p in &parents {
                if !self.memo.contains_key(p) && !on_stack.contains(p) {
                    stack.push((*p, false));
                }
            }
            parents_of.insert(id, parents);
        }
        Ok(self.memo.get(&tip) == Some(&true))
    }
}

/// Which of `candidates` (commits) are reachable from `base` (`--merged`).
/// The walk stops as soon as every candidate was found.
pub fn reachable_from(
    repo: &Repo,
    base: ObjectId,
    candidates: &HashSet<ObjectId>,
) -> Result<HashSet<ObjectId>, GitError> {
    let mut found = HashSet::new();
    if candidates.is_empty() {
        return Ok(found);
    }
    let mut seen = HashSet::new();
    let mut stack = vec![base];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        if candidates.contains(&id) {
            found.insert(id);
            if found.len() == candidates.len() {
                break;
            }
        }
        if let Some(o) = objects::read(repo, id)?
            && o.kind == Kind::Commit
        {
            let c = objects::parse_commit(&id, &o.data);
            stack.extend(c.parents.iter().filter_map(|p| objects::parse_oid(repo, p.as_bytes())));
        }
    }
    Ok(found)
}

/// An annotated tag as upstream reads it: headers parsed, the message kept
/// whole (an appended signature included).
#[derive(Debug, Clone)]
pub struct AnnotatedTag {
    pub tag: objects::Tag,
    /// Everything after the headers, signature included; `None` when the
    /// object has no message part at all.
    pub message: Option<Vec<u8>>,
    /// The kind of the signature upstream detects in the message.
    pub signature: SignatureKind,
}

/// Reads an annotated tag object; `None` when `id` is missing or not a tag.
pub fn annotated_tag(repo: &Repo, id: ObjectId) -> Result<Option<AnnotatedTag>, GitError> {
    let Some(obj) = objects::read(repo, id)? else { return Ok(None) };
    if obj.kind != Kind::Tag {
        return Ok(None);
    }
    let tag = objects::parse_tag(&id, &obj.data);
    // The message starts after the first empty line.
    let message = if obj.data.starts_with(b"\n") {
        Some(obj.data[1..].to_vec())
    } else {
        obj.data.find(b"\n\n").map(|i| obj.data[i + 2..].to_vec())
    };
    let signature = message
        .as_deref()
        .and_then(|m| split_signature(m).0)
        .map(|sig| objects::signature_kind(sig.split(|b| *b == b'\n').next().unwrap_or_default()))
        .unwrap_or_default();
    Ok(Some(AnnotatedTag { tag, message, signature }))
}

/// Splits an appended signature off tag content as upstream does: at the
/// first `-----BEGIN` that is not at the very start. Returns the signature
/// (one trailing newline dropped) and the content before it.
pub fn split_signature(content: &[u8]) -> (Option<&[u8]>, &[u8]) {
    match content.find(b"-----BEGIN") {
        Some(i) if i > 0 => {
            let sig = &content[i..];
            (Some(sig.strip_suffix(b"\n").unwrap_or(sig)), &content[..i])
        }
        _ => (None, content),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_each_ref_patterns() {
        assert!(matches(b"refs/heads", b"refs/heads/main"));
        assert!(matches(b"refs/heads/", b"refs/heads/main"));
        assert!(matches(b"refs/heads/main", b"refs/heads/main"));
        assert!(!matches(b"refs/heads/ma", b"refs/heads/main"));
        assert!(matches(b"refs/heads/ma*", b"refs/heads/main"));
        assert!(!matches(b"refs/heads/*", b"refs/heads/feature/x"));
        assert!(matches(b"refs/heads/**", b"refs/heads/feature/x"));
        assert!(matches(b"refs/heads/feature", b"refs/heads/feature/x"));
        assert!(matches_tag(b"v1*", b"v1/x"));
        assert!(!matches_tag(b"v1", b"v1.0"));
    }

    #[test]
    fn version_order_matches_git() {
        // The expected order is what `git tag --sort=version:refname` prints.
        let mut names: Vec<&[u8]> =
            vec![b"v1.10", b"v1.2", b"v1.0", b"v1.0-rc1", b"v0.9", b"v1.01", b"v1.001", b"foo", b"v10", b"v9"];
        names.sort_by(|a, b| versioncmp(a, b));
        let expected: Vec<&[u8]> =
            vec![b"foo", b"v0.9", b"v1.001", b"v1.01", b"v1.0", b"v1.0-rc1", b"v1.2", b"v1.10", b"v9", b"v10"];
        assert_eq!(names, expected);
        assert_eq!(versioncmp(b"a", b"a"), Ordering::Equal);
        assert_eq!(versioncmp(b"item#99", b"item#100"), Ordering::Less);
        assert_eq!(versioncmp(b"alpha1", b"alpha001"), Ordering::Greater);
        assert_eq!(versioncmp(b"part1_f012", b"part1_f01"), Ordering::Greater);
        assert_eq!(versioncmp(b"foo.009", b"foo.0"), Ordering::Less);
    }

    #[test]
    fn signatures_split_at_the_first_armor() {
        let (sig, rest) = split_signature(b"msg\n-----BEGIN PGP SIGNATURE-----\nx\n-----END PGP SIGNATURE-----\n");
        assert_eq!(rest, b"msg\n");
        assert_eq!(sig, Some(&b"-----BEGIN PGP SIGNATURE-----\nx\n-----END PGP SIGNATURE-----"[..]));
        assert_eq!(split_signature(b"-----BEGIN at start"), (None, &b"-----BEGIN at start"[..]));
    }
}
