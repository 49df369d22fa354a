//! Listeners and the per-connection handshake (listenmux).
//!
//! Each accept loop hands a new socket to its own task, which does the TLS
//! handshake where applicable, reads exactly 11 bytes and either starts a
//! backchannel session or replays them and yields a plain [`Conn`]. Slow or
//! hostile clients therefore only ever hold up their own task, bounded by the
//! handshake timeout.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use super::backchannel::{self, BackchannelRegistry};
use super::conn::{Conn, ConnInfo, Replay, TransportKind};
use super::{BACKCHANNEL_MAGIC, MAGIC_LEN};

/// Time a new connection gets for its TLS handshake and first 11 bytes.
/// gRPC clients send their preface at once, so this only bounds stalled or
/// hostile clients.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause after an accept error that is not about one connection (EMFILE,
/// ENFILE, ENOMEM…): retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Connections waiting for the gRPC server to pick them up.
const QUEUE: usize = 128;

/// The node's bound listening sockets; see [`Listeners::incoming`].
pub struct Listeners {
    tcp: Option<std::net::TcpListener>,
    unix: Option<(std::os::unix::net::UnixListener, PathBuf)>,
    tls: Option<(std::net::TcpListener, Arc<rustls::ServerConfig>)>,
    handshake_timeout: Duration,
}

/// Binds a TCP address in Go's notation: `:port` means every interface.
fn bind_tcp(addr: &str) -> io::Result<std::net::TcpListener> {
    let listener = if let Some(port) = addr.strip_prefix(':') {
        // Dual-stack where IPv6 exists, IPv4 otherwise.
        std::net::TcpListener::bind(format!("[::]:{port}"))
            .or_else(|_| std::net::TcpListener::bind(format!("0.0.0.0:{port}")))
    } else {
        std::net::TcpListener::bind(addr)
    }
    .map_err(|e| io::Error::new(e.kind(), format!("listen on {addr:?}: {e}")))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Removes a stale socket file at `path` (only a socket: anything else is left
/// for `bind` to complain about).
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl Listeners {
    /// Binds the configured listeners. Works outside a Tokio runtime; the
    /// sockets are registered with the runtime by [`Listeners::incoming`].
    pub fn bind(
        tcp: Option<&str>,
        unix: Option<&Path>,
        tls: Option<(&str, Arc<rustls::ServerConfig>)>,
    ) -> io::Result<Self> {
        let tcp = tcp.map(bind_tcp).transpose()?;
        let unix = match unix {
            Some(path) => {
                remove_stale_socket(path)?;
                let listener = std::os::unix::net::UnixListener::bind(path)
                    .map_err(|e| io::Error::new(e.kind(), format!("listen on {path:?}: {e}")))?;
                listener.set_nonblocking(true)?;
                Some((listener, path.to_path_buf()))
            }
            None => None,
        };
        let tls = tls.map(|(addr, config)| bind_tcp(addr).map(|l| (l, config))).transpose()?;
        Ok(Self { tcp, unix, tls, handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT })
    }

    /// Replaces [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The bound plain TCP address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound TLS address.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The Unix socket path.
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix.as_ref().map(|(_, p)| p.as_path())
    }

    /// Starts accepting on every listener and returns the connections to
    /// serve, for `Server::serve_with_incoming_shutdown`. `on_accept` runs
    /// once per accepted socket. Client-opened streams of backchannel
    /// sessions are yielded as connections of their own, with
    /// [`ConnInfo::backchannel`] set. Dropping the stream stops accepting.
    /// Must be called inside a Tokio runtime.
    pub fn incoming(
        self,
        registry: BackchannelRegistry,
        on_accept: impl Fn(TransportKind) + Send + Sync + 'static,
    ) -> impl Stream<Item = io::Result<Conn>> + Send + 'static {
        let (tx, rx) = mpsc::channel(QUEUE);
        let shared = Arc::new(Shared {
            registry,
            on_accept: Box::new(on_accept),
            handshake_timeout: self.handshake_timeout,
            tx,
        });
        let mut started = Vec::new();
        if let Some(l) = self.tcp {
            started.push(tokio::net::TcpListener::from_std(l).map(|l| {
                tokio::spawn(accept_loop(Listener::Tcp(l, None), shared.clone()));
            }));
        }
        if let Some((l, _)) = self.unix {
            started.push(tokio::net::UnixListener::from_std(l).map(|l| {
                tokio::spawn(accept_loop(Listener::Unix(l), shared.clone()));
            }));
        }
        if let Some((l, config)) = self.tls {
            started.push(tokio::net::TcpListener::from_std(l).map(|l| {
                tokio::spawn(accept_loop(Listener::Tcp(l, Some(TlsAcceptor::from(config))), shared.clone()));
            }));
        }
        // Registration only fails if the socket is unusable; report it
        // through the stream rather than panicking.
        for failed in started.into_iter().filter_map(Result::err) {
            let tx = shared.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(Err(failed)).await;
            });
        }
        ReceiverStream::new(rx)
    }
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("tcp", &self.tcp_addr())
            .field("unix", &self.unix_path())
            .field("tls", &self.tls_addr())
            .finish()
    }
}

