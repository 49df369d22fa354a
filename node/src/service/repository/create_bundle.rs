//! CreateBundle: a bundle of every reference, streamed in 128 KiB messages
//! from `git bundle create` as git writes it.

use crate::error::{Error, Result};
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
    let mut running = bundle::create_all(&deps.git, &path.path, &crate::service::quarantine(&path), correlation_id)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<tonic::Result<CreateBundleResponse>>(4);
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
                if tx.send(Ok(CreateBundleResponse { data })).await.is_err() {
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
                    let _ = tx.send(Ok(CreateBundleResponse { data: buf })).await;
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
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}
