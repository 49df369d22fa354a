//! The router server: listeners (TCP, Unix, TLS, with the backchannel
//! handshake so sidechannels can be relayed), the same middleware stack as
//! the node (auth, correlation ids, access log, gRPC metrics), the router's
//! own services, the proxy for everything else, and the background loops.

use crate::background::BackgroundCtx;
use crate::config::Config;
use crate::db::{Db, migrate};
use crate::health::HealthView;
use crate::metrics::RouterMetrics;
use crate::nodes::Nodes;
use crate::proxy::{Proxy, Shared};
use cairn_node::server::access_log::AccessLog;
use cairn_node::server::metrics::{ConnectionLabels, ExtraPages, Metrics, PageFuture};
use cairn_node::server::middleware::{Stack, State, limit::Limiters};
use cairn_node::transport::{BackchannelRegistry, Listeners, server_tls_config};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

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

pub use cairn_node::server::Addresses;

/// Serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    run_with(config, shutdown, |_| {}).await
}

/// Like [`run`], calling `on_ready` with the bound addresses once serving.
pub async fn run_with(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(&Addresses),
) -> Result<(), ServeError> {
    let config = Arc::new(config);
    let db = Db::new(&config.database)?;
    db.ping().await?;
    migrate::ensure_current(&db).await?;
    let router_name = config.router_name();
    let transactions = crate::transactions::Manager::default();
    let nodes = Nodes::new(&config, Some(crate::service::backchannel_routes(&db, &transactions)));
    let health = HealthView::default();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry, &config.prometheus.grpc_latency_buckets);
    let router_metrics = Arc::new(RouterMetrics::new(&mut registry, &config.prometheus.grpc_latency_buckets));
    let background = BackgroundCtx {
        config: config.clone(),
        db: db.clone(),
        nodes: nodes.clone(),
        health: health.clone(),
        router_name: router_name.clone(),
        metrics: router_metrics.clone(),
        started: std::time::SystemTime::now(),
    };
    // Upstream serves only after a first round of health checks, so the
    // first requests are not refused for want of a healthy node.
    background.checker().check_round().await;
    let loops = crate::background::spawn(background, stop_rx.clone());

    let stack = Stack::new(State {
        metrics: metrics.clone(),
        auth: config.auth.clone(),
        limiters: Limiters::new(&[], &metrics),
        log: AccessLog::new(config.logging.log_format(), &config.logging.level),
    });
    let proxy = Proxy::new(Shared {
        config: config.clone(),
        db: db.clone(),
        nodes: nodes.clone(),
        health: health.clone(),
        router_name: router_name.clone(),
        metrics: router_metrics,
        transactions: transactions.clone(),
    });
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
    tokio::spawn(readiness(reporter, health.clone(), config.clone(), stop_rx.clone()));
    let routes = crate::service::routes(&db, &nodes, &health, &config, &transactions).add_service(health_service);
    let fallback =
        tower::ServiceExt::map_request(proxy, |r: http::Request<axum::body::Body>| r.map(tonic::body::Body::new));
    let routes = tonic::service::Routes::from(routes.into_axum_router().fallback_service(fallback));

    let tls = match (&config.tls_listen_addr, &config.tls) {
        (Some(addr), Some(t)) => {
            let key_path = t.key_path.clone().ok_or_else(|| ServeError::Tls("tls.key_path is not set".into()))?;
            let tls = server_tls_config(&t.certificate_path, &key_path).map_err(|e| ServeError::Tls(Box::new(e)))?;
            Some((addr.strip_prefix("tls://").unwrap_or(addr), tls))
        }
        _ => None,
    };
    let tcp = config.listen_addr.as_deref().map(|a| a.strip_prefix("tcp://").unwrap_or(a));
    let listeners = Listeners::bind(tcp, config.socket_path.as_deref(), tls).map_err(|source| ServeError::Bind {
        what: "gRPC listeners",
        addr: [
            config.listen_addr.clone(),
            config.tls_listen_addr.clone(),
            config.socket_path.as_ref().map(|p| p.display().to_string()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", "),
        source,
    })?;
    let mut addrs = Addresses {
        tcp: listeners.tcp_addr(),
        tls: listeners.tls_addr(),
        unix: listeners.unix_path().map(Into::into),
        prometheus: None,
    };
    let registry = Arc::new(registry);
    if let Some(addr) = &config.prometheus_listen_addr {
        let bind = if addr.starts_with(':') { format!("0.0.0.0{addr}") } else { addr.clone() };
        let listener = tokio::net::TcpListener::bind(&bind).await.map_err(|source| ServeError::Bind {
            what: "prometheus_listen_addr",
            addr: addr.clone(),
            source,
        })?;
        addrs.prometheus = listener.local_addr().ok();
        let mut rx = stop_rx.clone();
        let (db, config) = (db.clone(), config.clone());
        // `/db_metrics` queries PostgreSQL, so it is a separate page that can
        // be scraped less often, as upstream.
        let pages: ExtraPages = Arc::new(move |path: &str| -> Option<PageFuture> {
            if path != "/db_metrics" {
                return None;
            }
            let (db, config) = (db.clone(), config.clone());
            Some(Box::pin(async move {
                let timeout = config.prometheus.scrape_timeout.get();
                match tokio::time::timeout(timeout, crate::metrics::db_metrics(&db, &config)).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err("database metrics timed out".to_owned()),
                }
            }))
        });
        tokio::spawn(cairn_node::server::metrics::serve_pages(listener, registry.clone(), pages, async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }));
    }
    tracing::info!(
        router = %router_name,
        listen_addr = ?addrs.tcp,
        tls_listen_addr = ?addrs.tls,
        socket_path = ?addrs.unix,
        prometheus_listen_addr = ?addrs.prometheus,
        version = %cairn_node::server_version(),
        "starting praefect"
    );
    on_ready(&addrs);

    let connections = metrics.connections.clone();
    let incoming = listeners.incoming(BackchannelRegistry::default(), move |kind| {
        connections.get_or_create(&ConnectionLabels { r#type: kind.as_str() }).inc();
    });
    let grace = config.graceful_stop_timeout();
    let result =
        cairn_node::server::serve_with_grace(stack, routes, incoming, shutdown, grace).await.map_err(Into::into);
    let _ = stop_tx.send(true);
    // Replication workers finish their current job.
    let _ = tokio::time::timeout(grace, futures::future::join_all(loops)).await;
    result
}

/// The router's gRPC health: SERVING while its database answers and every
/// virtual storage has a healthy node, so probes reflect what clients get.
async fn readiness(
    reporter: tonic_health::server::HealthReporter,
    health: HealthView,
    config: Arc<Config>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let ready = health.checked()
            && health.database_ok()
            && config
                .virtual_storages
                .iter()
                .all(|vs| vs.nodes.iter().any(|n| health.locally_healthy(&vs.name, &n.storage)));
        let status = if ready { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing };
        reporter.set_service_status("", status).await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
