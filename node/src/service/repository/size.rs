//! RepositorySize and GetObjectDirectorySize: bytes on disk, in KiB.

use crate::error::Result;
use crate::service::{Deps, blocking};
use cairn_proto::gitaly::{
    GetObjectDirectorySizeRequest, GetObjectDirectorySizeResponse, Repository, RepositorySizeRequest,
    RepositorySizeResponse,
};

async fn kib(deps: &Deps, repository: Option<&Repository>, objects_only: bool) -> Result<i64> {
    let repo = deps.storages.repo(repository)?;
    let dir = if objects_only { repo.object_dir.unwrap_or_else(|| repo.path.join("objects")) } else { repo.path };
    let bytes = blocking(move || Ok(crate::git::dir_size(&dir)?)).await?;
    Ok(i64::try_from(bytes / 1024).unwrap_or(i64::MAX))
}

pub(super) async fn repository_size(deps: &Deps, req: RepositorySizeRequest) -> Result<RepositorySizeResponse> {
    Ok(RepositorySizeResponse { size: kib(deps, req.repository.as_ref(), false).await? })
}

pub(super) async fn object_directory_size(
    deps: &Deps,
    req: GetObjectDirectorySizeRequest,
) -> Result<GetObjectDirectorySizeResponse> {
    Ok(GetObjectDirectorySizeResponse { size: kib(deps, req.repository.as_ref(), true).await? })
}
