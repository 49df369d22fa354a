//! SSHUploadArchive: `git upload-archive` for `git archive --remote`.
//! Unlike the other SSH RPCs it always ends with an `exit_status` message,
//! `0` on success.

use std::time::Duration;

use tonic::codegen::BoxStream;
use tonic::{Request, Streaming};

use crate::error::{Error, Result};
use crate::git::wire::{self, Boundary};
use crate::service::pump::{self, Band, Messages, OnDisconnect, Watch};
use crate::service::{Deps, correlation_id};
use cairn_proto::gitaly::{ExitStatus, SshUploadArchiveRequest, SshUploadArchiveResponse};

/// Upstream's default `[timeout] upload_archive_negotiation`.
const NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) async fn handle(
    deps: &Deps,
    req: Request<Streaming<SshUploadArchiveRequest>>,
) -> Result<BoxStream<SshUploadArchiveResponse>> {
    let cid = correlation_id(&req);
    let mut stream = req.into_inner();
    let first = pump::first(&mut stream).await?;
    let path = deps.storages.repo(first.repository.as_ref())?;
    if !first.stdin.is_empty() {
        return Err(Error::invalid_argument("non-empty stdin in first request"));
    }
    let git = deps
        .git
        .spawn_duplex(wire::upload_archive(&path.path), cid.as_deref())
        .map_err(|e| Error::internal("running upload-archive: start", e))?;
    let timeout = deps.config.timeout.upload_archive_negotiation.map_or(NEGOTIATION_TIMEOUT, |d| d.get());
    let (tx, responses) = pump::channel();
    tokio::spawn(async move {
        let mut out = Messages { tx: tx.clone(), make: message };
        let input = pump::input(stream, |m: SshUploadArchiveRequest| m.stdin);
        let watch = Watch { boundary: Boundary::Flush, timeout: Some(timeout) };
        let (value, error) = match pump::run(git, input, &mut out, Some(watch), OnDisconnect::Terminate).await {
            Ok(f) => match f.exit {
                None => (Some(0), None),
                Some(code) => (Some(code), Some(Error::internal_msg(pump::exit_message("send", code, &f.stderr)))),
            },
            Err(e) => (None, Some(e.into_error())),
        };
        if let Some(value) = value {
            let exit_status = Some(ExitStatus { value });
            let _ = tx.send(Ok(SshUploadArchiveResponse { exit_status, ..Default::default() })).await;
        }
        if let Some(e) = error {
            let _ = tx.send(Err(e.into())).await;
        }
    });
    Ok(responses)
}

fn message(band: Band, data: Vec<u8>) -> Option<SshUploadArchiveResponse> {
    Some(match band {
        Band::Stdout => SshUploadArchiveResponse { stdout: data, ..Default::default() },
        Band::Stderr => SshUploadArchiveResponse { stderr: data, ..Default::default() },
    })
}
