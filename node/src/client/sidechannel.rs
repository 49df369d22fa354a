//! Client side of sidechannels: waiting for the server to open one, and the
//! framing of the client's data.
//!
//! A caller registers a waiter, sends its id in `gitaly-sidechannel-id`, and
//! starts the RPC. When the server opens a stream starting with `sidechannel`
//! and that id, the client answers `ok` and the waiter resolves to the
//! stream. If the server never opens it (the RPC failed first), the waiter
//! stays pending: race it against the RPC.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::oneshot;

use crate::transport::{MAGIC_LEN, MAX_FRAME_PAYLOAD, MuxStream, SIDECHANNEL_TIMEOUT};

type Slot = oneshot::Sender<ClientSidechannel>;

/// Waiters by sidechannel id; shared by every session of one connection.
#[derive(Clone)]
pub struct SidechannelRegistry {
    inner: Arc<Mutex<RegistryInner>>,
}

struct RegistryInner {
    next_id: i64,
    waiters: HashMap<i64, Slot>,
    /// Set when the connection has no backchannel: nothing can ever arrive.
    closed: bool,
}

impl SidechannelRegistry {
    pub(crate) fn new(closed: bool) -> Self {
        Self { inner: Arc::new(Mutex::new(RegistryInner { next_id: 0, waiters: HashMap::new(), closed })) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RegistryInner> {
        // The map stays consistent even if a holder panicked.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a waiter. Put the id into `gitaly-sidechannel-id`.
    pub fn register(&self) -> (i64, SidechannelWaiter) {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id = inner.next_id.wrapping_add(1);
        if !inner.closed {
            inner.waiters.insert(id, tx);
        }
        drop(inner);
        (id, SidechannelWaiter { id, rx: Some(rx), registry: self.clone() })
    }

    /// Number of waiters whose sidechannel has not arrived yet.
    pub fn pending(&self) -> usize {
        self.lock().waiters.len()
    }

    fn take(&self, id: i64) -> Option<Slot> {
        self.lock().waiters.remove(&id)
    }
}

impl std::fmt::Debug for SidechannelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SidechannelRegistry").field("pending", &self.pending()).finish()
    }
}

/// Resolves to the sidechannel once the server opened it. Dropping the
/// waiter unregisters its id.
#[derive(Debug)]
pub struct SidechannelWaiter {
    id: i64,
    rx: Option<oneshot::Receiver<ClientSidechannel>>,
    registry: SidechannelRegistry,
}

impl SidechannelWaiter {
    /// The id to send in `gitaly-sidechannel-id`.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Waits for the server to open the sidechannel. Fails at once on a
    /// connection without backchannel.
    pub async fn wait(mut self) -> io::Result<ClientSidechannel> {
        let rx = self.rx.take().ok_or_else(|| io::Error::other("sidechannel waiter already used"))?;
        rx.await.map_err(|_| {
            io::Error::new(io::ErrorKind::NotConnected, "sidechannel: connection has no backchannel session")
        })
    }
}

impl Drop for SidechannelWaiter {
    fn drop(&mut self) {
        self.registry.take(self.id);
    }
}

/// Handles one server-opened stream whose `sidechannel` magic was consumed:
/// reads the id, and hands the stream to its waiter after answering `ok`.
/// An unknown id closes the stream, which fails the server's handshake.
pub(crate) async fn accept(mut stream: MuxStream, registry: &SidechannelRegistry) -> io::Result<()> {
    let mut id = [0u8; 8];
    tokio::time::timeout(SIDECHANNEL_TIMEOUT, stream.read_exact(&mut id))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "sidechannel: id not received in time"))??;
    let id = i64::from_be_bytes(id);
    let Some(slot) = registry.take(id).filter(|s| !s.is_closed()) else {
        let _ = stream.shutdown().await;
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("sidechannel: no waiter for id {id}")));
    };
    tokio::time::timeout(SIDECHANNEL_TIMEOUT, async {
        stream.write_all(b"ok").await?;
        stream.flush().await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "sidechannel: handshake reply timed out"))??;
    // A waiter dropped just now simply drops the stream (yamux resets it).
    let _ = slot.send(ClientSidechannel::new(stream));
    Ok(())
}

