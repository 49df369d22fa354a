//! SSHUploadPack and SSHUploadPackWithSidechannel: `git upload-pack` (not
//! stateless: the client talks to it for the whole conversation).
//!
//! The bidi RPC carries stdin/stdout/stderr in messages and reports a failed
//! git with a final `exit_status` message before the error. The sidechannel
//! variant carries stdin framed on the sidechannel and answers with
//! sideband pkt-lines (band 1 stdout, band 2 stderr); its response holds the
//! negotiation statistics.
//!
//! With the pack-objects cache on, git packs through the pack-objects hook
//! (see `service::hook::upload_pack_hooks`).

use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tonic::codegen::BoxStream;
use tonic::{Request, Streaming};

use crate::error::{Error, Result};
use crate::git::wire::{self, Boundary, Negotiation};
use crate::service::hook::upload_pack_hooks;
use crate::service::pump::{self, Band, Finished, HUNG_UP, Messages, OnDisconnect, Sideband, Watch};
use crate::service::{Deps, correlation_id};
use cairn_proto::gitaly::{
    ExitStatus, SshUploadPackRequest, SshUploadPackResponse, SshUploadPackWithSidechannelRequest,
    SshUploadPackWithSidechannelResponse,
};

/// Upstream's default `[timeout] upload_pack_negotiation`.
const NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(600);

fn watch(deps: &Deps) -> Watch {
    let timeout = deps.config.timeout.upload_pack_negotiation.map_or(NEGOTIATION_TIMEOUT, |d| d.get());
    Watch { boundary: Boundary::Done, timeout: Some(timeout) }
}

pub(super) async fn handle(
    deps: &Deps,
    req: Request<Streaming<SshUploadPackRequest>>,
) -> Result<BoxStream<SshUploadPackResponse>> {
    let cid = correlation_id(&req);
    let metadata = req.metadata().clone();
    let mut stream = req.into_inner();
    let first = pump::first(&mut stream).await?;
    let path = deps.storages.repo(first.repository.as_ref())?;
    if !first.stdin.is_empty() {
        return Err(Error::invalid_argument("non-empty stdin in first request"));
    }
    let mut opts = pump::wire_options(&first.git_config_options, &first.git_protocol)?;
    let repository = first.repository.clone().unwrap_or_default();
    opts.hooks = upload_pack_hooks(deps, &repository, &path, "ssh", &metadata).await?;
    let git = deps
        .git
        .spawn_duplex(wire::upload_pack(&path.path, false, false, &opts), cid.as_deref())
        .map_err(|e| Error::internal("running upload-pack: start", e))?;
    let (tx, responses) = pump::channel();
    let watch = watch(deps);
    tokio::spawn(async move {
        let mut out = Messages { tx: tx.clone(), make: message };
        let input = pump::input(stream, |m: SshUploadPackRequest| m.stdin);
        let result = pump::run(git, input, &mut out, Some(watch), OnDisconnect::Terminate).await;
        if let Err((code, e)) = outcome(result) {
            if let Some(value) = code {
                let exit_status = Some(ExitStatus { value });
                let _ = tx.send(Ok(SshUploadPackResponse { exit_status, ..Default::default() })).await;
            }
            let _ = tx.send(Err(e.into())).await;
        }
    });
    Ok(responses)
}

fn message(band: Band, data: Vec<u8>) -> Option<SshUploadPackResponse> {
    Some(match band {
        Band::Stdout => SshUploadPackResponse { stdout: data, ..Default::default() },
        Band::Stderr => SshUploadPackResponse { stderr: data, ..Default::default() },
    })
}

/// Maps a finished upload-pack to upstream's answer; a failure carries
/// git's exit code when git itself failed.
fn outcome(
    result: std::result::Result<Finished, pump::PumpError>,
) -> std::result::Result<Negotiation, (Option<i32>, Error)> {
    let finished = result.map_err(|e| (None, e.into_error()))?;
    match finished.exit {
        None => Ok(finished.stats),
        Some(code) if finished.stderr == HUNG_UP => Err((Some(code), Error::canceled("user canceled the request"))),
        Some(code) => {
            Err((Some(code), Error::internal_msg(pump::exit_message("running upload-pack", code, &finished.stderr))))
        }
    }
}

pub(super) async fn with_sidechannel(
    deps: &Deps,
    req: Request<SshUploadPackWithSidechannelRequest>,
) -> Result<SshUploadPackWithSidechannelResponse> {
    let cid = correlation_id(&req);
    let target = pump::sidechannel_target(&req);
    let metadata = req.metadata().clone();
    let req = req.into_inner();
    let path = deps.storages.repo(req.repository.as_ref())?;
    let mut opts = pump::wire_options(&req.git_config_options, &req.git_protocol)?;
    let repository = req.repository.clone().unwrap_or_default();
    opts.hooks = upload_pack_hooks(deps, &repository, &path, "ssh", &metadata).await?;
    let (peer, id) = target.ok_or_else(|| Error::aborted("opening sidechannel: fail to extract yamux session"))?;
    let channel = crate::transport::open_sidechannel(&peer, id)
        .await
        .map_err(|e| Error::aborted("opening sidechannel").with_source(e))?;
    let (reader, writer) = channel.into_split();
    let git = deps
        .git
        .spawn_duplex(wire::upload_pack(&path.path, false, false, &opts), cid.as_deref())
        .map_err(|e| Error::internal("running upload-pack: start", e))?;
    let mut out = Sideband(writer);
    let result = pump::run(git, reader, &mut out, Some(watch(deps)), OnDisconnect::Terminate).await;
    let stats = outcome(result).map_err(|(_, e)| e)?;
    out.0.shutdown().await.map_err(|e| Error::internal("close sidechannel", e))?;
    Ok(SshUploadPackWithSidechannelResponse { packfile_negotiation_statistics: Some(pump::statistics(stats)) })
}
