//! Server side of sidechannels: bulk data for one RPC on a server-opened
//! yamux stream.
//!
//! Handshake: the server opens a stream on the caller's backchannel session,
//! writes `sidechannel` and the id from `gitaly-sidechannel-id` as an 8-byte
//! big-endian signed integer, and expects `ok` back, all within 5 s.
//!
//! Framing is asymmetric. Client to server: frames of 4 hex digits (payload
//! length + 4) and the payload, ended by the flush packet `0000`, which is
//! mandatory. Server to client: raw bytes, ended by closing the stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};

use super::backchannel::BackchannelPeer;
use super::mux::MuxStream;
use super::{MAGIC_LEN, SIDECHANNEL_MAGIC};

/// Metadata key carrying the client's sidechannel id.
pub const SIDECHANNEL_ID_KEY: &str = "gitaly-sidechannel-id";
/// Deadline for the sidechannel handshake.
pub const SIDECHANNEL_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest payload of one client frame (pkt-line maximum 65520 minus the header).
pub const MAX_FRAME_PAYLOAD: usize = 65520 - 4;

/// The sidechannel id the client asked for: the *last* value of
/// `gitaly-sidechannel-id` (a proxy appends its own). A value that does not
/// parse counts as 0, as upstream does. `None` when the key is absent.
pub fn sidechannel_id(metadata: &tonic::metadata::MetadataMap) -> Option<i64> {
    let value = metadata.get_all(SIDECHANNEL_ID_KEY).iter().next_back()?;
    Some(value.to_str().ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0))
}

/// Opens sidechannel `id` towards `peer` and completes the handshake.
pub async fn open_sidechannel(peer: &BackchannelPeer, id: i64) -> io::Result<Sidechannel> {
    let handshake = async {
        let mut stream = peer.open_stream().await?;
        let mut hello = [0u8; MAGIC_LEN + 8];
        hello[..MAGIC_LEN].copy_from_slice(SIDECHANNEL_MAGIC);
        hello[MAGIC_LEN..].copy_from_slice(&id.to_be_bytes());
        stream.write_all(&hello).await?;
        stream.flush().await?;
        let mut reply = [0u8; 2];
        stream.read_exact(&mut reply).await?;
        if &reply != b"ok" {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("sidechannel: unexpected handshake reply {reply:?}"),
            ));
        }
        Ok(stream)
    };
    let stream = tokio::time::timeout(SIDECHANNEL_TIMEOUT, handshake)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "sidechannel: handshake timed out"))??;
    Ok(Sidechannel::new(stream))
}

/// An open sidechannel: reading yields the client's de-framed data and ends at
/// its flush packet; writing sends raw bytes; `shutdown` closes the stream,
/// which tells the client the response is complete.
#[derive(Debug)]
pub struct Sidechannel {
    reader: SidechannelReader,
    writer: SidechannelWriter,
}

impl Sidechannel {
    fn new(stream: MuxStream) -> Self {
        let (r, w) = tokio::io::split(stream);
        Self { reader: SidechannelReader::new(r), writer: SidechannelWriter { inner: w } }
    }

    /// Separate halves, so both directions can be pumped concurrently.
    pub fn into_split(self) -> (SidechannelReader, SidechannelWriter) {
        (self.reader, self.writer)
    }

    /// The stream without de-framing, for proxies that relay the client's
    /// frames unchanged. Only valid before anything was read.
    pub fn into_raw(self) -> MuxStream {
        self.reader.inner.inner.unsplit(self.writer.inner)
    }
}

crate::transport::delegate_async_read!(Sidechannel, reader);

crate::transport::delegate_async_write!(Sidechannel, writer);

/// The raw write half of a [`Sidechannel`].
#[derive(Debug)]
pub struct SidechannelWriter {
    inner: WriteHalf<MuxStream>,
}

crate::transport::delegate_async_write!(SidechannelWriter, inner);

/// The de-framing read half of a [`Sidechannel`].
#[derive(Debug)]
pub struct SidechannelReader {
    inner: Deframer<ReadHalf<MuxStream>>,
}

impl SidechannelReader {
    fn new(inner: ReadHalf<MuxStream>) -> Self {
        Self { inner: Deframer::new(inner) }
    }
}

crate::transport::delegate_async_read!(SidechannelReader, inner);

#[derive(Debug)]
enum DeframeState {
    Header {
        buf: [u8; 4],
        filled: usize,
    },
    Payload {
        remaining: usize,
    },
    /// The flush packet was read: clean end of data.
    Done,
    /// A previous read failed; the stream position is unknown.
    Failed,
}

/// Decodes client-to-server sidechannel frames from `inner`.
#[derive(Debug)]
pub(crate) struct Deframer<R> {
    inner: R,
    state: DeframeState,
}

impl<R> Deframer<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self { inner, state: DeframeState::Header { buf: [0; 4], filled: 0 } }
    }
}

