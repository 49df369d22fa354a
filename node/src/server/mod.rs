//! The gRPC server: listeners, the middleware stack around every service,
//! health and reflection, metrics, and graceful shutdown.

pub mod access_log;
pub mod logging;
pub mod metrics;
pub mod middleware;

use crate::config::Config;
use crate::service::{self, Deps};
use crate::storage::{Storages, metadata};
use middleware::{Stack, State, limit::Limiters};
use prometheus_client::registry::Registry;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("prepare runtime directory {path:?}")]
    RuntimeDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("prepare pack-objects cache directory {path:?}")]
    PackObjectsCache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write {file} in storage {storage:?}")]
    Metadata {
        storage: String,
        file: &'static str,
        #[source]
        source: std::io::Error,
    },
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
    #[error("could not create GitLab API client")]
    Gitlab(#[source] crate::gitlab::ConfigError),
}

/// A configured server, ready to serve on any listener.
pub struct Server {
    pub deps: Deps,
    pub metrics: metrics::Metrics,
    pub registry: Arc<Registry>,
    runtime_dir: PathBuf,
    _runtime_guard: Option<tempfile::TempDir>,
    stack: Stack,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("runtime_dir", &self.runtime_dir).finish_non_exhaustive()
    }
}

/// Removes `gitaly-<pid>` directories of processes that no longer run.
fn prune_stale_runtime_dirs(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("gitaly-")).and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() as i32 && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Server {
    /// Prepares storages (their `.gitaly-metadata` and private directory)
    /// and the runtime directory, and builds the services.
    pub fn new(config: Config) -> Result<Self, ServeError> {
        for s in &config.storages {
            metadata::ensure(&s.path).map_err(|source| ServeError::Metadata {
                storage: s.name.clone(),
                file: metadata::FILE_NAME,
                source,
            })?;
        }
        let (runtime_dir, guard) = match &config.runtime_dir {
            Some(parent) => {
                prune_stale_runtime_dirs(parent);
                let dir = parent.join(format!("gitaly-{}", std::process::id()));
                std::fs::create_dir_all(&dir).map_err(|source| ServeError::RuntimeDir { path: dir.clone(), source })?;
                (dir, None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("gitaly-")
                    .tempdir()
                    .map_err(|source| ServeError::RuntimeDir { path: std::env::temp_dir(), source })?;
                (t.path().to_owned(), Some(t))
            }
        };
        let mut registry = Registry::default();
        let metrics = metrics::Metrics::new(&mut registry, &config.prometheus.grpc_latency_buckets);
        let git_config = config.git.config.iter().map(|c| (c.key.clone(), c.value.clone())).collect();
        let bin_dir = match &config.bin_dir {
            Some(d) => d.clone(),
            None => std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(Path::to_owned))
                .unwrap_or_else(|| PathBuf::from(".")),
        };
        let hooks = crate::hooks::HooksDir::install(&runtime_dir, &bin_dir, config.logging.dir.clone())
            .map_err(|source| ServeError::RuntimeDir { path: runtime_dir.join("hooks.d"), source })?;
        if !hooks.usable() {
            tracing::warn!(binary = %hooks.binary.display(), "gitaly-hooks not found: pushes will fail");
        }
        let pack_cache = match (config.pack_objects_cache.enabled, config.pack_objects_cache_dir()) {
            (true, Some(dir)) => {
                let settings = crate::hooks::pack_cache::Settings {
                    dir: dir.clone(),
                    max_age: config.pack_objects_cache.max_age(),
                    max_size: config.pack_objects_cache.max_size(),
                    min_occurrences: config.pack_objects_cache.min_occurrences(),
                };
                let cache = crate::hooks::pack_cache::PackCache::new(settings, &mut registry)
                    .map_err(|source| ServeError::PackObjectsCache { path: dir, source })?;
                Some(cache)
            }
            _ => None,
        };
        let gitlab = crate::gitlab::Client::from_config(&config).map_err(ServeError::Gitlab)?;
        let housekeeping = metrics::Housekeeping::new(&mut registry, &config.prometheus.grpc_latency_buckets);
        let deps = Deps {
            housekeeping,
            hooks: Arc::new(hooks),
            pack_cache,
            gitlab: gitlab.map(Arc::new),
            storages: Storages::new(&config.storages),
            git: crate::git::CommandFactory::new(config.git_binary(), git_config, runtime_dir.clone()),
            repos: crate::git::Repositories::default(),
            transactions: crate::transaction::Manager::default(),
            config: Arc::new(config),
        };
        let stack = Stack::new(State {
            metrics: metrics.clone(),
            auth: deps.config.auth.clone(),
            limiters: Limiters::new(&deps.config.concurrency, &metrics),
            log: access_log::AccessLog::new(deps.config.logging.log_format(), &deps.config.logging.level),
        });
        Ok(Self { deps, metrics, registry: Arc::new(registry), runtime_dir, _runtime_guard: guard, stack })
    }

    /// The per-process runtime directory.
    pub fn runtime_dir(&self) -> &Path {
        &self.runtime_dir
    }

    /// Serves every service on `incoming` until `shutdown` resolves, then
    /// waits up to `graceful_restart_timeout` for in-flight calls.
    pub async fn serve<I, IO, IE>(
        &self,
        incoming: I,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), ServeError>
    where
        I: futures::Stream<Item = Result<IO, IE>> + Send,
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + tonic::transport::server::Connected + Unpin + Send + 'static,
        IE: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_service_status("", tonic_health::ServingStatus::Serving).await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(cairn_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .expect("the embedded descriptor sets are valid");
        let reflection_alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(cairn_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .expect("the embedded descriptor sets are valid");
        let routes = service::routes(&self.deps)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_alpha);

        let grace = self.deps.config.graceful_restart_timeout();
        serve_with_grace(self.stack.clone(), routes, incoming, shutdown, grace).await.map_err(Into::into)
    }
}