/// The client's end of a sidechannel: writes are framed, `close_write`
/// sends the flush packet that ends the client's data, and reading yields the
/// server's raw response until it closes the stream.
#[derive(Debug)]
pub struct ClientSidechannel {
    reader: ClientSidechannelReader,
    writer: ClientSidechannelWriter,
}

impl ClientSidechannel {
    fn new(stream: MuxStream) -> Self {
        let (r, w) = tokio::io::split(stream);
        Self {
            reader: ClientSidechannelReader { inner: r },
            writer: ClientSidechannelWriter { inner: w, pending: Vec::new(), written: 0, write_closed: false },
        }
    }

    /// Separate halves, so both directions can be pumped concurrently.
    pub fn into_split(self) -> (ClientSidechannelReader, ClientSidechannelWriter) {
        (self.reader, self.writer)
    }

    /// Ends the client's data with the flush packet; see
    /// [`ClientSidechannelWriter::close_write`].
    pub async fn close_write(&mut self) -> io::Result<()> {
        self.writer.close_write().await
    }

    /// The underlying stream without framing, after writing out any frame
    /// still buffered. For proxies that relay already-framed bytes; the
    /// caller is then responsible for the framing and the flush packet.
    pub async fn into_raw(mut self) -> io::Result<MuxStream> {
        self.writer.flush().await?;
        Ok(self.reader.inner.unsplit(self.writer.inner))
    }
}

crate::transport::delegate_async_read!(ClientSidechannel, reader);

crate::transport::delegate_async_write!(ClientSidechannel, writer);

/// Raw read half: the server's response bytes, EOF when it closed the stream.
#[derive(Debug)]
pub struct ClientSidechannelReader {
    inner: ReadHalf<MuxStream>,
}

crate::transport::delegate_async_read!(ClientSidechannelReader, inner);

/// Framing write half. Each write becomes one frame of at most
/// [`MAX_FRAME_PAYLOAD`] bytes; `shutdown` is the same as `close_write` (it
/// sends `0000` but leaves the stream open for reading).
#[derive(Debug)]
pub struct ClientSidechannelWriter {
    inner: WriteHalf<MuxStream>,
    /// An encoded frame not yet fully written.
    pending: Vec<u8>,
    written: usize,
    write_closed: bool,
}

impl ClientSidechannelWriter {
    /// Writes out the buffered frame.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    fn poll_close_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.write_closed {
            ready!(self.poll_drain(cx))?;
            self.pending.extend_from_slice(b"0000");
            self.write_closed = true;
        }
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// Sends the flush packet `0000`, telling the server the client's data
    /// is complete. Idempotent; later writes fail.
    pub async fn close_write(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_close_write(cx)).await
    }
}

impl AsyncWrite for ClientSidechannelWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write_closed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "sidechannel: write into a half-closed connection",
            )));
        }
        ready!(this.poll_drain(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(MAX_FRAME_PAYLOAD);
        this.pending.reserve(4 + n);
        this.pending.extend_from_slice(format!("{:04x}", n + 4).as_bytes());
        this.pending.extend_from_slice(&buf[..n]);
        // Start sending now; whatever is left goes out on the next call.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_close_write(cx)
    }
}

/// Reads the first [`MAGIC_LEN`] bytes of a server-opened stream.
pub(crate) async fn read_magic(stream: &mut MuxStream) -> io::Result<[u8; MAGIC_LEN]> {
    let mut magic = [0u8; MAGIC_LEN];
    tokio::time::timeout(SIDECHANNEL_TIMEOUT, stream.read_exact(&mut magic))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "backchannel stream sent no magic in time"))??;
    Ok(magic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_count_from_zero_and_waiters_unregister() {
        let reg = SidechannelRegistry::new(false);
        let (a, wa) = reg.register();
        let (b, wb) = reg.register();
        assert_eq!((a, b), (0, 1));
        assert_eq!(reg.pending(), 2);
        drop(wa);
        assert_eq!(reg.pending(), 1);
        assert!(reg.take(a).is_none());
        drop(wb);
        assert_eq!(reg.pending(), 0);
    }

    #[tokio::test]
    async fn closed_registry_fails_waiters_at_once() {
        let reg = SidechannelRegistry::new(true);
        let (_, waiter) = reg.register();
        let err = waiter.wait().await.expect_err("no backchannel");
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    }
}
