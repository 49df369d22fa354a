//! Applying a BFG (or git-filter-repo) object map after the client rewrote
//! history elsewhere and force-pushed it: GitLab's internal references
//! (keep-around, merge requests, pipelines, ...) that still point at a
//! rewritten commit, or at a child of one, would keep the removed data
//! alive, so they are deleted, all in one reference transaction.

use super::refs::{self, RefUpdate};
use super::wire::Hooks;
use super::{CommandFactory, GitCommand, GitError, ObjectFormat, Repo, Subcommand};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Reference prefixes GitLab uses internally (upstream's
/// `InternalRefPrefixes`).
pub const INTERNAL_REF_PREFIXES: &[&str] = &[
    "refs/environments/",
    "refs/keep-around/",
    "refs/merge-requests/",
    "refs/pipelines/",
    "refs/remotes/",
    "refs/tmp/",
];

/// The header line git-filter-repo writes atop its commit map.
const FILTER_REPO_HEADER: &str = "old                                      new";

/// One parsed line of an object map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    pub old: String,
    pub new: String,
    /// Whether internal references pointed at (or at a child of) `old`.
    pub internal: bool,
}

/// An object map line that does not parse; `line` counts from 0, header
/// included, as upstream counts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidObjectMap {
    #[error("object map invalid at line {0}")]
    Malformed(usize),
    #[error("invalid old object ID at line {0}")]
    Old(usize),
    #[error("invalid new object ID at line {0}")]
    New(usize),
}

/// Parses an object map: `<old> <new>` lines, the filter-repo header
/// skipped, identical pairs dropped.
pub fn parse_object_map(text: &[u8], format: ObjectFormat) -> Result<Vec<(String, String)>, InvalidObjectMap> {
    let mut out = Vec::new();
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    if body.is_empty() {
        return Ok(out);
    }
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(line);
        if is_header(&line) {
            continue;
        }
        let (old, new) = line.split_once(' ').ok_or(InvalidObjectMap::Malformed(i))?;
        if !format.is_oid(old) {
            return Err(InvalidObjectMap::Old(i));
        }
        if !format.is_oid(new) {
            return Err(InvalidObjectMap::New(i));
        }
        if old != new {
            out.push((old.to_owned(), new.to_owned()));
        }
    }
    Ok(out)
}

/// filter-repo's header; SHA-256 maps have it wider, so any `old <spaces>
/// new` line counts.
fn is_header(line: &str) -> bool {
    line == FILTER_REPO_HEADER
        || line
            .strip_prefix("old")
            .and_then(|r| r.trim_start_matches(' ').strip_prefix("new"))
            .is_some_and(str::is_empty)
}

/// Internal references by each object they point at and by each parent of
/// the commit they point at.
async fn internal_refs(
    factory: &CommandFactory,
    repo: &Path,
    correlation_id: Option<&str>,
) -> Result<HashMap<String, Vec<String>>, GitError> {
    let mut cmd =
        GitCommand::new(Subcommand::ForEachRef).git_dir(repo).flag("--format=%(objectname) %(parent) %(refname)");
    for p in INTERNAL_REF_PREFIXES {
        cmd = cmd.arg(*p);
    }
    let out = factory.run(cmd, correlation_id).await?;
    let mut table: HashMap<String, Vec<String>> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some((name, objects)) = fields.split_last() else { continue };
        for oid in objects {
            table.entry((*oid).to_owned()).or_default().push((*name).to_owned());
        }
    }
    Ok(table)
}

/// Deletes the internal references the map's old objects keep alive (one
/// `update-ref` transaction, voted on through `hooks` in a router's
/// transaction) and returns the map's entries in order.
pub async fn apply_object_map(
    factory: &CommandFactory,
    repo: &Path,
    format: ObjectFormat,
    map: &[(String, String)],
    hooks: Option<&Hooks>,
    correlation_id: Option<&str>,
) -> Result<Vec<MapEntry>, GitError> {
    let table = internal_refs(factory, repo, correlation_id).await?;
    let mut deleted = HashSet::new();
    let mut updates = Vec::new();
    let mut entries = Vec::with_capacity(map.len());
    for (old, new) in map {
        let refs = table.get(old);
        for name in refs.into_iter().flatten() {
            if deleted.insert(name.clone()) {
                updates.push(RefUpdate { name: name.clone().into_bytes(), new: format.zero_oid(), old: None });
            }
        }
        entries.push(MapEntry { old: old.clone(), new: new.clone(), internal: refs.is_some() });
    }
    if !updates.is_empty() {
        refs::update(factory, repo, &updates, hooks, correlation_id).await?;
    }
    Ok(entries)
}

/// The type of an object as the entries report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Commit,
    Tree,
    Blob,
    Tag,
}

/// The type of the object `hex` names; `None` when it is missing or not an
/// object id.
pub fn object_kind(repo: &Repo, hex: &str) -> Option<ObjectKind> {
    let id = gix::ObjectId::from_hex(hex.as_bytes()).ok()?;
    let header = repo.gix().try_find_header(id).ok()??;
    Some(match header.kind() {
        gix::object::Kind::Commit => ObjectKind::Commit,
        gix::object::Kind::Tree => ObjectKind::Tree,
        gix::object::Kind::Blob => ObjectKind::Blob,
        gix::object::Kind::Tag => ObjectKind::Tag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_maps_parse_as_upstream() {
        let (a, b, z) = ("a".repeat(40), "b".repeat(40), "0".repeat(40));
        let text = format!("{FILTER_REPO_HEADER}\n{a} {z}\n{b} {b}\n{z} {a}\n");
        let map = parse_object_map(text.as_bytes(), ObjectFormat::Sha1).expect("parses");
        assert_eq!(map, vec![(a.clone(), z.clone()), (z.clone(), a.clone())]);
        assert_eq!(parse_object_map(b"invalid-data here", ObjectFormat::Sha1), Err(InvalidObjectMap::Old(0)));
        assert_eq!(parse_object_map(b"nospace", ObjectFormat::Sha1), Err(InvalidObjectMap::Malformed(0)));
        let bad_new = format!("{a} {a}\n{a} xyz\n");
        assert_eq!(parse_object_map(bad_new.as_bytes(), ObjectFormat::Sha1), Err(InvalidObjectMap::New(1)));
        let sha256 = format!("old{}new\n{} {}\n", " ".repeat(62), "c".repeat(64), "0".repeat(64));
        assert_eq!(parse_object_map(sha256.as_bytes(), ObjectFormat::Sha256).expect("parses").len(), 1);
        assert_eq!(
            parse_object_map(format!("{a} {z}").as_bytes(), ObjectFormat::Sha256),
            Err(InvalidObjectMap::Old(0))
        );
    }
}
