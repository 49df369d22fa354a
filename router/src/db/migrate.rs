//! Embedded migrations, recorded in `schema_migrations` as upstream does.
//! Only `praefect sql-migrate` applies them; the server checks that none is
//! pending and refuses to start otherwise.

use super::{Db, DbError};

/// One schema change, in the order it must be applied.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub id: &'static str,
    pub up: &'static str,
    pub down: &'static str,
}

macro_rules! migration {
    ($id:literal) => {
        Migration {
            id: $id,
            up: include_str!(concat!("../../migrations/", $id, ".up.sql")),
            down: include_str!(concat!("../../migrations/", $id, ".down.sql")),
        }
    };
}

/// Every migration this binary knows, oldest first.
pub const MIGRATIONS: &[Migration] =
    &[migration!("20261122000001_cairn_initial"), migration!("20261122000002_repositories_primary_index")];

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    id text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// One row of `sql-migrate-status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub id: String,
    /// `None`: not applied.
    pub applied_at: Option<String>,
    /// Recorded in the database but unknown to this binary.
    pub unknown: bool,
}

async fn applied(client: &tokio_postgres::Client) -> Result<Vec<(String, String)>, DbError> {
    let exists: bool = client.query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[]).await?.get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT id, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM schema_migrations ORDER BY id",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Migrations this binary knows that the database has not applied.
pub async fn pending(db: &Db) -> Result<Vec<&'static Migration>, DbError> {
    let client = db.client().await?;
    let done: std::collections::HashSet<String> = applied(&client).await?.into_iter().map(|(id, _)| id).collect();
    Ok(MIGRATIONS.iter().filter(|m| !done.contains(m.id)).collect())
}

/// Fails with [`DbError::SchemaBehind`] unless every migration is applied.
pub async fn ensure_current(db: &Db) -> Result<(), DbError> {
    let pending = pending(db).await?;
    match pending.first() {
        None => Ok(()),
        Some(first) => Err(DbError::SchemaBehind { pending: pending.len(), first: first.id }),
    }
}

/// Applies pending migrations one transaction each; calls `applied_one`
/// after each with its id and duration. With `ignore_unknown = false`, ids
/// recorded in the database that this binary does not know are an error.
/// Concurrent runs (two migration Jobs) serialise on an advisory lock.
pub async fn migrate(
    db: &Db,
    ignore_unknown: bool,
    mut applied_one: impl FnMut(&str, std::time::Duration),
) -> Result<usize, DbError> {
    let mut client = db.client().await?;
    client.batch_execute("SELECT pg_advisory_lock(7358411)").await?;
    let result = async {
        client.batch_execute(CREATE_TABLE).await?;
        let done = applied(&client).await?;
        if !ignore_unknown {
            let unknown: Vec<&str> =
                done.iter().map(|(id, _)| id.as_str()).filter(|id| !MIGRATIONS.iter().any(|m| m.id == *id)).collect();
            if !unknown.is_empty() {
                return Err(DbError::Migration(format!("unknown migrations in the database: {}", unknown.join(", "))));
            }
        }
        let mut count = 0;
        for m in MIGRATIONS {
            if done.iter().any(|(id, _)| id == m.id) {
                continue;
            }
            let start = std::time::Instant::now();
            let tx = client.transaction().await?;
            tx.batch_execute(m.up)
                .await
                .map_err(|e| DbError::Migration(format!("{}: {}", m.id, super::error_chain(&e))))?;
            tx.execute("INSERT INTO schema_migrations (id) VALUES ($1)", &[&m.id]).await?;
            tx.commit().await?;
            applied_one(m.id, start.elapsed());
            count += 1;
        }
        Ok(count)
    }
    .await;
    let _ = client.batch_execute("SELECT pg_advisory_unlock(7358411)").await;
    result
}

/// Known and recorded migrations, known ones first in order.
pub async fn status(db: &Db) -> Result<Vec<Status>, DbError> {
    let client = db.client().await?;
    let done = applied(&client).await?;
    let mut out: Vec<Status> = MIGRATIONS
        .iter()
        .map(|m| Status {
            id: m.id.to_owned(),
            applied_at: done.iter().find(|(id, _)| id == m.id).map(|(_, at)| at.clone()),
            unknown: false,
        })
        .collect();
    for (id, at) in done {
        if !MIGRATIONS.iter().any(|m| m.id == id) {
            out.push(Status { id, applied_at: Some(at), unknown: true });
        }
    }
    Ok(out)
}

/// The `n` most recently applied migrations, newest first; reverted when
/// `apply` (each in its own transaction). Unknown ids cannot be reverted.
pub async fn down(db: &Db, n: usize, apply: bool) -> Result<Vec<String>, DbError> {
    let mut client = db.client().await?;
    let mut done = applied(&client).await?;
    done.sort_by(|a, b| b.0.cmp(&a.0));
    let ids: Vec<String> = done.into_iter().take(n).map(|(id, _)| id).collect();
    if !apply {
        return Ok(ids);
    }
    for id in &ids {
        let m = MIGRATIONS
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| DbError::Migration(format!("{id} is unknown to this binary and cannot be reverted")))?;
        let tx = client.transaction().await?;
        tx.batch_execute(m.down).await.map_err(|e| DbError::Migration(format!("{id}: {}", super::error_chain(&e))))?;
        tx.execute("DELETE FROM schema_migrations WHERE id = $1", &[&m.id]).await?;
        tx.commit().await?;
    }
    Ok(ids)
}
