//! DeleteRefs: deletes the listed references, or every reference outside
//! the given prefixes, in one `git update-ref` transaction that votes in a
//! router's transaction.

use crate::error::{Error, Result};
use crate::git::refs::{self, Failure};
use crate::git::{GitError, repo};
use crate::service::Deps;
use crate::service::hook::transaction_hooks;
use crate::transaction::Transaction;
use cairn_proto::gitaly::{
    DeleteRefsError, DeleteRefsRequest, DeleteRefsResponse, InvalidRefFormatError, ReferencesLockedError,
    delete_refs_error,
};
use tonic::metadata::MetadataMap;

pub(super) async fn handle(
    deps: &Deps,
    metadata: &MetadataMap,
    req: DeleteRefsRequest,
    transaction: Option<Transaction>,
    correlation_id: Option<&str>,
) -> Result<DeleteRefsResponse> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    validate(&req)?;
    let names: Vec<Vec<u8>> = if !req.refs.is_empty() {
        req.refs.clone()
    } else {
        let prefixes = req.except_with_prefix.clone();
        deps.read_at(path.clone(), move |r, _| {
            Ok(repo::resolved_references(r)?
                .into_iter()
                .map(|(name, _)| name.into_bytes())
                .filter(|name| name.starts_with(b"refs/") && !prefixes.iter().any(|p| name.starts_with(p)))
                .collect())
        })
        .await?
    };
    let invalid: Vec<Vec<u8>> = names.iter().filter(|n| refs::validate_revision(n).is_err()).cloned().collect();
    if !invalid.is_empty() {
        return Err(Error::invalid_argument("invalid references").with_detail(&DeleteRefsError {
            error: Some(delete_refs_error::Error::InvalidFormat(InvalidRefFormatError { refs: invalid })),
        }));
    }
    if names.is_empty() {
        return Ok(DeleteRefsResponse::default());
    }
    let repository = req.repository.clone().unwrap_or_default();
    let hooks = transaction_hooks(deps, &repository, &path, transaction.as_ref(), metadata).await?;
    refs::delete(&deps.git, &path.path, &names, hooks.as_ref(), correlation_id).await.map_err(|e| {
        let message = match &e {
            GitError::ReferenceUpdate(m) | GitError::ReferenceLocked(m) => m.clone(),
            _ => String::new(),
        };
        match refs::failure(&message) {
            Failure::Locked(name) => Error::aborted("cannot lock references").with_detail(&DeleteRefsError {
                error: Some(delete_refs_error::Error::ReferencesLocked(ReferencesLockedError { refs: vec![name] })),
            }),
            _ => Error::internal_msg(format!("unable to commit: {}", crate::error::error_chain(&e))),
        }
    })?;
    Ok(DeleteRefsResponse::default())
}

fn validate(req: &DeleteRefsRequest) -> Result<()> {
    if !req.except_with_prefix.is_empty() && !req.refs.is_empty() {
        return Err(Error::invalid_argument("ExceptWithPrefix and Refs are mutually exclusive"));
    }
    if req.except_with_prefix.is_empty() && req.refs.is_empty() {
        return Err(Error::invalid_argument("empty ExceptWithPrefix and Refs"));
    }
    if req.except_with_prefix.iter().any(Vec::is_empty) {
        return Err(Error::invalid_argument("empty prefix for exclusion"));
    }
    if req.refs.iter().any(Vec::is_empty) {
        return Err(Error::invalid_argument("empty ref"));
    }
    Ok(())
}
