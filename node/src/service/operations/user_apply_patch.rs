//! UserApplyPatch: a client stream of a header then the output of
//! `git format-patch` (one or more patches) in chunks, applied as commits
//! on a branch the way `git am --3way` would, then the branch moved once
//! through the receive hooks. A branch that does not exist yet starts from
//! the default branch. No work tree is used: see [`crate::git::patch`].

use super::update::{Call, UpdateError};
use super::user_create_branch::branch_reference;
use super::{common::signature, receive};
use crate::error::{Error, Result};
use crate::git::patch::{self, Mbox, PatchError, Target};
use crate::git::{references, repo};
use cairn_proto::gitaly::user_apply_patch_request::UserApplyPatchRequestPayload as Payload;
use cairn_proto::gitaly::{
    OperationBranchUpdate, UserApplyPatchError, UserApplyPatchRequest, UserApplyPatchResponse, user_apply_patch_error,
};
use tonic::Streaming;

/// Most patch data one request may send, so a client cannot fill the
/// storage's disk.
const MAX_PATCH_BYTES: u64 = 100 * 1024 * 1024;

pub(super) async fn handle(
    call: Call<'_>,
    mut stream: Streaming<UserApplyPatchRequest>,
) -> Result<UserApplyPatchResponse> {
    let first = receive(&mut stream).await?;
    let Some(Payload::Header(header)) = first.and_then(|r| r.user_apply_patch_request_payload) else {
        return Err(Error::invalid_argument("empty UserApplyPatch_Header"));
    };
    let path = call.deps.storages.repo(header.repository.as_ref())?;
    let Some(user) = &header.user else { return Err(Error::invalid_argument("missing User")) };
    if header.target_branch.is_empty() {
        return Err(Error::invalid_argument("missing Branch"));
    }
    let reference = branch_reference(&header.target_branch)?;
    let (parent, created, format) = start_point(&call, &path, &reference).await?;
    let committer = signature(user, header.timestamp.as_ref())?;

    let tmp = call.deps.storages.root(&path.storage)?.tmp_dir();
    let mut mbox = Mbox::new(&tmp).map_err(|e| Error::internal("create patch directory", e))?;
    while let Some(req) = receive(&mut stream).await? {
        // Upstream reads only the patches of later messages.
        let Some(Payload::Patches(chunk)) = req.user_apply_patch_request_payload else { continue };
        if mbox.len() + chunk.len() as u64 > MAX_PATCH_BYTES {
            return Err(Error::invalid_argument(format!("patches exceed the limit of {MAX_PATCH_BYTES} bytes")));
        }
        mbox.append(&chunk).await.map_err(|e| Error::internal("receive patches", e))?;
    }

    let repository = header.repository.clone().unwrap_or_default();
    let change = call.change(&repository, &path, user);
    let quarantine = change.quarantine()?;
    let objects = quarantine.objects();
    let target = Target { repo: &path.path, objects: &objects, parent: &parent, committer: &committer };
    let new = patch::apply(&call.deps.git, target, mbox, call.correlation_id).await.map_err(patch_failure)?;

    let old = match header.expected_old_oid.as_str() {
        "" if created => format.zero_oid(),
        "" => parent,
        expected => expected_old(&call, &path, expected).await?,
    };
    change.update_reference(Some(quarantine), &reference, &new, &old).await.map_err(|e| match e {
        UpdateError::CustomHook(hook) => Error::permission_denied("denied by custom hooks")
            .with_detail(&UserApplyPatchError { error: Some(user_apply_patch_error::Error::CustomHook(hook)) }),
        UpdateError::Reference(update, cause) => {
            let what = if cause.contains("but expected") {
                "reference does not point to expected object".to_owned()
            } else {
                cause
            };
            Error::internal_msg(format!("update reference: reference update: {what}"))
                .with_metadata("reference", String::from_utf8_lossy(&update.reference_name).into_owned())
                .with_metadata("expected_object_id", update.old_oid)
        }
        other => Error::internal_msg(format!("update reference: {}", other.message())),
    })?;
    Ok(UserApplyPatchResponse {
        branch_update: Some(OperationBranchUpdate { commit_id: new, branch_created: created, repo_created: false }),
    })
}

/// The commit the patches apply to: the branch's, or the default branch's
/// when the branch is created (then `true`); with the object format.
async fn start_point(
    call: &Call<'_>,
    path: &crate::storage::RepoPath,
    reference: &[u8],
) -> Result<(String, bool, crate::git::ObjectFormat)> {
    let reference = reference.to_vec();
    call.deps
        .read_at(path.clone(), move |r, _| {
            let commit_of = |name: &[u8]| repo::resolve_revision(r, &[name, b"^{commit}".as_slice()].concat());
            if let Some(id) = commit_of(&reference) {
                return Ok((id.to_string(), false, r.object_format()));
            }
            let default = references::default_branch(r).map_err(|e| Error::internal("default branch name", e))?;
            let id =
                default.and_then(|name| commit_of(&name)).ok_or_else(|| Error::internal_msg("no default branch"))?;
            Ok((id.to_string(), true, r.object_format()))
        })
        .await
}

/// The request's expected old value, checked (after the patches applied)
/// with upstream's wording.
async fn expected_old(call: &Call<'_>, path: &crate::storage::RepoPath, expected: &str) -> Result<String> {
    let expected = expected.to_owned();
    call.deps
        .read_at(path.clone(), move |r, _| {
            let format = r.object_format();
            if expected.len() != format.hex_len() {
                return Err(Error::internal_msg(format!(
                    "expected old object id not expected SHA format: invalid object ID: {expected:?}, expected length {}, got {}",
                    format.hex_len(),
                    expected.len()
                )));
            }
            if !format.is_oid(&expected) {
                return Err(Error::internal_msg(format!(
                    "expected old object id not expected SHA format: invalid object ID: {expected:?}"
                )));
            }
            repo::resolve_revision(r, format!("{expected}^{{object}}").as_bytes())
                .map(|id| id.to_string())
                .ok_or_else(|| Error::internal_msg("expected old object cannot be resolved: reference not found"))
        })
        .await
}

/// The status of a series that did not apply: `git am`'s own report when
/// a patch conflicts, as upstream passes it on.
fn patch_failure(e: PatchError) -> Error {
    match e {
        PatchError::DoesNotApply { number, subject } => Error::failed_precondition(format!(
            "Patch failed at {number:04} {}\n\
             When you have resolved this problem, run \"git am --continue\".\n\
             If you prefer to skip this patch, run \"git am --skip\" instead.\n\
             To restore the original branch and stop patching, run \"git am --abort\".\n",
            String::from_utf8_lossy(&subject)
        )),
        PatchError::Malformed { number, reason } => Error::internal_msg(format!("apply patch: {number:04}: {reason}")),
        PatchError::Git(e) => Error::internal("apply patch", e),
    }
}
