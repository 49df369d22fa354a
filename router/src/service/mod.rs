//! The services the router answers itself instead of proxying:
//! PraefectInfoService ([`info`]) and ServerService ([`server`]), plus the
//! checks they share with `praefect check` ([`checks`]).

pub mod checks;
pub mod info;
pub mod ntp;
pub mod server;

use crate::config::Config;
use crate::db::Db;
use crate::health::HealthView;
use crate::nodes::Nodes;
use cairn_proto::gitaly::praefect_info_service_server::PraefectInfoServiceServer;
use cairn_proto::gitaly::server_service_server::ServerServiceServer;
use std::sync::Arc;

/// Both services, ready to be added to the router's gRPC server.
pub fn routes(db: &Db, nodes: &Nodes, health: &HealthView, config: &Arc<Config>) -> tonic::service::Routes {
    let info = info::InfoService::new(db.clone(), nodes.clone(), health.clone(), config.clone());
    let server = server::RouterServerService::new(db.clone(), nodes.clone(), health.clone(), config.clone());
    tonic::service::Routes::new(PraefectInfoServiceServer::new(info)).add_service(ServerServiceServer::new(server))
}
