//! ListLastCommitsForTree: for the entries `git ls-tree <revision> --
//! <path>` lists (trees first, then blobs, then submodules), the last
//! commit touching each, paged by offset and limit and sent ten per
//! message as upstream.

use super::last_commit_for_path::last_commit;
use super::{RevisionRules, internal, literal, valid_revision};
use crate::error::{Error, Result};
use crate::git::commit;
use crate::git::objects;
use crate::git::tree::{self, EntryKind, Pathspec};
use crate::service::{Deps, convert};
use cairn_proto::gitaly::list_last_commits_for_tree_response::CommitForTree;
use cairn_proto::gitaly::{ListLastCommitsForTreeRequest, ListLastCommitsForTreeResponse};
use tonic::codegen::BoxStream;

/// Entries per message (upstream's `maxNumStatBatchSize`).
const BATCH: usize = 10;

pub(super) fn handle(
    deps: &Deps,
    req: ListLastCommitsForTreeRequest,
) -> Result<BoxStream<ListLastCommitsForTreeResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    valid_revision(req.revision.as_bytes(), RevisionRules::default())?;
    if req.offset < 0 {
        return Err(Error::invalid_argument("offset negative"));
    }
    if req.limit < 0 {
        return Err(Error::invalid_argument("limit negative"));
    }
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let literal = literal(req.global_options.as_ref());
        let raw_path: &[u8] = if req.path.is_empty() || req.path == b"/" { b"." } else { &req.path };
        // ls-tree parses the path as a pathspec (magic allowed, wildcards
        // not) and normalises it.
        let spec_path = parse_ls_tree_path(raw_path, literal)?;
        let id = objects::resolve(repo, req.revision.as_bytes())
            .ok_or_else(|| Error::internal_msg(format!("ls-tree: not a valid object name {}", req.revision)))?;
        let root = tree::peel_to_tree(repo, id)?
            .ok_or_else(|| Error::internal_msg(format!("ls-tree: not a tree object {}", req.revision)))?;
        let mut entries = match spec_path {
            Some(p) => tree::ls_tree(repo, root, &p)?,
            None => Vec::new(),
        };
        entries.sort_by_key(|e| match e.kind() {
            EntryKind::Tree => 0,
            EntryKind::Blob => 1,
            EntryKind::Commit => 2,
        });
        let offset = usize::try_from(req.offset).unwrap_or(0);
        if offset >= entries.len() {
            return Ok(());
        }
        let end = (offset + usize::try_from(req.limit).unwrap_or(0)).min(entries.len());
        let mut batch = Vec::new();
        for e in &entries[offset..end] {
            let id =
                last_commit(repo, req.revision.as_bytes(), &e.path, literal).map_err(internal)?.ok_or_else(|| {
                    Error::internal_msg(format!("no commit touches {}", String::from_utf8_lossy(&e.path)))
                })?;
            let c = commit::read(repo, id)?.ok_or_else(|| Error::internal_msg(format!("parsing commit {id}")))?;
            batch.push(CommitForTree { commit: Some(convert::git_commit(&c)), path_bytes: e.path.clone() });
            if batch.len() == BATCH {
                sink.send(ListLastCommitsForTreeResponse { commits: std::mem::take(&mut batch) })?;
            }
        }
        if !batch.is_empty() {
            sink.send(ListLastCommitsForTreeResponse { commits: batch })?;
        }
        Ok(())
    }))
}

/// The path ls-tree would list, after pathspec magic and normalisation
/// (`None` when it names nothing); a path leaving the repository fails as
/// git does.
fn parse_ls_tree_path(path: &[u8], literal: bool) -> Result<Option<Vec<u8>>> {
    let spec = Pathspec::parse(&[path], literal, false).map_err(|e| Error::internal_msg(e.to_string()))?;
    // The single element's normalised pattern is what ls-tree matches.
    Ok(Some(spec.single_pattern().unwrap_or_default()))
}
