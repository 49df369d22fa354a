//! Repositories, their replicas and assignments, and the intent records
//! that bracket every proxied write.
//!
//! Generations count recorded writes. A replica whose generation equals its
//! repository's is up to date. A write is recorded in two steps: an intent
//! row before the request reaches a node, then [`settle`] in one transaction
//! that moves generations, queues replication and deletes the intent. A
//! router that dies between the two leaves the intent for the next router.

use super::{Db, DbError};
use deadpool_postgres::GenericClient;
use sha2::Digest as _;

/// One replica's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub storage: String,
    pub generation: i64,
}

/// Everything routing needs about one repository, read in one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoState {
    pub id: i64,
    pub virtual_storage: String,
    pub relative_path: String,
    pub replica_path: String,
    pub generation: i64,
    pub primary: Option<String>,
    pub term: i64,
    pub replicas: Vec<Replica>,
    /// Empty: every configured storage is assigned.
    pub assignments: Vec<String>,
}

impl RepoState {
    /// The replica's generation; -1 when it has no record (not created).
    pub fn generation_of(&self, storage: &str) -> i64 {
        self.replicas.iter().find(|r| r.storage == storage).map_or(-1, |r| r.generation)
    }

    pub fn is_up_to_date(&self, storage: &str) -> bool {
        self.generation_of(storage) == self.generation
    }

    /// Storages holding the latest generation.
    pub fn up_to_date(&self) -> impl Iterator<Item = &str> {
        self.replicas.iter().filter(|r| r.generation == self.generation).map(|r| r.storage.as_str())
    }

    /// Storages that should hold a replica, restricted to `configured`.
    pub fn assigned<'a>(&'a self, configured: &'a [String]) -> Vec<&'a str> {
        if self.assignments.is_empty() {
            configured.iter().map(String::as_str).collect()
        } else {
            configured.iter().filter(|s| self.assignments.contains(s)).map(String::as_str).collect()
        }
    }

    pub fn is_assigned(&self, storage: &str) -> bool {
        self.assignments.is_empty() || self.assignments.iter().any(|a| a == storage)
    }
}

/// The on-disk path of a repository's replicas: `@cluster/repositories/xx/yy/<id>`
/// (xx/yy = the first two bytes of SHA-256 of the decimal id), or under
/// `@cluster/pools/` for object pools, so housekeeping knows not to prune them.
pub fn replica_path(id: i64, pool: bool) -> String {
    let digest = sha2::Sha256::digest(id.to_string().as_bytes());
    let kind = if pool { "pools" } else { "repositories" };
    format!("@cluster/{kind}/{:02x}/{:02x}/{id}", digest[0], digest[1])
}

/// Whether `relative_path` is a Rails object-pool path,
/// `@pools/aa/bb/<64 hex>.git` with a hash starting `aabb`.
pub fn is_rails_pool_path(relative_path: &str) -> bool {
    let Some(rest) = relative_path.strip_prefix("@pools/") else { return false };
    let parts: Vec<&str> = rest.split('/').collect();
    let [a, b, last] = parts.as_slice() else { return false };
    let Some(hash) = last.strip_suffix(".git") else { return false };
    let hex = |s: &str| s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    a.len() == 2 && b.len() == 2 && hash.len() == 64 && hex(hash) && hash.starts_with(&format!("{a}{b}"))
}

const SELECT_STATE: &str = "SELECT r.repository_id, r.virtual_storage, r.relative_path, r.replica_path, r.generation,
        r.\"primary\", r.term,
        COALESCE((SELECT array_agg(s.storage ORDER BY s.storage) FROM storage_repositories s WHERE s.repository_id = r.repository_id), '{}'),
        COALESCE((SELECT array_agg(s.generation ORDER BY s.storage) FROM storage_repositories s WHERE s.repository_id = r.repository_id), '{}'),
        COALESCE((SELECT array_agg(a.storage ORDER BY a.storage) FROM repository_assignments a WHERE a.repository_id = r.repository_id), '{}')
    FROM repositories r";

