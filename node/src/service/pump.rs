//! Running one wire-protocol git process (upload-pack, receive-pack,
//! upload-archive) between a client's input and output, with bounded memory.
//!
//! Input is copied into git's stdin from a task of its own while this task
//! moves git's stdout and stderr, in arrival order, to an [`Output`]
//! (response messages, a sideband-framed sidechannel, or raw bytes). A slow
//! client slows git down. A client that goes away closes git's stdin; on the
//! output side git is then either terminated (upload-pack: nothing to clean
//! up) or drained to its natural end ([`OnDisconnect::Drain`], receive-pack:
//! git removes its quarantine `objects/tmp_objdir-incoming-*` at exit, but
//! not when killed by a signal).

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::Error;
use crate::git::command::Duplex;
use crate::git::wire::{BAND_STDERR, BAND_STDOUT, Boundary, Negotiation, Watcher, sideband};
use crate::service::CHUNK_SIZE;

/// Most of git's stderr kept for error messages.
const STDERR_KEPT: usize = 64 * 1024;

/// Which of git's output streams a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Band {
    Stdout,
    Stderr,
}

/// Where git's output goes.
pub(crate) trait Output: Send {
    fn write(&mut self, band: Band, data: Vec<u8>) -> impl Future<Output = io::Result<()>> + Send;
}

/// Output as response messages of a streaming RPC.
pub(crate) struct Messages<T> {
    pub(crate) tx: tokio::sync::mpsc::Sender<tonic::Result<T>>,
    /// Builds the message; `None` drops the chunk (e.g. stderr over HTTP).
    pub(crate) make: fn(Band, Vec<u8>) -> Option<T>,
}

impl<T: Send> Output for Messages<T> {
    async fn write(&mut self, band: Band, data: Vec<u8>) -> io::Result<()> {
        let Some(msg) = (self.make)(band, data) else { return Ok(()) };
        self.tx.send(Ok(msg)).await.map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

/// Output as sideband pkt-lines (band 1 stdout, band 2 stderr), as the SSH
/// sidechannel carries it: no trailing flush.
pub(crate) struct Sideband<W>(pub(crate) W);

impl<W: AsyncWrite + Unpin + Send> Output for Sideband<W> {
    async fn write(&mut self, band: Band, data: Vec<u8>) -> io::Result<()> {
        let mut framed = Vec::with_capacity(data.len() + 16);
        sideband(&mut framed, if band == Band::Stdout { BAND_STDOUT } else { BAND_STDERR }, &data);
        self.0.write_all(&framed).await
    }
}

/// Raw stdout (the HTTP sidechannel); stderr only goes to the error message.
pub(crate) struct Raw<W>(pub(crate) W);

impl<W: AsyncWrite + Unpin + Send> Output for Raw<W> {
    async fn write(&mut self, band: Band, data: Vec<u8>) -> io::Result<()> {
        if band == Band::Stdout { self.0.write_all(&data).await } else { Ok(()) }
    }
}

/// How the input is watched.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Watch {
    pub(crate) boundary: Boundary,
    /// The boundary packet must arrive within this time (negotiation timeout).
    pub(crate) timeout: Option<Duration>,
}

/// What to do with git when the client stops taking output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnDisconnect {
    /// SIGTERM: for commands that write nothing.
    Terminate,
    /// Close stdin and discard output until git exits by itself.
    Drain,
}

/// How a run ended when git itself ran to the end.
#[derive(Debug)]
pub(crate) struct Finished {
    /// git's exit code when non-zero (`-1` for a signal).
    pub(crate) exit: Option<i32>,
    /// The start of git's stderr.
    pub(crate) stderr: String,
    /// Negotiation statistics when watched.
    pub(crate) stats: Negotiation,
}

