//! DiffService.

use super::Deps;
use cairn_proto::gitaly::diff_service_server;

/// Handlers of DiffService.
#[derive(Debug, Clone)]
pub(super) struct DiffService {
    #[allow(dead_code, reason = "handlers arrive with the read path")]
    deps: Deps,
}

impl DiffService {
    pub(super) fn new(deps: &Deps) -> Self {
        Self { deps: deps.clone() }
    }
}

#[tonic::async_trait]
impl diff_service_server::DiffService for DiffService {}
