//! RemoteService: talking to repositories outside the node by URL: whether
//! one exists, its default branch, and pushing to a remote mirror.
//! Request-supplied URLs may only use network transports (see
//! `git::remote`), a deliberate deviation from upstream, which also
//! accepts local paths.

mod find_remote_repository;
mod find_remote_root_ref;
mod update_remote_mirror;

use super::{Deps, correlation_id, respond};
use cairn_proto::gitaly::remote_service_server;
use cairn_proto::gitaly::*;
use tonic::{Request, Response, Status, Streaming};

/// Handlers of RemoteService.
#[derive(Debug, Clone)]
pub(super) struct RemoteService {
    deps: Deps,
}

impl RemoteService {
    pub(super) fn new(deps: &Deps) -> Self {
        Self { deps: deps.clone() }
    }
}

#[tonic::async_trait]
impl remote_service_server::RemoteService for RemoteService {
    async fn update_remote_mirror(
        &self,
        req: Request<Streaming<UpdateRemoteMirrorRequest>>,
    ) -> Result<Response<UpdateRemoteMirrorResponse>, Status> {
        let cid = correlation_id(&req);
        respond(update_remote_mirror::handle(&self.deps, req.into_inner(), cid.as_deref()).await)
    }

    async fn find_remote_repository(
        &self,
        req: Request<FindRemoteRepositoryRequest>,
    ) -> Result<Response<FindRemoteRepositoryResponse>, Status> {
        let cid = correlation_id(&req);
        respond(find_remote_repository::handle(&self.deps, req.into_inner(), cid.as_deref()).await)
    }

    async fn find_remote_root_ref(
        &self,
        req: Request<FindRemoteRootRefRequest>,
    ) -> Result<Response<FindRemoteRootRefResponse>, Status> {
        let cid = correlation_id(&req);
        respond(find_remote_root_ref::handle(&self.deps, req.into_inner(), cid.as_deref()).await)
    }
}
