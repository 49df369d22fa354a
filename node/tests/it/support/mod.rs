//! Test harness: a real node serving the full middleware stack over a Unix
//! socket in a temporary directory, and clients for it.

pub mod fixture;
pub mod git;
pub mod wire;

use cairn_node::config::{Config, Storage};
use cairn_proto::gitaly::Repository;
use std::path::{Path, PathBuf};
use tonic::transport::{Channel, Endpoint};

pub const STORAGE: &str = "default";

/// A running node. Dropping it shuts the server down.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub storage: PathBuf,
    pub socket: PathBuf,
    pub metrics_addr: Option<std::net::SocketAddr>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Node {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a node whose storage is the shared read-only fixture
    /// (`support::fixture`); address repositories with `fixture::rel`.
    pub async fn start_on_fixture() -> Self {
        let storage = fixture::storage().to_owned();
        Self::start_inner(Some(storage), |_| {}).await
    }

    /// Starts a node whose config `adjust` may change (auth, limits, ...).
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_inner(None, adjust).await
    }

    async fn start_inner(storage: Option<PathBuf>, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = storage.unwrap_or_else(|| dir.path().join("storage"));
        let runtime = dir.path().join("run");
        std::fs::create_dir_all(&storage).expect("mkdir storage");
        std::fs::create_dir_all(&runtime).expect("mkdir runtime");
        let socket = dir.path().join("gitaly.socket");
        let mut config = Config {
            socket_path: Some(socket.clone()),
            runtime_dir: Some(runtime),
            storages: vec![Storage { name: STORAGE.into(), path: storage.clone() }],
            // Where cargo put gitaly-hooks, which pushes run.
            bin_dir: Path::new(env!("CARGO_BIN_EXE_gitaly-hooks")).parent().map(Path::to_owned),
            ..Default::default()
        };
        // Keep test output readable; access lines are checked through the binary.
        config.logging.level = "warn".into();
        adjust(&mut config);
        config.validate().expect("test config is valid");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let run_config = config;
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            cairn_node::server::run(run_config, shutdown, move |addrs| {
                let _ = ready_tx.send(addrs.prometheus);
            })
            .await
            .expect("server runs");
        });
        let metrics_addr = ready_rx.await.expect("server started");
        Self { dir, storage, socket, metrics_addr, shutdown: Some(tx), task: Some(task) }
    }

    /// A channel to the node's Unix socket.
    pub async fn channel(&self) -> Channel {
        unix_channel(&self.socket).await
    }

    pub fn repo(&self, relative: &str) -> Repository {
        Repository { storage_name: STORAGE.into(), relative_path: relative.into(), ..Default::default() }
    }

    pub fn create_repo(&self, relative: &str, format: git::Format) -> git::TestRepo {
        git::TestRepo::create(&self.storage, relative, format)
    }

    /// The text of the node's `/metrics` page.
    pub async fn metrics(&self) -> String {
        let addr = self.metrics_addr.expect("prometheus_listen_addr configured");
        http_get(addr, "/metrics").await
    }
}

/// A tonic channel over a Unix socket.
pub async fn unix_channel(path: &Path) -> Channel {
    let path = path.to_owned();
    Endpoint::from_static("http://[::]:50051")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .expect("connect to node")
}

/// A minimal HTTP/1.1 GET, enough for /metrics.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect metrics");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

/// Adds `authorization` to every request.
#[derive(Clone)]
pub struct Token(pub String);

impl tonic::service::Interceptor for Token {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let v = cairn_node::auth::bearer(&self.0, std::time::SystemTime::now());
        req.metadata_mut().insert("authorization", v.parse().expect("ascii header"));
        Ok(req)
    }
}

/// Every file and directory below `root` with its size (directories 0), for
/// checking that a request changed nothing.
pub fn snapshot(root: &Path) -> std::collections::BTreeMap<PathBuf, u64> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let meta = std::fs::symlink_metadata(e.path()).expect("stat");
            if meta.is_dir() {
                stack.push(e.path());
                out.insert(e.path(), 0);
            } else {
                out.insert(e.path(), meta.len());
            }
        }
    }
    out
}
