//! RefExists: whether a fully qualified reference (`refs/...`) exists.

use crate::error::{Error, Result};
use crate::git::{references, refs};
use crate::service::Deps;
use cairn_proto::gitaly::{RefExistsRequest, RefExistsResponse};

pub(super) async fn handle(deps: &Deps, req: RefExistsRequest) -> Result<RefExistsResponse> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    if !req.r#ref.starts_with(b"refs/") {
        return Err(Error::invalid_argument("invalid refname"));
    }
    deps.read_at(path, move |repo, _| {
        // A name git could never store (spaces, globs) cannot exist.
        let value = refs::valid_ref_name(&req.r#ref) && references::exists(repo, &req.r#ref);
        Ok(RefExistsResponse { value })
    })
    .await
}
