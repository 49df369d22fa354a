//! FindMergeBase: the best common ancestor of the first revision and the
//! others, or an empty string when there is none (including revisions that
//! do not resolve, as upstream answers).

use crate::error::{Error, Result};
use crate::git::repo;
use crate::service::Deps;
use cairn_proto::gitaly::{FindMergeBaseRequest, FindMergeBaseResponse};

pub(super) async fn handle(deps: &Deps, req: FindMergeBaseRequest) -> Result<FindMergeBaseResponse> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    if req.revisions.len() < 2 {
        return Err(Error::invalid_argument("at least 2 revisions are required"));
    }
    let base = deps.read_at(path, move |repo, _| Ok(repo::merge_base(repo, &req.revisions)?)).await?;
    Ok(FindMergeBaseResponse { base: base.map(|id| id.to_string()).unwrap_or_default() })
}
