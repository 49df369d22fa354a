//! CountCommits (`git rev-list --count`) and CountDivergingCommits
//! (`git rev-list --count --left-right from...to`), walked in-process.
//! CountCommits answers 0 where git would fail, as upstream ignores
//! rev-list errors.

use super::{RevisionRules, internal, literal, seconds, valid_revision};
use crate::error::{Error, Result};
use crate::git::tree::Pathspec;
use crate::git::walk;
use crate::service::Deps;
use cairn_proto::gitaly::{
    CountCommitsRequest, CountCommitsResponse, CountDivergingCommitsRequest, CountDivergingCommitsResponse,
};

pub(super) async fn count_commits(deps: &Deps, req: CountCommitsRequest) -> Result<CountCommitsResponse> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    valid_revision(&req.revision, RevisionRules { allow_empty: true, ..Default::default() })?;
    if req.revision.is_empty() && !req.all {
        return Err(Error::invalid_argument("empty Revision and false All"));
    }
    deps.read_at(path, move |repo, _| {
        let count = || -> std::result::Result<usize, crate::git::GitError> {
            let args: Vec<&[u8]> = if req.all { vec![b"--all"] } else { vec![req.revision.as_slice()] };
            let tips = walk::resolve_args(repo, &args)?;
            let paths = if req.path.is_empty() {
                None
            } else {
                let spec = Pathspec::parse(&[req.path.as_slice()], literal(req.global_options.as_ref()), true)
                    .map_err(|e| crate::git::GitError::Invalid(e.to_string()))?;
                Some(spec)
            };
            let options = walk::Options {
                after: seconds(req.after.as_ref()),
                before: seconds(req.before.as_ref()),
                max_count: usize::try_from(req.max_count).ok().filter(|n| *n > 0),
                first_parent: req.first_parent,
                paths,
                ..Default::default()
            };
            walk::count(walk::Walk::new(repo, tips, options))
        };
        let count = count().unwrap_or_else(|e| {
            tracing::info!(error = %crate::error::error_chain(&e), "ignoring rev-list error");
            0
        });
        Ok(CountCommitsResponse { count: i32::try_from(count).unwrap_or(i32::MAX) })
    })
    .await
}

pub(super) async fn count_diverging(
    deps: &Deps,
    req: CountDivergingCommitsRequest,
) -> Result<CountDivergingCommitsResponse> {
    if req.from.is_empty() || req.to.is_empty() {
        return Err(Error::invalid_argument("from and to are both required"));
    }
    let path = deps.storages.repo(req.repository.as_ref())?;
    deps.read_at(path, move |repo, _| {
        let mut range = req.from.clone();
        range.extend_from_slice(b"...");
        range.extend_from_slice(&req.to);
        let tips = walk::resolve_args(repo, &[range]).map_err(internal)?;
        let options =
            walk::Options { max_count: usize::try_from(req.max_count).ok().filter(|n| *n > 0), ..Default::default() };
        let mut walk = walk::Walk::new(repo, tips, options);
        let (mut left, mut right) = (0i32, 0i32);
        while let Some((_, is_left)) = walk.next_with_side().map_err(internal)? {
            if is_left {
                left += 1;
            } else {
                right += 1;
            }
        }
        Ok(CountDivergingCommitsResponse { left_count: left, right_count: right })
    })
    .await
}