/// Why a run stopped before git finished.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PumpError {
    /// The output side failed: the client is gone. git was terminated.
    #[error("send output")]
    ClientGone(#[source] io::Error),
    /// The negotiation boundary did not arrive in time. git was terminated.
    #[error("waiting for negotiation: deadline exceeded")]
    Negotiation,
    #[error("read git output")]
    Read(#[source] io::Error),
    #[error(transparent)]
    Command(#[from] crate::git::CommandError),
}

impl PumpError {
    /// The status upstream answers with.
    pub(crate) fn into_error(self) -> Error {
        match self {
            Self::ClientGone(e) => Error::aborted("send output").with_source(e),
            Self::Negotiation => Error::deadline_exceeded("waiting for negotiation: context deadline exceeded"),
            Self::Read(e) => Error::internal("read git output", e),
            Self::Command(e) => Error::internal("run git", e),
        }
    }
}

/// Copies `input` into git's stdin, watching it; returns the watcher and
/// whether the input failed. Closes git's stdin at the end either way.
async fn feed<R: AsyncRead + Unpin>(
    mut input: R,
    mut stdin: Option<tokio::process::ChildStdin>,
    mut watcher: Option<Watcher>,
    boundary: Option<tokio::sync::oneshot::Sender<Negotiation>>,
) -> (Option<Watcher>, bool) {
    let mut boundary = boundary;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf).await {
            Ok(0) => return (watcher, false),
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "client input failed");
                return (watcher, true);
            }
        };
        if let Some(w) = watcher.as_mut() {
            // git reports malformed packets itself, with its own message.
            if w.feed(&buf[..n]).is_err() {
                watcher = None;
                boundary.take();
            } else if w.boundary_seen()
                && let Some(tx) = boundary.take()
            {
                let _ = tx.send(w.stats.clone());
            }
        }
        if let Some(s) = stdin.as_mut()
            && s.write_all(&buf[..n]).await.is_err()
        {
            // git stopped reading (it exited or failed); keep draining the
            // client so it is not stuck, but there is nowhere to put it.
            stdin = None;
        }
    }
}

/// Runs `git` to its end between `input` and `output`.
pub(crate) async fn run<R, O>(
    mut git: Duplex,
    input: R,
    output: &mut O,
    watch: Option<Watch>,
    on_disconnect: OnDisconnect,
) -> Result<Finished, PumpError>
where
    R: AsyncRead + Unpin + Send + 'static,
    O: Output,
{
    let (boundary_tx, mut boundary_rx) = tokio::sync::oneshot::channel();
    let watcher = watch.map(|w| Watcher::new(w.boundary));
    let timeout = watch.and_then(|w| w.timeout);
    let stdin = git.stdin.take();
    let mut feeder = tokio::spawn(feed(input, stdin, watcher, Some(boundary_tx)));
    let mut stdout = git.stdout.take();
    let mut stderr = git.stderr.take();
    let mut kept = Vec::new();
    let mut out_buf = vec![0u8; CHUNK_SIZE];
    let mut err_buf = vec![0u8; 8192];
    let deadline = tokio::time::sleep(timeout.unwrap_or(Duration::MAX / 4));
    tokio::pin!(deadline);
    let mut waiting_boundary = watch.is_some();
    let mut stats = None;
    let mut gone = None;

    while stdout.is_some() || stderr.is_some() {
        tokio::select! {
            n = read_some(&mut stdout, &mut out_buf) => match n {
                Ok(0) => stdout = None,
                Ok(_) if gone.is_some() => {}
                Ok(n) => {
                    if let Err(e) = output.write(Band::Stdout, out_buf[..n].to_vec()).await {
                        feeder.abort();
                        if on_disconnect == OnDisconnect::Terminate {
                            git.terminate();
                            return Err(PumpError::ClientGone(e));
                        }
                        gone = Some(e);
                    }
                }
                Err(e) => {
                    feeder.abort();
                    return Err(PumpError::Read(e));
                }
            },
            n = read_some(&mut stderr, &mut err_buf) => match n {
                Ok(0) => stderr = None,
                Ok(n) => {
                    let room = STDERR_KEPT.saturating_sub(kept.len());
                    kept.extend_from_slice(&err_buf[..n.min(room)]);
                    if gone.is_none()
                        && let Err(e) = output.write(Band::Stderr, err_buf[..n].to_vec()).await
                    {
                        feeder.abort();
                        if on_disconnect == OnDisconnect::Terminate {
                            git.terminate();
                            return Err(PumpError::ClientGone(e));
                        }
                        gone = Some(e);
                    }
                }
                Err(e) => {
                    feeder.abort();
                    return Err(PumpError::Read(e));
                }
            },
            r = &mut boundary_rx, if waiting_boundary => {
                // Seen (Ok) or no longer watchable (Err): either way no timeout.
                stats = r.ok();
                waiting_boundary = false;
            }
            () = &mut deadline, if waiting_boundary && timeout.is_some() => {
                feeder.abort();
                git.terminate();
                let _ = git.wait().await;
                return Err(PumpError::Negotiation);
            }
        }
    }
    let exit = git.wait().await?;
    if let Some(e) = gone {
        tracing::debug!(git = git.name(), ?exit, "client went away; git ran to its end");
        return Err(PumpError::ClientGone(e));
    }
    // git has exited; input it did not read has nowhere to go.
    if !feeder.is_finished() {
        feeder.abort();
    }
    let (watcher, input_failed) = (&mut feeder).await.unwrap_or_default();
    if input_failed {
        tracing::debug!(git = git.name(), ?exit, "client input ended early");
    }
    if stats.is_none() {
        stats = watcher.map(|w| w.stats);
        if stats.is_none() && waiting_boundary {
            stats = boundary_rx.try_recv().ok();
        }
    }
    Ok(Finished { exit, stderr: String::from_utf8_lossy(&kept).into_owned(), stats: stats.unwrap_or_default() })
}

