//! PostUploadPackWithSidechannel and PostUploadPack: `git upload-pack
//! --stateless-rpc` fed by the body of `POST /git-upload-pack`.
//!
//! The sidechannel variant reads the body framed from the sidechannel and
//! writes git's raw stdout back, then answers with the negotiation
//! statistics. PostUploadPack (back in the 18.x protocol for older
//! Workhorse) carries the body and the answer in messages. A failing
//! upload-pack after a `deepen` request is expected (git exits non-zero
//! when a shallow fetch has nothing to send) and not an error. With the
//! pack-objects cache on, git packs through the pack-objects hook.

use tokio::io::AsyncWriteExt as _;
use tonic::codegen::BoxStream;
use tonic::{Request, Streaming};

use crate::error::{Error, Result};
use crate::git::wire::{self, Boundary};
use crate::service::hook::upload_pack_hooks;
use crate::service::pump::{self, Band, Finished, Messages, OnDisconnect, Raw, Watch};
use crate::service::{Deps, correlation_id};
use cairn_proto::gitaly::{
    PostUploadPackRequest, PostUploadPackResponse, PostUploadPackWithSidechannelRequest,
    PostUploadPackWithSidechannelResponse,
};

/// Statistics only; HTTP upload-pack has no negotiation timeout upstream.
const WATCH: Watch = Watch { boundary: Boundary::Done, timeout: None };

fn outcome(result: std::result::Result<Finished, pump::PumpError>) -> Result<wire::Negotiation> {
    let f = result.map_err(pump::PumpError::into_error)?;
    match f.exit {
        None => Ok(f.stats),
        Some(_) if !f.stats.deepen.is_empty() => Ok(f.stats),
        Some(code) => Err(Error::failed_precondition(pump::exit_message("waiting for upload-pack", code, &f.stderr))),
    }
}

pub(super) async fn with_sidechannel(
    deps: &Deps,
    req: Request<PostUploadPackWithSidechannelRequest>,
) -> Result<PostUploadPackWithSidechannelResponse> {
    let cid = correlation_id(&req);
    let target = pump::sidechannel_target(&req);
    let metadata = req.metadata().clone();
    let req = req.into_inner();
    let path = deps.storages.repo(req.repository.as_ref())?;
    let mut opts = pump::wire_options(&req.git_config_options, &req.git_protocol)?;
    let repository = req.repository.clone().unwrap_or_default();
    opts.hooks = upload_pack_hooks(deps, &repository, &path, "http", &metadata).await?;
    let (peer, id) = target.ok_or_else(|| Error::internal_msg("open sidechannel: fail to extract yamux session"))?;
    let channel =
        crate::transport::open_sidechannel(&peer, id).await.map_err(|e| Error::internal("open sidechannel", e))?;
    let (reader, writer) = channel.into_split();
    let git = deps
        .git
        .spawn_duplex(wire::upload_pack(&path.path, true, false, &opts), cid.as_deref())
        .map_err(|e| Error::failed_precondition("spawning upload-pack").with_source(e))?;
    let mut out = Raw(writer);
    let stats = outcome(pump::run(git, reader, &mut out, Some(WATCH), OnDisconnect::Terminate).await)?;
    out.0.shutdown().await.map_err(|e| Error::internal("close sidechannel connection", e))?;
    Ok(PostUploadPackWithSidechannelResponse { packfile_negotiation_statistics: Some(pump::statistics(stats)) })
}

pub(super) async fn handle(
    deps: &Deps,
    req: Request<Streaming<PostUploadPackRequest>>,
) -> Result<BoxStream<PostUploadPackResponse>> {
    let cid = correlation_id(&req);
    let metadata = req.metadata().clone();
    let mut stream = req.into_inner();
    let first = pump::first(&mut stream).await?;
    let path = deps.storages.repo(first.repository.as_ref())?;
    if !first.data.is_empty() {
        return Err(Error::invalid_argument("non-empty Data"));
    }
    let mut opts = pump::wire_options(&first.git_config_options, &first.git_protocol)?;
    let repository = first.repository.clone().unwrap_or_default();
    opts.hooks = upload_pack_hooks(deps, &repository, &path, "http", &metadata).await?;
    let git = deps
        .git
        .spawn_duplex(wire::upload_pack(&path.path, true, false, &opts), cid.as_deref())
        .map_err(|e| Error::failed_precondition("spawning upload-pack").with_source(e))?;
    let (tx, responses) = pump::channel();
    tokio::spawn(async move {
        let mut out = Messages { tx: tx.clone(), make: message };
        let input = pump::input(stream, |m: PostUploadPackRequest| m.data);
        if let Err(e) = outcome(pump::run(git, input, &mut out, Some(WATCH), OnDisconnect::Terminate).await) {
            let _ = tx.send(Err(e.into())).await;
        }
    });
    Ok(responses)
}

fn message(band: Band, data: Vec<u8>) -> Option<PostUploadPackResponse> {
    (band == Band::Stdout).then_some(PostUploadPackResponse { data })
}
