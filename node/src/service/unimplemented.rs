//! Services the node does not implement yet. Their generated default
//! methods answer UNIMPLEMENTED; the middleware names the method in the
//! message, as upstream's unimplemented stubs do.

use cairn_proto::gitaly::*;

/// Stands in for every service without handlers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Unimplemented;

impl analysis_service_server::AnalysisService for Unimplemented {}
impl raft_service_server::RaftService for Unimplemented {}
impl partition_service_server::PartitionService for Unimplemented {}
impl praefect_info_service_server::PraefectInfoService for Unimplemented {}
impl ref_transaction_server::RefTransaction for Unimplemented {}