fn state_from_row(row: &tokio_postgres::Row) -> RepoState {
    let storages: Vec<String> = row.get(7);
    let generations: Vec<i64> = row.get(8);
    RepoState {
        id: row.get(0),
        virtual_storage: row.get(1),
        relative_path: row.get(2),
        replica_path: row.get(3),
        generation: row.get(4),
        primary: row.get(5),
        term: row.get(6),
        replicas: storages
            .into_iter()
            .zip(generations)
            .map(|(storage, generation)| Replica { storage, generation })
            .collect(),
        assignments: row.get(9),
    }
}

/// Who starts a write: recorded with its intent.
#[derive(Debug, Clone, Copy)]
pub struct WriteBy<'a> {
    pub router: &'a str,
    /// `/gitaly.Service/Method`.
    pub method: &'a str,
    pub correlation_id: &'a str,
}

/// A write's intent, returned by [`Db::begin_write`] / [`Db::begin_create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntentId(pub i64);

/// How a proxied write ended, for [`settle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing changed on any node (the request was refused before acting).
    Unchanged,
    /// The write may have changed `updated` (which hold it now); every
    /// storage in `outdated` gets a replication job from `source`.
    Changed { updated: Vec<String>, outdated: Vec<String>, source: String },
    /// A creation made the repository on `created` (generation 0); the
    /// storages in `outdated` get replication jobs from `source`. Empty
    /// `created` means the creation failed: the record is removed.
    Created { created: Vec<String>, outdated: Vec<String>, source: String },
}

