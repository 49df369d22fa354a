//! The router's metadata in PostgreSQL: a connection pool, the embedded
//! migrations, and the queries, grouped by what they keep track of.

pub mod admin;
pub mod health;
pub mod jobs;
pub mod migrate;
pub mod repositories;
pub mod verification;

use crate::config;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::time::Duration;

/// Oldest PostgreSQL the schema is written for (upstream's minimum too).
pub const MIN_SERVER_VERSION: i32 = 110_000;

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database configuration: {0}")]
    Config(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error(
        "database schema is behind this binary ({pending} migration(s) not applied, first {first}); run `praefect -config <file> sql-migrate`"
    )]
    SchemaBehind { pending: usize, first: &'static str },
    #[error("{0}")]
    Migration(String),
}

impl DbError {
    /// Connection-level failures (server down, pool exhausted) as opposed to
    /// a query the server rejected.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Query(e) => e.is_closed() || e.code().is_none(),
            _ => false,
        }
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) if e.code().is_some() => Self::Query(e),
            e => Self::Unavailable(error_chain(&e)),
        }
    }
}

impl From<DbError> for tonic::Status {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            tonic::Status::unavailable(format!("praefect metadata database: {e}"))
        } else {
            tonic::Status::internal(format!("praefect metadata database: {e}"))
        }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !message.contains(&next) {
            message.push_str(": ");
            message.push_str(&next);
        }
        source = s.source();
    }
    message
}

/// The pool every part of the router shares.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("status", &self.pool.status()).finish()
    }
}

/// libpq-style settings to a tokio-postgres config. A host starting with
/// `/` is a Unix socket directory, as for libpq.
pub fn pg_config(db: &config::Database) -> Result<tokio_postgres::Config, DbError> {
    let mut c = tokio_postgres::Config::new();
    c.host(if db.host.is_empty() { "/var/run/postgresql" } else { &db.host });
    if db.port != 0 {
        c.port(db.port);
    }
    if !db.user.is_empty() {
        c.user(&db.user);
    }
    if !db.password.is_empty() {
        c.password(db.password.as_bytes());
    }
    c.dbname(&db.dbname);
    c.application_name("praefect");
    c.connect_timeout(Duration::from_secs(5));
    match db.sslmode.as_str() {
        "" | "disable" | "allow" | "prefer" => {}
        other => {
            return Err(DbError::Config(format!(
                "sslmode {other:?} needs TLS to PostgreSQL, which this build does not offer; use disable or prefer"
            )));
        }
    }
    Ok(c)
}

impl Db {
    /// Builds the pool. No connection is made until the first query.
    pub fn new(db: &config::Database) -> Result<Self, DbError> {
        let manager = Manager::from_config(
            pg_config(db)?,
            tokio_postgres::NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(db.max_connections.unwrap_or(16))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(5)))
            .wait_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| DbError::Config(e.to_string()))?;
        Ok(Self { pool })
    }

    /// One pooled connection.
    pub async fn client(&self) -> Result<deadpool_postgres::Object, DbError> {
        Ok(self.pool.get().await?)
    }

    /// `SELECT 1` plus the server version check, as `sql-ping` does.
    pub async fn ping(&self) -> Result<i32, DbError> {
        let client = self.client().await?;
        let row = client.query_one("SELECT current_setting('server_version_num')::int", &[]).await?;
        let version: i32 = row.get(0);
        if version < MIN_SERVER_VERSION {
            return Err(DbError::Config(format!(
                "PostgreSQL server version {version} is older than the required {MIN_SERVER_VERSION}"
            )));
        }
        Ok(version)
    }
}
