//! LastCommitForPath: the newest commit touching a path
//! (`git log --max-count=1 <revision> -- <path>`, with git's history
//! simplification), walked in-process.

use super::{RevisionRules, internal, literal, valid_revision};
use crate::error::{Error, Result};
use crate::git::tree::Pathspec;
use crate::git::{GitError, Repo, commit, walk};
use crate::service::{Deps, convert};
use cairn_proto::gitaly::{LastCommitForPathRequest, LastCommitForPathResponse};

pub(super) async fn handle(deps: &Deps, req: LastCommitForPathRequest) -> Result<LastCommitForPathResponse> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    valid_revision(&req.revision, RevisionRules::default())?;
    check_local_path(&req.path)?;
    deps.read_at(path, move |repo, _| {
        let path: &[u8] = if req.path.is_empty() || req.path == b"/" { b"." } else { &req.path };
        let literal = req.literal_pathspec || literal(req.global_options.as_ref());
        let id = last_commit(repo, &req.revision, path, literal).map_err(internal)?;
        let commit = match id {
            Some(id) => commit::read(repo, id)?.map(|c| convert::git_commit(&c)),
            None => None,
        };
        Ok(LastCommitForPathResponse { commit })
    })
    .await
}

/// Upstream's path checks: `""` and `/` mean the root; otherwise the path
/// must be relative and stay inside the repository.
fn check_local_path(path: &[u8]) -> Result<()> {
    if path.is_empty() || path == b"/" {
        return Ok(());
    }
    if path.starts_with(b"/") {
        return Err(
            Error::invalid_argument("path is an absolute path").with_metadata("path", String::from_utf8_lossy(path))
        );
    }
    let mut depth = 0i32;
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => depth -= 1,
            _ => depth += 1,
        }
        if depth < 0 {
            return Err(
                Error::invalid_argument("path escapes repository").with_metadata("path", String::from_utf8_lossy(path))
            );
        }
    }
    Ok(())
}

/// The first commit `git log -1 <revision> -- <path>` shows.
pub(super) fn last_commit(
    repo: &Repo,
    revision: &[u8],
    path: &[u8],
    literal: bool,
) -> std::result::Result<Option<crate::git::objects::ObjectId>, GitError> {
    let tips = walk::resolve_args(repo, &[revision])?;
    let spec = Pathspec::parse(&[path], literal, true).map_err(|e| GitError::Invalid(e.to_string()))?;
    let options = walk::Options { paths: Some(spec), max_count: Some(1), ..Default::default() };
    walk::Walk::new(repo, tips, options).next_id()
}
