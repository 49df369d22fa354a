//! CreateObjectPool: a new pool, cloned locally from its origin (objects
//! hard-linked, no remote, no hooks), built aside and renamed into place.
//! Not part of router transactions (upstream creates pools on one node and
//! replicates them).

use super::INVALID_POOL_DIR;
use crate::error::{Error, Result};
use crate::git::{lifecycle, objectpool, stats};
use crate::service::Deps;
use cairn_proto::gitaly::{CreateObjectPoolRequest, CreateObjectPoolResponse};
use std::path::PathBuf;
use tonic::Code;

pub(super) async fn handle(
    deps: &Deps,
    req: CreateObjectPoolRequest,
    correlation_id: Option<&str>,
) -> Result<CreateObjectPoolResponse> {
    if req.origin.is_none() {
        return Err(Error::invalid_argument("no origin repository"));
    }
    let Some(pool) = req.object_pool.as_ref().and_then(|p| p.repository.as_ref()) else {
        return Err(Error::invalid_argument("no object pool repository"));
    };
    if !stats::is_pool_path(&pool.relative_path) {
        return Err(Error::invalid_argument(INVALID_POOL_DIR));
    }
    let target = deps.storages.repo_for_create(Some(pool))?;
    let origin = deps.storages.repo(req.origin.as_ref())?;
    let tmp = deps.storages.root(&target.storage)?.tmp_dir();
    let seed = |staged: PathBuf| async move {
        objectpool::create(&deps.git, &origin.path, &staged, correlation_id)
            .await
            .map_err(|e| Error::internal_msg(format!("cloning to pool: {}", crate::error::error_chain(&e))))
    };
    lifecycle::create_seeded(&target.path, &tmp, seed, lifecycle::no_vote).await.map_err(|e: Error| {
        // Upstream answers an existing pool with FAILED_PRECONDITION.
        let code = if e.code() == Code::AlreadyExists { Code::FailedPrecondition } else { e.code() };
        Error::new(code, format!("creating object pool: {e}"))
    })?;
    deps.repos.forget(&target.path);
    Ok(CreateObjectPoolResponse {})
}
