//! CreateBundle: a bundle of every reference, streamed in 128 KiB messages
//! from `git bundle create` as git writes it.

use crate::error::{Error, Result};
use crate::git::command::Running;
use crate::git::{GitError, bundle};
use crate::service::{CHUNK_SIZE, Deps};
use cairn_proto::gitaly::{CreateBundleRequest, CreateBundleResponse};
use tokio::io::AsyncReadExt as _;
use tonic::codegen::BoxStream;

pub(super) async fn handle(
    deps: &Deps,
    req: CreateBundleRequest,
    correlation_id: Option<&str>,
) -> Result<BoxStream<CreateBundleResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    let running = bundle::create_all(&deps.git, &path.path, &crate::service::quarantine(&path), correlation_id)?;
    Ok(stream_bundle(running, |data| CreateBundleResponse { data }))
}

/// Streams the stdout of a running `git bundle create -` in messages of
/// [`CHUNK_SIZE`]; git refusing an empty bundle becomes upstream's
/// FAILED_PRECONDITION.
pub(super) fn stream_bundle<T: Send + 'static>(
    mut running: Running,
    make: impl Fn(Vec<u8>) -> T + Send + 'static,
) -> BoxStream<T> {
    let (tx, rx) = tokio::sync::mpsc::channel::<tonic::Result<T>>(4);
    tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK_SIZE];
        let mut filled = 0;
        loop {
            match running.stdout().read(&mut buf[filled..]).await {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    let _ = tx.send(Err(Error::internal("read bundle", e).into())).await;
                    return;
                }
            }
            if filled == CHUNK_SIZE {
                let data = std::mem::replace(&mut buf, vec![0u8; CHUNK_SIZE]);
                filled = 0;
                if tx.send(Ok(make(data))).await.is_err() {
                    // The client went away; dropping `running` kills git.
                    return;
                }
            }
        }
        // git's verdict decides whether the last piece is sent.
        match running.wait().await {
            Ok(()) => {
                if filled > 0 {
                    buf.truncate(filled);
                    let _ = tx.send(Ok(make(buf))).await;
                }
            }
            Err(e) => {
                let err = if bundle::is_empty_bundle(&e) {
                    Error::failed_precondition("create bundle: refusing to create empty bundle")
                } else {
                    Error::from(GitError::from(e))
                };
                let _ = tx.send(Err(err.into())).await;
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
