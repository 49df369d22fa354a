//! One yamux session, driven by a dedicated task.
//!
//! The `yamux` crate's [`yamux::Connection`] is poll-based and must be polled
//! by a single task: [`spawn`] moves it into a driver task that reads frames,
//! hands inbound streams to a channel and opens outbound streams on request
//! through a cloneable [`MuxHandle`].
//!
//! Lifetime: the session ends when the peer closes it, or — for the side that
//! owns it — when the last [`SessionGuard`] is dropped. Guards are attached to
//! the streams that should keep the session alive (see the callers), so a
//! session is closed once its user is done with it, not when a handle that
//! merely *could* open streams goes away.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, BufStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

pub(crate) use yamux::Mode;

/// Size of the read and write buffers put between yamux and the socket.
/// yamux writes a 12-byte header and the body separately and reads them the
/// same way; buffering turns that into one system call per frame or fewer.
const SOCKET_BUFFER: usize = 256 * 1024;

/// Largest data frame we send. The crate default (16 KiB) costs one trip
/// through the driver task per 16 KiB; larger frames make bulk sidechannel
/// transfers considerably faster. Frames never exceed the peer's window, so
/// this stays within what hashicorp/yamux accepts.
const SPLIT_SEND_SIZE: usize = 128 * 1024;

/// How long a graceful close may take before the socket is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

type OpenReply = oneshot::Sender<io::Result<yamux::Stream>>;

/// Keeps a session open while alive; see the module documentation.
#[derive(Clone)]
pub(crate) struct SessionGuard(
    #[allow(dead_code, reason = "never read: only its drop, seen by the driver, matters")] mpsc::Sender<Infallible>,
);

/// Opens streams on a session and observes its end. Holding a handle does
/// not keep the session open.
#[derive(Clone)]
pub(crate) struct MuxHandle {
    open_tx: mpsc::UnboundedSender<OpenReply>,
    guard: mpsc::WeakSender<Infallible>,
}

impl MuxHandle {
    /// Opens a new outbound stream without a guard.
    pub(crate) async fn open(&self) -> io::Result<MuxStream> {
        let (tx, rx) = oneshot::channel();
        self.open_tx.send(tx).map_err(|_| session_closed())?;
        let stream = rx.await.map_err(|_| session_closed())??;
        Ok(MuxStream::new(stream))
    }

    /// A new guard, or `None` when the session is already shutting down.
    pub(crate) fn guard(&self) -> Option<SessionGuard> {
        self.guard.upgrade().map(SessionGuard)
    }

    /// True once the driver task has finished.
    pub(crate) fn is_closed(&self) -> bool {
        self.open_tx.is_closed()
    }

    /// Resolves when the driver task has finished.
    pub(crate) async fn closed(&self) {
        self.open_tx.closed().await;
    }
}

/// A freshly started session: the handle, the inbound streams (the channel
/// ends when the session does) and the first guard.
pub(crate) struct Session {
    pub(crate) handle: MuxHandle,
    pub(crate) inbound: mpsc::UnboundedReceiver<MuxStream>,
    pub(crate) guard: SessionGuard,
}

/// Starts a yamux session in `mode` over `io` in a new task.
pub(crate) fn spawn<T>(io: T, mode: Mode) -> Session
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut config = yamux::Config::default();
    config.set_split_send_size(SPLIT_SEND_SIZE);
    let socket = BufStream::with_capacity(SOCKET_BUFFER, SOCKET_BUFFER, io).compat();
    let conn = yamux::Connection::new(socket, config, mode);

    let (open_tx, open_rx) = mpsc::unbounded_channel();
    let (inbound_tx, inbound) = mpsc::unbounded_channel();
    let (guard_tx, guard_rx) = mpsc::channel::<Infallible>(1);
    let handle = MuxHandle { open_tx, guard: guard_tx.downgrade() };
    tokio::spawn(drive(conn, open_rx, inbound_tx, guard_rx));
    Session { handle, inbound, guard: SessionGuard(guard_tx) }
}

/// Why the driver loop stopped.
enum Stop {
    /// The connection ended (EOF, GoAway or error); nothing left to close.
    Ended,
    /// All guards are gone: close gracefully.
    Unused,
}

