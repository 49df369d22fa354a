//! InfoRefsUploadPack and InfoRefsReceivePack: the answer to
//! `GET info/refs?service=...`: the `# service=git-<svc>` pkt-line and a
//! flush, written by the node as upstream does, then git's advertisement
//! (`--stateless-rpc --advertise-refs`). The receive-pack advertisement runs
//! without hooks.

use tonic::Request;
use tonic::codegen::BoxStream;

use crate::error::{Error, Result};
use crate::git::wire;
use crate::service::pump::{self, Band, Messages, OnDisconnect};
use crate::service::{Deps, correlation_id};
use cairn_proto::gitaly::{InfoRefsRequest, InfoRefsResponse};

/// Which service is advertised.
#[derive(Debug, Clone, Copy)]
pub(super) enum Service {
    UploadPack,
    ReceivePack,
}

pub(super) async fn handle(
    deps: &Deps,
    req: Request<InfoRefsRequest>,
    service: Service,
) -> Result<BoxStream<InfoRefsResponse>> {
    let cid = correlation_id(&req);
    let req = req.into_inner();
    let path = deps.storages.repo(req.repository.as_ref())?;
    let opts = pump::wire_options(&req.git_config_options, &req.git_protocol)?;
    let (name, cmd) = match service {
        Service::UploadPack => ("upload-pack", wire::upload_pack(&path.path, true, true, &opts)),
        Service::ReceivePack => ("receive-pack", wire::receive_pack(&path.path, true, true, &opts)),
    };
    let git = deps.git.spawn_duplex(cmd, cid.as_deref()).map_err(|e| Error::internal("cmd", e))?;
    let (tx, responses) = pump::channel();
    tokio::spawn(async move {
        let announcement = InfoRefsResponse { data: wire::service_announcement(name) };
        if tx.send(Ok(announcement)).await.is_err() {
            return;
        }
        let mut out = Messages { tx: tx.clone(), make: message };
        let error = match pump::run(git, tokio::io::empty(), &mut out, None, OnDisconnect::Terminate).await {
            Ok(f) => match f.exit {
                None => return,
                Some(code) => Error::internal_msg(format!("wait: exit status {code}, stderr: {:?}", f.stderr)),
            },
            Err(e) => e.into_error(),
        };
        let _ = tx.send(Err(error.into())).await;
    });
    Ok(responses)
}

fn message(band: Band, data: Vec<u8>) -> Option<InfoRefsResponse> {
    (band == Band::Stdout).then_some(InfoRefsResponse { data })
}
