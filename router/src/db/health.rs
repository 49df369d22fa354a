//! Health checks shared between routers: each router's latest check of each
//! node in `node_status`, the consensus computed from them, and the
//! repositories whose primary lost it.
//!
//! All times are the database's (`now()`), so routers with skewed clocks
//! still agree on who saw what when.

use super::{Db, DbError};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How long a router counts as a voter after its last check (upstream's 60 s).
pub const VOTER_WINDOW: Duration = Duration::from_secs(60);

/// `node_status` rows whose router stopped checking this long ago are deleted.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// One node's check result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub virtual_storage: String,
    pub storage: String,
    pub healthy: bool,
}

/// Storages healthy by consensus: seen active within `window` by at least
/// ceil(P/2) of the P routers that checked the virtual storage within
/// [`VOTER_WINDOW`]. Used in queries as a CTE taking the window in seconds.
pub(crate) const CONSENSUS_CTE: &str = "consensus AS (
    SELECT ns.virtual_storage, ns.storage
    FROM node_status ns
    WHERE ns.last_seen_active_at >= now() - make_interval(secs => $WINDOW)
    GROUP BY ns.virtual_storage, ns.storage
    HAVING count(ns.router) >= (
        SELECT ceil(count(DISTINCT v.router) / 2.0)
        FROM node_status v
        WHERE v.virtual_storage = ns.virtual_storage
          AND v.last_contact_attempt_at >= now() - interval '60 seconds'
    )
)";

/// [`CONSENSUS_CTE`] with its window bound to parameter `$n`.
pub(crate) fn consensus_cte(param: usize) -> String {
    CONSENSUS_CTE.replace("$WINDOW", &format!("${param}::float8"))
}

impl Db {
    /// Upserts this router's checks: the attempt is always now, the last
    /// sighting only moves for healthy nodes.
    pub async fn record_checks(&self, router: &str, checks: &[Check]) -> Result<(), DbError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO node_status (router, virtual_storage, storage, last_contact_attempt_at, last_seen_active_at)
                 SELECT $1, vs, st, now(), CASE WHEN ok THEN now() END
                 FROM unnest($2::text[], $3::text[], $4::bool[]) AS c(vs, st, ok)
                 ORDER BY vs, st
                 ON CONFLICT (router, virtual_storage, storage) DO UPDATE SET
                     last_contact_attempt_at = now(),
                     last_seen_active_at = COALESCE(EXCLUDED.last_seen_active_at, node_status.last_seen_active_at)",
            )
            .await?;
        let vs: Vec<&str> = checks.iter().map(|c| c.virtual_storage.as_str()).collect();
        let st: Vec<&str> = checks.iter().map(|c| c.storage.as_str()).collect();
        let ok: Vec<bool> = checks.iter().map(|c| c.healthy).collect();
        client.execute(&stmt, &[&router, &vs, &st, &ok]).await?;
        Ok(())
    }

    /// Storages healthy by consensus, per virtual storage (see [`CONSENSUS_CTE`]).
    pub async fn consensus(&self, window: Duration) -> Result<BTreeMap<String, BTreeSet<String>>, DbError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("WITH {} SELECT virtual_storage, storage FROM consensus", consensus_cte(1)))
            .await?;
        let rows = client.query(&stmt, &[&window.as_secs_f64()]).await?;
        let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for row in rows {
            map.entry(row.get(0)).or_default().insert(row.get(1));
        }
        Ok(map)
    }

    /// Deletes rows of routers that have not checked for [`FORGET_AFTER`].
    pub async fn forget_stale_checks(&self) -> Result<u64, DbError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("DELETE FROM node_status WHERE last_contact_attempt_at < now() - make_interval(secs => $1)")
            .await?;
        Ok(client.execute(&stmt, &[&FORGET_AFTER.as_secs_f64()]).await?)
    }

    /// Repositories of `virtual_storage` whose primary is one of `failed`
    /// but that hold an up-to-date replica on a `healthy` storage, so an
    /// election can succeed. At most `limit`, oldest first.
    pub async fn repositories_to_fail_over(
        &self,
        virtual_storage: &str,
        failed: &[String],
        healthy: &[String],
        limit: i64,
    ) -> Result<Vec<i64>, DbError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT r.repository_id FROM repositories r
                 WHERE r.virtual_storage = $1 AND r.\"primary\" = ANY($2)
                   AND EXISTS (SELECT 1 FROM storage_repositories s
                               WHERE s.repository_id = r.repository_id
                                 AND s.generation = r.generation AND s.storage = ANY($3))
                 ORDER BY r.repository_id
                 LIMIT $4",
            )
            .await?;
        let rows = client.query(&stmt, &[&virtual_storage, &failed, &healthy, &limit]).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
