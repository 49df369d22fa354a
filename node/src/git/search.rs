//! Tree walks shared by the repository-wide reads, and the two searches
//! over a revision's tree: file names below a path (what `git ls-tree
//! --full-tree -r --name-only <rev> -- <path>` lists) and file contents
//! (what `git grep -I -i -n --null -B2 -A2 -e <query> <rev>` prints).

use super::objects::{self, Kind, ObjectId};
use super::tree::{self, Entry as TreeEntry};
use super::{GitError, Repo};

/// The entries of tree `id`, in the tree's (git's canonical) order.
pub fn read_tree(repo: &Repo, id: ObjectId) -> Result<Vec<TreeEntry>, GitError> {
    let obj = objects::read(repo, id)?.ok_or_else(|| GitError::Invalid(format!("tree {id} is missing")))?;
    if obj.kind != Kind::Tree {
        return Err(GitError::Invalid(format!("{id} is not a tree")));
    }
    tree::parse(&obj.data, repo.gix().object_hash())
}

/// Resolves a tree-ish revision (a commit, a tag of one, a tree, or
/// `rev:path` naming a tree) to its tree; `None` when it names no tree.
pub fn resolve_tree(repo: &Repo, revision: &[u8]) -> Result<Option<ObjectId>, GitError> {
    let Some(id) = objects::resolve(repo, revision) else { return Ok(None) };
    tree_of(repo, id)
}

/// The tree an object stands for: itself for a tree, the root tree of a
/// commit, the target's tree for a tag; `None` for blobs and missing objects.
pub fn tree_of(repo: &Repo, id: ObjectId) -> Result<Option<ObjectId>, GitError> {
    if let Some(tree) = objects::peel_to(repo, id, Kind::Tree)? {
        return Ok(Some(tree));
    }
    let Some(commit) = objects::peel_to(repo, id, Kind::Commit)? else { return Ok(None) };
    let Some(raw) = objects::read(repo, commit)? else { return Ok(None) };
    let parsed = objects::parse_commit(&commit, &raw.data);
    Ok(ObjectId::from_hex(parsed.tree.as_bytes()).ok())
}

/// The entry at `path` (slash-separated, no empty components) below tree
/// `root`; `None` when some component is missing or not a directory.
pub fn entry_at(repo: &Repo, root: ObjectId, path: &[u8]) -> Result<Option<TreeEntry>, GitError> {
    let mut tree = root;
    let mut components = path.split(|b| *b == b'/').peekable();
    while let Some(name) = components.next() {
        let Some(entry) = read_tree(repo, tree)?.into_iter().find(|e| e.name == name) else { return Ok(None) };
        if components.peek().is_none() {
            return Ok(Some(entry));
        }
        if !entry.is_tree() {
            return Ok(None);
        }
        tree = entry.id;
    }
    Ok(None)
}

/// Cleans a repository-relative path the way upstream joins it onto the
/// repository and cleans it (`a/./b//c/` is `a/b/c`, `a/../b` is `b`, a
/// leading `/` is relative). `None` when it climbs above the root; an empty
/// result is the root itself.
pub fn clean_path(path: &[u8]) -> Option<Vec<u8>> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop()?;
            }
            name => parts.push(name),
        }
    }
    Some(parts.join(&b'/'))
}

/// What [`walk_files`] calls for each file: full path and entry; `false` stops.
pub type Visit<'a> = dyn FnMut(&[u8], &TreeEntry) -> Result<bool, GitError> + 'a;

