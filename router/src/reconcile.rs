//! The reconciler: every `reconciliation.scheduling_interval` (0 disables
//! it) one router per round — the one that gets the advisory lock — queues
//! an `update` for every assigned replica that is behind or missing on a
//! locally healthy storage, and a `delete_replica` for unassigned replicas
//! no longer needed (see [`Db::reconcile`]).

use crate::config::Config;
use crate::db::jobs::Scheduled;
use crate::db::{Db, DbError};
use crate::health::HealthView;
use crate::nodes::Nodes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Advisory lock key of the reconciler (upstream's `advisorylock.Reconcile`).
pub const LOCK_ID: i64 = 1;

/// One round; returns what was scheduled (empty when another router held
/// the lock or nothing was needed). Only configured storages count.
pub async fn reconcile_once(db: &Db, nodes: &Nodes, health: &HealthView) -> Result<Vec<Scheduled>, DbError> {
    let mut configured = Vec::new();
    let mut healthy = Vec::new();
    for vs in nodes.virtual_storages() {
        let storages = nodes.storages(vs);
        let up: Vec<&String> = storages.iter().filter(|s| health.locally_healthy(vs, s)).collect();
        // A copy needs a source and a target.
        if up.len() >= 2 {
            healthy.extend(up.into_iter().map(|s| (vs.to_owned(), s.clone())));
        } else {
            tracing::debug!(virtual_storage = vs, "reconciliation skipped: fewer than two healthy storages");
        }
        configured.extend(storages.iter().map(|s| (vs.to_owned(), s.clone())));
    }
    if healthy.is_empty() {
        return Ok(Vec::new());
    }
    let scheduled = db.reconcile(LOCK_ID, &configured, &healthy).await?;
    for job in &scheduled {
        tracing::info!(
            repository_id = job.repository_id,
            virtual_storage = %job.virtual_storage,
            relative_path = %job.relative_path,
            change = job.change.as_str(),
            source = job.source.as_deref().unwrap_or(""),
            target = %job.target,
            correlation_id = %job.correlation_id,
            "reconciler scheduled a replication job"
        );
    }
    Ok(scheduled)
}

/// Runs a round at start and then every `reconciliation.scheduling_interval`
/// until `shutdown`.
pub async fn run(config: Arc<Config>, db: Db, nodes: Nodes, health: HealthView, mut shutdown: watch::Receiver<bool>) {
    let interval = config.reconciliation.scheduling_interval.get();
    if interval == Duration::ZERO {
        tracing::info!("reconciler disabled");
        return;
    }
    // The first round runs at start, once the health view has been filled.
    let mut wait = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if !health.checked() {
            continue;
        }
        wait = interval;
        if let Err(error) = reconcile_once(&db, &nodes, &health).await {
            tracing::error!(%error, "reconciliation failed");
        }
    }
}
