//! FindCommit: the commit a revision names (tags peeled); an empty answer
//! when it names nothing.

use crate::error::{Error, Result};
use crate::git::{commit, refs};
use crate::service::{Deps, convert};
use cairn_proto::gitaly::{FindCommitRequest, FindCommitResponse};

pub(super) async fn handle(deps: &Deps, req: FindCommitRequest) -> Result<FindCommitResponse> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    refs::validate_revision(&req.revision).map_err(Error::invalid_argument)?;
    deps.read_at(path, move |repo, _| {
        let commit = commit::find(repo, &req.revision)?
            .map(|c| if req.trailers { convert::git_commit_with_trailers(&c) } else { convert::git_commit(&c) });
        Ok(FindCommitResponse { commit })
    })
    .await
}
