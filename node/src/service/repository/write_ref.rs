//! WriteRef: points a reference (or HEAD) at a revision, optionally only if
//! it currently has an expected value, in one update-ref transaction.
//! Inside a router's transaction git's reference-transaction hook votes on
//! the change (symbolic-ref runs it too, for HEAD).

use crate::error::{Error, Result};
use crate::git::{GitError, refs, repo};
use crate::service::hook::transaction_hooks;
use crate::service::{Deps, blocking};
use crate::transaction::Transaction;
use cairn_proto::gitaly::{WriteRefRequest, WriteRefResponse};
use tonic::metadata::MetadataMap;

pub(super) async fn handle(
    deps: &Deps,
    metadata: &MetadataMap,
    req: WriteRefRequest,
    transaction: Option<Transaction>,
    correlation_id: Option<&str>,
) -> Result<WriteRefResponse> {
    let repo_path = deps.storages.repo(req.repository.as_ref())?;
    validate(&req)?;
    let repository = req.repository.clone().unwrap_or_default();
    let hooks = transaction_hooks(deps, &repository, &repo_path, transaction.as_ref(), metadata).await?;
    let path = repo_path.path;

    if req.r#ref == b"HEAD" {
        let target = String::from_utf8(req.revision)
            .ok()
            .filter(|t| t.starts_with("refs/") && refs::valid_ref_name(t.as_bytes()))
            .ok_or_else(|| Error::invalid_argument("invalid revision: HEAD must point to a full reference name"))?;
        refs::set_head(&deps.git, &path, &target, hooks.as_ref(), correlation_id)
            .await
            .map_err(|e| Error::internal_msg(format!("setting default branch: {}", crate::error::error_chain(&e))))?;
        return Ok(WriteRefResponse {});
    }

    let repos = deps.repos.clone();
    let lookup_path = path.clone();
    let (new, old) = blocking(move || {
        let r = repos.open(&lookup_path)?;
        let format = r.object_format();
        let resolve = |rev: &[u8], what: &str| -> Result<String> {
            if format.is_zero_oid(rev) {
                return Ok(format.zero_oid());
            }
            repo::resolve_revision(&r, rev)
                .map(|id| id.to_string())
                .ok_or_else(|| Error::internal_msg(format!("resolving {what} revision: revision not found")))
        };
        let new = resolve(&req.revision, "new")?;
        let old = if req.old_revision.is_empty() { None } else { Some(resolve(&req.old_revision, "old")?) };
        Ok((new, old))
    })
    .await?;
    let update = refs::RefUpdate { name: req.r#ref, new, old };
    refs::update(&deps.git, &path, &[update], hooks.as_ref(), correlation_id).await.map_err(|e| match e {
        GitError::ReferenceLocked(_) => Error::from(e),
        other => {
            Error::internal_msg(format!("error when running update-ref command: {}", crate::error::error_chain(&other)))
        }
    })?;
    Ok(WriteRefResponse {})
}

fn validate(req: &WriteRefRequest) -> Result<()> {
    refs::validate_revision(&req.r#ref).map_err(|e| Error::invalid_argument(format!("invalid ref: {e}")))?;
    refs::validate_revision(&req.revision).map_err(|e| Error::invalid_argument(format!("invalid revision: {e}")))?;
    if !req.old_revision.is_empty() {
        refs::validate_revision(&req.old_revision)
            .map_err(|e| Error::invalid_argument(format!("invalid OldRevision: {e}")))?;
    }
    if req.r#ref != b"HEAD" && !req.r#ref.starts_with(b"refs/") {
        return Err(Error::invalid_argument("ref has to be a full reference"));
    }
    if req.r#ref != b"HEAD" && !refs::valid_ref_name(&req.r#ref) {
        return Err(Error::invalid_argument("invalid ref: not a valid reference name"));
    }
    Ok(())
}
