//! DisconnectGitAlternates: makes a pool member stand alone again. The
//! pool's object files are hard-linked into the member, the alternates
//! file is moved aside and connectivity checked with `git rev-list
//! --objects --all`; if anything is missing the file is put back.

use crate::error::{Error, Result};
use crate::git::objectpool::{self, DisconnectError};
use crate::service::Deps;
use crate::transaction::Voting;
use cairn_proto::gitaly::{DisconnectGitAlternatesRequest, DisconnectGitAlternatesResponse};

pub(super) async fn handle(
    deps: &Deps,
    req: DisconnectGitAlternatesRequest,
    voting: Option<Voting>,
    correlation_id: Option<&str>,
) -> Result<DisconnectGitAlternatesResponse> {
    let member = deps.storages.repo(req.repository.as_ref())?;
    objectpool::disconnect(&deps.git, &member.path, super::vote_with(voting), correlation_id).await?;
    deps.repos.forget(&member.path);
    Ok(DisconnectGitAlternatesResponse {})
}

/// Upstream answers every failure of the disconnection as INTERNAL.
impl From<DisconnectError> for Error {
    fn from(e: DisconnectError) -> Self {
        Error::internal_msg(crate::error::error_chain(&e))
    }
}
