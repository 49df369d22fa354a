//! Services the node does not implement yet. Their generated default
//! methods answer UNIMPLEMENTED; the middleware names the method in the
//! message, as upstream's unimplemented stubs do.

use cairn_proto::gitaly::*;

/// Stands in for every service without handlers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Unimplemented;

impl analysis_service_server::AnalysisService for Unimplemented {}
impl cleanup_service_server::CleanupService for Unimplemented {}
impl raft_service_server::RaftService for Unimplemented {}
impl hook_service_server::HookService for Unimplemented {}
impl object_pool_service_server::ObjectPoolService for Unimplemented {}
impl partition_service_server::PartitionService for Unimplemented {}
impl praefect_info_service_server::PraefectInfoService for Unimplemented {}
impl remote_service_server::RemoteService for Unimplemented {}
impl smart_http_service_server::SmartHttpService for Unimplemented {}
impl ssh_service_server::SshService for Unimplemented {}
impl ref_transaction_server::RefTransaction for Unimplemented {}
