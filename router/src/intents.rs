//! Recovery of write intents whose router died between proxying a write and
//! recording its outcome (see [`Db::abandoned_intents`]). At start and every
//! [`INTERVAL`] each is settled conservatively:
//!
//! - a creation: the primary is asked whether the replica exists; if so it
//!   is recorded and the other assigned storages get replication jobs, if
//!   not the repository's record is removed. An unreachable primary leaves
//!   the intent for the next pass.
//! - any other write: the primary may have changed, so it is taken as
//!   updated and every other assigned storage as outdated.

use crate::db::repositories::{AbandonedIntent, Outcome};
use crate::db::{Db, DbError};
use crate::nodes::Nodes;
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::{Repository, RepositoryExistsRequest};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// How often abandoned intents are looked for.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// An intent of another router counts as abandoned when it is this old and
/// its router has not checked a node for as long.
pub const STALE: Duration = Duration::from_secs(30);

/// How long the primary may take to say whether a created replica exists.
const EXISTS_TIMEOUT: Duration = Duration::from_secs(10);

/// One pass; returns how many intents were settled.
pub async fn recover_once(db: &Db, nodes: &Nodes, router: &str, started: SystemTime) -> Result<usize, DbError> {
    let mut settled = 0;
    for intent in db.abandoned_intents(router, started, STALE).await? {
        if settle_one(db, nodes, &intent).await? {
            settled += 1;
        }
    }
    Ok(settled)
}

async fn settle_one(db: &Db, nodes: &Nodes, intent: &AbandonedIntent) -> Result<bool, DbError> {
    let Some(state) = db.repository_by_id(intent.repository_id).await? else {
        // Deleted meanwhile; the intent went with it.
        return Ok(false);
    };
    let vs = &state.virtual_storage;
    let configured = nodes.storages(vs);
    let primary = intent.primary.clone();
    let outdated: Vec<String> =
        state.assigned(&configured).into_iter().filter(|s| *s != primary).map(str::to_owned).collect();
    let outcome = if intent.creates {
        let Some(node) = nodes.get(vs, &primary) else {
            tracing::warn!(intent = intent.intent.0, storage = %primary, "abandoned creation on an unconfigured storage; left alone");
            return Ok(false);
        };
        let check = async {
            let conn = node.connection().await.map_err(|e| e.to_string())?;
            let response = RepositoryServiceClient::new(conn.channel())
                .repository_exists(RepositoryExistsRequest {
                    repository: Some(Repository {
                        storage_name: primary.clone(),
                        relative_path: state.replica_path.clone(),
                        ..Default::default()
                    }),
                })
                .await
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
            Ok::<bool, String>(response.into_inner().exists)
        };
        let exists = match tokio::time::timeout(EXISTS_TIMEOUT, check).await {
            Ok(Ok(exists)) => exists,
            Ok(Err(error)) => {
                tracing::warn!(intent = intent.intent.0, storage = %primary, %error, "cannot settle abandoned creation yet");
                return Ok(false);
            }
            Err(_) => {
                tracing::warn!(intent = intent.intent.0, storage = %primary, "cannot settle abandoned creation yet: timed out");
                return Ok(false);
            }
        };
        let created = if exists { vec![primary.clone()] } else { Vec::new() };
        Outcome::Created { created, outdated, source: primary.clone() }
    } else {
        Outcome::Changed { updated: vec![primary.clone()], outdated, source: primary.clone() }
    };
    db.settle(intent.intent, &outcome, &intent.correlation_id).await?;
    tracing::info!(
        intent = intent.intent.0,
        repository_id = intent.repository_id,
        virtual_storage = %vs,
        relative_path = %state.relative_path,
        primary = %primary,
        term = intent.term,
        correlation_id = %intent.correlation_id,
        outcome = ?outcome,
        "settled an abandoned write intent"
    );
    Ok(true)
}

/// Runs a pass at start and every [`INTERVAL`] until `shutdown`.
pub async fn run(db: Db, nodes: Nodes, router: String, started: SystemTime, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(error) = recover_once(&db, &nodes, &router, started).await {
            tracing::error!(%error, "recovering abandoned write intents failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
