//! The pack-objects hook's sidechannel, upstream's kind: not the yamux
//! backchannel of client connections, but a Unix socket that gitaly-hooks
//! listens on (`<runtime_dir>/chan.d/<random>/sidechannel`) and names in
//! the `gitaly-sidechannel-socket` metadata; the node dials it.
//!
//! On the socket, the hook first sends git's stdin raw and half-closes its
//! write side; the node answers with sideband pkt-lines (band 1 stdout,
//! band 2 stderr) and closes the connection when the pack is complete.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};

use crate::git::wire::{BAND_STDERR, BAND_STDOUT, MAX_PKT_LEN};

/// The metadata key naming the socket.
pub const HEADER: &str = "gitaly-sidechannel-socket";
/// The socket's file name; any other address is refused.
const SOCKET_NAME: &str = "sidechannel";
/// How long the node waits to connect, as upstream.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the node could not reach the hook's socket.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("invalid side channel address: {0:?}")]
    InvalidAddress(String),
    #[error("dial unix {0}")]
    Connect(String, #[source] std::io::Error),
}

/// Connects to the socket named in `metadata`.
pub async fn dial(metadata: &tonic::metadata::MetadataMap) -> Result<UnixStream, DialError> {
    let address = metadata.get(HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    if Path::new(&address).file_name().is_none_or(|n| n != SOCKET_NAME) {
        return Err(DialError::InvalidAddress(address));
    }
    match tokio::time::timeout(DIAL_TIMEOUT, UnixStream::connect(&address)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(DialError::Connect(address, e)),
        Err(_) => Err(DialError::Connect(address, std::io::ErrorKind::TimedOut.into())),
    }
}

/// The hook's listening socket; dropping it removes its directory.
#[derive(Debug)]
pub struct Listener {
    dir: tempfile::TempDir,
    listener: UnixListener,
}

impl Listener {
    /// Listens in a fresh directory below `<runtime_dir>/chan.d` (or the
    /// temporary directory when the payload names no runtime directory).
    pub fn bind(runtime_dir: &str) -> std::io::Result<Self> {
        let dir = if runtime_dir.is_empty() {
            tempfile::Builder::new().prefix("gitaly").tempdir()?
        } else {
            let parent = Path::new(runtime_dir).join("chan.d");
            match std::fs::create_dir(&parent) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
            tempfile::Builder::new().prefix("").tempdir_in(parent)?
        };
        let listener = UnixListener::bind(dir.path().join(SOCKET_NAME))?;
        Ok(Self { dir, listener })
    }

    /// The address to send in [`HEADER`].
    pub fn address(&self) -> PathBuf {
        self.dir.path().join(SOCKET_NAME)
    }

    /// Waits for the node to connect.
    pub async fn accept(&self) -> std::io::Result<UnixStream> {
        Ok(self.listener.accept().await?.0)
    }
}

/// A malformed answer from the node.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("copy request")]
    Request(#[source] std::io::Error),
    #[error("copy response")]
    Response(#[source] std::io::Error),
    #[error("invalid sideband packet {0:?}")]
    Packet(String),
    #[error("unexpected band: {0}")]
    Band(u8),
}

/// The hook's side: sends `stdin`, then relays the node's sideband answer
/// to `stdout`/`stderr` until the node closes the connection. The answer
/// ending means the node is done, whether or not stdin was all sent.
pub async fn proxy(
    conn: UnixStream,
    stdin: impl AsyncRead + Unpin,
    mut stdout: impl AsyncWrite + Unpin,
    mut stderr: impl AsyncWrite + Unpin,
) -> Result<(), ProxyError> {
    let (mut reader, mut writer) = conn.into_split();
    let request = async move {
        let mut stdin = stdin;
        tokio::io::copy(&mut stdin, &mut writer).await.map_err(ProxyError::Request)?;
        writer.shutdown().await.map_err(ProxyError::Request)
    };
    let response = async move {
        let mut header = [0u8; 4];
        let mut data = vec![0u8; MAX_PKT_LEN];
        loop {
            match reader.read_exact(&mut header).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(ProxyError::Response(e)),
            }
            let text = String::from_utf8_lossy(&header).into_owned();
            let len = usize::from_str_radix(&text, 16).map_err(|_| ProxyError::Packet(text.clone()))?;
            if !(5..=MAX_PKT_LEN).contains(&len) {
                return Err(ProxyError::Packet(text));
            }
            let body = &mut data[..len - 4];
            reader.read_exact(body).await.map_err(ProxyError::Response)?;
            match body[0] {
                BAND_STDOUT => {
                    stdout.write_all(&body[1..]).await.map_err(ProxyError::Response)?;
                }
                BAND_STDERR => {
                    stderr.write_all(&body[1..]).await.map_err(ProxyError::Response)?;
                    stderr.flush().await.map_err(ProxyError::Response)?;
                }
                band => return Err(ProxyError::Band(band)),
            }
        }
        stdout.flush().await.map_err(ProxyError::Response)
    };
    tokio::pin!(request, response);
    let mut request_done = false;
    loop {
        tokio::select! {
            r = &mut response => return r,
            r = &mut request, if !request_done => {
                r?;
                request_done = true;
            }
        }
    }
}