/// Serves `routes` behind `stack` on `incoming` until `shutdown` resolves,
/// then lets in-flight calls finish for up to `grace` (dropping them after).
/// The node and the router serve through this.
pub async fn serve_with_grace<I, IO, IE>(
    stack: middleware::Stack,
    routes: tonic::service::Routes,
    incoming: I,
    shutdown: impl std::future::Future<Output = ()> + Send,
    grace: Duration,
) -> Result<(), tonic::transport::Error>
where
    I: futures::Stream<Item = Result<IO, IE>> + Send,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + tonic::transport::server::Connected + Unpin + Send + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = stopped_tx.send(());
    };
    let server = tonic::transport::Server::builder()
        // Upstream pings idle clients every 5 minutes.
        .http2_keepalive_interval(Some(Duration::from_secs(300)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .layer(stack)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown);
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => return r,
        _ = stopped_rx => {}
    }
    // Shutdown was requested: drain in-flight calls, but not forever.
    match tokio::time::timeout(grace, server).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!(timeout = ?grace, "graceful shutdown timed out; dropping in-flight calls");
            Ok(())
        }
    }
}

/// Where a started server listens (addresses bound to port 0 resolved).
#[derive(Debug, Clone, Default)]
pub struct Addresses {
    pub tcp: Option<std::net::SocketAddr>,
    pub tls: Option<std::net::SocketAddr>,
    pub unix: Option<PathBuf>,
    pub prometheus: Option<std::net::SocketAddr>,
}

