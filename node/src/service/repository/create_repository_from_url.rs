//! CreateRepositoryFromURL: a bare (or mirror) clone of an external URL,
//! made in a temporary directory and renamed into place. Credentials in
//! the URL travel as an `Authorization: Basic` header and the `origin`
//! remote is removed, so nothing about the source stays in the config.

use super::create_fork::prefix;
use crate::error::{Error, Result};
use crate::git::{CommandError, GitError, lifecycle, remote};
use crate::service::Deps;
use cairn_proto::gitaly::{CreateRepositoryFromUrlRequest, CreateRepositoryFromUrlResponse};
use std::path::PathBuf;

pub(super) async fn handle(
    deps: &Deps,
    req: CreateRepositoryFromUrlRequest,
    voting: Option<crate::transaction::Voting>,
    correlation_id: Option<&str>,
) -> Result<CreateRepositoryFromUrlResponse> {
    let target = deps.storages.repo_for_create(req.repository.as_ref())?;
    if req.url.is_empty() {
        return Err(Error::invalid_argument("empty Url"));
    }
    let tmp = deps.storages.root(&target.storage)?.tmp_dir();
    let source = remote::UrlRemote {
        url: req.url,
        authorization: req.http_authorization_header,
        resolved_address: req.resolved_address,
    };
    let resolved = source.resolved_address.clone();
    let seed = |staged: PathBuf| async move {
        remote::clone_url(&deps.git, &staged, &source, req.mirror, correlation_id).await.map_err(|e| match e {
            GitError::Invalid(m) => Error::invalid_argument(format!("couldn't get curloptResolve config: {m}")),
            GitError::Command(CommandError::Failed { stderr, code, .. }) => Error::internal_msg(format!(
                "cloning repository: exit status {}",
                code.map_or_else(|| "signal".to_owned(), |c| c.to_string())
            ))
            .with_metadata("stderr", stderr)
            .with_metadata("resolved_address", resolved),
            other => Error::internal_msg(format!("cloning repository: {}", crate::error::error_chain(&other))),
        })?;
        remote::remove_origin(&deps.git, &staged, correlation_id).await.map_err(Error::from)
    };
    lifecycle::create_seeded(&target.path, &tmp, seed, super::creation_vote(voting))
        .await
        .map_err(|e: Error| prefix("creating repository", e))?;
    deps.repos.forget(&target.path);
    Ok(CreateRepositoryFromUrlResponse {})
}
