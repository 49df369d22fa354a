//! RefService.

use super::Deps;
use cairn_proto::gitaly::ref_service_server;

/// Handlers of RefService.
#[derive(Debug, Clone)]
pub(super) struct RefService {
    #[allow(dead_code, reason = "handlers arrive with the read path")]
    deps: Deps,
}

impl RefService {
    pub(super) fn new(deps: &Deps) -> Self {
        Self { deps: deps.clone() }
    }
}

#[tonic::async_trait]
impl ref_service_server::RefService for RefService {}
