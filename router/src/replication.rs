//! Replication workers: per virtual storage,
//! `replication.parallel_storage_processing_workers` tasks take turns over
//! its target storages, lease a batch of that target's jobs (see
//! [`crate::db::jobs`]) and run them one after the other.
//!
//! An `update` copies the repository onto the target with the target
//! node's ReplicateRepository, from an up-to-date, locally healthy replica,
//! then records on the target the generation the source had before the
//! copy started: the copy holds at least that. A `delete_replica` removes
//! the target's replica and its record.

use crate::config::Config;
use crate::db::jobs::{Ack, Change, Job};
use crate::db::{Db, DbError};
use crate::health::HealthView;
use crate::metrics::{ChangeTypeLabels, JobLabels, RouterMetrics};
use crate::nodes::Nodes;
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::{RemoveRepositoryRequest, ReplicateRepositoryRequest, Repository};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// How often a running job's lease is extended.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// First and longest wait before looking at a target again after it had
/// no jobs or was unhealthy (upstream's 1 s doubling to 5 s).
const IDLE_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(5));

/// What the workers need.
#[derive(Debug, Clone)]
pub struct Replicator {
    pub config: Arc<Config>,
    pub db: Db,
    pub nodes: Nodes,
    pub health: HealthView,
    pub router_name: String,
    pub metrics: Arc<RouterMetrics>,
}

/// Why one job did not complete.
#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Other(String),
}

/// What executing a job did, when it did not fail.
#[derive(Debug, PartialEq, Eq)]
enum Executed {
    /// The change is made; `behind` when the target still lags.
    Done { behind: bool },
    /// Nothing to do any more (repository gone, or deletion no longer wanted).
    Dropped(&'static str),
}

/// Metadata value telling `node` how to reach `source` (base64 JSON
/// `{storage: {"address": ..., "token": ...}}`, as upstream sends it).
fn gitaly_servers(storage: &str, info: serde_json::Value) -> String {
    use base64::Engine as _;
    let map = serde_json::json!({ storage: info });
    base64::engine::general_purpose::STANDARD.encode(map.to_string())
}

/// The job's correlation id as request metadata, when it has a usable one.
fn correlation_header(id: &str) -> Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>> {
    if id.is_empty() { None } else { id.parse().ok() }
}

fn grpc_error(what: &str, status: &tonic::Status) -> JobError {
    JobError::Other(format!("{what}: {:?}: {}", status.code(), status.message()))
}

impl Replicator {
    /// Leases and runs one batch of `target`'s jobs; returns how many ran.
    pub async fn process_batch(&self, virtual_storage: &str, target: &str) -> Result<usize, DbError> {
        let batch = i64::from(self.config.replication.batch_size.max(1));
        let jobs = self.db.dequeue(&self.router_name, virtual_storage, target, batch).await?;
        let n = jobs.len();
        for job in jobs {
            self.run_job(job).await;
        }
        Ok(n)
    }

    /// Runs one leased job with a heartbeat, and acknowledges it.
    async fn run_job(&self, job: Job) {
        let change = job.change.as_str();
        self.metrics.replication_delay.get_or_create(&ChangeTypeLabels { r#type: change }).observe(job.delay_seconds);
        let in_flight = JobLabels {
            virtual_storage: job.virtual_storage.clone(),
            gitaly_storage: job.target.clone(),
            change_type: change,
        };
        self.metrics.replication_jobs.get_or_create(&in_flight).inc();
        let heartbeat = {
            let (db, router, job) = (self.db.clone(), self.router_name.clone(), job.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(HEARTBEAT).await;
                    match db.heartbeat(&router, &job).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(job_id = job.id, "replication job lease lost");
                            return;
                        }
                        Err(error) => tracing::warn!(job_id = job.id, %error, "replication job heartbeat failed"),
                    }
                }
            })
        };
        let started = Instant::now();
        let result = self.execute(&job).await;
        heartbeat.abort();
        self.metrics
            .replication_latency
            .get_or_create(&ChangeTypeLabels { r#type: change })
            .observe(started.elapsed().as_secs_f64());
        self.metrics.replication_jobs.get_or_create(&in_flight).dec();

        let ack = match result {
            Ok(Executed::Done { behind }) => {
                tracing::info!(
                    job_id = job.id,
                    repository_id = job.repository_id,
                    virtual_storage = %job.virtual_storage,
                    target = %job.target,
                    change,
                    correlation_id = %job.correlation_id,
                    "replication job done"
                );
                Ack::Done { behind }
            }
            Ok(Executed::Dropped(why)) => {
                tracing::info!(job_id = job.id, repository_id = job.repository_id, target = %job.target, change, why, "replication job dropped");
                Ack::Done { behind: false }
            }
            Err(error) => {
                let error = error.to_string();
                if job.attempts == 1 || job.attempts % 10 == 0 {
                    tracing::warn!(
                        job_id = job.id,
                        repository_id = job.repository_id,
                        virtual_storage = %job.virtual_storage,
                        target = %job.target,
                        change,
                        attempts = job.attempts,
                        correlation_id = %job.correlation_id,
                        %error,
                        "replication job failed; will retry"
                    );
                } else {
                    tracing::debug!(job_id = job.id, attempts = job.attempts, %error, "replication job failed again");
                }
                Ack::Failed(error)
            }
        };
        match self.db.acknowledge(&self.router_name, &job, &ack).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(job_id = job.id, "replication job was taken over before it was acknowledged"),
            // The lease runs out and another dequeue runs the job again.
            Err(error) => tracing::error!(job_id = job.id, %error, "acknowledging replication job failed"),
        }
    }

