//! SSHService: the git transfer protocols for gitlab-shell and gitaly-ssh.
//! Each RPC runs one git process and streams its stdin, stdout and stderr
//! (see `service::pump`).

mod receive_pack;
mod upload_archive;
mod upload_pack;

use super::{Deps, respond};
use cairn_proto::gitaly::ssh_service_server;
use cairn_proto::gitaly::*;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

/// Handlers of SSHService.
#[derive(Debug, Clone)]
pub(super) struct SshService {
    deps: Deps,
}

impl SshService {
    pub(super) fn new(deps: &Deps) -> Self {
        Self { deps: deps.clone() }
    }
}

type StreamResult<T> = Result<Response<BoxStream<T>>, Status>;

#[tonic::async_trait]
impl ssh_service_server::SshService for SshService {
    async fn ssh_upload_pack_with_sidechannel(
        &self,
        req: Request<SshUploadPackWithSidechannelRequest>,
    ) -> Result<Response<SshUploadPackWithSidechannelResponse>, Status> {
        respond(upload_pack::with_sidechannel(&self.deps, req).await)
    }

    async fn ssh_upload_pack(
        &self,
        req: Request<Streaming<SshUploadPackRequest>>,
    ) -> StreamResult<SshUploadPackResponse> {
        respond(upload_pack::handle(&self.deps, req).await)
    }

    async fn ssh_receive_pack(
        &self,
        req: Request<Streaming<SshReceivePackRequest>>,
    ) -> StreamResult<SshReceivePackResponse> {
        respond(receive_pack::handle(&self.deps, req).await)
    }

    async fn ssh_upload_archive(
        &self,
        req: Request<Streaming<SshUploadArchiveRequest>>,
    ) -> StreamResult<SshUploadArchiveResponse> {
        respond(upload_archive::handle(&self.deps, req).await)
    }
}
