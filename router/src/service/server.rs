//! ServerService as the router answers it: each virtual storage looks like
//! one storage of one server to clients, backed by the nodes' answers.

use super::checks;
use crate::config::Config;
use crate::db::Db;
use crate::health::HealthView;
use crate::nodes::{Node, Nodes};
use cairn_proto::gitaly::readiness_check_response::{
    Failure, Ok as Ready, Result as Outcome, failure::Response as Failed,
};
use cairn_proto::gitaly::server_info_response::StorageStatus;
use cairn_proto::gitaly::server_service_client::ServerServiceClient;
use cairn_proto::gitaly::server_service_server::ServerService;
use cairn_proto::gitaly::*;
use sha1::Digest as _;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// How long one node may take to answer a ServerInfo or DiskStatistics.
const NODE_TIMEOUT: Duration = Duration::from_secs(10);

/// Used when ReadinessCheck gives no timeout.
const READINESS_TIMEOUT: Duration = Duration::from_secs(10);

/// Namespace of the virtual storages' filesystem ids (upstream's, so both
/// routers report the same id for the same virtual storage name).
const FILESYSTEM_ID_NAMESPACE: [u8; 16] =
    [0x1e, 0xf1, 0xa8, 0xc6, 0xcf, 0x52, 0x4d, 0x0a, 0x92, 0xa6, 0xca, 0x64, 0x3e, 0x8b, 0xc7, 0xc5];

