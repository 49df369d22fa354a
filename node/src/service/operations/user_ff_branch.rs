//! UserFFBranch: fast-forwards a branch to a commit as the user, running
//! the receive hooks; refused unless the branch's commit is an ancestor.

use super::common::custom_hook_text;
use super::update::{Call, UpdateError};
use super::user_create_branch::branch_reference;
use crate::error::{Error, Result};
use crate::git::repo;
use cairn_proto::gitaly::{
    OperationBranchUpdate, ReferenceUpdateError, UserFfBranchError, UserFfBranchRequest, UserFfBranchResponse,
    user_ff_branch_error,
};

pub(super) async fn handle(call: Call<'_>, req: UserFfBranchRequest) -> Result<UserFfBranchResponse> {
    let path = call.deps.storages.repo(req.repository.as_ref())?;
    if req.branch.is_empty() {
        return Err(Error::invalid_argument("empty branch name"));
    }
    let Some(user) = &req.user else { return Err(Error::invalid_argument("empty user")) };
    if req.commit_id.is_empty() {
        return Err(Error::invalid_argument("empty commit id"));
    }
    let reference = branch_reference(&req.branch)?;
    let repository = req.repository.clone().unwrap_or_default();
    let change = call.change(&repository, &path, user);
    // No new objects, but GitLab computes a push's new objects from it.
    let quarantine = change.quarantine()?;
    let (expected, lookup, commit_id) = (req.expected_old_oid.clone(), reference.clone(), req.commit_id.clone());
    let old = call
        .deps
        .read_at(path.clone(), move |r, _| {
            let format = r.object_format();
            let old = if expected.is_empty() {
                repo::resolve_revision(r, &lookup).ok_or_else(|| Error::invalid_argument("reference not found"))?
            } else {
                super::common::expected_old(r, &expected)?
            };
            if !format.is_oid(&commit_id) {
                return Err(Error::invalid_argument(format!(
                    "cannot parse commit ID: invalid object ID: {commit_id:?}"
                )));
            }
            let base = repo::merge_base(r, &[old.to_string().into_bytes(), commit_id.clone().into_bytes()])
                .map_err(|e| Error::internal_msg(format!("checking for ancestry: {e}")))?;
            if base != Some(old) {
                return Err(Error::failed_precondition("not fast forward"));
            }
            Ok(old.to_string())
        })
        .await?;
    change.update_reference(Some(quarantine), &reference, &req.commit_id, &old).await.map_err(|e| {
        let detail = |error| UserFfBranchError { error: Some(error) };
        match e {
            UpdateError::CustomHook(hook) => Error::permission_denied(custom_hook_text(&hook))
                .with_detail(&detail(user_ff_branch_error::Error::CustomHook(hook))),
            UpdateError::Reference(..) => {
                Error::failed_precondition(format!("update reference with hooks: {}", e.message())).with_detail(
                    &detail(user_ff_branch_error::Error::ReferenceUpdate(ReferenceUpdateError {
                        reference_name: Vec::new(),
                        old_oid: old.clone(),
                        new_oid: req.commit_id.clone(),
                    })),
                )
            }
            other => Error::internal_msg(format!("updating ref with hooks: {}", other.message())),
        }
    })?;
    Ok(UserFfBranchResponse {
        branch_update: Some(OperationBranchUpdate { commit_id: req.commit_id, ..Default::default() }),
        pre_receive_error: String::new(),
    })
}
