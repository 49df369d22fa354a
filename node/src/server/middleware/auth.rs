//! Token authentication of every call (see `crate::auth` for the scheme).
//! It runs before the concurrency limiter, so a queued request's token
//! cannot expire while it waits and unauthenticated clients take no slots.

use crate::auth::{self, TokenError};
use crate::config;
use crate::server::metrics::{AuthErrorLabels, AuthLabels, Metrics};
use std::time::SystemTime;

/// Health checks answer without a token: Kubernetes' gRPC probes cannot
/// send one, and a health answer reveals nothing.
fn exempt(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
}

/// Checks the `authorization` header. `Err` carries the status to answer
/// with; in transitioning mode failures are counted but let through.
pub(crate) fn check(
    cfg: &config::Auth,
    metrics: &Metrics,
    path: &str,
    header: Option<&str>,
) -> Result<(), tonic::Status> {
    if exempt(path) {
        return Ok(());
    }
    let enforced = if cfg.transitioning { "false" } else { "true" };
    let count = |status: &'static str| metrics.authentications.get_or_create(&AuthLabels { enforced, status }).inc();
    if cfg.token.is_empty() {
        count("server disabled authentication");
        return Ok(());
    }
    let result = auth::verify(header, &cfg.token, SystemTime::now());
    let status = match result {
        Ok(()) => {
            count(if cfg.transitioning { "would be ok" } else { "ok" });
            return Ok(());
        }
        Err(TokenError::Unauthenticated) => {
            count("unauthenticated");
            tonic::Status::unauthenticated("authentication required")
        }
        Err(e) => {
            count("denied");
            let reason = match e {
                TokenError::WrongSignature => Some("wrong hmac signature"),
                TokenError::BadTimestamp => Some("cannot parse timestamp"),
                TokenError::TooOld => Some("timestamp too old"),
                TokenError::TooNew => Some("timestamp too new"),
                TokenError::UnknownVersion | TokenError::Unauthenticated => None,
            };
            if let Some(error) = reason {
                metrics.authentication_errors.get_or_create(&AuthErrorLabels { version: "v2", error }).inc();
            }
            tonic::Status::permission_denied("permission denied")
        }
    };
    if cfg.transitioning { Ok(()) } else { Err(status) }
}
