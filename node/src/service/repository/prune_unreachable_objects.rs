//! PruneUnreachableObjects: drops unreachable objects older than 30
//! minutes (loose ones by `git prune`, packed ones by a cruft repack), then
//! rewrites the commit-graph so it names no pruned commit. Refused for
//! object pools, whose members may need any of their objects.

use crate::error::{Error, Result};
use crate::git::housekeeping::{self, PRUNE_UNREACHABLE_EXPIRY, Repack, RepackKind};
use crate::git::{objectpool, stats};
use crate::service::Deps;
use cairn_proto::gitaly::{PruneUnreachableObjectsRequest, PruneUnreachableObjectsResponse};

pub(super) async fn handle(
    deps: &Deps,
    req: PruneUnreachableObjectsRequest,
    correlation_id: Option<&str>,
) -> Result<PruneUnreachableObjectsResponse> {
    let repo = deps.storages.repo(req.repository.as_ref())?;
    if stats::is_pool_path(&repo.relative_path) {
        return Err(Error::invalid_argument("pruning objects for object pool"));
    }
    let internal =
        |step: &str, e: crate::git::GitError| Error::internal_msg(format!("{step}: {}", crate::error::error_chain(&e)));
    let has_alternates = !objectpool::alternates(&repo.path).map_err(|e| internal("reading alternates", e))?.is_empty();
    let (git, path) = (&deps.git, &repo.path);
    housekeeping::prune(git, path, PRUNE_UNREACHABLE_EXPIRY, correlation_id)
        .await
        .map_err(|e| internal("pruning objects", e))?;
    let repack = Repack {
        kind: RepackKind::FullWithCruft,
        write_bitmap: !has_alternates,
        write_multi_pack_index: true,
        cruft_expiry: Some(PRUNE_UNREACHABLE_EXPIRY),
    };
    housekeeping::repack(git, path, &repo.relative_path, repack, correlation_id)
        .await
        .map_err(|e| internal("repacking objects", e))?;
    housekeeping::write_commit_graph(git, path, true, correlation_id)
        .await
        .map_err(|e| internal("rewriting commit-graph", e))?;
    deps.repos.forget(path);
    Ok(PruneUnreachableObjectsResponse {})
}
