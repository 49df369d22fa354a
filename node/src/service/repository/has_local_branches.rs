//! HasLocalBranches: whether any `refs/heads/*` exists.

use crate::error::Result;
use crate::git::repo;
use crate::service::{Deps, blocking};
use cairn_proto::gitaly::{HasLocalBranchesRequest, HasLocalBranchesResponse};

pub(super) async fn handle(deps: &Deps, req: HasLocalBranchesRequest) -> Result<HasLocalBranchesResponse> {
    let path = deps.storages.repo(req.repository.as_ref())?.path;
    let repos = deps.repos.clone();
    let value = blocking(move || Ok(repo::has_branches(&repos.open(&path)?)?)).await?;
    Ok(HasLocalBranchesResponse { value })
}
