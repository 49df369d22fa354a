//! FetchRemote: fetches from an external URL into the repository (an
//! ad-hoc remote that exists only in the command's configuration).
//! `tags_changed` and 18.x's `repo_changed` come from `git fetch
//! --porcelain`. Inside a router's transaction the reference-transaction
//! hook votes on the (atomic) reference update, and afterwards the node
//! votes on all its references, as upstream does: every voter casts that
//! vote even when the fetch changed nothing, and voters that ended up with
//! different references fail it.

use crate::error::{Error, Result};
use crate::git::{CommandError, GitError, refs, remote};
use crate::service::Deps;
use crate::service::hook::transaction_hooks;
use crate::transaction::{Phase, Transaction, Voting, vote_of};
use cairn_proto::gitaly::{FetchRemoteRequest, FetchRemoteResponse};
use std::time::Duration;
use tonic::metadata::MetadataMap;

pub(super) async fn handle(
    deps: &Deps,
    metadata: &MetadataMap,
    req: FetchRemoteRequest,
    transaction: Option<Transaction>,
    correlation_id: Option<&str>,
) -> Result<FetchRemoteResponse> {
    let repo = deps.storages.repo(req.repository.as_ref())?;
    let repository = req.repository.clone().unwrap_or_default();
    let params = req.remote_params.ok_or_else(|| Error::invalid_argument("missing remote params"))?;
    if params.url.trim().is_empty() {
        return Err(Error::invalid_argument("blank or empty remote URL"));
    }
    let tmp = deps.storages.root(&repo.storage)?.tmp_dir();
    let ssh =
        remote::SshSetup::new(&tmp, &req.ssh_key, &req.known_hosts).map_err(|e| Error::internal("set up ssh", e))?;
    let opts = remote::FetchUrlOptions {
        remote: remote::UrlRemote {
            url: params.url,
            authorization: params.http_authorization_header,
            resolved_address: params.resolved_address,
        },
        refspecs: refspecs(&params.mirror_refmaps),
        force: req.force,
        prune: !req.no_prune,
        no_tags: req.no_tags,
        ssh_command: ssh.command.clone(),
        hooks: transaction_hooks(deps, &repository, &repo, transaction.as_ref(), metadata).await?,
    };
    let fetch = remote::fetch_url(&deps.git, &repo.path, &opts, correlation_id);
    let result = if req.timeout > 0 {
        // Dropping the fetch on timeout kills git.
        tokio::time::timeout(Duration::from_secs(req.timeout.unsigned_abs().into()), fetch)
            .await
            .map_err(|_| Error::internal_msg("fetch remote: context deadline exceeded"))?
    } else {
        fetch.await
    };
    deps.repos.forget(&repo.path);
    drop(ssh);
    let outcome = result.map_err(|e| match e {
        GitError::Command(CommandError::Failed { stderr, code, .. }) => Error::internal_msg(format!(
            "fetch remote: {stderr:?}: exit status {}",
            code.map_or_else(|| "signal".to_owned(), |c| c.to_string())
        )),
        GitError::Invalid(m) => Error::invalid_argument(format!("couldn't get curloptResolve config: {m}")),
        other => Error::internal_msg(format!("fetch remote: {}", crate::error::error_chain(&other))),
    })?;
    if let Some(tx) = transaction {
        vote_on_references(deps, &repo.path, deps.transactions.voting(tx, &repository), correlation_id).await?;
    }
    Ok(FetchRemoteResponse {
        // Without the check, upstream answers true: "maybe".
        tags_changed: !req.check_tags_changed || outcome.tags_changed,
        repo_changed: outcome.repo_changed,
    })
}

/// Upstream's vote on the references after the fetch (phase unknown: it is
/// a vote on a state); a failure is ABORTED.
async fn vote_on_references(
    deps: &Deps,
    repo: &std::path::Path,
    voting: Voting,
    correlation_id: Option<&str>,
) -> Result<()> {
    let fail = |m: String| Error::aborted(format!("failed vote on refs: {m}"));
    let listing = refs::listing(&deps.git, repo, correlation_id)
        .await
        .map_err(|e| fail(format!("cannot compute references vote: {}", crate::error::error_chain(&e))))?;
    voting.vote(vote_of(&listing), Phase::Unknown).await.map_err(|e| fail(crate::error::error_chain(&e)))
}

/// The refspecs `mirror_refmaps` stands for (all references by default).
fn refspecs(refmaps: &[String]) -> Vec<String> {
    if refmaps.is_empty() {
        return vec!["refs/*:refs/*".to_owned()];
    }
    refmaps
        .iter()
        .map(|m| match m.as_str() {
            "all_refs" => "refs/*:refs/*".to_owned(),
            "heads" => "refs/heads/*:refs/heads/*".to_owned(),
            "tags" => "refs/tags/*:refs/tags/*".to_owned(),
            other => other.to_owned(),
        })
        .collect()
}
