//! FetchSourceBranch: copies one branch of a repository on any node named
//! in `gitaly-servers` into a reference of the target repository. `result`
//! is false when the branch does not resolve or the fetch fails.

use super::internal;
use crate::error::{Error, Result};
use crate::git::{GitError, refs, remote};
use crate::service::Deps;
use crate::service::hook::transaction_hooks;
use crate::transaction::Transaction;
use cairn_proto::gitaly::commit_service_client::CommitServiceClient;
use cairn_proto::gitaly::{FetchSourceBranchRequest, FetchSourceBranchResponse, FindCommitRequest};
use tonic::metadata::MetadataMap;

pub(super) async fn handle(
    deps: &Deps,
    metadata: &MetadataMap,
    req: FetchSourceBranchRequest,
    transaction: Option<Transaction>,
    correlation_id: Option<&str>,
) -> Result<FetchSourceBranchResponse> {
    let target = deps.storages.repo(req.repository.as_ref())?;
    refs::validate_revision(&req.source_branch).map_err(Error::invalid_argument)?;
    refs::validate_revision(&req.target_ref).map_err(Error::invalid_argument)?;
    let format = deps.read_at(target.clone(), |repo, _| Ok(repo.object_format())).await?;
    let expected_old = if req.expected_target_old_oid.is_empty() {
        None
    } else {
        let oid = &req.expected_target_old_oid;
        if !format.is_oid(oid) {
            return Err(Error::invalid_argument(format!("invalid expected old object ID: {oid:?}")));
        }
        Some(oid.to_ascii_lowercase())
    };
    let source = req.source_repository.unwrap_or_default();
    let server =
        internal::server_for(metadata, &source.storage_name).map_err(|e| Error::internal_msg(e.to_string()))?;
    let branch = String::from_utf8_lossy(&req.source_branch).into_owned();

    let oid = if req.repository.as_ref().is_some_and(|t| internal::same_repository(deps, t, &source)) {
        // Same repository: resolve locally, nothing to fetch.
        match resolve_commit(deps, &target.path, &branch, correlation_id).await? {
            Some(oid) => oid,
            None => return Ok(FetchSourceBranchResponse { result: false }),
        }
    } else {
        let conn = internal::connect(&server).await.map_err(|e| Error::internal("dial source", e))?;
        let commit = CommitServiceClient::new(conn.channel())
            .find_commit(FindCommitRequest {
                repository: Some(source.clone()),
                revision: req.source_branch.clone(),
                ..Default::default()
            })
            .await
            .map_err(|s| Error::internal_msg(s.message().to_owned()))?
            .into_inner()
            .commit;
        let Some(oid) = commit.map(|c| c.id).filter(|id| !id.is_empty()) else {
            return Ok(FetchSourceBranchResponse { result: false });
        };
        let present = remote::has_commit(&deps.git, &target.path, &oid, correlation_id).await.map_err(Error::from)?;
        if !present {
            let remote = internal::internal_remote(deps, &server, &source)?;
            if let Err(e) = remote::fetch_object_internal(
                &deps.git,
                &target.path,
                &Default::default(),
                &remote,
                &oid,
                correlation_id,
            )
            .await
            {
                // Upstream's quirk: a failed fetch is `result: false`.
                tracing::warn!(oid = %oid, error = %crate::error::error_chain(&e), "git fetch failed");
                return Ok(FetchSourceBranchResponse { result: false });
            }
        }
        oid
    };
    let repository = req.repository.clone().unwrap_or_default();
    let hooks = transaction_hooks(deps, &repository, &target, transaction.as_ref(), metadata).await?;
    let update = refs::RefUpdate { name: req.target_ref.clone(), new: oid, old: expected_old };
    refs::update(&deps.git, &target.path, &[update], hooks.as_ref(), correlation_id).await.map_err(|e| match e {
        GitError::ReferenceUpdate(m) => Error::failed_precondition(format!("update reference: {m}")),
        other => Error::from(other),
    })?;
    deps.repos.forget(&target.path);
    Ok(FetchSourceBranchResponse { result: true })
}

async fn resolve_commit(
    deps: &Deps,
    repo: &std::path::Path,
    revision: &str,
    correlation_id: Option<&str>,
) -> Result<Option<String>> {
    use crate::git::{CommandError, GitCommand, Subcommand};
    let cmd = GitCommand::new(Subcommand::RevParse)
        .git_dir(repo)
        .flag("--verify")
        .flag("--quiet")
        .arg(format!("{revision}^{{commit}}"));
    match deps.git.run(cmd, correlation_id).await {
        Ok(out) => Ok(Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())),
        Err(CommandError::Failed { code: Some(1), .. }) => Ok(None),
        Err(e) => Err(Error::internal("resolve revision", e)),
    }
}