fn unexpected_eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "sidechannel: unexpected EOF before flush packet")
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Parses a frame header into the total frame length.
fn parse_header(h: &[u8; 4]) -> io::Result<usize> {
    let mut len = 0usize;
    for &b in h {
        let digit = (b as char)
            .to_digit(16)
            .ok_or_else(|| invalid(format!("sidechannel: invalid frame header {:?}", String::from_utf8_lossy(h))))?;
        len = len * 16 + digit as usize;
    }
    match len {
        0 | 4..=65520 => Ok(len),
        1..=3 => Err(invalid(format!("sidechannel: invalid header {len}"))),
        _ => Err(invalid(format!("sidechannel: invalid frame length {len}"))),
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Deframer<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                DeframeState::Header { buf: header, filled } => {
                    let mut rb = ReadBuf::new(&mut header[*filled..]);
                    if let Err(e) = ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb)) {
                        this.state = DeframeState::Failed;
                        return Poll::Ready(Err(e));
                    }
                    let n = rb.filled().len();
                    if n == 0 {
                        this.state = DeframeState::Failed;
                        return Poll::Ready(Err(unexpected_eof()));
                    }
                    *filled += n;
                    if *filled < 4 {
                        continue;
                    }
                    this.state = match parse_header(header) {
                        Ok(0) => DeframeState::Done,
                        Ok(4) => DeframeState::Header { buf: [0; 4], filled: 0 },
                        Ok(len) => DeframeState::Payload { remaining: len - 4 },
                        Err(e) => {
                            this.state = DeframeState::Failed;
                            return Poll::Ready(Err(e));
                        }
                    };
                }
                DeframeState::Payload { remaining } => {
                    if buf.remaining() == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    let want = (*remaining).min(buf.remaining());
                    // Read at most the rest of this frame, straight into the
                    // caller's buffer (initialised first: no unsafe here).
                    let mut limited = ReadBuf::new(buf.initialize_unfilled_to(want));
                    if let Err(e) = ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited)) {
                        this.state = DeframeState::Failed;
                        return Poll::Ready(Err(e));
                    }
                    let n = limited.filled().len();
                    if n == 0 {
                        this.state = DeframeState::Failed;
                        return Poll::Ready(Err(unexpected_eof()));
                    }
                    buf.advance(n);
                    *remaining -= n;
                    if *remaining == 0 {
                        this.state = DeframeState::Header { buf: [0; 4], filled: 0 };
                    }
                    return Poll::Ready(Ok(()));
                }
                DeframeState::Done => return Poll::Ready(Ok(())),
                DeframeState::Failed => {
                    return Poll::Ready(Err(io::Error::other("sidechannel: read after a failed read")));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn deframe(input: &[u8]) -> io::Result<Vec<u8>> {
        let mut d = Deframer::new(input);
        let mut out = Vec::new();
        d.read_to_end(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn frames_decode_until_flush() {
        let got = deframe(b"0009hello0004000a world0000trailing").await.expect("valid stream");
        assert_eq!(got, b"hello world");
        assert_eq!(deframe(b"0000").await.expect("empty stream"), b"");
        // Upper-case hex is accepted, like Go's strconv.
        assert_eq!(deframe(b"000Aabcdef0000").await.expect("upper-case hex"), b"abcdef");
    }

    #[tokio::test]
    async fn eof_without_flush_is_an_error() {
        for input in [&b""[..], b"0009hello", b"0009hel", b"00"] {
            let err = deframe(input).await.expect_err("must fail");
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{input:?}");
        }
    }

    #[tokio::test]
    async fn magic_and_bad_lengths_are_rejected() {
        for input in [&b"0001"[..], b"0002", b"0003", b"fff1", b"zzzz", b"-001"] {
            let err = deframe(input).await.expect_err("must fail");
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{input:?}");
        }
    }

    #[tokio::test]
    async fn max_frame_is_accepted() {
        let mut input = format!("{:04x}", MAX_FRAME_PAYLOAD + 4).into_bytes();
        input.extend(std::iter::repeat_n(b'x', MAX_FRAME_PAYLOAD));
        input.extend_from_slice(b"0000");
        assert_eq!(deframe(&input).await.expect("max frame").len(), MAX_FRAME_PAYLOAD);
    }

    #[test]
    fn id_is_the_last_value() {
        let mut md = tonic::metadata::MetadataMap::new();
        assert_eq!(sidechannel_id(&md), None);
        md.append(SIDECHANNEL_ID_KEY, "7".parse().expect("ascii"));
        assert_eq!(sidechannel_id(&md), Some(7));
        md.append(SIDECHANNEL_ID_KEY, "42".parse().expect("ascii"));
        assert_eq!(sidechannel_id(&md), Some(42));
        md.append(SIDECHANNEL_ID_KEY, "nope".parse().expect("ascii"));
        assert_eq!(sidechannel_id(&md), Some(0));
    }
}
