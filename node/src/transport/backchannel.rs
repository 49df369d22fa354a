//! Server side of Gitaly's backchannel: a yamux session per connection that
//! started with `backchannel`.
//!
//! The client opens streams and speaks HTTP/2 gRPC on them; each becomes a
//! [`Conn`] for the server. The server may open streams towards the client at
//! any time, for sidechannels or for gRPC calls in the reverse direction
//! ([`BackchannelPeer::grpc_channel`]). Sessions are registered under a
//! numeric peer id (starting at 1, as upstream) for as long as they live.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

use super::conn::{Conn, ConnInfo, TransportKind};
use super::mux::{self, MuxHandle, MuxStream};

/// Live backchannel sessions by peer id. Cloning shares the registry.
#[derive(Clone, Default)]
pub struct BackchannelRegistry {
    inner: Arc<RegistryInner>,
}

#[derive(Default)]
struct RegistryInner {
    last_id: AtomicU64,
    peers: Mutex<HashMap<u64, BackchannelPeer>>,
}

impl BackchannelRegistry {
    /// The peer with `id`, if its session is still open.
    pub fn get(&self, id: u64) -> Option<BackchannelPeer> {
        self.lock_peers().get(&id).cloned()
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.lock_peers().len()
    }

    /// True when no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of all live peers, in no particular order.
    pub fn peers(&self) -> Vec<BackchannelPeer> {
        self.lock_peers().values().cloned().collect()
    }

    fn lock_peers(&self) -> std::sync::MutexGuard<'_, HashMap<u64, BackchannelPeer>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.inner.peers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn register(&self, mux: MuxHandle, remote_addr: Option<SocketAddr>) -> BackchannelPeer {
        let id = self.inner.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        let peer = BackchannelPeer { inner: Arc::new(PeerInner { id, remote_addr, mux, channel: Mutex::new(None) }) };
        self.lock_peers().insert(id, peer.clone());
        peer
    }

    fn remove(&self, id: u64) {
        self.lock_peers().remove(&id);
    }
}

impl std::fmt::Debug for BackchannelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackchannelRegistry").field("peers", &self.len()).finish()
    }
}

/// One client's backchannel session, as seen by the server.
#[derive(Clone)]
pub struct BackchannelPeer {
    inner: Arc<PeerInner>,
}

struct PeerInner {
    id: u64,
    remote_addr: Option<SocketAddr>,
    mux: MuxHandle,
    /// Created on first use: most peers never receive calls.
    channel: Mutex<Option<Channel>>,
}

impl BackchannelPeer {
    /// The peer id, unique per registry.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Opens a new server-to-client stream. Fails once the session is closed.
    pub async fn open_stream(&self) -> io::Result<MuxStream> {
        self.inner.mux.open().await
    }

    /// True once the session has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.mux.is_closed()
    }

    /// Resolves when the session has ended.
    pub async fn closed(&self) {
        self.inner.mux.closed().await
    }

    /// A gRPC channel whose connections are server-opened streams: the node
    /// is the gRPC client, the backchannel client serves (e.g. Praefect's
    /// RefTransaction). Connects lazily; must be called inside a Tokio runtime.
    pub fn grpc_channel(&self) -> Channel {
        let mut slot = self.inner.channel.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(channel) = slot.as_ref() {
            return channel.clone();
        }
        let mux = self.inner.mux.clone();
        let connector = tower::service_fn(move |_: http::Uri| {
            let mux = mux.clone();
            async move { mux.open().await.map(TokioIo::new) }
        });
        // The authority is cosmetic: the connector ignores the URI.
        let channel = Endpoint::from_static("http://multiplexed").connect_with_connector_lazy(connector);
        *slot = Some(channel.clone());
        channel
    }
}

impl std::fmt::Debug for BackchannelPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackchannelPeer")
            .field("id", &self.inner.id)
            .field("remote_addr", &self.inner.remote_addr)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Runs the server side of one backchannel session on `io` (whose magic has
/// been consumed): registers the peer, yields every client-opened stream as a
/// [`Conn`] into `conns`, and unregisters the peer when the session ends.
pub(super) async fn serve<T>(
    io: T,
    transport: TransportKind,
    remote_addr: Option<SocketAddr>,
    registry: BackchannelRegistry,
    conns: mpsc::Sender<io::Result<Conn>>,
) where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mux::Session { handle, mut inbound, guard } = mux::spawn(io, mux::Mode::Server);
    let peer = registry.register(handle.clone(), remote_addr);
    let id = peer.id();
    tracing::debug!(peer = id, %transport, ?remote_addr, "backchannel session started");
    let info = ConnInfo { transport, remote_addr, backchannel: Some(peer) };
    // Our guard keeps the session open while the server accepts; after that,
    // only the streams being served do, so shutdown drains and then closes.
    loop {
        let stream = tokio::select! {
            s = inbound.recv() => s,
            () = conns.closed() => None,
        };
        let Some(stream) = stream else { break };
        let conn = Conn::new(stream.with_guard(handle.guard()), info.clone());
        if conns.send(Ok(conn)).await.is_err() {
            break;
        }
    }
    drop(info);
    drop(guard);
    drop(inbound);
    handle.closed().await;
    registry.remove(id);
    tracing::debug!(peer = id, "backchannel session ended");
}
