//! GetTreeEntries: the entries of a tree at a revision and path, directly
//! or recursively (`git ls-tree -r -t` order), sorted as asked, paginated
//! by a continuation token, with flat paths for directories that hold a
//! single directory. Errors carry `GetTreeEntriesError` details with
//! upstream's (18.x) codes.

use super::{RevisionRules, valid_revision};
use crate::error::{Error, Result};
use crate::git::objects::{self, Kind, ObjectId};
use crate::git::tree::{self, EntryKind, PathEntry};
use crate::git::{GitError, Repo};
use crate::service::Deps;
use crate::service::stream::Chunker;
use base64::Engine as _;
use cairn_proto::gitaly::get_tree_entries_request::SortBy;
use cairn_proto::gitaly::tree_entry::EntryType;
use cairn_proto::gitaly::{
    GetTreeEntriesError, GetTreeEntriesRequest, GetTreeEntriesResponse, PaginationCursor, PathError,
    ResolveRevisionError, TreeEntry, get_tree_entries_error, path_error,
};
use tonic::codegen::BoxStream;

/// Levels a flat path may skip (upstream's `defaultFlatTreeRecursion`).
const FLAT_PATH_DEPTH: usize = 10;

pub(super) fn handle(deps: &Deps, req: GetTreeEntriesRequest) -> Result<BoxStream<GetTreeEntriesResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    valid_revision(&req.revision, RevisionRules::default())?;
    if req.path.is_empty() {
        return Err(Error::invalid_argument("empty path").with_detail(&GetTreeEntriesError {
            error: Some(get_tree_entries_error::Error::Path(PathError {
                path: Vec::new(),
                error_type: path_error::ErrorType::EmptyPath.into(),
            })),
        }));
    }
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let path = if req.path == b"." { Vec::new() } else { req.path.clone() };
        let revision = String::from_utf8_lossy(&req.revision).into_owned();
        let token = req.pagination_params.as_ref().map(|p| decode_token(&p.page_token));
        let pinned = token
            .as_ref()
            .and_then(|t| t.tree)
            .filter(|t| matches!(objects::header(repo, *t), Ok(Some((Kind::Tree, _)))));
        let tree_id = match pinned {
            Some(t) => t,
            None => resolve_tree(repo, &req, &path, &revision)?,
        };
        let make_entry = |e: PathEntry| TreeEntry {
            oid: e.id.to_string(),
            path: e.path,
            r#type: entry_type(tree::kind_of(e.mode)).into(),
            mode: i32::try_from(e.mode).unwrap_or_default(),
            commit_oid: revision.clone(),
            flat_path: Vec::new(),
        };
        let sort = req.sort();
        // The first message always carries the cursor (empty when there is
        // no further page), as upstream's sender does.
        let mut cursor = Some(String::new());
        if req.recursive && sort == SortBy::Default && req.pagination_params.is_none() {
            // The common large case streams without holding the listing.
            let mut batch = Chunker::new(sink, |entries| GetTreeEntriesResponse {
                entries,
                pagination_cursor: cursor.take().map(|next_cursor| PaginationCursor { next_cursor }),
            });
            tree::walk_recursive(repo, tree_id, &path, &mut |e| -> Result<bool> {
                batch.push(make_entry(e))?;
                Ok(true)
            })?;
            return batch.flush();
        }
        let mut entries: Vec<TreeEntry> = Vec::new();
        if req.recursive {
            tree::walk_recursive(repo, tree_id, &path, &mut |e| -> Result<bool> {
                entries.push(make_entry(e));
                Ok(true)
            })?;
        } else {
            let listed = tree::read(repo, tree_id)?.ok_or_else(|| revision_missing(&req.revision))?;
            entries.extend(
                listed
                    .into_iter()
                    .map(|e| make_entry(PathEntry { path: tree::join(&path, &e.name), mode: e.mode, id: e.id })),
            );
        }
        sort_entries(&mut entries, sort);
        if let Some(params) = &req.pagination_params {
            let (start, by_oid) = match &token {
                Some(t) => (t.start.clone(), t.by_oid),
                None => (String::new(), false),
            };
            let index = if start.is_empty() {
                0
            } else {
                let key =
                    |e: &TreeEntry| if by_oid { e.oid.clone() } else { String::from_utf8_lossy(&e.path).into_owned() };
                entries
                    .iter()
                    .position(|e| key(e) == start)
                    .map(|i| i + 1)
                    .ok_or_else(|| Error::internal_msg(format!("could not find starting OID: {start}")))?
            };
            let limit = params.limit;
            if limit == 0 {
                entries.clear();
            } else if limit < 0 || index + limit as usize >= entries.len() {
                entries.drain(..index);
            } else {
                entries.truncate(index + limit as usize);
                entries.drain(..index);
                let last = entries.last().expect("a page of at least one entry");
                cursor = Some(encode_token(&last.path, tree_id));
            }
        }
        if !req.recursive && !req.skip_flat_paths {
            for e in &mut entries {
                e.flat_path = e.path.clone();
                if e.r#type == i32::from(EntryType::Tree) {
                    let id = ObjectId::from_hex(e.oid.as_bytes()).map_err(|err| GitError::gix("parse tree id", err))?;
                    e.flat_path = tree::flat_path(repo, &e.path, id, FLAT_PATH_DEPTH)?;
                }
            }
        }
        let mut batch = Chunker::new(sink, |entries| GetTreeEntriesResponse {
            entries,
            pagination_cursor: cursor.take().map(|next_cursor| PaginationCursor { next_cursor }),
        });
        for e in entries {
            batch.push(e)?;
        }
        batch.flush()
    }))
}