impl Db {
    /// The repository at (virtual storage, relative path), if recorded.
    pub async fn repository(&self, virtual_storage: &str, relative_path: &str) -> Result<Option<RepoState>, DbError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("{SELECT_STATE} WHERE r.virtual_storage = $1 AND r.relative_path = $2"))
            .await?;
        Ok(client.query_opt(&stmt, &[&virtual_storage, &relative_path]).await?.as_ref().map(state_from_row))
    }

    /// The repository's current term (`None` once it is deleted).
    pub async fn term(&self, repository_id: i64) -> Result<Option<i64>, DbError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached("SELECT term FROM repositories WHERE repository_id = $1").await?;
        Ok(client.query_opt(&stmt, &[&repository_id]).await?.map(|r| r.get(0)))
    }

    pub async fn repository_by_id(&self, id: i64) -> Result<Option<RepoState>, DbError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&format!("{SELECT_STATE} WHERE r.repository_id = $1")).await?;
        Ok(client.query_opt(&stmt, &[&id]).await?.as_ref().map(state_from_row))
    }

    /// The repository whose replicas live at `replica_path` (for mapping
    /// answers that carry replica paths back to relative paths).
    pub async fn repository_by_replica_path(
        &self,
        virtual_storage: &str,
        replica_path: &str,
    ) -> Result<Option<RepoState>, DbError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("{SELECT_STATE} WHERE r.virtual_storage = $1 AND r.replica_path = $2"))
            .await?;
        Ok(client.query_opt(&stmt, &[&virtual_storage, &replica_path]).await?.as_ref().map(state_from_row))
    }

    /// Every repository of a virtual storage (or all), for reports.
    pub async fn repositories(&self, virtual_storage: Option<&str>) -> Result<Vec<RepoState>, DbError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "{SELECT_STATE} WHERE $1::text IS NULL OR r.virtual_storage = $1 ORDER BY r.virtual_storage, r.relative_path"
                ),
                &[&virtual_storage],
            )
            .await?;
        Ok(rows.iter().map(state_from_row).collect())
    }

    /// Records a new repository before it is created on any node: a fresh
    /// id, its replica path, primary, assignments (empty: all storages) and
    /// the creation's intent, in one transaction. `None` when the path is
    /// already taken, so two concurrent creations never both reach disks.
    pub async fn begin_create(
        &self,
        virtual_storage: &str,
        relative_path: &str,
        primary: &str,
        assignments: &[String],
        by: WriteBy<'_>,
    ) -> Result<Option<(RepoState, IntentId)>, DbError> {
        let WriteBy { router, method, correlation_id } = by;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let id: i64 = tx.query_one("SELECT nextval('repositories_repository_id_seq')", &[]).await?.get(0);
        let path = replica_path(id, is_rails_pool_path(relative_path));
        let inserted = tx
            .execute(
                "INSERT INTO repositories (repository_id, virtual_storage, relative_path, replica_path, \"primary\")
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[&id, &virtual_storage, &relative_path, &path, &primary],
            )
            .await?;
        if inserted == 0 {
            return Ok(None);
        }
        for storage in assignments {
            tx.execute("INSERT INTO repository_assignments (repository_id, storage) VALUES ($1, $2)", &[&id, storage])
                .await?;
        }
        let intent: i64 = tx
            .query_one(
                "INSERT INTO write_intents (repository_id, primary_storage, term, router, method, creates, correlation_id)
                 VALUES ($1, $2, 1, $3, $4, true, $5) RETURNING id",
                &[&id, &primary, &router, &method, &correlation_id],
            )
            .await?
            .get(0);
        let state = state_from_row(&tx.query_one(&format!("{SELECT_STATE} WHERE r.repository_id = $1"), &[&id]).await?);
        tx.commit().await?;
        Ok(Some((state, IntentId(intent))))
    }

    /// Records that a write is about to be proxied to `primary`, but only
    /// while `primary` still holds `term` for the repository: a router with a
    /// stale view cannot start a write on a fenced primary.
    pub async fn begin_write(
        &self,
        repository_id: i64,
        primary: &str,
        term: i64,
        by: WriteBy<'_>,
    ) -> Result<Option<IntentId>, DbError> {
        let WriteBy { router, method, correlation_id } = by;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO write_intents (repository_id, primary_storage, term, router, method, correlation_id)
                 SELECT repository_id, $2, $3, $4, $5, $6 FROM repositories
                 WHERE repository_id = $1 AND \"primary\" = $2 AND term = $3
                 RETURNING id",
            )
            .await?;
        let row =
            client.query_opt(&stmt, &[&repository_id, &primary, &term, &router, &method, &correlation_id]).await?;
        Ok(row.map(|r| IntentId(r.get(0))))
    }

    /// Records a write's outcome and deletes its intent, in one transaction.
    pub async fn settle(&self, intent: IntentId, outcome: &Outcome, correlation_id: &str) -> Result<(), DbError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "DELETE FROM write_intents i USING repositories r
                 WHERE i.id = $1 AND r.repository_id = i.repository_id
                 RETURNING r.repository_id, r.virtual_storage",
                &[&intent.0],
            )
            .await?
        else {
            // Settled already (by a recovering router) or the repository is gone.
            return Ok(());
        };
        let repository_id: i64 = row.get(0);
        let virtual_storage: String = row.get(1);
        // Settles of one repository run one at a time: the generation
        // updates compare replica and repository generations, and a
        // concurrent settle would make that comparison on a stale
        // repository row (leaving no replica at the latest generation).
        tx.execute("SELECT 1 FROM repositories WHERE repository_id = $1 FOR UPDATE", &[&repository_id]).await?;
        match outcome {
            Outcome::Unchanged => {}
            Outcome::Changed { updated, outdated, source } => {
                increment_generation(&tx, repository_id, updated).await?;
                for target in outdated {
                    enqueue_update(&tx, repository_id, &virtual_storage, target, source, correlation_id).await?;
                }
            }
            Outcome::Created { created, outdated, source } => {
                if created.is_empty() {
                    tx.execute(
                        "DELETE FROM repositories r WHERE repository_id = $1
                         AND NOT EXISTS (SELECT 1 FROM storage_repositories s WHERE s.repository_id = r.repository_id)",
                        &[&repository_id],
                    )
                    .await?;
                } else {
                    for storage in created {
                        tx.execute(
                            "INSERT INTO storage_repositories (repository_id, storage, generation)
                             SELECT $1, $2, generation FROM repositories WHERE repository_id = $1
                             ON CONFLICT (repository_id, storage) DO NOTHING",
                            &[&repository_id, storage],
                        )
                        .await?;
                    }
                    for target in outdated {
                        enqueue_update(&tx, repository_id, &virtual_storage, target, source, correlation_id).await?;
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Makes `new` the primary if `old` still is; bumps the term. Returns
    /// the new term, or `None` when another router changed it first.
    pub async fn change_primary(
        &self,
        repository_id: i64,
        old: Option<&str>,
        new: &str,
    ) -> Result<Option<i64>, DbError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE repositories SET \"primary\" = $3, term = term + 1
                 WHERE repository_id = $1 AND \"primary\" IS NOT DISTINCT FROM $2 RETURNING term",
            )
            .await?;
        Ok(client.query_opt(&stmt, &[&repository_id, &old, &new]).await?.map(|r| r.get(0)))
    }

    /// Deletes a repository's records; returns it as it was, if recorded.
    pub async fn delete_repository(
        &self,
        virtual_storage: &str,
        relative_path: &str,
    ) -> Result<Option<RepoState>, DbError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let state = tx
            .query_opt(
                &format!("{SELECT_STATE} WHERE r.virtual_storage = $1 AND r.relative_path = $2 FOR UPDATE OF r"),
                &[&virtual_storage, &relative_path],
            )
            .await?
            .as_ref()
            .map(state_from_row);
        if let Some(s) = &state {
            tx.execute("DELETE FROM repositories WHERE repository_id = $1", &[&s.id]).await?;
        }
        tx.commit().await?;
        Ok(state)
    }

    /// Makes `storage` the only up-to-date replica (accept-dataloss): a new
    /// generation that only it holds.
    pub async fn set_authoritative(
        &self,
        virtual_storage: &str,
        relative_path: &str,
        storage: &str,
    ) -> Result<bool, DbError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "UPDATE repositories SET generation = generation + 1
                 WHERE virtual_storage = $1 AND relative_path = $2 RETURNING repository_id, generation",
                &[&virtual_storage, &relative_path],
            )
            .await?
        else {
            return Ok(false);
        };
        let (id, generation): (i64, i64) = (row.get(0), row.get(1));
        tx.execute(
            "INSERT INTO storage_repositories (repository_id, storage, generation) VALUES ($1, $2, $3)
             ON CONFLICT (repository_id, storage) DO UPDATE SET generation = EXCLUDED.generation",
            &[&id, &storage, &generation],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records that `storage` holds the repository at `generation` (after a
    /// replication that copied that generation or later). Never lowers a
    /// replica's generation; raises the repository's if it was lower.
    pub async fn set_replica_generation(
        &self,
        repository_id: i64,
        storage: &str,
        generation: i64,
    ) -> Result<(), DbError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO storage_repositories (repository_id, storage, generation) VALUES ($1, $2, $3)
             ON CONFLICT (repository_id, storage) DO UPDATE SET generation = GREATEST(storage_repositories.generation, EXCLUDED.generation)",
            &[&repository_id, &storage, &generation],
        )
        .await?;
        tx.execute(
            "UPDATE repositories SET generation = $2 WHERE repository_id = $1 AND generation < $2",
            &[&repository_id, &generation],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets one replica (after it was removed from its node).
    pub async fn delete_replica(&self, repository_id: i64, storage: &str) -> Result<(), DbError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM storage_repositories WHERE repository_id = $1 AND storage = $2",
                &[&repository_id, &storage],
            )
            .await?;
        Ok(())
    }

    /// Records an existing replica as a new repository (track-repository):
    /// `authoritative` holds generation 0, the others get replication jobs.
    /// Returns the id; `None` if the path is already tracked.
    pub async fn track_repository(
        &self,
        virtual_storage: &str,
        relative_path: &str,
        replica_path: &str,
        authoritative: &str,
        assignments: &[String],
        replicate_to: &[String],
    ) -> Result<Option<i64>, DbError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let id: i64 = tx.query_one("SELECT nextval('repositories_repository_id_seq')", &[]).await?.get(0);
        let inserted = tx
            .execute(
                "INSERT INTO repositories (repository_id, virtual_storage, relative_path, replica_path, \"primary\")
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[&id, &virtual_storage, &relative_path, &replica_path, &authoritative],
            )
            .await?;
        if inserted == 0 {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO storage_repositories (repository_id, storage, generation) VALUES ($1, $2, 0)",
            &[&id, &authoritative],
        )
        .await?;
        for storage in assignments {
            tx.execute("INSERT INTO repository_assignments (repository_id, storage) VALUES ($1, $2)", &[&id, storage])
                .await?;
        }
        for target in replicate_to {
            enqueue_update(&tx, id, virtual_storage, target, authoritative, "").await?;
        }
        tx.commit().await?;
        Ok(Some(id))
    }

    /// Intents left by routers that stopped: those of `router` itself
    /// created before `started` (a restart), and any older than `stale`
    /// whose router has not checked a node since then.
    pub async fn abandoned_intents(
        &self,
        router: &str,
        started: std::time::SystemTime,
        stale: std::time::Duration,
    ) -> Result<Vec<AbandonedIntent>, DbError> {
        let client = self.client().await?;
        let stale_secs = stale.as_secs_f64();
        let rows = client
            .query(
                "SELECT i.id, i.repository_id, i.primary_storage, i.term, i.creates, i.correlation_id
                 FROM write_intents i
                 WHERE (i.router = $1 AND i.created_at < $2)
                    OR (i.created_at < now() - make_interval(secs => $3)
                        AND NOT EXISTS (SELECT 1 FROM node_status n WHERE n.router = i.router
                              AND n.last_contact_attempt_at > now() - make_interval(secs => $3)))
                 ORDER BY i.id",
                &[&router, &started, &stale_secs],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| AbandonedIntent {
                intent: IntentId(r.get(0)),
                repository_id: r.get(1),
                primary: r.get(2),
                term: r.get(3),
                creates: r.get(4),
                correlation_id: r.get(5),
            })
            .collect())
    }
}

