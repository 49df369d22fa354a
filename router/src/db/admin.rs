//! Queries for the administrative services and subcommands: verification
//! marks, replication factors, untracked replicas, queue cleanup and the
//! read/write probe.

use super::repositories::enqueue_update;
use super::{Db, DbError};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// Why a replication factor could not be set (upstream's messages).
#[derive(Debug, thiserror::Error)]
pub enum SetReplicationFactorError {
    #[error("virtual storage {0:?} not found")]
    UnknownVirtualStorage(String),
    #[error("attempted to set replication factor {0} but minimum is 1")]
    BelowMinimum(i64),
    #[error("attempted to set replication factor {attempted} but virtual storage only contains {maximum} storages")]
    Unattainable { attempted: i64, maximum: usize },
    #[error("repository {virtual_storage:?}/{relative_path:?} not found")]
    UnknownRepository { virtual_storage: String, relative_path: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for SetReplicationFactorError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e.into())
    }
}

impl Db {
    /// Clears `verified_at` of every verified replica of one repository, so
    /// the verifier picks them first. Returns how many were marked.
    pub async fn mark_repository_unverified(&self, repository_id: i64) -> Result<u64, DbError> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "UPDATE storage_repositories SET verified_at = NULL
                 WHERE repository_id = $1 AND verified_at IS NOT NULL",
                &[&repository_id],
            )
            .await?)
    }

    /// As [`Db::mark_repository_unverified`], for every repository of a
    /// virtual storage, or only its replicas on `storage`.
    pub async fn mark_storage_unverified(&self, virtual_storage: &str, storage: Option<&str>) -> Result<u64, DbError> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "UPDATE storage_repositories s SET verified_at = NULL
                 FROM repositories r
                 WHERE r.repository_id = s.repository_id AND r.virtual_storage = $1
                   AND ($2::text IS NULL OR s.storage = $2) AND s.verified_at IS NOT NULL",
                &[&virtual_storage, &storage],
            )
            .await?)
    }

    /// When each replica of a repository was last verified.
    pub async fn verified_at(&self, repository_id: i64) -> Result<BTreeMap<String, SystemTime>, DbError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT storage, verified_at FROM storage_repositories
                 WHERE repository_id = $1 AND verified_at IS NOT NULL",
                &[&repository_id],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Assigns or unassigns storages until the repository has `factor`
    /// assigned storages, in one transaction holding the repository's row
    /// lock. New assignees are picked at random among the configured
    /// storages, the current primary first; removals never take the
    /// primary. No assignment rows means every configured storage is
    /// assigned, so the result is always written out explicitly. Returns
    /// the assigned storages, sorted.
    pub async fn set_replication_factor(
        &self,
        virtual_storage: &str,
        relative_path: &str,
        factor: i64,
        configured: &[String],
    ) -> Result<Vec<String>, SetReplicationFactorError> {
        if configured.is_empty() {
            return Err(SetReplicationFactorError::UnknownVirtualStorage(virtual_storage.to_owned()));
        }
        if factor < 1 {
            return Err(SetReplicationFactorError::BelowMinimum(factor));
        }
        if factor as usize > configured.len() {
            return Err(SetReplicationFactorError::Unattainable { attempted: factor, maximum: configured.len() });
        }
        let factor = factor as usize;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "SELECT repository_id, \"primary\" FROM repositories
                 WHERE virtual_storage = $1 AND relative_path = $2 FOR UPDATE",
                &[&virtual_storage, &relative_path],
            )
            .await?
        else {
            return Err(SetReplicationFactorError::UnknownRepository {
                virtual_storage: virtual_storage.to_owned(),
                relative_path: relative_path.to_owned(),
            });
        };
        let id: i64 = row.get(0);
        let primary: Option<String> = row.get(1);
        let rows: Vec<String> = tx
            .query("SELECT storage FROM repository_assignments WHERE repository_id = $1", &[&id])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut assigned: Vec<String> = if rows.is_empty() {
            configured.to_vec()
        } else {
            configured.iter().filter(|s| rows.contains(s)).cloned().collect()
        };
        let is_primary = |s: &str| primary.as_deref() == Some(s);
        if assigned.len() < factor {
            let mut candidates: Vec<String> = configured.iter().filter(|s| !assigned.contains(s)).cloned().collect();
            fastrand::shuffle(&mut candidates);
            candidates.sort_by_key(|s| !is_primary(s));
            assigned.extend(candidates.into_iter().take(factor - assigned.len()));
        } else if assigned.len() > factor {
            let mut removable: Vec<String> = assigned.iter().filter(|s| !is_primary(s)).cloned().collect();
            fastrand::shuffle(&mut removable);
            let remove: Vec<String> = removable.into_iter().take(assigned.len() - factor).collect();
            assigned.retain(|s| !remove.contains(s));
        }
        assigned.sort();
        tx.execute("DELETE FROM repository_assignments WHERE repository_id = $1", &[&id]).await?;
        tx.execute(
            "INSERT INTO repository_assignments (repository_id, storage) SELECT $1, unnest($2::text[])",
            &[&id, &assigned],
        )
        .await?;
        tx.commit().await?;
        Ok(assigned)
    }

    /// Of the replica paths found on `storage`, those the database does not
    /// know a replica of there (upstream's `DoesntExist`).
    pub async fn untracked_replica_paths(
        &self,
        virtual_storage: &str,
        storage: &str,
        replica_paths: &[String],
    ) -> Result<Vec<String>, DbError> {
        if replica_paths.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT p FROM unnest($3::text[]) WITH ORDINALITY AS t(p, n)
                 WHERE NOT EXISTS (
                     SELECT 1 FROM repositories r JOIN storage_repositories s USING (repository_id)
                     WHERE r.virtual_storage = $1 AND s.storage = $2 AND r.replica_path = t.p)
                 ORDER BY n",
                &[&virtual_storage, &storage, &replica_paths],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Deletes a repository's replication jobs that are not running.
    /// Returns whether a running one remains (callers wait for it).
    pub async fn delete_idle_replication_jobs(&self, repository_id: i64) -> Result<bool, DbError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM replication_jobs WHERE repository_id = $1 AND state <> 'in_progress'",
                &[&repository_id],
            )
            .await?;
        let running: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM replication_jobs WHERE repository_id = $1 AND state = 'in_progress')",
                &[&repository_id],
            )
            .await?
            .get(0);
        Ok(running)
    }

    /// Queues replication of a repository from `source` to each target.
    pub async fn enqueue_replication(
        &self,
        repository_id: i64,
        virtual_storage: &str,
        source: &str,
        targets: &[String],
        correlation_id: &str,
    ) -> Result<(), DbError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for target in targets {
            enqueue_update(&tx, repository_id, virtual_storage, target, source, correlation_id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Reads and writes `hello_world` in a transaction that is rolled back:
    /// proves the database accepts both without leaving anything behind.
    pub async fn probe_read_write(&self) -> Result<(), ProbeError> {
        let mut client = self.client().await.map_err(ProbeError::Connect)?;
        let tx = client.transaction().await.map_err(|e| ProbeError::Begin(e.into()))?;
        tx.query_opt("SELECT id FROM hello_world LIMIT 1", &[]).await.map_err(|e| ProbeError::Read(e.into()))?;
        let n = tx
            .execute("INSERT INTO hello_world (id) VALUES (1)", &[])
            .await
            .map_err(|e| ProbeError::Write(e.into()))?;
        if n != 1 {
            return Err(ProbeError::NotInserted);
        }
        tx.rollback().await.map_err(|e| ProbeError::Begin(e.into()))?;
        Ok(())
    }
}

/// Which step of [`Db::probe_read_write`] failed (upstream's wording).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("error opening database connection: {0}")]
    Connect(DbError),
    #[error("error starting transaction: {0}")]
    Begin(DbError),
    #[error("error reading from table: {0}")]
    Read(DbError),
    #[error("error writing to table: {0}")]
    Write(DbError),
    #[error("failed to insert row")]
    NotInserted,
}