/// The filesystem id a virtual storage reports: a name-based (version 5)
/// UUID of its name.
pub fn filesystem_id(virtual_storage: &str) -> String {
    let mut hasher = sha1::Sha1::new();
    hasher.update(FILESYSTEM_ID_NAMESPACE);
    hasher.update(virtual_storage.as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// The service's state.
#[derive(Debug, Clone)]
pub struct RouterServerService {
    db: Db,
    nodes: Nodes,
    health: HealthView,
    config: Arc<Config>,
}

impl RouterServerService {
    pub fn new(db: Db, nodes: Nodes, health: HealthView, config: Arc<Config>) -> Self {
        Self { db, nodes, health, config }
    }

    /// The nodes of a virtual storage, locally healthy ones first.
    fn by_health(&self, virtual_storage: &str) -> Vec<Arc<Node>> {
        let mut nodes = self.nodes.of(virtual_storage).to_vec();
        nodes.sort_by_key(|n| !self.health.locally_healthy(virtual_storage, &n.storage));
        nodes
    }

    /// One virtual storage's status, from the first node that answers.
    async fn virtual_storage_info(&self, virtual_storage: &str) -> Option<(StorageStatus, String, String)> {
        let count = self.nodes.of(virtual_storage).len();
        for node in self.by_health(virtual_storage) {
            let answer = async {
                let conn = node.connection().await.ok()?;
                ServerServiceClient::new(conn.channel()).server_info(ServerInfoRequest {}).await.ok()
            };
            let Ok(Some(resp)) = tokio::time::timeout(NODE_TIMEOUT, answer).await else {
                tracing::warn!(virtual_storage, storage = %node.storage, "error getting server info");
                continue;
            };
            let resp = resp.into_inner();
            let Some(mut status) = resp.storage_statuses.into_iter().find(|s| s.storage_name == node.storage) else {
                continue;
            };
            status.storage_name = virtual_storage.to_owned();
            status.replication_factor = count as u32;
            // One node: clients may also reach it directly, so its own id stands.
            if count > 1 {
                status.filesystem_id = filesystem_id(virtual_storage);
            }
            return Some((status, resp.server_version, resp.git_version));
        }
        None
    }
}

/// Runs one readiness check within `timeout`; its failure, if any.
async fn limited(
    check: checks::Check,
    timeout: Duration,
    run: impl Future<Output = Result<(), String>>,
) -> Option<Failed> {
    let result = tokio::time::timeout(timeout, run)
        .await
        .unwrap_or_else(|_| Err(format!("context deadline exceeded after {timeout:?}")));
    result.err().map(|error_message| Failed { name: check.name.to_owned(), error_message })
}

#[tonic::async_trait]
impl ServerService for RouterServerService {
    async fn server_info(&self, _request: Request<ServerInfoRequest>) -> Result<Response<ServerInfoResponse>, Status> {
        let names: Vec<&str> = self.nodes.virtual_storages().collect();
        let answers = futures::future::join_all(names.iter().map(|vs| self.virtual_storage_info(vs))).await;
        let mut response = ServerInfoResponse::default();
        for (status, server_version, git_version) in answers.into_iter().flatten() {
            if response.server_version.is_empty() {
                response.server_version = server_version;
                response.git_version = git_version;
            }
            response.storage_statuses.push(status);
        }
        Ok(Response::new(response))
    }

    async fn disk_statistics(
        &self,
        _request: Request<DiskStatisticsRequest>,
    ) -> Result<Response<DiskStatisticsResponse>, Status> {
        let asks = self.nodes.all().map(|node| async move {
            let answer = async {
                let conn = node.connection().await.ok()?;
                ServerServiceClient::new(conn.channel()).disk_statistics(DiskStatisticsRequest {}).await.ok()
            };
            match tokio::time::timeout(NODE_TIMEOUT, answer).await {
                Ok(Some(resp)) => Ok(resp.into_inner().storage_statuses),
                _ => Err(Status::unknown(format!(
                    "error when requesting disk statistics from internal storage {}",
                    node.storage
                ))),
            }
        });
        let answers = futures::future::try_join_all(asks).await?;
        Ok(Response::new(DiskStatisticsResponse { storage_statuses: answers.into_iter().flatten().collect() }))
    }

    async fn readiness_check(
        &self,
        request: Request<ReadinessCheckRequest>,
    ) -> Result<Response<ReadinessCheckResponse>, Status> {
        let timeout = request
            .into_inner()
            .timeout
            .and_then(|d| Duration::try_from(d).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(READINESS_TIMEOUT);
        let (migrations, nodes, database) = futures::join!(
            limited(checks::MIGRATIONS, timeout, checks::migrations(&self.db)),
            limited(checks::NODE_CONNECTIVITY, timeout, async {
                checks::unhealthy_error(&checks::ping_all(&self.config, timeout).await)
            }),
            limited(checks::DATABASE_READ_WRITE, timeout, async {
                self.db.probe_read_write().await.map_err(|e| e.to_string())
            }),
        );
        let mut failed: Vec<Failed> = [migrations, nodes, database].into_iter().flatten().collect();
        failed.sort_by(|a, b| a.name.cmp(&b.name));
        let result = if failed.is_empty() {
            Outcome::OkResponse(Ready {})
        } else {
            Outcome::FailureResponse(Failure { failed_checks: failed })
        };
        Ok(Response::new(ReadinessCheckResponse { result: Some(result) }))
    }

    /// The nodes share one signing key; any node's answer is the cluster's.
    async fn server_signature(
        &self,
        _request: Request<ServerSignatureRequest>,
    ) -> Result<Response<ServerSignatureResponse>, Status> {
        let mut last = Status::unavailable("no node configured");
        for node in self.nodes.all() {
            let conn = match node.connection().await {
                Ok(c) => c,
                Err(e) => {
                    last = Status::unavailable(e.to_string());
                    continue;
                }
            };
            match ServerServiceClient::new(conn.channel()).server_signature(ServerSignatureRequest {}).await {
                Ok(resp) => return Ok(resp),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn filesystem_id_is_a_name_based_uuid_of_the_virtual_storage() {
        // uuid5(1ef1a8c6-cf52-4d0a-92a6-ca643e8bc7c5, "default"), as upstream derives it.
        assert_eq!(super::filesystem_id("default"), "d9f04423-6b13-5949-9ffa-c06279e0796e");
    }
}
