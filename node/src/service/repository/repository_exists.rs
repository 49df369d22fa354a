//! RepositoryExists: `true` for a valid repository; `false` when the path is
//! missing or not a git directory; invalid addresses are errors.

use crate::error::Result;
use crate::service::Deps;
use cairn_proto::gitaly::{RepositoryExistsRequest, RepositoryExistsResponse};

pub(super) fn handle(deps: &Deps, req: RepositoryExistsRequest) -> Result<RepositoryExistsResponse> {
    Ok(RepositoryExistsResponse { exists: deps.storages.repo_exists(req.repository.as_ref())? })
}
