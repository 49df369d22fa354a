//! GetObjectPool: the pool a repository borrows objects from, read from
//! its alternates file; an empty answer when it has none, or when the
//! alternate is not a valid pool (upstream logs and answers empty).

use crate::error::Result;
use crate::git::{objectpool, stats};
use crate::service::{Deps, blocking};
use cairn_proto::gitaly::{GetObjectPoolRequest, GetObjectPoolResponse, ObjectPool, Repository};

pub(super) async fn handle(deps: &Deps, req: GetObjectPoolRequest) -> Result<GetObjectPoolResponse> {
    let repo = deps.storages.repo(req.repository.as_ref())?;
    let (path, root) = (repo.path.clone(), repo.storage_root.clone());
    let relative = blocking(move || Ok(objectpool::pool_of(&path, &root)?)).await?;
    let Some(relative) = relative else { return Ok(GetObjectPoolResponse { object_pool: None }) };
    let pool = Repository { storage_name: repo.storage.clone(), relative_path: relative, ..Default::default() };
    let valid = stats::is_pool_path(&pool.relative_path) && deps.storages.repo(Some(&pool)).is_ok();
    if !valid {
        tracing::warn!(
            storage = %repo.storage,
            relative_path = %repo.relative_path,
            "alternates file does not point to valid git repository"
        );
        return Ok(GetObjectPoolResponse { object_pool: None });
    }
    Ok(GetObjectPoolResponse { object_pool: Some(ObjectPool { repository: Some(pool) }) })
}
