//! The router's background loops, started together: health checks (with
//! proactive failover), replication workers, the reconciler and the
//! recovery of abandoned write intents.

use crate::config::Config;
use crate::db::Db;
use crate::health::HealthView;
use crate::health::checker::Checker;
use crate::metrics::RouterMetrics;
use crate::nodes::Nodes;
use crate::replication::Replicator;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Everything the loops share.
#[derive(Debug, Clone)]
pub struct BackgroundCtx {
    pub config: Arc<Config>,
    pub db: Db,
    pub nodes: Nodes,
    pub health: HealthView,
    pub router_name: String,
    pub metrics: Arc<RouterMetrics>,
    /// When this router process started (its own older intents are abandoned).
    pub started: SystemTime,
}

impl BackgroundCtx {
    pub fn checker(&self) -> Checker {
        Checker {
            config: self.config.clone(),
            db: self.db.clone(),
            nodes: self.nodes.clone(),
            health: self.health.clone(),
            router_name: self.router_name.clone(),
            metrics: Some(self.metrics.clone()),
        }
    }

    pub fn replicator(&self) -> Replicator {
        Replicator {
            config: self.config.clone(),
            db: self.db.clone(),
            nodes: self.nodes.clone(),
            health: self.health.clone(),
            router_name: self.router_name.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// Starts every loop; each stops when `shutdown` turns true (replication
/// workers after their current job).
pub fn spawn(ctx: BackgroundCtx, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let mut handles = vec![tokio::spawn(ctx.checker().run(shutdown.clone()))];
    handles.extend(ctx.replicator().spawn_workers(shutdown.clone()));
    handles.push(tokio::spawn(crate::reconcile::run(
        ctx.config.clone(),
        ctx.db.clone(),
        ctx.nodes.clone(),
        ctx.health.clone(),
        shutdown.clone(),
    )));
    handles.push(tokio::spawn(crate::verifier::run(
        ctx.config.clone(),
        ctx.db.clone(),
        ctx.nodes.clone(),
        ctx.health.clone(),
        shutdown.clone(),
    )));
    handles.push(tokio::spawn(crate::intents::run(ctx.db, ctx.nodes, ctx.router_name, ctx.started, shutdown)));
    handles
}
