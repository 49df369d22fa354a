//! HasLocalBranches: whether any `refs/heads/*` exists.

use crate::error::Result;
use crate::git::repo;
use crate::service::Deps;
use cairn_proto::gitaly::{HasLocalBranchesRequest, HasLocalBranchesResponse};

pub(super) async fn handle(deps: &Deps, req: HasLocalBranchesRequest) -> Result<HasLocalBranchesResponse> {
    let value = deps.read(req.repository.as_ref(), |repo, _| Ok(repo::has_branches(repo)?)).await?;
    Ok(HasLocalBranchesResponse { value })
}
