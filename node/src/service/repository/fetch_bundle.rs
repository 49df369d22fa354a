//! FetchBundle: fetches every reference of a client-sent bundle into an
//! existing repository under its own name (nothing is pruned), and with
//! `update_head` points HEAD at the branch the bundle's HEAD names, as
//! upstream guesses it. Inside a router's transaction the
//! reference-transaction hook votes on both changes.

use super::bundle_input;
use crate::error::{Error, Result};
use crate::git::{GitError, bundle, refs};
use crate::service::Deps;
use crate::service::hook::transaction_hooks;
use crate::transaction::Transaction;
use cairn_proto::gitaly::{FetchBundleRequest, FetchBundleResponse};
use futures::{StreamExt as _, TryStreamExt as _};
use tonic::Streaming;
use tonic::metadata::MetadataMap;

pub(super) async fn handle(
    deps: &Deps,
    metadata: &MetadataMap,
    mut stream: Streaming<FetchBundleRequest>,
    transaction: Option<Transaction>,
    correlation_id: Option<&str>,
) -> Result<FetchBundleResponse> {
    let first = match stream.next().await {
        Some(Ok(m)) => m,
        Some(Err(e)) => return Err(Error::internal_msg(format!("first request: {}", e.message()))),
        None => return Err(Error::internal_msg("first request: EOF")),
    };
    let repo = deps.storages.repo(first.repository.as_ref())?;
    let repository = first.repository.clone().unwrap_or_default();
    let tmp = deps.storages.root(&repo.storage)?.tmp_dir();
    let spooled = bundle_input::spool(&tmp, first.data, stream.map_ok(|m| m.data))
        .await
        .map_err(|e| super::create_fork::prefix("fetch bundle", e))?;
    let hooks = transaction_hooks(deps, &repository, &repo, transaction.as_ref(), metadata).await?;
    let fail = |e: GitError| Error::internal_msg(format!("fetch bundle: {}", crate::error::error_chain(&e)));
    let result = bundle::fetch_bundle(&deps.git, &repo.path, &spooled.path(), hooks.as_ref(), correlation_id).await;
    deps.repos.forget(&repo.path);
    result.map_err(fail)?;
    if first.update_head
        && let Some(head) =
            bundle::bundle_head(&deps.git, &repo.path, &spooled.path(), correlation_id).await.map_err(fail)?
    {
        let branch =
            bundle::guess_head_branch(&deps.git, &repo.path, &head, correlation_id).await.map_err(fail)?.ok_or_else(
                || Error::internal_msg("fetch bundle: update head from bundle: guess head: reference not found"),
            )?;
        refs::set_head(&deps.git, &repo.path, &branch, hooks.as_ref(), correlation_id).await.map_err(fail)?;
        deps.repos.forget(&repo.path);
    }
    Ok(FetchBundleResponse {})
}
