//! ServerService: facts about this node and its storages.

mod disk_statistics;
mod readiness_check;
mod server_info;
mod server_signature;

use super::{Deps, respond};
use cairn_proto::gitaly::server_service_server;
use cairn_proto::gitaly::*;
use tonic::{Request, Response, Status};

/// Handlers of ServerService.
#[derive(Debug, Clone)]
pub(super) struct ServerService {
    deps: Deps,
}

impl ServerService {
    pub(super) fn new(deps: &Deps) -> Self {
        Self { deps: deps.clone() }
    }
}

#[tonic::async_trait]
impl server_service_server::ServerService for ServerService {
    async fn server_info(&self, _req: Request<ServerInfoRequest>) -> Result<Response<ServerInfoResponse>, Status> {
        respond(server_info::handle(&self.deps).await)
    }

    async fn disk_statistics(
        &self,
        _req: Request<DiskStatisticsRequest>,
    ) -> Result<Response<DiskStatisticsResponse>, Status> {
        respond(disk_statistics::handle(&self.deps).await)
    }

    async fn readiness_check(
        &self,
        req: Request<ReadinessCheckRequest>,
    ) -> Result<Response<ReadinessCheckResponse>, Status> {
        respond(readiness_check::handle(&self.deps, req.into_inner()).await)
    }

    async fn server_signature(
        &self,
        _req: Request<ServerSignatureRequest>,
    ) -> Result<Response<ServerSignatureResponse>, Status> {
        respond(server_signature::handle(&self.deps).await)
    }
}
