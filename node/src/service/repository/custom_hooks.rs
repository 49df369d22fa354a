//! SetCustomHooks / GetCustomHooks (and their deprecated twins
//! RestoreCustomHooks / BackupCustomHooks): the `custom_hooks` directory as
//! a tar archive. Inside a router's transaction setting hooks votes, as
//! upstream does: prepared on the extracted hooks before they are swapped
//! in, committed on the installed hooks after.

use crate::error::{Error, Result};
use crate::git::custom_hooks;
use crate::service::{Deps, blocking, chunked};
use crate::transaction::{Phase, Transaction, Vote, Voting};
use cairn_proto::gitaly::Repository;
use futures::{Stream, StreamExt as _};
use tonic::codegen::BoxStream;

/// Largest archive accepted; hooks are scripts, not payloads.
const MAX_ARCHIVE: usize = 64 * 1024 * 1024;

/// Reads the archive from a stream of (repository, data) messages whose
/// first message names the repository, then swaps the hooks in.
pub(super) async fn set(
    deps: &Deps,
    stream: impl Stream<Item = Result<(Option<Repository>, Vec<u8>), tonic::Status>>,
    transaction: Option<Transaction>,
) -> Result<()> {
    let mut stream = std::pin::pin!(stream);
    let (repository, first) = match stream.next().await {
        Some(Ok(m)) => m,
        Some(Err(e)) => return Err(Error::internal_msg(format!("getting first request: {}", e.message()))),
        None => return Err(Error::invalid_argument("empty request stream")),
    };
    let repo = deps.storages.repo(repository.as_ref())?;
    let mut archive = first;
    while let Some(msg) = stream.next().await {
        let (_, data) = msg.map_err(|e| Error::internal_msg(format!("receiving hooks archive: {}", e.message())))?;
        if archive.len() + data.len() > MAX_ARCHIVE {
            return Err(Error::invalid_argument("custom hooks archive is larger than 64 MiB"));
        }
        archive.extend_from_slice(&data);
    }
    let tmp = deps.storages.root(&repo.storage)?.tmp_dir();
    let voting = transaction.map(|tx| deps.transactions.voting(tx, &repository.unwrap_or_default()));
    let fail = |e: crate::git::GitError| match e {
        crate::git::GitError::Invalid(m) => Error::invalid_argument(m),
        other => Error::internal_msg(format!("setting custom hooks: {}", crate::error::error_chain(&other))),
    };
    let staged = blocking(move || {
        let staged = custom_hooks::stage(&repo.path, &tmp, &archive).map_err(fail)?;
        let vote = staged.vote().map_err(fail)?;
        Ok((staged, vote))
    })
    .await?;
    let (staged, vote) = staged;
    cast(voting.as_ref(), vote, Phase::Prepared).await?;
    let (staged, vote) = blocking(move || {
        let vote = staged.install().map_err(fail)?;
        Ok((staged, vote))
    })
    .await?;
    cast(voting.as_ref(), vote, Phase::Committed).await?;
    // The hooks stay locked until the committed vote went through.
    drop(staged);
    Ok(())
}

/// Casts a vote on the hooks inside a transaction (upstream: INTERNAL).
async fn cast(voting: Option<&Voting>, vote: Vote, phase: Phase) -> Result<()> {
    let Some(voting) = voting else { return Ok(()) };
    let step = if phase == Phase::Prepared { "casting prepared vote" } else { "casting committed vote" };
    voting
        .vote(vote, phase)
        .await
        .map_err(|e| Error::internal_msg(format!("setting custom hooks: {step}: {}", crate::error::error_chain(&e))))
}

pub(super) async fn get<T: Send + 'static>(
    deps: &Deps,
    repository: Option<Repository>,
    make: impl Fn(Vec<u8>) -> T + Send + 'static,
) -> Result<BoxStream<T>> {
    let path = deps.storages.repo(repository.as_ref())?.path;
    let data = blocking(move || {
        custom_hooks::archive(&path)
            .map_err(|e| Error::internal_msg(format!("reading custom hooks: {}", crate::error::error_chain(&e))))
    })
    .await?;
    Ok(chunked(data, make))
}
