//! The operator's HTTP endpoint: `/healthz` (the process serves),
//! `/readyz` (the controller is watching) and `/metrics` (reconcile
//! counts in Prometheus text format), for the chart's probes and scraping.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What the endpoint reports; the controller updates it.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    reconciliations: AtomicU64,
    failures: AtomicU64,
}

impl Health {
    /// The controller is running.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// One reconciliation ended, successfully or not.
    pub fn reconciled(&self, ok: bool) {
        self.reconciliations.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Status and body of `path`.
    pub fn page(&self, path: &str) -> (u16, String) {
        match path {
            "/healthz" => (200, "ok\n".to_owned()),
            "/readyz" if self.ready.load(Ordering::Relaxed) => (200, "ready\n".to_owned()),
            "/readyz" => (503, "controller not started\n".to_owned()),
            "/metrics" => (200, self.metrics()),
            _ => (404, "not found\n".to_owned()),
        }
    }

    fn metrics(&self) -> String {
        format!(
            "# HELP cairn_operator_reconciliations_total GitalyCluster reconciliations run.\n\
             # TYPE cairn_operator_reconciliations_total counter\n\
             cairn_operator_reconciliations_total {}\n\
             # HELP cairn_operator_reconcile_errors_total Reconciliations that failed (retried with backoff).\n\
             # TYPE cairn_operator_reconcile_errors_total counter\n\
             cairn_operator_reconcile_errors_total {}\n",
            self.reconciliations.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }
}

/// Serves `health` on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, health: Arc<Health>) -> std::io::Result<()> {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept HTTP connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let health = health.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (status, body) = health.page(req.uri().path());
                async move {
                    hyper::Response::builder()
                        .status(status)
                        .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                        .body(Full::new(Bytes::from(body)))
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::Health;

    #[test]
    fn pages_follow_the_controller() {
        let h = Health::default();
        assert_eq!(h.page("/healthz").0, 200);
        assert_eq!(h.page("/readyz").0, 503);
        h.set_ready();
        assert_eq!(h.page("/readyz").0, 200);
        h.reconciled(true);
        h.reconciled(false);
        let metrics = h.page("/metrics").1;
        assert!(metrics.contains("cairn_operator_reconciliations_total 2\n"), "{metrics}");
        assert!(metrics.contains("cairn_operator_reconcile_errors_total 1\n"), "{metrics}");
        assert_eq!(h.page("/other").0, 404);
    }
}
