//! SetCustomHooks / GetCustomHooks (and their deprecated twins
//! RestoreCustomHooks / BackupCustomHooks): the `custom_hooks` directory as
//! a tar archive.

use crate::error::{Error, Result};
use crate::git::custom_hooks;
use crate::service::{Deps, blocking, chunked};
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
    blocking(move || {
        custom_hooks::replace(&repo.path, &tmp, &archive).map_err(|e| match e {
            crate::git::GitError::Invalid(m) => Error::invalid_argument(m),
            other => Error::internal_msg(format!("setting custom hooks: {}", crate::error::error_chain(&other))),
        })
    })
    .await
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