/// An intent whose router never settled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbandonedIntent {
    pub intent: IntentId,
    pub repository_id: i64,
    pub primary: String,
    pub term: i64,
    pub creates: bool,
    pub correlation_id: String,
}

/// Moves the listed replicas to the next generation, but only those that
/// hold the current one; the repository's generation moves with them. A
/// replica that missed an earlier write can never be marked current here.
async fn increment_generation(tx: &impl GenericClient, repository_id: i64, storages: &[String]) -> Result<(), DbError> {
    let moved = tx
        .execute(
            "UPDATE storage_repositories s SET generation = r.generation + 1
             FROM repositories r
             WHERE s.repository_id = $1 AND r.repository_id = $1 AND s.storage = ANY($2) AND s.generation = r.generation",
            &[&repository_id, &storages],
        )
        .await?;
    if moved > 0 {
        tx.execute("UPDATE repositories SET generation = generation + 1 WHERE repository_id = $1", &[&repository_id])
            .await?;
    }
    Ok(())
}

/// Queues (or re-arms) the replication of one repository to `target`.
pub(crate) async fn enqueue_update(
    tx: &impl GenericClient,
    repository_id: i64,
    virtual_storage: &str,
    target: &str,
    source: &str,
    correlation_id: &str,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO replication_jobs (repository_id, virtual_storage, target_storage, source_storage, change, correlation_id)
         VALUES ($1, $2, $3, $4, 'update', $5)
         ON CONFLICT (repository_id, target_storage) DO UPDATE SET
             change = 'update',
             source_storage = EXCLUDED.source_storage,
             rerun = replication_jobs.state = 'in_progress',
             attempts = CASE WHEN replication_jobs.state = 'in_progress' THEN replication_jobs.attempts ELSE 0 END,
             not_before = CASE WHEN replication_jobs.state = 'in_progress' THEN replication_jobs.not_before ELSE now() END,
             updated_at = now()",
        &[&repository_id, &virtual_storage, &target, &source, &correlation_id],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_paths_follow_upstream() {
        // SHA-256("1") = 6b86b273...
        assert_eq!(replica_path(1, false), "@cluster/repositories/6b/86/1");
        assert_eq!(replica_path(1, true), "@cluster/pools/6b/86/1");
    }

    #[test]
    fn recognises_rails_pool_paths() {
        let hash = "aabb".to_owned() + &"0".repeat(60);
        assert!(is_rails_pool_path(&format!("@pools/aa/bb/{hash}.git")));
        assert!(!is_rails_pool_path(&format!("@pools/aa/bc/{hash}.git")));
        assert!(!is_rails_pool_path(&format!("@hashed/aa/bb/{hash}.git")));
        assert!(!is_rails_pool_path("@pools/aa/bb/short.git"));
    }
}
