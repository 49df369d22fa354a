//! SmartHTTPService: git's smart HTTP protocol for Workhorse and the
//! `gitaly-http` front door. Everything is stateless: the ref advertisement
//! and each POST are separate git processes (`--stateless-rpc`).

mod info_refs;
mod receive_pack;
mod upload_pack;

use super::{Deps, respond};
use cairn_proto::gitaly::smart_http_service_server;
use cairn_proto::gitaly::*;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

/// Handlers of SmartHTTPService.
#[derive(Debug, Clone)]
pub(super) struct SmartHttpService {
    deps: Deps,
}

impl SmartHttpService {
    pub(super) fn new(deps: &Deps) -> Self {
        Self { deps: deps.clone() }
    }
}

type StreamResult<T> = Result<Response<BoxStream<T>>, Status>;

#[tonic::async_trait]
impl smart_http_service_server::SmartHttpService for SmartHttpService {
    async fn info_refs_upload_pack(&self, req: Request<InfoRefsRequest>) -> StreamResult<InfoRefsResponse> {
        respond(info_refs::handle(&self.deps, req, info_refs::Service::UploadPack).await)
    }

    async fn info_refs_receive_pack(&self, req: Request<InfoRefsRequest>) -> StreamResult<InfoRefsResponse> {
        respond(info_refs::handle(&self.deps, req, info_refs::Service::ReceivePack).await)
    }

    async fn post_upload_pack_with_sidechannel(
        &self,
        req: Request<PostUploadPackWithSidechannelRequest>,
    ) -> Result<Response<PostUploadPackWithSidechannelResponse>, Status> {
        respond(upload_pack::with_sidechannel(&self.deps, req).await)
    }

    async fn post_upload_pack(
        &self,
        req: Request<Streaming<PostUploadPackRequest>>,
    ) -> StreamResult<PostUploadPackResponse> {
        respond(upload_pack::handle(&self.deps, req).await)
    }

    async fn post_receive_pack(
        &self,
        req: Request<Streaming<PostReceivePackRequest>>,
    ) -> StreamResult<PostReceivePackResponse> {
        respond(receive_pack::handle(&self.deps, req).await)
    }
}
