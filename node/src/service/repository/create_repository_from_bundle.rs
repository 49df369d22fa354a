//! CreateRepositoryFromBundle: a new repository holding exactly the
//! references of a client-sent bundle (`git clone --mirror` of the spooled
//! bundle), built aside and renamed into place; inside a router's
//! transaction it votes like CreateRepository.

use super::bundle_input;
use super::create_fork::prefix;
use crate::error::{Error, Result};
use crate::git::{CommandError, GitError, bundle, lifecycle};
use crate::service::Deps;
use crate::transaction::Transaction;
use cairn_proto::gitaly::{CreateRepositoryFromBundleRequest, CreateRepositoryFromBundleResponse};
use futures::{StreamExt as _, TryStreamExt as _};
use std::path::PathBuf;
use tonic::Streaming;

pub(super) async fn handle(
    deps: &Deps,
    mut stream: Streaming<CreateRepositoryFromBundleRequest>,
    transaction: Option<Transaction>,
    correlation_id: Option<&str>,
) -> Result<CreateRepositoryFromBundleResponse> {
    let first = match stream.next().await {
        Some(Ok(m)) => m,
        Some(Err(e)) => return Err(Error::internal_msg(format!("first request failed: {}", e.message()))),
        None => return Err(Error::internal_msg("first request failed: EOF")),
    };
    let target = deps.storages.repo_for_create(first.repository.as_ref())?;
    let voting = transaction.map(|tx| deps.transactions.voting(tx, &first.repository.clone().unwrap_or_default()));
    let tmp = deps.storages.root(&target.storage)?.tmp_dir();
    let spool_dir = tmp.clone();
    let seed = |staged: PathBuf| async move {
        let rest = stream.map_ok(|m| m.data);
        let spooled = bundle_input::spool(&spool_dir, first.data, rest).await?;
        bundle::clone_bundle(&deps.git, &spooled.path(), &staged, correlation_id).await.map_err(|e| match e {
            GitError::Command(CommandError::Failed { subcommand, code, stderr }) => Error::internal_msg(format!(
                "cloning bundle: waiting for git-{subcommand}: exit status {}",
                code.map_or_else(|| "signal".to_owned(), |c| c.to_string())
            ))
            .with_metadata("stderr", stderr),
            other => Error::internal("cloning bundle", other),
        })
    };
    lifecycle::create_seeded(&target.path, &tmp, seed, super::creation_vote(voting))
        .await
        .map_err(|e: Error| prefix("creating repository", e))?;
    deps.repos.forget(&target.path);
    Ok(CreateRepositoryFromBundleResponse {})
}
