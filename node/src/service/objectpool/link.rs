//! LinkRepositoryToObjectPool: makes a repository borrow objects from a
//! pool by writing its alternates file (a path relative to its `objects`
//! directory). Linking twice is a no-op; alternates naming anything else
//! are refused and left alone.

use crate::error::{Error, Result};
use crate::git::objectpool;
use crate::service::Deps;
use crate::transaction::Voting;
use cairn_proto::gitaly::{LinkRepositoryToObjectPoolRequest, LinkRepositoryToObjectPoolResponse};

pub(super) async fn handle(
    deps: &Deps,
    req: LinkRepositoryToObjectPoolRequest,
    voting: Option<Voting>,
) -> Result<LinkRepositoryToObjectPoolResponse> {
    let member = deps.storages.repo(req.repository.as_ref())?;
    let pool = super::existing_pool(deps, req.object_pool.as_ref().and_then(|p| p.repository.as_ref()))?;
    if pool.storage != member.storage {
        return Err(Error::invalid_argument("object pool and repository are on different storages"));
    }
    objectpool::link(&pool.path, &member.path, super::vote_with(voting)).await.map_err(|e: Error| {
        // Git-layer refusals are upstream's INTERNAL errors.
        if e.code() == tonic::Code::InvalidArgument { Error::internal_msg(e.to_string()) } else { e }
    })?;
    deps.repos.forget(&member.path);
    Ok(LinkRepositoryToObjectPoolResponse {})
}
