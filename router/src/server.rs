//! The router server: listeners, the middleware stack, the proxy and the
//! router's own services, and the background loops.

use crate::config::Config;

/// Why the router could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("bind {what} {addr}")]
    Bind {
        what: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("load TLS certificate")]
    Tls(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("serve gRPC")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves until `shutdown` resolves.
pub async fn run(
    _config: Config,
    _shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Ok(())
}
