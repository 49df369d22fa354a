//! BlobService.

use super::Deps;
use cairn_proto::gitaly::blob_service_server;

/// Handlers of BlobService.
#[derive(Debug, Clone)]
pub(super) struct BlobService {
    #[allow(dead_code, reason = "handlers arrive with the read path")]
    deps: Deps,
}

impl BlobService {
    pub(super) fn new(deps: &Deps) -> Self {
        Self { deps: deps.clone() }
    }
}

#[tonic::async_trait]
impl blob_service_server::BlobService for BlobService {}
