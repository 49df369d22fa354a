//! Leases for the background verifier: replicas not verified within the
//! interval are leased (30 s) to one router at a time, checked, and
//! released with their result.

use super::{Db, DbError};
use std::time::Duration;

/// How long a lease keeps other routers off a replica being checked.
pub const LEASE: Duration = Duration::from_secs(30);

/// One replica to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    pub repository_id: i64,
    pub storage: String,
    pub replica_path: String,
}

impl Db {
    /// Leases up to `limit` replicas on `storages` of `virtual_storage` that
    /// were never verified or not within `interval`, oldest first.
    pub async fn lease_unverified(
        &self,
        virtual_storage: &str,
        storages: &[String],
        interval: Duration,
        limit: i64,
    ) -> Result<Vec<Leased>, DbError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "WITH picked AS (
                     SELECT sr.repository_id, sr.storage FROM storage_repositories sr
                     JOIN repositories r USING (repository_id)
                     WHERE r.virtual_storage = $1 AND sr.storage = ANY($2)
                       AND (sr.verified_at IS NULL OR sr.verified_at < now() - make_interval(secs => $3))
                       AND (sr.verification_leased_until IS NULL OR sr.verification_leased_until < now())
                     ORDER BY sr.verified_at NULLS FIRST
                     LIMIT $4
                     FOR NO KEY UPDATE OF sr SKIP LOCKED)
                 UPDATE storage_repositories sr SET verification_leased_until = now() + make_interval(secs => $5)
                 FROM picked, repositories r
                 WHERE sr.repository_id = picked.repository_id AND sr.storage = picked.storage
                   AND r.repository_id = sr.repository_id
                 RETURNING sr.repository_id, sr.storage, r.replica_path",
                &[&virtual_storage, &storages, &interval.as_secs_f64(), &limit, &LEASE.as_secs_f64()],
            )
            .await?;
        Ok(rows.iter().map(|r| Leased { repository_id: r.get(0), storage: r.get(1), replica_path: r.get(2) }).collect())
    }

    /// Releases a lease: `Some(true)` verified, `Some(false)` missing on its
    /// node (its record is deleted when `delete_missing`), `None` the check
    /// itself failed.
    pub async fn release_verification(
        &self,
        leased: &Leased,
        exists: Option<bool>,
        delete_missing: bool,
    ) -> Result<(), DbError> {
        let client = self.client().await?;
        let (id, storage) = (&leased.repository_id, &leased.storage);
        match exists {
            Some(false) if delete_missing => {
                client
                    .execute(
                        "DELETE FROM storage_repositories WHERE repository_id = $1 AND storage = $2",
                        &[id, storage],
                    )
                    .await?
            }
            Some(true) => {
                client
                    .execute(
                        "UPDATE storage_repositories SET verified_at = now(), verification_leased_until = NULL
                         WHERE repository_id = $1 AND storage = $2",
                        &[id, storage],
                    )
                    .await?
            }
            _ => {
                client
                    .execute(
                        "UPDATE storage_repositories SET verification_leased_until = NULL
                         WHERE repository_id = $1 AND storage = $2",
                        &[id, storage],
                    )
                    .await?
            }
        };
        Ok(())
    }
}