    async fn execute(&self, job: &Job) -> Result<Executed, JobError> {
        match job.change {
            Change::Update => self.update(job).await,
            Change::DeleteReplica => self.delete_replica(job).await,
        }
    }

    async fn update(&self, job: &Job) -> Result<Executed, JobError> {
        let Some(state) = self.db.repository_by_id(job.repository_id).await? else {
            return Ok(Executed::Dropped("repository no longer exists"));
        };
        let vs = &job.virtual_storage;
        let target = &job.target;
        if state.generation_of(target) >= state.generation {
            return Ok(Executed::Done { behind: false });
        }
        let configured = self.nodes.storages(vs);
        let usable = |s: &str| {
            s != target
                && state.is_up_to_date(s)
                && configured.iter().any(|c| c == s)
                && self.health.locally_healthy(vs, s)
        };
        let source = match job.source.as_deref().filter(|s| usable(s)) {
            Some(s) => s.to_owned(),
            None => state
                .up_to_date()
                .find(|s| usable(s))
                .map(str::to_owned)
                .ok_or_else(|| JobError::Other("no healthy up-to-date replica to replicate from".to_owned()))?,
        };
        // Read before copying: the copy then holds at least this generation.
        let source_generation = state.generation_of(&source);

        let target_node =
            self.nodes.get(vs, target).ok_or_else(|| JobError::Other(format!("target {target} is not configured")))?;
        let source_node =
            self.nodes.get(vs, &source).ok_or_else(|| JobError::Other(format!("source {source} is not configured")))?;
        let conn = target_node.connection().await.map_err(|e| JobError::Other(format!("dial target: {e}")))?;
        let mut request = tonic::Request::new(ReplicateRepositoryRequest {
            repository: Some(Repository {
                storage_name: target.clone(),
                relative_path: state.replica_path.clone(),
                ..Default::default()
            }),
            source: Some(Repository {
                storage_name: source.clone(),
                relative_path: state.replica_path.clone(),
                ..Default::default()
            }),
        });
        let servers = gitaly_servers(&source, source_node.server_info());
        let metadata = request.metadata_mut();
        metadata.insert("gitaly-servers", servers.parse().map_err(|_| JobError::Other("bad metadata".to_owned()))?);
        if let Some(v) = correlation_header(&job.correlation_id) {
            metadata.insert("x-gitlab-correlation-id", v);
        }
        RepositoryServiceClient::new(conn.channel())
            .replicate_repository(request)
            .await
            .map_err(|s| grpc_error("replicate repository", &s))?;

        self.db.set_replica_generation(job.repository_id, target, source_generation).await?;
        let behind = match self.db.repository_by_id(job.repository_id).await? {
            Some(after) => after.generation_of(target) < after.generation,
            None => false,
        };
        Ok(Executed::Done { behind })
    }

    async fn delete_replica(&self, job: &Job) -> Result<Executed, JobError> {
        let Some(state) = self.db.repository_by_id(job.repository_id).await? else {
            return Ok(Executed::Dropped("repository no longer exists"));
        };
        let vs = &job.virtual_storage;
        let target = &job.target;
        // Assignments may have changed since the job was queued.
        if state.is_assigned(target) {
            return Ok(Executed::Dropped("replica is assigned again"));
        }
        let node =
            self.nodes.get(vs, target).ok_or_else(|| JobError::Other(format!("target {target} is not configured")))?;
        let conn = node.connection().await.map_err(|e| JobError::Other(format!("dial target: {e}")))?;
        let mut request = tonic::Request::new(RemoveRepositoryRequest {
            repository: Some(Repository {
                storage_name: target.clone(),
                relative_path: state.replica_path.clone(),
                ..Default::default()
            }),
        });
        if let Some(v) = correlation_header(&job.correlation_id) {
            request.metadata_mut().insert("x-gitlab-correlation-id", v);
        }
        match RepositoryServiceClient::new(conn.channel()).remove_repository(request).await {
            Ok(_) => {}
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => return Err(grpc_error("remove repository", &s)),
        }
        self.db.delete_replica(job.repository_id, target).await?;
        Ok(Executed::Done { behind: false })
    }
}