/// Depth-first walk of every non-tree entry below `root` in git's order,
/// entering only directories `enter` accepts (given the directory's path).
/// `visit` gets each entry's full path and returns `false` to stop.
pub fn walk_files(
    repo: &Repo,
    root: ObjectId,
    enter: &mut dyn FnMut(&[u8]) -> bool,
    visit: &mut Visit<'_>,
) -> Result<(), GitError> {
    // A stack of pending entry lists keeps the walk iterative (deep trees
    // cannot overflow the thread's stack) and lazy (one tree per level).
    let mut stack: Vec<(Vec<u8>, std::vec::IntoIter<TreeEntry>)> =
        vec![(Vec::new(), read_tree(repo, root)?.into_iter())];
    while let Some((dir, entries)) = stack.last_mut() {
        let Some(entry) = entries.next() else {
            stack.pop();
            continue;
        };
        let mut path = dir.clone();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&entry.name);
        if entry.is_tree() {
            if enter(&path) {
                let children = read_tree(repo, entry.id)?.into_iter();
                stack.push((path, children));
            }
        } else if !visit(&path, &entry)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Whether `path` is `spec` or lies below it (pathspecs match whole
/// components, without wildcards, as `git ls-tree` reads them).
fn within(path: &[u8], spec: &[u8]) -> bool {
    spec.is_empty() || path == spec || (path.starts_with(spec) && path.get(spec.len()) == Some(&b'/'))
}

/// The path of a pathspec after the magic `git ls-tree` accepts (`:/`,
/// `:(top)`, `:(literal)`; with `--full-tree` all paths are from the top
/// anyway). `None` for magic it refuses (`:!`, `:(glob)`, `:(icase)`, …),
/// where git fails and upstream finds nothing.
fn strip_pathspec_magic(query: &[u8]) -> Option<&[u8]> {
    let Some(rest) = query.strip_prefix(b":") else { return Some(query) };
    if let Some(long) = rest.strip_prefix(b"(") {
        let end = long.iter().position(|b| *b == b')')?;
        let supported = long[..end].split(|b| *b == b',').all(|m| m == b"top" || m == b"literal" || m.is_empty());
        return supported.then_some(&long[end + 1..]);
    }
    let mut rest = rest;
    while let Some((&c, tail)) = rest.split_first() {
        match c {
            b'/' => rest = tail,
            b'!' | b'^' => return None,
            b':' => return Some(tail),
            _ => break,
        }
    }
    Some(rest)
}

/// Paths of the files (blobs, symlinks and submodules) of `revision`'s tree
/// at or below `query`, kept when `filter` matches, skipping the first
/// `offset` kept paths and stopping after `limit` (0: no limit). A revision
/// that names no tree, or a query leaving the tree, finds nothing (upstream's
/// `git ls-tree` fails and its output is empty).
pub fn files_by_name(
    repo: &Repo,
    revision: &[u8],
    query: &[u8],
    filter: Option<&regex::bytes::Regex>,
    offset: usize,
    limit: usize,
) -> Result<Vec<Vec<u8>>, GitError> {
    let Some(tree) = resolve_tree(repo, revision)? else { return Ok(Vec::new()) };
    let Some(query) = strip_pathspec_magic(query) else { return Ok(Vec::new()) };
    let Some(spec) = clean_path(query) else { return Ok(Vec::new()) };
    // `dir/` only matches a directory.
    let dir_only = query.ends_with(b"/") && !spec.is_empty();
    let mut files = Vec::new();
    let mut index = 0usize;
    let mut enter = |dir: &[u8]| within(dir, &spec) || within(&spec, dir);
    let mut visit = |path: &[u8], _: &TreeEntry| {
        if !within(path, &spec) || (dir_only && path == spec.as_slice()) {
            return Ok(true);
        }
        if filter.is_some_and(|f| !f.is_match(path)) {
            return Ok(true);
        }
        index += 1;
        if index > offset {
            files.push(path.to_vec());
        }
        Ok(limit == 0 || files.len() < limit)
    };
    walk_files(repo, tree, &mut enter, &mut visit)?;
    Ok(files)
}

/// Lines of context around a content match (upstream passes `-B2 -A2`).
const CONTEXT: usize = 2;
/// git treats a blob as binary when its first 8000 bytes hold a NUL.
const BINARY_PROBE: usize = 8000;

/// What the content search reports, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum ContentEvent<'a> {
    /// Bytes of the current match block (whole output lines).
    Data(&'a [u8]),
    /// The current block is complete.
    EndOfMatch,
}

/// Turns a query into the regular expression git grep's
/// `--ignore-case --perl-regexp` would run. PCRE's leading option verbs
/// (`(*LIMIT_MATCH=1)`) only tune the engine and are dropped. `None` when
/// the pattern does not compile (upstream's git grep then prints nothing).
pub fn content_pattern(query: &str) -> Option<regex::bytes::Regex> {
    let mut q = query;
    while let Some(rest) = q.strip_prefix("(*") {
        let end = rest.find(')')?;
        if !rest[..end].bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'=') {
            break;
        }
        q = &rest[end + 1..];
    }
    regex::bytes::RegexBuilder::new(q).case_insensitive(true).multi_line(true).build().ok()
}

/// Searches the text files of `revision`'s tree for lines matching
/// `pattern`, producing git grep's output (`rev:path\0line\0text\n` per
/// line, two lines of context, blocks split where git prints `--`).
/// A revision that names no tree finds nothing.
pub fn search_content(
    repo: &Repo,
    revision: &[u8],
    pattern: &regex::bytes::Regex,
    emit: &mut dyn FnMut(ContentEvent<'_>) -> Result<(), GitError>,
) -> Result<(), GitError> {
    let Some(tree) = resolve_tree(repo, revision)? else { return Ok(()) };
    // git names files `<tree-ish>:<path>`, or `<tree-ish>/<path>` when the
    // tree-ish is already `rev:dir`.
    let mut name_prefix = revision.to_vec();
    name_prefix.push(if revision.contains(&b':') && !revision.ends_with(b":") { b'/' } else { b':' });
    let mut in_block = false;
    let mut enter = |_: &[u8]| true;
    let mut visit = |path: &[u8], entry: &TreeEntry| -> Result<bool, GitError> {
        if !entry.is_file() {
            return Ok(true);
        }
        let Some(blob) = objects::read(repo, entry.id)? else { return Ok(true) };
        let data = blob.data;
        if data[..data.len().min(BINARY_PROBE)].contains(&0) || !pattern.is_match(&data) {
            return Ok(true);
        }
        let mut name = name_prefix.clone();
        name.extend_from_slice(path);
        grep_blob(&data, pattern, &name, &mut in_block, emit)?;
        Ok(true)
    };
    walk_files(repo, tree, &mut enter, &mut visit)?;
    if in_block {
        emit(ContentEvent::EndOfMatch)?;
    }
    Ok(())
}

/// Emits the matching lines of one blob with their context. `in_block`
/// says whether a block is open (from an earlier file): git separates
/// every non-adjacent group, across files too, with `--`.
fn grep_blob(
    data: &[u8],
    pattern: &regex::bytes::Regex,
    name: &[u8],
    in_block: &mut bool,
    emit: &mut dyn FnMut(ContentEvent<'_>) -> Result<(), GitError>,
) -> Result<(), GitError> {
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let lines: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
    // The last line printed in this file (1-based), to merge context.
    let mut printed = 0usize;
    let mut line = Vec::new();
    let mut print = |n: usize, printed: &mut usize, in_block: &mut bool| -> Result<(), GitError> {
        if *in_block && (*printed == 0 || n > *printed + 1) {
            emit(ContentEvent::EndOfMatch)?;
        }
        *in_block = true;
        line.clear();
        line.extend_from_slice(name);
        line.push(0);
        line.extend_from_slice(n.to_string().as_bytes());
        line.push(0);
        line.extend_from_slice(lines[n - 1]);
        line.push(b'\n');
        emit(ContentEvent::Data(&line))?;
        *printed = n;
        Ok(())
    };
    let mut i = 0;
    while i < lines.len() {
        if !pattern.is_match(lines[i]) {
            i += 1;
            continue;
        }
        let n = i + 1;
        let from = n.saturating_sub(CONTEXT).max(printed + 1).max(1);
        for c in from..n {
            print(c, &mut printed, in_block)?;
        }
        print(n, &mut printed, in_block)?;
        // Trailing context, extended by further matches inside it.
        let mut last = (n + CONTEXT).min(lines.len());
        let mut j = n + 1;
        while j <= last {
            if pattern.is_match(lines[j - 1]) {
                last = (j + CONTEXT).min(lines.len());
            }
            print(j, &mut printed, in_block)?;
            j += 1;
        }
        i = last;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_like_upstream() {
        assert_eq!(clean_path(b"a/./b//c/"), Some(b"a/b/c".to_vec()));
        assert_eq!(clean_path(b"/a/../b"), Some(b"b".to_vec()));
        assert_eq!(clean_path(b"."), Some(Vec::new()));
        assert_eq!(clean_path(b""), Some(Vec::new()));
        assert_eq!(clean_path(b".."), None);
        assert_eq!(clean_path(b"a/../../etc"), None);
    }

    #[test]
    fn pathspec_magic_as_ls_tree_takes_it() {
        assert_eq!(strip_pathspec_magic(b"src"), Some(&b"src"[..]));
        assert_eq!(strip_pathspec_magic(b":/src"), Some(&b"src"[..]));
        assert_eq!(strip_pathspec_magic(b"::src"), Some(&b"src"[..]));
        assert_eq!(strip_pathspec_magic(b":src"), Some(&b"src"[..]));
        assert_eq!(strip_pathspec_magic(b":(top,literal)src"), Some(&b"src"[..]));
        assert_eq!(strip_pathspec_magic(b":!src"), None);
        assert_eq!(strip_pathspec_magic(b":(glob)*.rs"), None);
        assert_eq!(strip_pathspec_magic(b":(icase"), None);
    }

    #[test]
    fn pathspecs_match_whole_components() {
        assert!(within(b"dir/c.svg", b"dir"));
        assert!(within(b"dir", b"dir"));
        assert!(!within(b"dir/c.svg", b"di"));
        assert!(!within(b"dirx/c", b"dir"));
        assert!(within(b"anything", b""));
    }

    #[test]
    fn pcre_verbs_are_dropped_and_case_ignored() {
        let re = content_pattern("(*LIMIT_MATCH=1)a-6").expect("compiles");
        assert!(re.is_match(b"A-6"));
        assert!(content_pattern("a(").is_none());
    }

    fn grep(data: &str, query: &str) -> Vec<String> {
        let re = content_pattern(query).expect("compiles");
        let mut blocks = vec![String::new()];
        let mut in_block = false;
        grep_blob(data.as_bytes(), &re, b"r:f", &mut in_block, &mut |e| {
            match e {
                ContentEvent::Data(d) => blocks.last_mut().expect("block").push_str(&String::from_utf8_lossy(d)),
                ContentEvent::EndOfMatch => blocks.push(String::new()),
            }
            Ok(())
        })
        .expect("grep");
        blocks.into_iter().filter(|b| !b.is_empty()).map(|b| b.replace('\0', "|")).collect()
    }

    #[test]
    fn context_merges_and_splits_like_git_grep() {
        let text = "l1\nl2\nl3\nl4\nl5\nl6\nl7\nl8\nl9\nl10\n";
        assert_eq!(grep(text, "l6"), vec!["r:f|4|l4\nr:f|5|l5\nr:f|6|l6\nr:f|7|l7\nr:f|8|l8\n"]);
        // Groups closer than the context merge; farther ones split.
        assert_eq!(grep(text, "^l(1|5)$").len(), 1);
        assert_eq!(
            grep(text, "^l(1|9)$"),
            vec!["r:f|1|l1\nr:f|2|l2\nr:f|3|l3\n", "r:f|7|l7\nr:f|8|l8\nr:f|9|l9\nr:f|10|l10\n"]
        );
        assert_eq!(grep("x", "X"), vec!["r:f|1|x\n"]);
    }
}
