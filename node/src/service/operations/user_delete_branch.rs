//! UserDeleteBranch: deletes a branch as the user, running the receive
//! hooks; with `expected_old_oid` only while the branch still points there.

use super::update::{Call, UpdateError};
use super::user_create_branch::branch_reference;
use crate::error::{Error, Result};
use crate::git::repo;
use cairn_proto::gitaly::{
    UserDeleteBranchError, UserDeleteBranchRequest, UserDeleteBranchResponse, user_delete_branch_error,
};

pub(super) async fn handle(call: Call<'_>, req: UserDeleteBranchRequest) -> Result<UserDeleteBranchResponse> {
    let path = call.deps.storages.repo(req.repository.as_ref())?;
    if req.branch_name.is_empty() {
        return Err(Error::invalid_argument("bad request: empty branch name"));
    }
    let Some(user) = &req.user else { return Err(Error::invalid_argument("bad request: empty user")) };
    let reference = branch_reference(&req.branch_name)?;
    let expected = req.expected_old_oid.clone();
    let lookup = reference.clone();
    let (current, format) = call
        .deps
        .read_at(path.clone(), move |r, _| {
            let format = r.object_format();
            if expected.is_empty() {
                return Ok((repo::resolve_revision(r, &lookup).map(|id| id.to_string()), format));
            }
            let id = super::common::expected_old(r, &expected)?;
            Ok((Some(id.to_string()), format))
        })
        .await?;
    let Some(old) = current else {
        return Err(Error::failed_precondition(format!(
            "branch not found: {:?}",
            String::from_utf8_lossy(&req.branch_name)
        )));
    };
    let repository = req.repository.clone().unwrap_or_default();
    let change = call.change(&repository, &path, user);
    change.update_reference(None, &reference, &format.zero_oid(), &old).await.map_err(|e| {
        let detail = |error| UserDeleteBranchError { error: Some(error) };
        match e {
            UpdateError::AccessCheck(ref check) => {
                Error::permission_denied(format!("deletion denied by access checks: {}", e.message()))
                    .with_detail(&detail(user_delete_branch_error::Error::AccessCheck(check.clone())))
            }
            UpdateError::CustomHook(ref hook) => {
                Error::permission_denied(format!("deletion denied by custom hooks: {}", e.message()))
                    .with_detail(&detail(user_delete_branch_error::Error::CustomHook(hook.clone())))
            }
            UpdateError::Reference(ref update, _) => {
                Error::failed_precondition(format!("reference update failed: {}", e.message()))
                    .with_detail(&detail(user_delete_branch_error::Error::ReferenceUpdate(update.clone())))
            }
            UpdateError::Other(e) => Error::internal_msg(format!("deleting reference: {e}")),
        }
    })?;
    Ok(UserDeleteBranchResponse {})
}
