//! OptimizeRepository: housekeeping on demand (Rails schedules it after
//! pushes). The heuristic strategy does what the repository's state calls
//! for, the eager one everything; see [`crate::git::housekeeping`].

use crate::error::{Error, Result};
use crate::git::housekeeping::{self, Strategy};
use crate::service::Deps;
use cairn_proto::gitaly::optimize_repository_request::Strategy as ProtoStrategy;
use cairn_proto::gitaly::{OptimizeRepositoryRequest, OptimizeRepositoryResponse};

pub(super) async fn handle(
    deps: &Deps,
    req: OptimizeRepositoryRequest,
    correlation_id: Option<&str>,
) -> Result<OptimizeRepositoryResponse> {
    let repo = deps.storages.repo(req.repository.as_ref())?;
    let strategy = match ProtoStrategy::try_from(req.strategy) {
        Ok(ProtoStrategy::Unspecified | ProtoStrategy::Heuristical) => Strategy::Heuristic,
        Ok(ProtoStrategy::Eager) => Strategy::Eager,
        // 18.x's offloading strategies move objects to remote storage,
        // which this node does not have.
        Ok(ProtoStrategy::Offloading | ProtoStrategy::Rehydration) | Err(_) => {
            return Err(Error::invalid_argument(format!("unsupported optimization strategy {}", req.strategy)));
        }
    };
    let (report, result) =
        housekeeping::optimize(&deps.git, &repo.path, &repo.relative_path, strategy, correlation_id).await;
    tracing::info!(
        tasks = ?report.tasks,
        stale_removed = report.stale_removed,
        skipped = report.skipped,
        "repository housekept"
    );
    deps.housekeeping.record(&report);
    deps.repos.forget(&repo.path);
    result.map_err(|e| Error::internal_msg(crate::error::error_chain(&e)))?;
    Ok(OptimizeRepositoryResponse {})
}
