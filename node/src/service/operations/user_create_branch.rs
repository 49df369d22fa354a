//! UserCreateBranch: creates `refs/heads/<branch>` at a start point as the
//! user, running the receive hooks; the branch must not exist yet.

use super::update::{Call, UpdateError};
use crate::error::{Error, Result};
use crate::git::{commit, refs};
use crate::service::convert;
use cairn_proto::gitaly::{
    Branch, UserCreateBranchError, UserCreateBranchRequest, UserCreateBranchResponse, user_create_branch_error,
};

pub(super) async fn handle(call: Call<'_>, req: UserCreateBranchRequest) -> Result<UserCreateBranchResponse> {
    let path = call.deps.storages.repo(req.repository.as_ref())?;
    if req.branch_name.is_empty() {
        return Err(Error::invalid_argument("empty branch name"));
    }
    let Some(user) = &req.user else { return Err(Error::invalid_argument("empty user")) };
    if req.start_point.is_empty() {
        return Err(Error::invalid_argument("empty start point"));
    }
    let reference = branch_reference(&req.branch_name)?;
    let repository = req.repository.clone().unwrap_or_default();
    let change = call.change(&repository, &path, user);
    let quarantine = change.quarantine()?;
    let start_point = req.start_point.clone();
    let (start, format) = call
        .deps
        .read_at(path.clone(), move |repo, _| Ok((commit::find(repo, &start_point)?, repo.object_format())))
        .await?;
    let start = start.ok_or_else(|| {
        Error::failed_precondition(format!("revspec '{}' not found", String::from_utf8_lossy(&req.start_point)))
    })?;
    change.update_reference(Some(quarantine), &reference, &start.id, &format.zero_oid()).await.map_err(
        |e| match e {
            UpdateError::CustomHook(hook) => Error::permission_denied("creation denied by custom hooks")
                .with_detail(&UserCreateBranchError { error: Some(user_create_branch_error::Error::CustomHook(hook)) }),
            UpdateError::Reference(..) => Error::failed_precondition(e.message()),
            UpdateError::AccessCheck(_) => Error::internal_msg(e.message()),
            UpdateError::Other(e) => e,
        },
    )?;
    Ok(UserCreateBranchResponse {
        branch: Some(Branch { name: req.branch_name, target_commit: Some(convert::git_commit(&start)) }),
    })
}

/// `refs/heads/<name>` for a branch name from a request.
pub(super) fn branch_reference(name: &[u8]) -> Result<Vec<u8>> {
    let reference = [b"refs/heads/".as_slice(), name].concat();
    if !refs::valid_ref_name(&reference) {
        return Err(Error::invalid_argument(format!("invalid branch name: {:?}", String::from_utf8_lossy(name))));
    }
    Ok(reference)
}