fn entry_type(kind: EntryKind) -> EntryType {
    match kind {
        EntryKind::Tree => EntryType::Tree,
        EntryKind::Blob => EntryType::Blob,
        EntryKind::Commit => EntryType::Commit,
    }
}

/// Trees first, then blobs, then submodules (upstream's ls-tree type
/// order), or plain byte order of the paths; both stable.
fn sort_entries(entries: &mut [TreeEntry], sort: SortBy) {
    match sort {
        SortBy::Default => {}
        SortBy::TreesFirst => entries.sort_by_key(|e| match EntryType::try_from(e.r#type) {
            Ok(EntryType::Tree) => 0,
            Ok(EntryType::Blob) => 1,
            _ => 2,
        }),
        SortBy::Filesystem => entries.sort_by(|a, b| a.path.cmp(&b.path)),
    }
}

fn resolve_error(req: &GetTreeEntriesRequest, path: &[u8], message: &'static str, code_not_found: bool) -> Error {
    let e = if code_not_found { Error::not_found(message) } else { Error::invalid_argument(message) };
    e.with_detail(&GetTreeEntriesError {
        error: Some(get_tree_entries_error::Error::ResolveTree(ResolveRevisionError {
            revision: req.revision.clone(),
        })),
    })
    .with_metadata("path", String::from_utf8_lossy(path))
    .with_metadata("revision", String::from_utf8_lossy(&req.revision))
}

fn revision_missing(revision: &[u8]) -> Error {
    Error::not_found("revision doesn't exist").with_detail(&GetTreeEntriesError {
        error: Some(get_tree_entries_error::Error::ResolveTree(ResolveRevisionError { revision: revision.to_vec() })),
    })
}

/// The tree `<revision>:<path>` names, with upstream's errors: names that
/// do not resolve are INVALID_ARGUMENT (NOT_FOUND when recursive), a path
/// naming a blob is "not treeish", and a submodule whose commit is not in
/// the repository "doesn't exist".
fn resolve_tree(repo: &Repo, req: &GetTreeEntriesRequest, path: &[u8], _revision: &str) -> Result<ObjectId> {
    let unresolved = || resolve_error(req, path, "invalid revision or path", req.recursive);
    let root = match objects::resolve(repo, &req.revision) {
        Some(id) => tree::peel_to_tree(repo, id)?,
        None => None,
    };
    let root = root.ok_or_else(unresolved)?;
    let components = tree::path_components(path).ok_or_else(unresolved)?;
    if components.is_empty() {
        return Ok(root);
    }
    let entry = tree::lookup(repo, root, &components)?.ok_or_else(unresolved)?;
    match objects::header(repo, entry.id)? {
        None => Err(resolve_error(req, path, "revision doesn't exist", true)),
        Some((Kind::Tree, _)) => Ok(entry.id),
        Some(_) => Err(resolve_error(req, path, "path not treeish", false)),
    }
}

/// A decoded page token: where to continue, and the tree the first page
/// listed (so later pages list the same tree even if the revision moved).
struct Token {
    start: String,
    /// Legacy tokens are the object id of the last entry.
    by_oid: bool,
    tree: Option<ObjectId>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TokenJson {
    file_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    root_oid: Option<String>,
}

fn decode_token(token: &str) -> Token {
    let parsed = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()
        .and_then(|raw| serde_json::from_slice::<TokenJson>(&raw).ok());
    match parsed {
        Some(t) => Token {
            start: t.file_name,
            by_oid: false,
            tree: t.root_oid.and_then(|h| ObjectId::from_hex(h.as_bytes()).ok()),
        },
        None => Token { start: token.to_owned(), by_oid: true, tree: None },
    }
}

fn encode_token(path: &[u8], tree: ObjectId) -> String {
    let json = TokenJson { file_name: String::from_utf8_lossy(path).into_owned(), root_oid: Some(tree.to_string()) };
    let raw = serde_json::to_vec(&json).expect("a string-only JSON object serialises");
    base64::engine::general_purpose::STANDARD.encode(raw)
}
