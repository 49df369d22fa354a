//! The replication queue: one row per (repository, target storage) in
//! `replication_jobs`. Workers of any router lease jobs with SKIP LOCKED,
//! keep the lease alive while they work, and acknowledge; a lease that runs
//! out (its router died) is taken over by the next dequeue. Jobs never die:
//! a failure only pushes `not_before` back.

use super::{Db, DbError};
use std::time::Duration;

/// How long a lease lasts without a heartbeat.
pub const LEASE: Duration = Duration::from_secs(30);

/// What a job does to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Update,
    DeleteReplica,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Update => "update",
            Self::DeleteReplica => "delete_replica",
        }
    }

    fn parse(s: &str) -> Self {
        if s == "delete_replica" { Self::DeleteReplica } else { Self::Update }
    }
}

/// A leased job. `attempts` (incremented by each dequeue) together with the
/// owner identifies this lease, so a worker whose lease was taken over
/// cannot acknowledge the new owner's run.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub repository_id: i64,
    pub virtual_storage: String,
    pub target: String,
    pub source: Option<String>,
    pub change: Change,
    pub attempts: i32,
    pub correlation_id: String,
    /// Seconds between the job becoming runnable and this dequeue.
    pub delay_seconds: f64,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// Done. `behind` when the target still lags the repository afterwards
    /// (a write landed meanwhile), which re-arms the job.
    Done {
        behind: bool,
    },
    Failed(String),
}

/// Wait before retrying after the `attempts`th failure: 1 s doubling, capped.
pub fn backoff(attempts: i32) -> Duration {
    let exp = attempts.clamp(1, 7) - 1;
    Duration::from_secs(1u64 << exp).min(Duration::from_secs(60))
}

/// A job the reconciler scheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    pub repository_id: i64,
    pub virtual_storage: String,
    pub relative_path: String,
    pub change: Change,
    pub source: Option<String>,
    pub target: String,
    pub correlation_id: String,
}

/// One row of the queue-depth gauge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    pub virtual_storage: String,
    pub target: String,
    pub state: String,
    pub count: i64,
}

