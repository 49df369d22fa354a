//! DeleteObjectPool: removes a pool (renamed aside, then deleted). A path
//! that is not a pool's is refused; a pool that is not there is already
//! deleted. Members still linked to it lose their objects: callers
//! disconnect them first, as upstream expects.

use crate::error::{Error, Result};
use crate::git::{GitError, lifecycle};
use crate::service::Deps;
use cairn_proto::gitaly::{DeleteObjectPoolRequest, DeleteObjectPoolResponse};

pub(super) async fn handle(deps: &Deps, req: DeleteObjectPoolRequest) -> Result<DeleteObjectPoolResponse> {
    let pool = super::resolve_pool(deps, req.object_pool.as_ref().and_then(|p| p.repository.as_ref()))?;
    if !pool.valid {
        return Ok(DeleteObjectPoolResponse {});
    }
    let tmp = deps.storages.root(&pool.path.storage)?.tmp_dir();
    match lifecycle::remove::<GitError, _, _>(&pool.path.path, &tmp, lifecycle::no_vote_on).await {
        Ok(()) | Err(GitError::NotFound(_)) => {}
        Err(e) => return Err(Error::internal_msg(crate::error::error_chain(&e))),
    }
    deps.repos.forget(&pool.path.path);
    Ok(DeleteObjectPoolResponse {})
}