async fn drive<T>(
    mut conn: yamux::Connection<T>,
    mut open_rx: mpsc::UnboundedReceiver<OpenReply>,
    inbound_tx: mpsc::UnboundedSender<MuxStream>,
    mut guard_rx: mpsc::Receiver<Infallible>,
) where
    T: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    let mut pending: VecDeque<OpenReply> = VecDeque::new();
    let stop = poll_fn(|cx| drive_once(cx, &mut conn, &mut open_rx, &inbound_tx, &mut guard_rx, &mut pending)).await;
    // Fail the open requests first so their callers do not wait for the close.
    pending.clear();
    open_rx.close();
    while open_rx.try_recv().is_ok() {}
    if let Stop::Unused = stop {
        match tokio::time::timeout(CLOSE_TIMEOUT, poll_fn(|cx| conn.poll_close(cx))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "yamux close failed"),
            Err(_) => tracing::debug!("yamux close timed out"),
        }
    }
    // Dropping `open_rx` (here) is what `MuxHandle::closed` observes.
    drop(open_rx);
}

fn drive_once<T>(
    cx: &mut Context<'_>,
    conn: &mut yamux::Connection<T>,
    open_rx: &mut mpsc::UnboundedReceiver<OpenReply>,
    inbound_tx: &mpsc::UnboundedSender<MuxStream>,
    guard_rx: &mut mpsc::Receiver<Infallible>,
    pending: &mut VecDeque<OpenReply>,
) -> Poll<Stop>
where
    T: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    loop {
        // Nothing ever sends on the guard channel; `None` means no guard is left.
        if let Poll::Ready(None) = guard_rx.poll_recv(cx) {
            return Poll::Ready(Stop::Unused);
        }
        while let Poll::Ready(Some(reply)) = open_rx.poll_recv(cx) {
            pending.push_back(reply);
        }
        while let Some(reply) = pending.pop_front() {
            if reply.is_closed() {
                continue;
            }
            match conn.poll_new_outbound(cx) {
                Poll::Ready(Ok(stream)) => {
                    // A caller that gave up just drops the stream (yamux resets it).
                    let _ = reply.send(Ok(stream));
                }
                Poll::Ready(Err(e)) => {
                    let _ = reply.send(Err(io::Error::other(e)));
                }
                Poll::Pending => {
                    pending.push_front(reply);
                    break;
                }
            }
        }
        match conn.poll_next_inbound(cx) {
            Poll::Ready(Some(Ok(stream))) => {
                // Nobody accepting (e.g. the server stopped): the stream is reset.
                let _ = inbound_tx.send(MuxStream::new(stream));
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::debug!(error = %e, "yamux session failed");
                return Poll::Ready(Stop::Ended);
            }
            Poll::Ready(None) => return Poll::Ready(Stop::Ended),
            Poll::Pending => return Poll::Pending,
        }
    }
}

fn session_closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "yamux session closed")
}

/// One yamux stream as a tokio byte stream. `shutdown` half-closes it (yamux
/// FIN); dropping it without shutdown resets it.
pub struct MuxStream {
    inner: Compat<yamux::Stream>,
    guard: Option<SessionGuard>,
}

impl MuxStream {
    fn new(stream: yamux::Stream) -> Self {
        Self { inner: stream.compat(), guard: None }
    }

    /// Keeps the session alive for as long as this stream lives.
    pub(crate) fn with_guard(mut self, guard: Option<SessionGuard>) -> Self {
        self.guard = guard;
        self
    }

    /// Whether this stream currently keeps its session alive.
    #[cfg(test)]
    pub(crate) fn has_guard(&self) -> bool {
        self.guard.is_some()
    }
}

impl std::fmt::Debug for MuxStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxStream").field("id", &self.inner.get_ref().id()).finish()
    }
}

crate::transport::delegate_async_read!(MuxStream, inner);

crate::transport::delegate_async_write!(MuxStream, inner);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn streams_flow_both_ways_and_sessions_close_when_unused() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let client = spawn(a, Mode::Client);
        let mut server = spawn(b, Mode::Server);

        let mut out = client.handle.open().await.expect("open client stream");
        assert!(!out.has_guard());
        out.write_all(b"hello").await.expect("write");
        out.flush().await.expect("flush");
        let mut inb = server.inbound.recv().await.expect("inbound stream");
        let mut buf = [0u8; 5];
        inb.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"hello");

        // Server-opened stream (even id) in the other direction.
        let mut back = server.handle.open().await.expect("open server stream");
        back.write_all(b"x").await.expect("write");
        let mut client_inbound = client.inbound;
        let mut got = client_inbound.recv().await.expect("client inbound");
        let mut one = [0u8; 1];
        got.read_exact(&mut one).await.expect("read back");
        assert_eq!(&one, b"x");

        // Dropping the client's only guard closes its session; the server sees it end.
        drop(client.guard);
        drop((out, got, back, inb));
        tokio::time::timeout(Duration::from_secs(5), server.handle.closed()).await.expect("server session ends");
        assert!(client.handle.is_closed() || client.handle.guard().is_none());
        assert!(server.handle.open().await.is_err());
        drop(server.guard);
    }
}
