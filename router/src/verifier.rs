//! The background verifier: every replica the database records is checked
//! on its node at least every `background_verification.verification_interval`
//! (and sooner after `praefect verify`). A replica missing on disk loses its
//! record (when `delete_invalid_records`), so the reconciler copies it
//! again and elections no longer count on it — a replaced or wiped volume
//! is repaired without an admin.

use crate::config::Config;
use crate::db::verification::Leased;
use crate::db::{Db, DbError};
use crate::health::HealthView;
use crate::nodes::Nodes;
use cairn_proto::gitaly::{Repository, RepositoryExistsRequest, repository_service_client::RepositoryServiceClient};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Replicas checked per virtual storage per pass.
const BATCH: i64 = 25;
/// Pause between passes (upstream: 2 s).
const TICK: Duration = Duration::from_secs(2);

/// What one pass found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub valid: usize,
    pub invalid: usize,
    pub errors: usize,
}

/// Checks one batch of due replicas on every virtual storage.
pub async fn verify_once(config: &Config, db: &Db, nodes: &Nodes, health: &HealthView) -> Result<Pass, DbError> {
    let interval = config.background_verification.verification_interval.get();
    let delete = config.background_verification.delete_invalid_records;
    let mut pass = Pass::default();
    for vs in nodes.virtual_storages() {
        let healthy: Vec<String> = nodes.storages(vs).into_iter().filter(|s| health.locally_healthy(vs, s)).collect();
        if healthy.is_empty() {
            continue;
        }
        let leased = db.lease_unverified(vs, &healthy, interval, BATCH).await?;
        let checks = leased.iter().map(|l| exists(nodes, vs, l));
        let results = futures::future::join_all(checks).await;
        for (leased, result) in leased.iter().zip(results) {
            let outcome = match result {
                Ok(true) => {
                    pass.valid += 1;
                    Some(true)
                }
                Ok(false) => {
                    pass.invalid += 1;
                    tracing::warn!(
                        virtual_storage = vs,
                        storage = %leased.storage,
                        replica_path = %leased.replica_path,
                        deleted_record = delete,
                        "replica recorded in the database is missing on its node"
                    );
                    Some(false)
                }
                Err(e) => {
                    pass.errors += 1;
                    tracing::debug!(storage = %leased.storage, error = %e, "verification check failed");
                    None
                }
            };
            db.release_verification(leased, outcome, delete).await?;
        }
    }
    Ok(pass)
}

async fn exists(nodes: &Nodes, vs: &str, leased: &Leased) -> Result<bool, tonic::Status> {
    let node = nodes.get(vs, &leased.storage).ok_or_else(|| tonic::Status::internal("storage not configured"))?;
    let conn = node.connection().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let repository = Repository {
        storage_name: leased.storage.clone(),
        relative_path: leased.replica_path.clone(),
        ..Default::default()
    };
    let answer = RepositoryServiceClient::new(conn.channel())
        .repository_exists(RepositoryExistsRequest { repository: Some(repository) })
        .await?;
    Ok(answer.into_inner().exists)
}

/// Runs passes until `shutdown`; disabled when the interval is zero.
pub async fn run(config: Arc<Config>, db: Db, nodes: Nodes, health: HealthView, mut shutdown: watch::Receiver<bool>) {
    if config.background_verification.verification_interval.get().is_zero() {
        return;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if !health.checked() {
            continue;
        }
        if let Err(e) = verify_once(&config, &db, &nodes, &health).await {
            tracing::warn!(error = %e, "background verification pass failed");
        }
    }
}
