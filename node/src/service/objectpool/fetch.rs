//! FetchIntoObjectPool: brings a pool up to date with its origin (on the
//! same storage): stale references pruned, the origin's references fetched
//! into `refs/remotes/origin/*`, unreferenced objects kept alive under
//! `refs/dangling/`, then the pool housekept (never pruned). Inside a
//! router's transaction the reference changes are voted on through git's
//! reference-transaction hook.

use crate::error::{Error, Result};
use crate::git::objectpool;
use crate::service::Deps;
use crate::service::hook::transaction_hooks;
use crate::transaction::Transaction;
use cairn_proto::gitaly::{FetchIntoObjectPoolRequest, FetchIntoObjectPoolResponse};
use tonic::metadata::MetadataMap;

pub(super) async fn handle(
    deps: &Deps,
    metadata: &MetadataMap,
    req: FetchIntoObjectPoolRequest,
    transaction: Option<Transaction>,
    correlation_id: Option<&str>,
) -> Result<FetchIntoObjectPoolResponse> {
    let Some(origin) = req.origin.as_ref() else { return Err(Error::invalid_argument("origin is empty")) };
    let Some(pool) = req.object_pool.as_ref() else { return Err(Error::invalid_argument("object pool is empty")) };
    let pool_repository = pool.repository.clone().unwrap_or_default();
    if origin.storage_name != pool_repository.storage_name {
        return Err(Error::invalid_argument("origin has different storage than object pool"));
    }
    let pool_path = super::existing_pool(deps, pool.repository.as_ref())
        .map_err(|e| Error::invalid_argument(format!("object pool invalid: {e}")))?;
    let origin_path = deps.storages.repo(Some(origin))?;
    let hooks = transaction_hooks(deps, &pool_repository, &pool_path, transaction.as_ref(), metadata).await?;
    let report = objectpool::fetch_from_origin(
        &deps.git,
        &pool_path.path,
        &pool_path.relative_path,
        &origin_path.path,
        hooks.as_ref(),
        correlation_id,
    )
    .await
    .map_err(|e| Error::internal_msg(crate::error::error_chain(&e)))?;
    tracing::info!(tasks = ?report.tasks, stale_removed = report.stale_removed, "object pool housekept");
    deps.housekeeping.record(&report);
    deps.repos.forget(&pool_path.path);
    Ok(FetchIntoObjectPoolResponse {})
}
