//! The services the router answers itself instead of proxying:
//! PraefectInfoService ([`info`]), ServerService ([`server`]) and
//! RefTransaction ([`ref_transaction`], also served to nodes over their
//! backchannels), plus the checks shared with `praefect check` ([`checks`]).

pub mod checks;
pub mod info;
pub mod ntp;
pub mod ref_transaction;
pub mod server;

use crate::config::Config;
use crate::db::Db;
use crate::health::HealthView;
use crate::nodes::Nodes;
use crate::transactions::Manager;
use cairn_proto::gitaly::praefect_info_service_server::PraefectInfoServiceServer;
use cairn_proto::gitaly::ref_transaction_server::RefTransactionServer;
use cairn_proto::gitaly::server_service_server::ServerServiceServer;
use ref_transaction::RefTransactionService;
use std::sync::Arc;

/// The router's services, ready to be added to its gRPC server.
pub fn routes(
    db: &Db,
    nodes: &Nodes,
    health: &HealthView,
    config: &Arc<Config>,
    transactions: &Manager,
) -> tonic::service::Routes {
    let info = info::InfoService::new(db.clone(), nodes.clone(), health.clone(), config.clone());
    let server = server::RouterServerService::new(db.clone(), nodes.clone(), health.clone(), config.clone());
    tonic::service::Routes::new(PraefectInfoServiceServer::new(info))
        .add_service(ServerServiceServer::new(server))
        .add_service(RefTransactionServer::new(RefTransactionService::new(transactions.clone(), db.clone())))
}

/// What nodes may call back over their connection's backchannel: votes.
pub fn backchannel_routes(db: &Db, transactions: &Manager) -> tonic::service::Routes {
    tonic::service::Routes::new(RefTransactionServer::new(RefTransactionService::new(transactions.clone(), db.clone())))
}
