//! Prometheus metrics with upstream's names, and the `/metrics` endpoint.
//!
//! The registry is created once and passed down; nothing registers
//! globally. Label values come from the RPC facts table or fixed enums, so
//! cardinality is bounded.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// Labels of the go-grpc-prometheus server metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub grpc_type: &'static str,
    pub grpc_service: &'static str,
    pub grpc_method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandledLabels {
    pub grpc_type: &'static str,
    pub grpc_service: &'static str,
    pub grpc_method: &'static str,
    pub grpc_code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    pub enforced: &'static str,
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthErrorLabels {
    pub version: &'static str,
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub system: &'static str,
    pub grpc_service: &'static str,
    pub grpc_method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DroppedLabels {
    pub system: &'static str,
    pub grpc_service: &'static str,
    pub grpc_method: &'static str,
    pub reason: &'static str,
}

/// Histogram buckets from `[prometheus] grpc_latency_buckets`.
#[derive(Clone, Debug)]
pub struct Buckets(Arc<Vec<f64>>);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

/// Every metric the server core records.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub started: Family<RpcLabels, Counter>,
    pub handled: Family<HandledLabels, Counter>,
    pub msg_received: Family<RpcLabels, Counter>,
    pub msg_sent: Family<RpcLabels, Counter>,
    pub handling_seconds: Family<RpcLabels, Histogram, Buckets>,
    pub connections: Family<ConnectionLabels, Counter>,
    pub authentications: Family<AuthLabels, Counter>,
    pub authentication_errors: Family<AuthErrorLabels, Counter>,
    pub limit_in_progress: Family<LimitLabels, Gauge>,
    pub limit_queued: Family<LimitLabels, Gauge>,
    pub limit_acquiring_seconds: Family<LimitLabels, Histogram, Buckets>,
    pub requests_dropped: Family<DroppedLabels, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &mut Registry, latency_buckets: &[f64]) -> Self {
        let buckets = Buckets(Arc::new(latency_buckets.to_vec()));
        let m = Self {
            started: Family::default(),
            handled: Family::default(),
            msg_received: Family::default(),
            msg_sent: Family::default(),
            handling_seconds: Family::new_with_constructor(buckets.clone()),
            connections: Family::default(),
            authentications: Family::default(),
            authentication_errors: Family::default(),
            limit_in_progress: Family::default(),
            limit_queued: Family::default(),
            limit_acquiring_seconds: Family::new_with_constructor(buckets),
            requests_dropped: Family::default(),
        };
        // prometheus-client appends `_total` to counters.
        registry.register("grpc_server_started", "RPCs started on the server", m.started.clone());
        registry.register("grpc_server_handled", "RPCs completed on the server, by code", m.handled.clone());
        registry.register("grpc_server_msg_received", "Stream messages received", m.msg_received.clone());
        registry.register("grpc_server_msg_sent", "Stream messages sent", m.msg_sent.clone());
        registry.register(
            "grpc_server_handling_seconds",
            "Response latency of RPCs handled by the server",
            m.handling_seconds.clone(),
        );
        registry.register("gitaly_connections", "Connections accepted, by listener type", m.connections.clone());
        registry.register(
            "gitaly_authentications",
            "Authentication attempts, by enforcement and outcome",
            m.authentications.clone(),
        );
        registry.register(
            "gitaly_authentication_errors",
            "Authentication failures, by token version and reason",
            m.authentication_errors.clone(),
        );
        registry.register(
            "gitaly_concurrency_limiting_in_progress",
            "Concurrency-limited calls in progress",
            m.limit_in_progress.clone(),
        );
        registry.register(
            "gitaly_concurrency_limiting_queued",
            "Calls waiting for a concurrency slot",
            m.limit_queued.clone(),
        );
        registry.register(
            "gitaly_concurrency_limiting_acquiring_seconds",
            "Time calls waited for a concurrency slot",
            m.limit_acquiring_seconds.clone(),
        );
        registry.register(
            "gitaly_requests_dropped",
            "Calls dropped by the concurrency limiter, by reason",
            m.requests_dropped.clone(),
        );
        m
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskStatusLabels {
    pub housekeeping_task: String,
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub housekeeping_task: &'static str,
}

/// Upstream's housekeeping metrics: what OptimizeRepository did, and how
/// long each step took.
#[derive(Clone, Debug)]
pub struct Housekeeping {
    tasks: Family<TaskStatusLabels, Counter>,
    latency: Family<TaskLabels, Histogram, Buckets>,
}

impl Housekeeping {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &mut Registry, latency_buckets: &[f64]) -> Self {
        let m = Self {
            tasks: Family::default(),
            latency: Family::new_with_constructor(Buckets(Arc::new(latency_buckets.to_vec()))),
        };
        registry.register(
            "gitaly_housekeeping_tasks",
            "Total number of housekeeping tasks performed in the repository",
            m.tasks.clone(),
        );
        registry.register(
            "gitaly_housekeeping_tasks_latency",
            "Latency of the housekeeping tasks performed",
            m.latency.clone(),
        );
        m
    }

    /// Records one housekeeping run (nothing when another run held the
    /// repository and this one did nothing).
    pub fn record(&self, report: &crate::git::housekeeping::Report) {
        if report.skipped {
            return;
        }
        for (task, ok) in &report.tasks {
            let status = if *ok { "success" } else { "failure" };
            self.tasks.get_or_create(&TaskStatusLabels { housekeeping_task: task.clone(), status }).inc();
        }
        for (task, took) in &report.durations {
            self.latency.get_or_create(&TaskLabels { housekeeping_task: task }).observe(took.as_secs_f64());
        }
    }
}

/// Text exposition of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).expect("writing to a String cannot fail");
    out
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    serve_pages(listener, registry, Arc::new(|_: &str| None), shutdown).await;
}

/// A page rendered on request, such as the router's `/db_metrics`.
pub type PageFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send>>;

/// Other pages by path, besides `/metrics`.
pub type ExtraPages = Arc<dyn Fn(&str) -> Option<PageFuture> + Send + Sync>;

/// Like [`serve`], with `extra` pages (an error renders as 503).
pub async fn serve_pages(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    extra: ExtraPages,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let shutdown = std::pin::pin!(shutdown);
    let mut shutdown = shutdown;
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept metrics connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let registry = registry.clone();
        let extra = extra.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let registry = registry.clone();
                let page = extra(req.uri().path());
                async move {
                    let text = "text/plain; version=0.0.4; charset=utf-8";
                    let resp = if req.uri().path() == "/metrics" {
                        hyper::Response::builder()
                            .header("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
                            .body(Full::new(Bytes::from(render(&registry))))
                    } else if let Some(page) = page {
                        match page.await {
                            Ok(body) => hyper::Response::builder()
                                .header("content-type", text)
                                .body(Full::new(Bytes::from(body))),
                            Err(e) => {
                                hyper::Response::builder().status(503).body(Full::new(Bytes::from(format!("{e}\n"))))
                            }
                        }
                    } else {
                        hyper::Response::builder().status(404).body(Full::new(Bytes::from_static(b"not found\n")))
                    };
                    Ok::<_, std::convert::Infallible>(resp.expect("static response parts are valid"))
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await {
                tracing::debug!(error = %e, "metrics connection");
            }
        });
    }
}