/// One target storage in a virtual storage's rotation.
#[derive(Debug)]
struct Slot {
    target: String,
    ready_at: Instant,
    backoff: Duration,
}

/// The targets of one virtual storage, shared by its workers.
#[derive(Debug, Default)]
struct Rotation {
    slots: Mutex<Vec<Slot>>,
    changed: Notify,
}

impl Rotation {
    /// Takes the target that is due; otherwise how long until one is.
    fn take(&self) -> Result<Slot, Option<Duration>> {
        let mut slots = self.slots.lock().expect("rotation lock is never poisoned");
        let now = Instant::now();
        let Some((i, _)) = slots.iter().enumerate().min_by_key(|(_, s)| s.ready_at) else { return Err(None) };
        if slots[i].ready_at <= now { Ok(slots.swap_remove(i)) } else { Err(Some(slots[i].ready_at - now)) }
    }

    fn put(&self, slot: Slot) {
        self.slots.lock().expect("rotation lock is never poisoned").push(slot);
        self.changed.notify_waiters();
    }
}

impl Replicator {
    async fn worker(self, virtual_storage: String, rotation: Arc<Rotation>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let changed = rotation.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let mut slot = match rotation.take() {
                Ok(slot) => slot,
                Err(wait) => {
                    let wait = wait.unwrap_or(IDLE_BACKOFF.1);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = &mut changed => {}
                        r = shutdown.changed() => if r.is_err() { return },
                    }
                    continue;
                }
            };
            let had_jobs = if self.health.locally_healthy(&virtual_storage, &slot.target) {
                match self.process_batch(&virtual_storage, &slot.target).await {
                    Ok(n) => n > 0,
                    Err(error) => {
                        tracing::error!(virtual_storage = %virtual_storage, target = %slot.target, %error, "dequeueing replication jobs failed");
                        false
                    }
                }
            } else {
                false
            };
            if had_jobs {
                slot.ready_at = Instant::now();
                slot.backoff = IDLE_BACKOFF.0;
            } else {
                slot.ready_at = Instant::now() + slot.backoff;
                slot.backoff = (slot.backoff * 2).min(IDLE_BACKOFF.1);
            }
            rotation.put(slot);
        }
    }

    /// Starts the workers of every virtual storage; they stop (after their
    /// current job) when `shutdown` turns true.
    pub fn spawn_workers(&self, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        let workers = self.config.replication.parallel_storage_processing_workers.max(1);
        let mut handles = Vec::new();
        for vs in self.nodes.virtual_storages() {
            let now = Instant::now();
            let rotation = Arc::new(Rotation {
                slots: Mutex::new(
                    self.nodes
                        .storages(vs)
                        .into_iter()
                        .map(|target| Slot { target, ready_at: now, backoff: IDLE_BACKOFF.0 })
                        .collect(),
                ),
                changed: Notify::new(),
            });
            for _ in 0..workers {
                handles.push(tokio::spawn(self.clone().worker(vs.to_owned(), rotation.clone(), shutdown.clone())));
            }
        }
        handles
    }
}

/// Runs the workers until `shutdown` turns true.
pub async fn run(replicator: Replicator, shutdown: watch::Receiver<bool>) {
    for handle in replicator.spawn_workers(shutdown) {
        let _ = handle.await;
    }
}

/// Starts the workers (see [`Replicator::spawn_workers`]).
pub fn spawn_workers(replicator: &Replicator, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    replicator.spawn_workers(shutdown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitaly_servers_is_base64_json_keyed_by_storage() {
        use base64::Engine as _;
        let value = gitaly_servers("s1", serde_json::json!({"address": "tcp://h:1", "token": "t"}));
        let json = base64::engine::general_purpose::STANDARD.decode(value).expect("base64");
        let parsed: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(parsed, serde_json::json!({"s1": {"address": "tcp://h:1", "token": "t"}}));
    }

    #[test]
    fn backoff_doubles_to_a_minute() {
        use crate::db::jobs::backoff;
        let secs: Vec<u64> = (1..=8).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60]);
    }
}
