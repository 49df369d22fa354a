//! CreateFork: a bare clone of a repository on any node named in
//! `gitaly-servers` (this one included), made through gitaly-ssh in a
//! temporary directory and renamed into place.

use super::internal;
use crate::error::{Error, Result};
use crate::git::{lifecycle, remote};
use crate::service::Deps;
use cairn_proto::gitaly::{CreateForkRequest, CreateForkResponse, Repository};
use std::path::PathBuf;
use tonic::metadata::MetadataMap;

pub(super) async fn handle(
    deps: &Deps,
    metadata: &MetadataMap,
    req: CreateForkRequest,
    voting: Option<crate::transaction::Voting>,
    correlation_id: Option<&str>,
) -> Result<CreateForkResponse> {
    // The source may live on another node: only its address is checked.
    let source = validate_source(req.source_repository.as_ref())?;
    let target = deps.storages.repo_for_create(req.repository.as_ref())?;
    let tmp = deps.storages.root(&target.storage)?.tmp_dir();
    let revision = req.revision;
    let seed = |staged: PathBuf| async move {
        let branch = if revision.is_empty() {
            None
        } else {
            let name = String::from_utf8(revision.clone())
                .map_err(|_| Error::invalid_argument("reference is not a branch"))?;
            let branch = name.strip_prefix("refs/heads/").ok_or_else(|| {
                Error::invalid_argument("reference is not a branch").with_metadata("reference", name.clone())
            })?;
            if branch.is_empty() {
                return Err(Error::invalid_argument("branch name is empty"));
            }
            Some(branch.to_owned())
        };
        let server = internal::server_for(metadata, &source.storage_name)
            .map_err(|e| Error::internal_msg(format!("extracting Gitaly servers: {e}")))?;
        let remote = internal::internal_remote(deps, &server, source)?;
        remote::clone_internal(&deps.git, &staged, &remote, branch.as_deref(), correlation_id)
            .await
            .map_err(|e| Error::internal_msg(format!("fetching source repo: {}", crate::error::error_chain(&e))))?;
        let head = remote::head_target(&deps.git, &staged, correlation_id).await.map_err(Error::from)?;
        if let Some(branch) = &branch
            && head != format!("refs/heads/{branch}")
        {
            return Err(Error::internal_msg("HEAD points to unexpected reference")
                .with_metadata("expected_target", format!("refs/heads/{branch}"))
                .with_metadata("actual_target", head));
        }
        remote::remove_origin(&deps.git, &staged, correlation_id).await.map_err(Error::from)
    };
    lifecycle::create_seeded(&target.path, &tmp, seed, super::creation_vote(voting))
        .await
        .map_err(|e: Error| prefix("creating fork", e))?;
    deps.repos.forget(&target.path);
    Ok(CreateForkResponse {})
}

/// Upstream's validation of a repository that may be remote.
pub(super) fn validate_source(source: Option<&Repository>) -> Result<&Repository> {
    let invalid = |m: &str| Err(Error::invalid_argument(format!("validating source repository: {m}")));
    match source {
        None => invalid("repository not set"),
        Some(r) if r.storage_name.is_empty() && r.relative_path.is_empty() => invalid("repository not set"),
        Some(r) if r.storage_name.is_empty() => invalid("storage name not set"),
        Some(r) if r.relative_path.is_empty() => invalid("repository path not set"),
        Some(r) => Ok(r),
    }
}

/// Puts `step` before the message of an error, keeping its code.
pub(super) fn prefix(step: &str, e: Error) -> Error {
    Error::new(e.code(), format!("{step}: {e}"))
}
