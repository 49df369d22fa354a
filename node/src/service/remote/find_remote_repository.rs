//! FindRemoteRepository: whether a URL answers as a git repository with a
//! HEAD (`git ls-remote <url> HEAD`). Failing to reach it is `false`, not
//! an error, as upstream.

use crate::error::{Error, Result};
use crate::git::remote;
use crate::service::Deps;
use cairn_proto::gitaly::{FindRemoteRepositoryRequest, FindRemoteRepositoryResponse};

pub(super) async fn handle(
    deps: &Deps,
    req: FindRemoteRepositoryRequest,
    correlation_id: Option<&str>,
) -> Result<FindRemoteRepositoryResponse> {
    if req.remote.is_empty() {
        return Err(Error::invalid_argument("empty remote can't be checked."));
    }
    Ok(FindRemoteRepositoryResponse { exists: remote::remote_exists(&deps.git, &req.remote, correlation_id).await })
}