async fn read_some<R: AsyncRead + Unpin>(r: &mut Option<R>, buf: &mut [u8]) -> io::Result<usize> {
    match r {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

/// The stderr git prints when the client closed the connection early;
/// upstream answers CANCELED for exactly this text.
pub(crate) const HUNG_UP: &str = "fatal: the remote end hung up unexpectedly\n";

/// Where to open a request's sidechannel: its backchannel session and the
/// id the client sent. `None` on a connection without backchannel (upstream:
/// "fail to extract yamux session").
pub(crate) fn sidechannel_target<T>(req: &tonic::Request<T>) -> Option<(crate::transport::BackchannelPeer, i64)> {
    let peer = req.extensions().get::<crate::transport::ConnInfo>()?.backchannel.clone()?;
    let id = crate::transport::sidechannel_id(req.metadata()).unwrap_or(0);
    Some((peer, id))
}

/// The client's data of a bidi RPC as a byte stream: `data` picks the
/// bytes out of each message after the first.
pub(crate) fn input<T: Send + 'static>(
    stream: tonic::Streaming<T>,
    data: fn(T) -> Vec<u8>,
) -> impl AsyncRead + Unpin + Send + 'static {
    use futures::StreamExt as _;
    tokio_util::io::StreamReader::new(
        stream.map(move |m| m.map(|m| bytes::Bytes::from(data(m))).map_err(io::Error::other)),
    )
}

/// The response channel of a bidi RPC and the stream tonic serves from it.
pub(crate) fn channel<T: Send + 'static>() -> (tokio::sync::mpsc::Sender<tonic::Result<T>>, tonic::codegen::BoxStream<T>)
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    (tx, Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

/// The first message of a bidi RPC; the stream ending before it is an error.
pub(crate) async fn first<T>(stream: &mut tonic::Streaming<T>) -> crate::error::Result<T> {
    match stream.message().await {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(Error::internal_msg("receive first request: EOF")),
        Err(s) => Err(Error::new(s.code(), format!("receive first request: {}", s.message()))),
    }
}

/// Parses the request's configuration and protocol.
pub(crate) fn wire_options(config: &[String], protocol: &str) -> crate::error::Result<crate::git::wire::WireOptions> {
    let config = crate::git::wire::config_options(config).map_err(|e| Error::invalid_argument(e.to_string()))?;
    Ok(crate::git::wire::WireOptions { config, protocol: crate::git::wire::git_protocol(protocol), hooks: None })
}

/// A git failure message in upstream's shape.
pub(crate) fn exit_message(step: &str, code: i32, stderr: &str) -> String {
    format!("{step}: cmd wait: exit status {code}, stderr: {stderr:?}")
}

/// The statistics message.
pub(crate) fn statistics(n: Negotiation) -> cairn_proto::gitaly::PackfileNegotiationStatistics {
    cairn_proto::gitaly::PackfileNegotiationStatistics {
        payload_size: n.payload_size,
        packets: n.packets,
        caps: n.caps,
        wants: n.wants,
        haves: n.haves,
        shallows: n.shallows,
        deepen: n.deepen,
        filter: n.filter,
    }
}
