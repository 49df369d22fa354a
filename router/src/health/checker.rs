//! The health checker: every `failover.health_check_interval` (timer reset
//! after each round, as upstream) it checks every node with
//! `grpc.health.v1.Health/Check`, records the results locally and in
//! `node_status`, reads the consensus back, and moves the primaries of
//! repositories whose primary lost the consensus (proactive failover;
//! routing also elects lazily on each write).

use crate::config::Config;
use crate::db::Db;
use crate::db::health::Check;
use crate::health::HealthView;
use crate::metrics::RouterMetrics;
use crate::nodes::{Node, Nodes};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A node is healthy iff it answers SERVING within this (upstream's 1 s).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest the database work of one round may take (upstream's 5 s).
pub const DATABASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Repositories re-elected per virtual storage and round, so a failed node
/// holding many primaries does not stall the checks.
pub const FAILOVER_BATCH: i64 = 1000;

/// What one round needs.
#[derive(Debug, Clone)]
pub struct Checker {
    pub config: Arc<Config>,
    pub db: Db,
    pub nodes: Nodes,
    pub health: HealthView,
    pub router_name: String,
    pub metrics: Option<Arc<RouterMetrics>>,
}

/// Whether `node` answers SERVING within [`CHECK_TIMEOUT`]. Dial failures
/// and timeouts count as unhealthy.
pub async fn check_node(node: &Node) -> bool {
    let attempt = async {
        let conn = node.connection().await.map_err(|e| e.to_string())?;
        let response = HealthClient::new(conn.channel())
            .check(HealthCheckRequest { service: String::new() })
            .await
            .map_err(|s| s.to_string())?;
        Ok::<bool, String>(response.into_inner().status == ServingStatus::Serving as i32)
    };
    match tokio::time::timeout(CHECK_TIMEOUT, attempt).await {
        Ok(Ok(serving)) => serving,
        Ok(Err(error)) => {
            tracing::debug!(virtual_storage = %node.virtual_storage, storage = %node.storage, %error, "health check failed");
            false
        }
        Err(_) => {
            tracing::debug!(virtual_storage = %node.virtual_storage, storage = %node.storage, "health check timed out");
            false
        }
    }
}

impl Checker {
    /// One round: check, record, read the consensus, fail over.
    pub async fn check_round(&self) {
        let checks: Vec<Check> = futures::future::join_all(self.nodes.all().map(|node| async move {
            Check {
                virtual_storage: node.virtual_storage.clone(),
                storage: node.storage.clone(),
                healthy: check_node(node).await,
            }
        }))
        .await;
        let mut recovered = Vec::new();
        for c in &checks {
            if self.health.checked() && self.health.locally_healthy(&c.virtual_storage, &c.storage) != c.healthy {
                tracing::info!(virtual_storage = %c.virtual_storage, storage = %c.storage, healthy = c.healthy, "node health changed");
                if c.healthy {
                    recovered.push(c);
                }
            }
            self.health.set_local(&c.virtual_storage, &c.storage, c.healthy);
            if let Some(m) = &self.metrics {
                m.set_node_healthy(&c.virtual_storage, &c.storage, c.healthy);
            }
        }

        let consensus = match tokio::time::timeout(DATABASE_TIMEOUT, self.record_and_read(&checks)).await {
            Ok(Ok(c)) => Some(c),
            Ok(Err(error)) => {
                tracing::error!(%error, "recording health checks failed; routing on this router's own checks");
                None
            }
            Err(_) => {
                tracing::error!("recording health checks timed out; routing on this router's own checks");
                None
            }
        };
        let database_ok = consensus.is_some();
        // A node that is back should catch up now, not when the backoff its
        // failed jobs accumulated while it was down runs out.
        for c in recovered {
            match self.db.rearm_jobs(&c.virtual_storage, &c.storage).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(virtual_storage = %c.virtual_storage, storage = %c.storage, jobs = n, "node is back; replication jobs to it re-armed")
                }
                Err(error) => tracing::warn!(%error, "could not re-arm replication jobs"),
            }
        }
        self.health.finish_round(consensus);
        if database_ok {
            self.fail_over().await;
        }
    }

    async fn record_and_read(
        &self,
        checks: &[Check],
    ) -> Result<BTreeMap<String, BTreeSet<String>>, crate::db::DbError> {
        self.db.record_checks(&self.router_name, checks).await?;
        let forgotten = self.db.forget_stale_checks().await?;
        if forgotten > 0 {
            tracing::info!(rows = forgotten, "deleted health checks of routers that stopped");
        }
        let mut consensus = self.db.consensus(self.config.failover.health_window()).await?;
        // Only configured storages count; rows of removed nodes linger an hour.
        consensus.retain(|vs, storages| {
            let configured = self.nodes.storages(vs);
            storages.retain(|s| configured.contains(s));
            !configured.is_empty()
        });
        Ok(consensus)
    }

    /// Elects new primaries for repositories whose primary is not healthy by
    /// consensus, so the term moves before the next write arrives.
    async fn fail_over(&self) {
        for vs in self.nodes.virtual_storages() {
            let configured = self.nodes.storages(vs);
            let healthy: Vec<String> = self.health.consensus(vs).into_iter().collect();
            let failed: Vec<String> = configured.iter().filter(|s| !healthy.contains(s)).cloned().collect();
            if healthy.is_empty() || failed.is_empty() {
                continue;
            }
            let ids = match self.db.repositories_to_fail_over(vs, &failed, &healthy, FAILOVER_BATCH).await {
                Ok(ids) => ids,
                Err(error) => {
                    tracing::error!(virtual_storage = vs, %error, "listing repositories to fail over failed");
                    continue;
                }
            };
            for id in ids {
                let state = match self.db.repository_by_id(id).await {
                    Ok(Some(state)) => state,
                    Ok(None) => continue,
                    Err(error) => {
                        tracing::error!(virtual_storage = vs, repository_id = id, %error, "failover read failed");
                        break;
                    }
                };
                let previous = state.primary.clone();
                match crate::election::ensure_primary(&self.db, &self.health, &configured, state).await {
                    Ok((primary, term)) if primary != previous => tracing::info!(
                        virtual_storage = vs,
                        repository_id = id,
                        previous = previous.as_deref().unwrap_or(""),
                        primary = primary.as_deref().unwrap_or(""),
                        term,
                        "failed over primary proactively"
                    ),
                    Ok(_) => {}
                    Err(error) => {
                        tracing::error!(virtual_storage = vs, repository_id = id, %error, "failover election failed");
                        break;
                    }
                }
            }
        }
    }

    /// Runs rounds until `shutdown` turns true. The interval is measured
    /// from the end of a round to the start of the next.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let interval = self.config.failover.health_check_interval();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            self.check_round().await;
        }
    }
}

/// One round of checks (the server runs it once before serving).
pub async fn check_round(checker: &Checker) {
    checker.check_round().await;
}

/// The checker loop.
pub async fn run(checker: Checker, shutdown: tokio::sync::watch::Receiver<bool>) {
    checker.run(shutdown).await;
}
