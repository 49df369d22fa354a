//! RemoveRepository: renamed aside under a lock, then deleted, so nobody
//! sees a half-removed repository. Inside a router's transaction it votes
//! as upstream does: on "pre-remove <relative path>" before the rename and
//! "post-remove <relative path>" after.

use crate::error::{Error, Result};
use crate::git::lifecycle;
use crate::service::Deps;
use crate::transaction::{Phase, Voting, vote_of};
use cairn_proto::gitaly::{RemoveRepositoryRequest, RemoveRepositoryResponse};

pub(super) async fn handle(
    deps: &Deps,
    req: RemoveRepositoryRequest,
    voting: Option<Voting>,
) -> Result<RemoveRepositoryResponse> {
    let repo = deps.storages.repo_for_create(req.repository.as_ref())?;
    let tmp = deps.storages.root(&repo.storage)?.tmp_dir();
    deps.repos.forget(&repo.path);
    let relative = repo.relative_path.clone();
    let vote = |phase: Phase| {
        let (voting, relative) = (voting.clone(), relative.clone());
        async move {
            let Some(voting) = voting else { return Ok(()) };
            let (step, what) = if phase == Phase::Prepared {
                ("pre-remove", "vote on rename")
            } else {
                ("post-remove", "vote on finalizing")
            };
            voting
                .vote(vote_of(format!("{step} {relative}").as_bytes()), phase)
                .await
                .map_err(|e| Error::internal_msg(format!("{what}: {}", crate::error::error_chain(&e))))
        }
    };
    lifecycle::remove(&repo.path, &tmp, vote).await?;
    deps.repos.forget(&repo.path);
    Ok(RemoveRepositoryResponse {})
}
