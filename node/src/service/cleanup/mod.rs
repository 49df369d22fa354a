//! CleanupService: removing unwanted data from a repository's history:
//! applying an object map from a rewrite done elsewhere (BFG,
//! git-filter-repo) and rewriting history on the node.

mod apply_bfg_object_map_stream;
mod rewrite_history;

use super::{Deps, correlation_id, respond, transaction};
use cairn_proto::gitaly::cleanup_service_server;
use cairn_proto::gitaly::*;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

/// Handlers of CleanupService.
#[derive(Debug, Clone)]
pub(super) struct CleanupService {
    deps: Deps,
}

impl CleanupService {
    pub(super) fn new(deps: &Deps) -> Self {
        Self { deps: deps.clone() }
    }
}

#[tonic::async_trait]
impl cleanup_service_server::CleanupService for CleanupService {
    async fn apply_bfg_object_map_stream(
        &self,
        req: Request<Streaming<ApplyBfgObjectMapStreamRequest>>,
    ) -> Result<Response<BoxStream<ApplyBfgObjectMapStreamResponse>>, Status> {
        let cid = correlation_id(&req);
        let tx = transaction(&req)?;
        let (metadata, _, stream) = req.into_parts();
        respond(apply_bfg_object_map_stream::handle(&self.deps, &metadata, stream, tx, cid.as_deref()).await)
    }

    async fn rewrite_history(
        &self,
        req: Request<Streaming<RewriteHistoryRequest>>,
    ) -> Result<Response<RewriteHistoryResponse>, Status> {
        let cid = correlation_id(&req);
        let tx = transaction(&req)?;
        let (metadata, _, stream) = req.into_parts();
        respond(rewrite_history::handle(&self.deps, &metadata, stream, tx, cid.as_deref()).await)
    }
}
