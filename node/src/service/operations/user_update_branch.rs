//! UserUpdateBranch: moves a branch from `oldrev` to `newrev` (both object
//! ids) as the user, running the receive hooks.

use super::common::custom_hook_text;
use super::update::{Call, UpdateError};
use super::user_create_branch::branch_reference;
use crate::error::{Error, Result};
use cairn_proto::gitaly::{UserUpdateBranchRequest, UserUpdateBranchResponse};

pub(super) async fn handle(call: Call<'_>, req: UserUpdateBranchRequest) -> Result<UserUpdateBranchResponse> {
    let path = call.deps.storages.repo(req.repository.as_ref())?;
    let Some(user) = &req.user else { return Err(Error::invalid_argument("empty user")) };
    for (value, what) in [(&req.branch_name, "branch name"), (&req.oldrev, "oldrev"), (&req.newrev, "newrev")] {
        if value.is_empty() {
            return Err(Error::invalid_argument(format!("empty {what}")));
        }
    }
    let format = call.deps.read_at(path.clone(), |r, _| Ok(r.object_format())).await?;
    let parse = |value: &[u8], what: &str| {
        let hex = String::from_utf8_lossy(value).into_owned();
        if !format.is_oid(&hex) {
            return Err(Error::internal_msg(format!("could not parse {what}: invalid object ID: {hex:?}")));
        }
        Ok(hex)
    };
    let new = parse(&req.newrev, "newrev")?;
    let old = parse(&req.oldrev, "oldrev")?;
    let reference = branch_reference(&req.branch_name)?;
    let repository = req.repository.clone().unwrap_or_default();
    let change = call.change(&repository, &path, user);
    let quarantine = change.quarantine()?;
    match change.update_reference(Some(quarantine), &reference, &new, &old).await {
        Ok(()) => Ok(UserUpdateBranchResponse::default()),
        Err(UpdateError::CustomHook(hook)) => {
            Ok(UserUpdateBranchResponse { pre_receive_error: custom_hook_text(&hook) })
        }
        // Upstream answers every other failure alike (its Ruby heritage).
        Err(_) => Err(Error::failed_precondition(format!(
            "Could not update {}. Please refresh and try again.",
            String::from_utf8_lossy(&req.branch_name)
        ))),
    }
}