struct Shared {
    registry: BackchannelRegistry,
    on_accept: Box<dyn Fn(TransportKind) + Send + Sync>,
    handshake_timeout: Duration,
    tx: mpsc::Sender<io::Result<Conn>>,
}

enum Listener {
    Tcp(tokio::net::TcpListener, Option<TlsAcceptor>),
    Unix(tokio::net::UnixListener),
}

/// Accept errors that concern one connection only; the next accept works.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

async fn accept_loop(listener: Listener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            () = shared.tx.closed() => return,
            a = accept_one(&listener, &shared) => a,
        };
        match accepted {
            Ok(()) => {}
            Err(e) if is_per_connection(&e) => tracing::debug!(error = %e, "accept failed"),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; backing off");
                tokio::select! {
                    () = shared.tx.closed() => return,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
}

/// Accepts one socket and starts its handshake task.
async fn accept_one(listener: &Listener, shared: &Arc<Shared>) -> io::Result<()> {
    match listener {
        Listener::Tcp(l, tls) => {
            let (socket, remote) = l.accept().await?;
            // gRPC is latency-sensitive; Go sets this by default too.
            let _ = socket.set_nodelay(true);
            let kind = if tls.is_some() { TransportKind::Tls } else { TransportKind::Tcp };
            (shared.on_accept)(kind);
            let shared = shared.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        let timeout = shared.handshake_timeout;
                        match tokio::time::timeout(timeout, acceptor.accept(socket)).await {
                            Ok(Ok(stream)) => classify(stream, kind, Some(remote), shared).await,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, ?remote, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(?remote, "TLS handshake timed out"),
                        }
                    }
                    None => classify(socket, kind, Some(remote), shared).await,
                }
            });
        }
        Listener::Unix(l) => {
            let (socket, _) = l.accept().await?;
            (shared.on_accept)(TransportKind::Unix);
            tokio::spawn(classify(socket, TransportKind::Unix, None, shared.clone()));
        }
    }
    Ok(())
}

/// Reads the 11-byte magic and routes the connection. It gets its own
/// timeout after the TLS handshake's: either bounds a stalled client.
async fn classify<T>(mut io: T, kind: TransportKind, remote: Option<SocketAddr>, shared: Arc<Shared>)
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut magic = [0u8; MAGIC_LEN];
    match tokio::time::timeout(shared.handshake_timeout, io.read_exact(&mut magic)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::debug!(error = %e, ?remote, transport = %kind, "connection closed before its first 11 bytes");
            return;
        }
        Err(_) => {
            tracing::debug!(?remote, transport = %kind, "connection sent no preface in time");
            return;
        }
    }
    if &magic == BACKCHANNEL_MAGIC {
        backchannel::serve(io, kind, remote, shared.registry.clone(), shared.tx.clone()).await;
    } else {
        let info = ConnInfo { transport: kind, remote_addr: remote, backchannel: None };
        let _ = shared.tx.send(Ok(Conn::new(Replay::new(&magic, io), info))).await;
    }
}