impl Db {
    /// Makes the waiting jobs towards `storage` runnable now; returns how
    /// many.
    pub async fn rearm_jobs(&self, virtual_storage: &str, storage: &str) -> Result<u64, DbError> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "UPDATE replication_jobs SET not_before = now(), updated_at = now()
                 WHERE virtual_storage = $1 AND target_storage = $2 AND state IN ('ready', 'failed')
                   AND not_before > now()",
                &[&virtual_storage, &storage],
            )
            .await?)
    }

    /// Leases up to `batch` runnable jobs for one target: ready or failed
    /// ones past their `not_before`, and in-progress ones whose lease ran out.
    pub async fn dequeue(
        &self,
        router: &str,
        virtual_storage: &str,
        target: &str,
        batch: i64,
    ) -> Result<Vec<Job>, DbError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE replication_jobs j SET state = 'in_progress', lease_owner = $1,
                     lease_until = now() + make_interval(secs => $5), attempts = j.attempts + 1, updated_at = now()
                 FROM (SELECT id, CASE WHEN state = 'in_progress' THEN lease_until ELSE not_before END AS runnable_since
                       FROM replication_jobs
                       WHERE virtual_storage = $2 AND target_storage = $3
                         AND ((state IN ('ready', 'failed') AND not_before <= now())
                              OR (state = 'in_progress' AND lease_until < now()))
                       ORDER BY created_at, id
                       LIMIT $4
                       FOR UPDATE SKIP LOCKED) c
                 WHERE j.id = c.id
                 RETURNING j.id, j.repository_id, j.virtual_storage, j.target_storage, j.source_storage, j.change,
                     j.attempts, j.correlation_id, GREATEST(EXTRACT(EPOCH FROM now() - c.runnable_since), 0)::float8",
            )
            .await?;
        let rows = client.query(&stmt, &[&router, &virtual_storage, &target, &batch, &LEASE.as_secs_f64()]).await?;
        let mut jobs: Vec<Job> = rows
            .iter()
            .map(|r| Job {
                id: r.get(0),
                repository_id: r.get(1),
                virtual_storage: r.get(2),
                target: r.get(3),
                source: r.get(4),
                change: Change::parse(r.get(5)),
                attempts: r.get(6),
                correlation_id: r.get(7),
                delay_seconds: r.get(8),
            })
            .collect();
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    /// Extends the lease of a running job; false when it is no longer ours.
    pub async fn heartbeat(&self, router: &str, job: &Job) -> Result<bool, DbError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE replication_jobs SET lease_until = now() + make_interval(secs => $4)
                 WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 'in_progress'",
            )
            .await?;
        Ok(client.execute(&stmt, &[&job.id, &router, &job.attempts, &LEASE.as_secs_f64()]).await? == 1)
    }

    /// Records a job's outcome. Success deletes it, unless a write asked for
    /// a rerun while it ran or the target is still behind: then it is ready
    /// again. Failure makes it `failed` with a backoff. Returns false when
    /// the lease was no longer ours (nothing changed).
    pub async fn acknowledge(&self, router: &str, job: &Job, ack: &Ack) -> Result<bool, DbError> {
        let client = self.client().await?;
        let n = match ack {
            Ack::Done { behind } => {
                let stmt = client
                    .prepare_cached(
                        "WITH mine AS (
                             SELECT id, rerun OR $4 AS again FROM replication_jobs
                             WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 'in_progress'
                             FOR UPDATE
                         ), deleted AS (
                             DELETE FROM replication_jobs j USING mine WHERE j.id = mine.id AND NOT mine.again
                             RETURNING j.id
                         ), rearmed AS (
                             UPDATE replication_jobs j SET state = 'ready', rerun = false, not_before = now(),
                                 attempts = 0, lease_owner = NULL, lease_until = NULL, last_error = NULL,
                                 updated_at = now()
                             FROM mine WHERE j.id = mine.id AND mine.again
                             RETURNING j.id
                         )
                         SELECT (SELECT count(*) FROM deleted) + (SELECT count(*) FROM rearmed)",
                    )
                    .await?;
                let n: i64 = client.query_one(&stmt, &[&job.id, &router, &job.attempts, behind]).await?.get(0);
                n
            }
            Ack::Failed(error) => {
                let stmt = client
                    .prepare_cached(
                        "UPDATE replication_jobs SET state = 'failed', lease_owner = NULL, lease_until = NULL,
                             not_before = now() + make_interval(secs => $4), last_error = $5, updated_at = now()
                         WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 'in_progress'",
                    )
                    .await?;
                let wait = backoff(job.attempts).as_secs_f64();
                client.execute(&stmt, &[&job.id, &router, &job.attempts, &wait, error]).await? as i64
            }
        };
        Ok(n == 1)
    }

    /// Drops a job that has nothing left to do (its repository is gone, or
    /// its target no longer should be deleted).
    pub async fn drop_job(&self, router: &str, job: &Job) -> Result<bool, DbError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM replication_jobs WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND NOT rerun",
                &[&job.id, &router, &job.attempts],
            )
            .await?;
        Ok(n == 1)
    }

    /// Schedules what the reconciler finds, under a transaction-scoped
    /// advisory lock so only one router schedules per round (others get an
    /// empty list):
    ///
    /// - `update` for every (repository, assigned storage) where the storage
    ///   is in `healthy` and behind or missing its replica, from a random
    ///   up-to-date replica in `healthy` that is not being deleted. A job
    ///   already queued for that pair is left alone, except a queued (not
    ///   running) `delete_replica`, which becomes the update.
    /// - `delete_replica` for at most one unassigned replica per repository
    ///   with assignments, on a `healthy` storage, whose generation is at
    ///   most every assigned replica's, when no job of the repository uses
    ///   it and no other deletion is queued for the repository.
    ///
    /// `configured` lists (virtual storage, storage) pairs: only they count
    /// as assigned; `healthy` is the subset this router sees healthy.
    pub async fn reconcile(
        &self,
        lock_id: i64,
        configured: &[(String, String)],
        healthy: &[(String, String)],
    ) -> Result<Vec<Scheduled>, DbError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let acquired: bool = tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&lock_id]).await?.get(0);
        if !acquired {
            return Ok(Vec::new());
        }
        let (cvs, cst): (Vec<&str>, Vec<&str>) = configured.iter().map(|(v, s)| (v.as_str(), s.as_str())).unzip();
        let (hvs, hst): (Vec<&str>, Vec<&str>) = healthy.iter().map(|(v, s)| (v.as_str(), s.as_str())).unzip();
        let rows = tx
            .query(
                "WITH configured AS (
                     SELECT * FROM unnest($1::text[], $2::text[]) AS c(virtual_storage, storage)
                 ), healthy AS (
                     SELECT * FROM unnest($3::text[], $4::text[]) AS h(virtual_storage, storage)
                 ), assigned AS (
                     -- Configured storages that should hold each repository.
                     SELECT r.repository_id, c.storage
                     FROM repositories r JOIN configured c USING (virtual_storage)
                     WHERE NOT EXISTS (SELECT 1 FROM repository_assignments a WHERE a.repository_id = r.repository_id)
                        OR EXISTS (SELECT 1 FROM repository_assignments a
                                   WHERE a.repository_id = r.repository_id AND a.storage = c.storage)
                 ), sources AS (
                     SELECT r.repository_id, s.storage
                     FROM repositories r
                     JOIN storage_repositories s ON s.repository_id = r.repository_id AND s.generation = r.generation
                     JOIN healthy h ON h.virtual_storage = r.virtual_storage AND h.storage = s.storage
                     WHERE NOT EXISTS (SELECT 1 FROM replication_jobs j WHERE j.repository_id = r.repository_id
                                       AND j.target_storage = s.storage AND j.change = 'delete_replica')
                 ), updates AS (
                     SELECT DISTINCT ON (r.repository_id, a.storage)
                         r.repository_id, r.virtual_storage, r.relative_path, src.storage AS source, a.storage AS target
                     FROM repositories r
                     JOIN assigned a ON a.repository_id = r.repository_id
                     JOIN healthy h ON h.virtual_storage = r.virtual_storage AND h.storage = a.storage
                     LEFT JOIN storage_repositories s ON s.repository_id = r.repository_id AND s.storage = a.storage
                     JOIN sources src ON src.repository_id = r.repository_id AND src.storage <> a.storage
                     WHERE COALESCE(s.generation < r.generation, true)
                       AND NOT EXISTS (SELECT 1 FROM replication_jobs j WHERE j.repository_id = r.repository_id
                                       AND j.target_storage = a.storage
                                       AND (j.change = 'update' OR j.state = 'in_progress'))
                     ORDER BY r.repository_id, a.storage, random()
                 ), deletions AS (
                     SELECT DISTINCT ON (r.repository_id)
                         r.repository_id, r.virtual_storage, r.relative_path, s.storage AS target
                     FROM repositories r
                     JOIN storage_repositories s ON s.repository_id = r.repository_id
                     JOIN healthy h ON h.virtual_storage = r.virtual_storage AND h.storage = s.storage
                     WHERE EXISTS (SELECT 1 FROM repository_assignments a WHERE a.repository_id = r.repository_id)
                       AND NOT EXISTS (SELECT 1 FROM assigned a
                                       WHERE a.repository_id = r.repository_id AND a.storage = s.storage)
                       AND EXISTS (SELECT 1 FROM assigned a WHERE a.repository_id = r.repository_id)
                       AND s.generation <= (
                           SELECT min(COALESCE(x.generation, -1)) FROM assigned a
                           LEFT JOIN storage_repositories x ON x.repository_id = a.repository_id AND x.storage = a.storage
                           WHERE a.repository_id = r.repository_id)
                       AND NOT EXISTS (SELECT 1 FROM replication_jobs j WHERE j.repository_id = r.repository_id
                                       AND (j.target_storage = s.storage OR j.source_storage = s.storage
                                            OR j.change = 'delete_replica'))
                     ORDER BY r.repository_id, s.storage
                 ), wanted AS (
                     SELECT repository_id, virtual_storage, relative_path, source, target, 'update' AS change FROM updates
                     UNION ALL
                     SELECT repository_id, virtual_storage, relative_path, NULL, target, 'delete_replica' FROM deletions
                 ), written AS (
                     INSERT INTO replication_jobs (repository_id, virtual_storage, target_storage, source_storage, change,
                                                   correlation_id)
                     SELECT repository_id, virtual_storage, target, source, change, md5(random()::text || clock_timestamp()::text) FROM wanted
                     ON CONFLICT (repository_id, target_storage) DO UPDATE SET
                         change = EXCLUDED.change, source_storage = EXCLUDED.source_storage, state = 'ready',
                         rerun = false, attempts = 0, not_before = now(), last_error = NULL,
                         correlation_id = EXCLUDED.correlation_id, updated_at = now()
                     WHERE replication_jobs.state <> 'in_progress'
                     RETURNING repository_id, target_storage, source_storage, change, correlation_id
                 )
                 SELECT w.repository_id, r.virtual_storage, r.relative_path, w.change, w.source_storage,
                        w.target_storage, w.correlation_id
                 FROM written w JOIN repositories r USING (repository_id)
                 ORDER BY r.virtual_storage, r.relative_path, w.target_storage",
                &[&cvs, &cst, &hvs, &hst],
            )
            .await?;
        tx.commit().await?;
        Ok(rows
            .iter()
            .map(|r| Scheduled {
                repository_id: r.get(0),
                virtual_storage: r.get(1),
                relative_path: r.get(2),
                change: Change::parse(r.get(3)),
                source: r.get(4),
                target: r.get(5),
                correlation_id: r.get(6),
            })
            .collect())
    }

    /// Jobs per (virtual storage, target, state), for the queue-depth gauge.
    pub async fn queue_depth(&self) -> Result<Vec<QueueDepth>, DbError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT virtual_storage, target_storage, state, count(*) FROM replication_jobs
                 GROUP BY virtual_storage, target_storage, state ORDER BY 1, 2, 3",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| QueueDepth { virtual_storage: r.get(0), target: r.get(1), state: r.get(2), count: r.get(3) })
            .collect())
    }

    /// Repositories per virtual storage with no replica that could be
    /// primary: none up to date on a storage healthy by consensus.
    pub async fn unavailable_repositories(&self, window: Duration) -> Result<Vec<(String, i64)>, DbError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "WITH {} SELECT r.virtual_storage, count(*) FROM repositories r
                     WHERE NOT EXISTS (SELECT 1 FROM storage_repositories s
                                       JOIN consensus c ON c.virtual_storage = r.virtual_storage AND c.storage = s.storage
                                       WHERE s.repository_id = r.repository_id AND s.generation = r.generation)
                     GROUP BY r.virtual_storage ORDER BY 1",
                    super::health::consensus_cte(1)
                ),
                &[&window.as_secs_f64()],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
