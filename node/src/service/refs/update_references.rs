//! UpdateReferences: a client stream of reference updates applied in one
//! atomic `git update-ref` transaction (each checked against its old value
//! when given), voting in a router's transaction through git's
//! reference-transaction hook. No receive hooks run, as upstream.

use crate::error::{Error, Result};
use crate::git::refs::{self, Failure};
use crate::git::{CommandError, GitError, repo};
use crate::service::Deps;
use crate::service::hook::transaction_hooks;
use crate::transaction::Transaction;
use cairn_proto::gitaly::{
    InvalidRefFormatError, ReferenceStateMismatchError, ReferencesLockedError, UpdateReferencesError,
    UpdateReferencesRequest, UpdateReferencesResponse, update_references_error,
};
use tokio_stream::StreamExt as _;
use tonic::Streaming;
use tonic::metadata::MetadataMap;

pub(super) async fn handle(
    deps: &Deps,
    metadata: &MetadataMap,
    mut stream: Streaming<UpdateReferencesRequest>,
    transaction: Option<Transaction>,
    correlation_id: Option<&str>,
) -> Result<UpdateReferencesResponse> {
    let receive = |e: tonic::Status| Error::internal_msg(format!("receiving request: {}", e.message()));
    let Some(first) = stream.next().await.transpose().map_err(receive)? else {
        return Err(Error::internal_msg("receiving initial request: EOF"));
    };
    let path = deps.storages.repo(first.repository.as_ref())?;
    let repository = first.repository.clone().unwrap_or_default();
    let format = deps.read_at(path.clone(), |r, _| Ok(r.object_format())).await?;

    let mut updates = Vec::new();
    let mut request = Some(UpdateReferencesRequest { repository: None, ..first });
    while let Some(req) = request {
        if req.repository.is_some() {
            return Err(Error::invalid_argument("repository set in subsequent request"));
        }
        if req.updates.is_empty() {
            return Err(Error::invalid_argument("no updates specified"));
        }
        for u in req.updates {
            let name = String::from_utf8_lossy(&u.reference).into_owned();
            if let Err(why) = validate_reference(&u.reference) {
                return Err(Error::invalid_argument(format!("validating reference: {why}"))
                    .with_metadata("reference", name)
                    .with_detail(&UpdateReferencesError {
                        error: Some(update_references_error::Error::InvalidFormat(InvalidRefFormatError {
                            refs: vec![u.reference],
                        })),
                    }));
            }
            let old = String::from_utf8_lossy(&u.old_object_id).into_owned();
            if !old.is_empty() && !format.is_oid(&old) {
                return Err(Error::invalid_argument(format!("validating old object ID: invalid object ID: {old:?}"))
                    .with_metadata("old_object_id", old));
            }
            let new = String::from_utf8_lossy(&u.new_object_id).into_owned();
            if !format.is_oid(&new) {
                return Err(Error::invalid_argument(format!("validating new object ID: invalid object ID: {new:?}"))
                    .with_metadata("new_object_id", new));
            }
            updates.push(refs::RefUpdate { name: u.reference, new, old: (!old.is_empty()).then_some(old) });
        }
        request = stream.next().await.transpose().map_err(receive)?;
    }

    let hooks = transaction_hooks(deps, &repository, &path, transaction.as_ref(), metadata).await?;
    let Err(e) = refs::update(&deps.git, &path.path, &updates, hooks.as_ref(), correlation_id).await else {
        return Ok(UpdateReferencesResponse {});
    };
    let message = match &e {
        GitError::ReferenceUpdate(m) | GitError::ReferenceLocked(m) => m.clone(),
        GitError::Command(CommandError::Failed { stderr, .. }) => stderr.clone(),
        _ => String::new(),
    };
    let detail = |error| UpdateReferencesError { error: Some(error) };
    Err(match refs::failure(&message) {
        Failure::Locked(name) => Error::aborted("reference is already locked")
            .with_metadata("reference", String::from_utf8_lossy(&name).into_owned())
            .with_detail(&detail(update_references_error::Error::ReferencesLocked(ReferencesLockedError {
                refs: vec![name],
            }))),
        Failure::Mismatch(name) => {
            let expected = updates.iter().find(|u| u.name == name).and_then(|u| u.old.clone()).unwrap_or_default();
            let lookup = name.clone();
            let actual = deps
                .read_at(path.clone(), move |r, _| {
                    Ok(repo::resolve_revision(r, &lookup).map_or_else(|| format.zero_oid(), |id| id.to_string()))
                })
                .await?;
            Error::aborted("reference does not point to expected object")
                .with_metadata("reference", String::from_utf8_lossy(&name).into_owned())
                .with_detail(&detail(update_references_error::Error::ReferenceStateMismatch(
                    ReferenceStateMismatchError {
                        reference_name: name,
                        expected_object_id: expected.into_bytes(),
                        actual_object_id: actual.into_bytes(),
                    },
                )))
        }
        Failure::MissingObject(name, oid) => Error::not_found("target object missing")
            .with_metadata("reference", String::from_utf8_lossy(&name).into_owned())
            .with_metadata("missing_object", oid),
        Failure::Other => Error::internal_msg(format!("committing update: {}", crate::error::error_chain(&e))),
    })
}

/// Upstream's reference check: fully qualified, not HEAD, git's rules.
pub(super) fn validate_reference(name: &[u8]) -> std::result::Result<(), &'static str> {
    if name == b"HEAD" {
        return Err("HEAD reference not allowed");
    }
    if !name.starts_with(b"refs/") {
        return Err("reference is not fully qualified");
    }
    if name == b"refs/" {
        return Err("refs/ is not a valid reference");
    }
    if !refs::valid_ref_name(name) {
        return Err("invalid reference format");
    }
    Ok(())
}
