//! Branch listings: FindLocalBranches (sorted and paginated), FindAllBranches
//! (local and remote, optionally only those merged into the default
//! branch), FindAllRemoteBranches and FindBranch. Listings go out in
//! batches of upstream's size, each branch with its target commit.

use super::{Page, REFS_PER_MESSAGE, check_patterns, target_commit};
use crate::error::{Error, Result};
use crate::git::objects::{self, Kind};
use crate::git::references::{self, Reference, Sort, SortKey};
use crate::service::Deps;
use cairn_proto::gitaly::find_local_branches_request::SortBy;
use cairn_proto::gitaly::{
    Branch, FindAllBranchesRequest, FindAllBranchesResponse, FindAllRemoteBranchesRequest,
    FindAllRemoteBranchesResponse, FindBranchRequest, FindBranchResponse, FindLocalBranchesRequest,
    FindLocalBranchesResponse, find_all_branches_response,
};
use std::collections::HashSet;
use tonic::codegen::BoxStream;

pub(super) fn find_local_branches(
    deps: &Deps,
    req: FindLocalBranchesRequest,
) -> Result<BoxStream<FindLocalBranchesResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    let sort = match SortBy::try_from(req.sort_by) {
        Ok(SortBy::Name) => Sort::BY_NAME,
        Ok(SortBy::UpdatedAsc) => Sort { key: SortKey::CommitterDate, descending: false },
        Ok(SortBy::UpdatedDesc) => Sort { key: SortKey::CommitterDate, descending: true },
        Err(_) => return Err(Error::internal_msg(format!("unsupported sort key {}", req.sort_by))),
    };
    let page = Page::from(req.pagination_params.as_ref());
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let mut refs = references::list(repo, &[b"refs/heads"])?;
        references::sort(repo, &mut refs, sort)?;
        let Some((refs, _)) = page.apply(refs) else {
            return Err(Error::internal_msg("finding refs: sending lines: could not find page token"));
        };
        for batch in refs.chunks(REFS_PER_MESSAGE) {
            let local_branches = batch
                .iter()
                .map(|r| Ok(Branch { name: r.name.clone(), target_commit: Some(target_commit(repo, r.target)?) }))
                .collect::<Result<_>>()?;
            sink.send(FindLocalBranchesResponse { local_branches })?;
        }
        Ok(())
    }))
}

pub(super) fn find_all_branches(
    deps: &Deps,
    req: FindAllBranchesRequest,
) -> Result<BoxStream<FindAllBranchesResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    let patterns: Vec<Vec<u8>> = if req.merged_only && !req.merged_branches.is_empty() {
        req.merged_branches.clone()
    } else {
        vec![b"refs/heads".to_vec(), b"refs/remotes".to_vec()]
    };
    check_patterns(patterns.iter().map(Vec::as_slice))?;
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let patterns: Vec<&[u8]> = patterns.iter().map(Vec::as_slice).collect();
        let mut refs = references::list(repo, &patterns)?;
        if req.merged_only {
            let base = references::default_branch(repo)
                .map_err(|e| Error::internal("default branch name", e))?
                .and_then(|name| references::resolve_name(repo, &name))
                .ok_or_else(|| Error::internal_msg("default branch name: no default branch"))?;
            refs = merged_into(repo, base, refs)?;
        }
        for batch in refs.chunks(REFS_PER_MESSAGE) {
            let branches = batch
                .iter()
                .map(|r| {
                    Ok(find_all_branches_response::Branch {
                        name: r.name.clone(),
                        target: Some(target_commit(repo, r.target)?),
                    })
                })
                .collect::<Result<_>>()?;
            sink.send(FindAllBranchesResponse { branches })?;
        }
        Ok(())
    }))
}

/// The references whose commits the base commit reaches (`--merged`).
fn merged_into(repo: &crate::git::Repo, base: objects::ObjectId, refs: Vec<Reference>) -> Result<Vec<Reference>> {
    let base = objects::peel_to(repo, base, Kind::Commit)?
        .ok_or_else(|| Error::internal_msg("default branch does not name a commit"))?;
    let mut tips = Vec::with_capacity(refs.len());
    for r in &refs {
        tips.push(objects::peel_to(repo, r.target, Kind::Commit)?);
    }
    let candidates: HashSet<_> = tips.iter().flatten().copied().collect();
    let reached = references::reachable_from(repo, base, &candidates)?;
    Ok(refs
        .into_iter()
        .zip(tips)
        .filter(|(_, tip)| tip.is_some_and(|t| reached.contains(&t)))
        .map(|(r, _)| r)
        .collect())
}

pub(super) fn find_all_remote_branches(
    deps: &Deps,
    req: FindAllRemoteBranchesRequest,
) -> Result<BoxStream<FindAllRemoteBranchesResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    if req.remote_name.is_empty() {
        return Err(Error::invalid_argument("empty RemoteName"));
    }
    let pattern = format!("refs/remotes/{}", req.remote_name).into_bytes();
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let refs = references::list(repo, &[&pattern])?;
        for batch in refs.chunks(REFS_PER_MESSAGE) {
            let branches = batch
                .iter()
                .map(|r| Ok(Branch { name: r.name.clone(), target_commit: Some(target_commit(repo, r.target)?) }))
                .collect::<Result<_>>()?;
            sink.send(FindAllRemoteBranchesResponse { branches })?;
        }
        Ok(())
    }))
}

pub(super) async fn find_branch(deps: &Deps, req: FindBranchRequest) -> Result<FindBranchResponse> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    if req.name.is_empty() {
        return Err(Error::invalid_argument("Branch name cannot be empty"));
    }
    deps.read_at(path, move |repo, _| {
        let full = [b"refs/heads/".as_slice(), &req.name].concat();
        // Upstream looks the name up as a for-each-ref pattern and takes the
        // first match: a different name there means the name is ambiguous.
        let Some(found) = references::list(repo, &[&full])?.into_iter().next() else {
            return Ok(FindBranchResponse { branch: None });
        };
        if found.name != full {
            return Err(Error::invalid_argument(format!(
                "target reference is ambiguous: conflicts with {:?}",
                String::from_utf8_lossy(&found.name)
            )));
        }
        let target_commit = target_commit(repo, found.target)?;
        Ok(FindBranchResponse { branch: Some(Branch { name: req.name, target_commit: Some(target_commit) }) })
    })
    .await
}
