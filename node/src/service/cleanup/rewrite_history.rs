//! RewriteHistory: removes blobs from the whole history and redacts text
//! in the others, then points every reference at the rewritten history in
//! one atomic update (see `git::rewrite`: fast-export | filter |
//! fast-import into a staging repository, as upstream stages
//! git-filter-repo's output). Removed objects stay in the object database
//! until housekeeping prunes them, as upstream.

use crate::error::{Error, Result};
use crate::git::GitError;
use crate::git::rewrite::{self, Redaction, RewriteError, RewriteSpec};
use crate::service::Deps;
use crate::service::hook::transaction_hooks;
use crate::transaction::Transaction;
use cairn_proto::gitaly::{RewriteHistoryRequest, RewriteHistoryResponse};
use futures::StreamExt as _;
use tonic::Streaming;
use tonic::metadata::MetadataMap;

pub(super) async fn handle(
    deps: &Deps,
    metadata: &MetadataMap,
    mut stream: Streaming<RewriteHistoryRequest>,
    transaction: Option<Transaction>,
    correlation_id: Option<&str>,
) -> Result<RewriteHistoryResponse> {
    let first = match stream.next().await {
        Some(Ok(m)) => m,
        Some(Err(e)) => return Err(Error::internal_msg(format!("receiving initial request: {}", e.message()))),
        None => return Err(Error::internal_msg("receiving initial request: EOF")),
    };
    let repo = deps.storages.repo(first.repository.as_ref())?;
    let repository = first.repository.clone().unwrap_or_default();
    let format = deps.read_at(repo.clone(), |r, _| Ok(r.object_format())).await?;
    let mut spec = RewriteSpec::default();
    let mut add = |msg: RewriteHistoryRequest| -> Result<()> {
        for oid in msg.blobs {
            if !format.is_oid(&oid) {
                return Err(Error::invalid_argument(format!("validating object ID: invalid object ID: {oid:?}"))
                    .with_metadata("oid", oid));
            }
            spec.blobs.insert(oid.to_ascii_lowercase());
        }
        for pattern in msg.redactions {
            // The pattern itself is never echoed: it likely is a secret.
            if pattern.contains(&b'\n') {
                return Err(Error::invalid_argument("redaction pattern contains newline"));
            }
            let redaction = Redaction::parse(&pattern).map_err(|e| match e {
                GitError::Invalid(m) => Error::invalid_argument(m),
                other => Error::internal("parse redaction", other),
            })?;
            spec.redactions.push(redaction);
        }
        Ok(())
    };
    add(RewriteHistoryRequest { repository: None, ..first })?;
    while let Some(msg) = stream.next().await {
        let msg = msg.map_err(|e| Error::internal_msg(format!("receiving next request: {}", e.message())))?;
        if msg.repository.is_some() {
            return Err(Error::invalid_argument("subsequent requests must not contain repository"));
        }
        add(msg)?;
    }
    if spec.blobs.is_empty() && spec.redactions.is_empty() {
        return Err(Error::invalid_argument("no object IDs or text replacements specified"));
    }
    let tmp = deps.storages.root(&repo.storage)?.tmp_dir();
    std::fs::create_dir_all(&tmp).map_err(|e| Error::internal("create staging directory", e))?;
    let staging = tempfile::Builder::new()
        .prefix("rewrite-")
        .tempdir_in(&tmp)
        .map_err(|e| Error::internal("create staging directory", e))?;
    let hooks = transaction_hooks(deps, &repository, &repo, transaction.as_ref(), metadata).await?;
    let result = rewrite::rewrite_history(
        &deps.git,
        &repo.path,
        &staging.path().join("staging.git"),
        format,
        &spec,
        hooks.as_ref(),
        correlation_id,
    )
    .await;
    deps.repos.forget(&repo.path);
    result.map_err(|e| match e {
        RewriteError::Changed => Error::aborted("source repository checksum altered"),
        RewriteError::Git(e) => {
            Error::internal_msg(format!("rewriting repository history: {}", crate::error::error_chain(&e)))
        }
    })?;
    Ok(RewriteHistoryResponse {})
}
