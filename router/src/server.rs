//! The router server: listeners (TCP, Unix, TLS, with the backchannel
//! handshake so sidechannels can be relayed), the same middleware stack as
//! the node (auth, correlation ids, access log, gRPC metrics), the router's
//! own services, the proxy for everything else, and the background loops.

use crate::config::Config;
use crate::db::{Db, migrate};
use crate::health::HealthView;
use crate::nodes::Nodes;
use crate::proxy::{Proxy, Shared};
use cairn_node::server::access_log::AccessLog;
use cairn_node::server::metrics::{ConnectionLabels, Metrics};
use cairn_node::server::middleware::{Stack, State, limit::Limiters};
use cairn_node::transport::{BackchannelRegistry, Listeners, server_tls_config};
use prometheus_client::registry::Registry;
use std::path::PathBuf;
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

/// Where a started router listens.
#[derive(Debug, Clone, Default)]
pub struct Addresses {
    pub tcp: Option<std::net::SocketAddr>,
    pub tls: Option<std::net::SocketAddr>,
    pub unix: Option<PathBuf>,
    pub prometheus: Option<std::net::SocketAddr>,
}

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
    let nodes = Nodes::new(&config, None);
    let health = HealthView::default();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry, &config.prometheus.grpc_latency_buckets);
    interim_health::round(&db, &nodes, &health, &router_name).await;
    tokio::spawn(interim_health::run(
        db.clone(),
        nodes.clone(),
        health.clone(),
        config.clone(),
        router_name.clone(),
        stop_rx.clone(),
    ));

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
        observer: None,
    });
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
    tokio::spawn(readiness(reporter, health.clone(), config.clone(), stop_rx.clone()));
    let routes = tonic::service::Routes::new(health_service);
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
        tokio::spawn(cairn_node::server::metrics::serve(listener, registry.clone(), async move {
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
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = stopped_tx.send(());
    };
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(300)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .layer(stack)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown);
    tokio::pin!(server);
    let result = tokio::select! {
        r = &mut server => r.map_err(Into::into),
        _ = stopped_rx => match tokio::time::timeout(grace, server).await {
            Ok(r) => r.map_err(Into::into),
            Err(_) => {
                tracing::warn!(timeout = ?grace, "graceful stop timed out; dropping in-flight calls");
                Ok(())
            }
        },
    };
    let _ = stop_tx.send(true);
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

/// Stand-in health checks until the shared checker is merged.
mod interim_health {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    pub(super) async fn round(db: &Db, nodes: &Nodes, health: &HealthView, _router: &str) {
        let checks = nodes.all().map(|node| async move {
            let ok = tokio::time::timeout(Duration::from_secs(1), async {
                let conn = node.connection().await.ok()?;
                let mut client = tonic_health::pb::health_client::HealthClient::new(conn.channel());
                let answer =
                    client.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.ok()?;
                Some(
                    answer.into_inner().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
                )
            })
            .await
            .ok()
            .flatten()
            .unwrap_or(false);
            (node.virtual_storage.clone(), node.storage.clone(), ok)
        });
        let mut consensus: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (vs, storage, ok) in futures::future::join_all(checks).await {
            health.set_local(&vs, &storage, ok);
            let entry = consensus.entry(vs).or_default();
            if ok {
                entry.insert(storage);
            }
        }
        health.finish_round(db.ping().await.ok().map(|_| consensus));
    }

    pub(super) async fn run(
        db: Db,
        nodes: Nodes,
        health: HealthView,
        config: Arc<Config>,
        router: String,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(config.failover.health_check_interval()) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            round(&db, &nodes, &health, &router).await;
        }
    }
}
