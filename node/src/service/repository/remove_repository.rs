//! RemoveRepository: renamed aside under a lock, then deleted, so nobody
//! sees a half-removed repository.

use crate::error::Result;
use crate::git::lifecycle;
use crate::service::Deps;
use cairn_proto::gitaly::{RemoveRepositoryRequest, RemoveRepositoryResponse};

pub(super) async fn handle(deps: &Deps, req: RemoveRepositoryRequest) -> Result<RemoveRepositoryResponse> {
    let repo = deps.storages.repo_for_create(req.repository.as_ref())?;
    let tmp = deps.storages.root(&repo.storage)?.tmp_dir();
    deps.repos.forget(&repo.path);
    lifecycle::remove(&repo.path, &tmp).await?;
    deps.repos.forget(&repo.path);
    Ok(RemoveRepositoryResponse {})
}