/// Binds every configured listener and the metrics endpoint, calls
/// `on_ready` with the bound addresses, and serves until `shutdown`.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(&Addresses),
) -> Result<(), ServeError> {
    use crate::transport::{BackchannelRegistry, Listeners, server_tls_config};
    use metrics::ConnectionLabels;

    let server = Server::new(config)?;
    let cfg = server.deps.config.clone();
    let tls = match (&cfg.tls_listen_addr, &cfg.tls) {
        (Some(addr), Some(t)) => {
            let key_path = match (&t.key_path, &t.key) {
                (Some(p), _) => p.clone(),
                (None, Some(pem)) => {
                    // The TLS loader reads files; an inline key goes to the
                    // private runtime directory.
                    let p = server.runtime_dir().join("tls-key.pem");
                    write_private(&p, pem.as_bytes()).map_err(|e| ServeError::Tls(Box::new(e)))?;
                    p
                }
                (None, None) => return Err(ServeError::Tls("tls.key_path is not set".into())),
            };
            let config = server_tls_config(&t.certificate_path, &key_path).map_err(|e| ServeError::Tls(Box::new(e)))?;
            Some((addr.as_str(), config))
        }
        _ => None,
    };
    let listeners = Listeners::bind(cfg.listen_addr.as_deref(), cfg.socket_path.as_deref(), tls)
        .map_err(|source| ServeError::Bind { what: "gRPC listeners", addr: describe_listeners(&cfg), source })?;
    // The internal socket: gitaly-hooks (run by git during pushes) calls
    // HookService through it, whatever else the node listens on.
    let internal = crate::hooks::internal_socket(server.runtime_dir());
    if let Some(parent) = internal.parent() {
        std::fs::create_dir_all(parent).map_err(|source| ServeError::RuntimeDir { path: parent.to_owned(), source })?;
    }
    let internal_listener = Listeners::bind(None, Some(&internal), None).map_err(|source| ServeError::Bind {
        what: "internal socket",
        addr: internal.display().to_string(),
        source,
    })?;
    let mut addrs = Addresses {
        tcp: listeners.tcp_addr(),
        tls: listeners.tls_addr(),
        unix: listeners.unix_path().map(Path::to_owned),
        prometheus: None,
    };

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(addr) = &cfg.prometheus_listen_addr {
        let listener = tokio::net::TcpListener::bind(normalize_addr(addr))
            .await
            .map_err(|source| ServeError::Bind { what: "prometheus_listen_addr", addr: addr.clone(), source })?;
        addrs.prometheus = listener.local_addr().ok();
        let mut rx = stop_rx.clone();
        tokio::spawn(metrics::serve(listener, server.registry.clone(), async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }));
    }
    let show = |a: Option<String>| a.unwrap_or_default();
    tracing::info!(
        listen_addr = %show(addrs.tcp.map(|a| a.to_string())),
        tls_listen_addr = %show(addrs.tls.map(|a| a.to_string())),
        socket_path = %show(addrs.unix.as_ref().map(|p| p.display().to_string())),
        prometheus_listen_addr = %show(addrs.prometheus.map(|a| a.to_string())),
        version = %crate::server_version(),
        "starting Gitaly"
    );
    on_ready(&addrs);

    let connections = server.metrics.connections.clone();
    let internal_connections = connections.clone();
    // Routers' sessions register where votes look them up.
    let backchannels = server.deps.transactions.backchannels().clone();
    let incoming = listeners.incoming(backchannels, move |kind| {
        connections.get_or_create(&ConnectionLabels { r#type: kind.as_str() }).inc();
    });
    // gitaly-hooks never opens a backchannel; the internal socket keeps its own registry.
    let internal_incoming = internal_listener.incoming(BackchannelRegistry::default(), move |kind| {
        internal_connections.get_or_create(&ConnectionLabels { r#type: kind.as_str() }).inc();
    });
    let incoming = futures::stream::select(incoming, internal_incoming);
    let result = server.serve(incoming, shutdown).await;
    let _ = stop_tx.send(true);
    result
}

/// Go accepts `:8075` for "all interfaces".
fn normalize_addr(addr: &str) -> String {
    if addr.starts_with(':') { format!("0.0.0.0{addr}") } else { addr.to_owned() }
}

fn describe_listeners(cfg: &Config) -> String {
    [cfg.listen_addr.clone(), cfg.tls_listen_addr.clone(), cfg.socket_path.as_ref().map(|p| p.display().to_string())]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(data)
}
