//! UserDeleteTag: deletes a tag as the user, running the receive hooks;
//! with `expected_old_oid` only while the tag still points there.

use super::common::custom_hook_text;
use super::update::{Call, UpdateError};
use crate::error::{Error, Result};
use crate::git::repo;
use cairn_proto::gitaly::{UserDeleteTagRequest, UserDeleteTagResponse};

pub(super) async fn handle(call: Call<'_>, req: UserDeleteTagRequest) -> Result<UserDeleteTagResponse> {
    let path = call.deps.storages.repo(req.repository.as_ref())?;
    if req.tag_name.is_empty() {
        return Err(Error::invalid_argument("empty tag name"));
    }
    let Some(user) = &req.user else { return Err(Error::invalid_argument("empty user")) };
    let reference = [b"refs/tags/".as_slice(), &req.tag_name].concat();
    let (expected, lookup, name) = (req.expected_old_oid.clone(), reference.clone(), req.tag_name.clone());
    let (old, format) = call
        .deps
        .read_at(path.clone(), move |r, _| {
            let format = r.object_format();
            if expected.is_empty() {
                let id = repo::resolve_revision(r, &lookup).ok_or_else(|| {
                    Error::failed_precondition(format!("tag not found: {}", String::from_utf8_lossy(&name)))
                })?;
                return Ok((id.to_string(), format));
            }
            let id = super::common::expected_old(r, &expected)?;
            Ok((id.to_string(), format))
        })
        .await?;
    let repository = req.repository.clone().unwrap_or_default();
    let change = call.change(&repository, &path, user);
    match change.update_reference(None, &reference, &format.zero_oid(), &old).await {
        Ok(()) => Ok(UserDeleteTagResponse::default()),
        // Upstream's older shape: the hook's output in the response.
        Err(UpdateError::CustomHook(hook)) => Ok(UserDeleteTagResponse { pre_receive_error: custom_hook_text(&hook) }),
        Err(e @ UpdateError::Reference(..)) => Err(Error::failed_precondition(e.message())),
        Err(e) => Err(Error::internal_msg(e.message())),
    }
}
