//! The byte streams handed to the gRPC server, and what is known about them.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::backchannel::BackchannelPeer;

/// Which kind of listener accepted a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Tcp,
    Unix,
    Tls,
}

impl TransportKind {
    /// The label value used by `gitaly_connections_total{type}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Unix => "unix",
            Self::Tls => "tls",
        }
    }
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-connection facts; tonic puts a clone into every request's extensions.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub transport: TransportKind,
    /// The peer's address; `None` for Unix sockets.
    pub remote_addr: Option<SocketAddr>,
    /// Set when the request arrived over a backchannel (yamux) session.
    pub backchannel: Option<BackchannelPeer>,
}

/// Object-safe union of the stream types a [`Conn`] can wrap.
trait ConnIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ConnIo for T {}

/// One HTTP/2 byte stream for the gRPC server: a plain socket (with its
/// peeked bytes restored), a TLS stream, or one yamux stream.
pub struct Conn {
    io: Box<dyn ConnIo>,
    info: ConnInfo,
}

impl Conn {
    pub(crate) fn new<T>(io: T, info: ConnInfo) -> Self
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Self { io: Box::new(io), info }
    }

    /// What is known about this connection.
    pub fn info(&self) -> &ConnInfo {
        &self.info
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("info", &self.info).finish_non_exhaustive()
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

crate::transport::delegate_async_read!(Conn, io);

crate::transport::delegate_async_write!(Conn, io);

/// A stream whose first bytes were already read (to classify it) and are
/// served again before the rest.
pub(crate) struct Replay<T> {
    prefix: Vec<u8>,
    pos: usize,
    inner: T,
}

impl<T> Replay<T> {
    pub(crate) fn new(prefix: &[u8], inner: T) -> Self {
        Self { prefix: prefix.to_vec(), pos: 0, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Replay<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.prefix.len() {
            let rest = &this.prefix[this.pos..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

crate::transport::delegate_async_write!([T: AsyncWrite + Unpin] Replay<T>, inner);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn replay_serves_prefix_then_inner() {
        let inner: &[u8] = b" world";
        let mut r = Replay::new(b"hello", inner);
        let mut out = String::new();
        r.read_to_string(&mut out).await.expect("read");
        assert_eq!(out, "hello world");
    }

    #[test]
    fn kind_labels() {
        assert_eq!(TransportKind::Tcp.as_str(), "tcp");
        assert_eq!(TransportKind::Unix.as_str(), "unix");
        assert_eq!(TransportKind::Tls.as_str(), "tls");
    }
}
