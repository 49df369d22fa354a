//! Dialing Gitaly-style addresses, as upstream clients do.
//!
//! Addresses: `tcp://host:port`, `tls://host:port`, `unix:/abs/path` (the
//! rest after `unix:` is the path, so `unix:///abs` works too), and plain
//! `host:port` as TCP. A missing port defaults to 443 like grpc-go; paths in
//! TCP/TLS addresses are rejected.
//!
//! With [`DialOptions::backchannel`] each transport connection starts with
//! the `backchannel` magic and becomes a yamux client session: gRPC runs on a
//! client-opened stream, and streams the server opens are either
//! sidechannels (handed to [`SidechannelRegistry`] waiters) or HTTP/2 served
//! with [`DialOptions::backchannel_server`]. A reconnect makes a new session.

mod sidechannel;
pub mod stdio;

pub use sidechannel::{
    ClientSidechannel, ClientSidechannelReader, ClientSidechannelWriter, SidechannelRegistry, SidechannelWaiter,
};

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::transport::mux::{self, MuxHandle, MuxStream};
use crate::transport::{BACKCHANNEL_MAGIC, Conn, ConnInfo, SIDECHANNEL_MAGIC, TlsError, TransportKind};

/// Port used when an address has none (grpc-go's default).
const DEFAULT_PORT: u16 = 443;

/// A parsed Gitaly address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Tcp { host: String, port: u16 },
    Tls { host: String, port: u16 },
    Unix(PathBuf),
}

impl Address {
    /// Parses a Gitaly-style address.
    pub fn parse(address: &str) -> Result<Self, DialError> {
        let invalid =
            |reason: &str| DialError::InvalidAddress { address: address.to_owned(), reason: reason.to_owned() };
        if let Some(path) = address.strip_prefix("unix:") {
            // Upstream strips the prefix and keeps the rest; extra slashes
            // (`unix:///x`) are harmless in a Unix path.
            if path.is_empty() {
                return Err(invalid("empty socket path"));
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        let (scheme, rest) = match address.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => ("tcp", address),
        };
        let (host, port) = match scheme {
            "tcp" | "tls" => parse_authority(rest).map_err(invalid)?,
            _ => {
                return Err(DialError::UnsupportedScheme { address: address.to_owned(), scheme: scheme.to_owned() });
            }
        };
        Ok(if scheme == "tls" { Self::Tls { host, port } } else { Self::Tcp { host, port } })
    }

    fn kind(&self) -> TransportKind {
        match self {
            Self::Tcp { .. } => TransportKind::Tcp,
            Self::Tls { .. } => TransportKind::Tls,
            Self::Unix(_) => TransportKind::Unix,
        }
    }

    /// The URI tonic uses for `:authority`; the connector ignores it.
    fn endpoint_uri(&self) -> String {
        match self {
            Self::Tcp { host, port } | Self::Tls { host, port } if host.contains(':') => {
                format!("http://[{host}]:{port}")
            }
            Self::Tcp { host, port } | Self::Tls { host, port } => format!("http://{host}:{port}"),
            Self::Unix(_) => "http://localhost".to_owned(),
        }
    }
}

/// Splits `host[:port]` (IPv6 in brackets); anything after the authority is
/// an error, as upstream rejects paths.
fn parse_authority(rest: &str) -> Result<(String, u16), &'static str> {
    if rest.contains(['/', '?', '#']) {
        return Err("remote addresses should not have a path");
    }
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or("unterminated IPv6 literal")?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or("junk after IPv6 literal")?)),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err("IPv6 addresses must be in brackets");
            }
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err("remote addresses should have a host");
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| "invalid port")?,
        None => DEFAULT_PORT,
    };
    Ok((host.to_owned(), port))
}

/// Why [`dial`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("invalid address {address:?}: {reason}")]
    InvalidAddress { address: String, reason: String },
    #[error("unsupported scheme {scheme:?} in address {address:?}")]
    UnsupportedScheme { address: String, scheme: String },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("no CA certificates: {0}")]
    NoRoots(String),
    #[error("connect to {address:?}: {message}")]
    Connect { address: String, message: String },
}

/// How to dial.
#[derive(Clone, Default)]
pub struct DialOptions {
    /// Shared secret; when set every request carries a fresh v2 token.
    pub token: Option<String>,
    /// Start connections with the backchannel handshake (needed for sidechannels).
    pub backchannel: bool,
    /// Extra CA certificates (PEM) trusted for `tls://`, besides the system
    /// roots (`SSL_CERT_FILE`, `SSL_CERT_DIR`, or the platform store).
    pub tls_ca: Option<PathBuf>,
    /// Services offered to the server over server-opened streams.
    pub backchannel_server: Option<tonic::service::Routes>,
}

impl std::fmt::Debug for DialOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DialOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("backchannel", &self.backchannel)
            .field("tls_ca", &self.tls_ca)
            .field("backchannel_server", &self.backchannel_server.is_some())
            .finish()
    }
}

/// Adds `authorization: Bearer v2…` with a fresh timestamp to each request.
#[derive(Clone, Default)]
pub struct TokenInterceptor {
    token: Option<Arc<str>>,
}

impl TokenInterceptor {
    pub fn new(token: Option<&str>) -> Self {
        Self { token: token.filter(|t| !t.is_empty()).map(Arc::from) }
    }
}

impl std::fmt::Debug for TokenInterceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenInterceptor").field("token", &self.token.is_some()).finish()
    }
}

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.token {
            let value = crate::auth::bearer(token, SystemTime::now())
                .parse()
                .map_err(|_| tonic::Status::internal("token is not a valid header value"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// The channel type [`Connection::channel`] returns; works with every
/// generated client (`FooServiceClient::new(conn.channel())`).
pub type AuthChannel = InterceptedService<Channel, TokenInterceptor>;

/// A dialed Gitaly connection.
#[derive(Clone)]
pub struct Connection {
    channel: Channel,
    interceptor: TokenInterceptor,
    sidechannels: SidechannelRegistry,
}

impl Connection {
    /// The channel with authentication, for generated clients.
    pub fn channel(&self) -> AuthChannel {
        InterceptedService::new(self.channel.clone(), self.interceptor.clone())
    }

    /// The channel without the token interceptor.
    pub fn raw_channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Sidechannel waiters. Without a backchannel, waiters fail at once.
    pub fn sidechannels(&self) -> &SidechannelRegistry {
        &self.sidechannels
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("sidechannels", &self.sidechannels).finish_non_exhaustive()
    }
}

/// Object-safe union of the transport stream types.
trait RawIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> RawIo for T {}
type BoxIo = Box<dyn RawIo>;

/// Everything a connector needs to make one transport connection.
#[derive(Clone)]
struct Dialer {
    address: Address,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Dialer {
    async fn connect(&self) -> io::Result<BoxIo> {
        match &self.address {
            Address::Unix(path) => Ok(Box::new(tokio::net::UnixStream::connect(path).await?)),
            Address::Tcp { host, port } | Address::Tls { host, port } => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                let _ = tcp.set_nodelay(true);
                match &self.tls {
                    None => Ok(Box::new(tcp)),
                    Some(connector) => {
                        let name = rustls::pki_types::ServerName::try_from(host.clone())
                            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                        Ok(Box::new(connector.connect(name, tcp).await?))
                    }
                }
            }
        }
    }
}

/// Client TLS: system roots plus `extra_ca`, ALPN `h2`.
fn client_tls_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, DialError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if let Some(path) = extra_ca {
        for cert in crate::transport::load_certs(path)? {
            roots.add(cert).map_err(|source| TlsError::BadCa { path: path.to_path_buf(), source })?;
        }
    } else if added == 0 {
        let errors: Vec<String> = native.errors.iter().map(ToString::to_string).collect();
        return Err(DialError::NoRoots(if errors.is_empty() {
            "no system CA certificates found".to_owned()
        } else {
            errors.join("; ")
        }));
    }
    let mut config = rustls::ClientConfig::builder_with_provider(crate::transport::tls_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| DialError::NoRoots(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // grpc-go servers refuse TLS connections that do not negotiate h2.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The error and its sources, as one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// Dials `address`. The first transport connection is made before this
/// returns, so an unreachable server is reported here; later reconnects
/// happen lazily inside the channel.
pub async fn dial(address: &str, opts: DialOptions) -> Result<Connection, DialError> {
    let parsed = Address::parse(address)?;
    let tls = match parsed {
        Address::Tls { .. } => Some(tokio_rustls::TlsConnector::from(client_tls_config(opts.tls_ca.as_deref())?)),
        _ => None,
    };
    let endpoint = Endpoint::from_shared(parsed.endpoint_uri())
        .map_err(|e| DialError::InvalidAddress { address: address.to_owned(), reason: error_chain(&e) })?;
    let kind = parsed.kind();
    let dialer = Dialer { address: parsed, tls };
    let connect_error =
        |e: tonic::transport::Error| DialError::Connect { address: address.to_owned(), message: error_chain(&e) };
    let interceptor = TokenInterceptor::new(opts.token.as_deref());

    if !opts.backchannel {
        let connector = tower::service_fn(move |_: http::Uri| {
            let dialer = dialer.clone();
            async move { dialer.connect().await.map(TokioIo::new) }
        });
        let channel = endpoint.connect_with_connector(connector).await.map_err(connect_error)?;
        return Ok(Connection { channel, interceptor, sidechannels: SidechannelRegistry::new(true) });
    }

    let sidechannels = SidechannelRegistry::new(false);
    let served = opts.backchannel_server.map(spawn_backchannel_server);
    let backchannel = Backchannel { dialer, sidechannels: sidechannels.clone(), served, kind };
    let connector = tower::service_fn(move |_: http::Uri| {
        let backchannel = backchannel.clone();
        async move { backchannel.connect().await.map(TokioIo::new) }
    });
    let channel = endpoint.connect_with_connector(connector).await.map_err(connect_error)?;
    Ok(Connection { channel, interceptor, sidechannels })
}

/// Starts the tonic server for server-opened gRPC streams; it stops once
/// every session and the connector are gone (the channel's senders).
fn spawn_backchannel_server(routes: tonic::service::Routes) -> mpsc::Sender<io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let result =
            tonic::transport::Server::builder().add_routes(routes).serve_with_incoming(ReceiverStream::new(rx)).await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "backchannel gRPC server failed");
        }
    });
    tx
}

/// Connector state for backchannel dialing.
#[derive(Clone)]
struct Backchannel {
    dialer: Dialer,
    sidechannels: SidechannelRegistry,
    served: Option<mpsc::Sender<io::Result<Conn>>>,
    kind: TransportKind,
}

impl Backchannel {
    /// One transport connection: handshake, yamux client session, and the
    /// stream the gRPC client runs on. That stream owns the session's guard,
    /// so the session closes when the channel drops this connection.
    async fn connect(&self) -> io::Result<MuxStream> {
        let mut io = self.dialer.connect().await?;
        io.write_all(BACKCHANNEL_MAGIC).await?;
        io.flush().await?;
        let mux::Session { handle, inbound, guard } = mux::spawn(io, mux::Mode::Client);
        tokio::spawn(serve_inbound(inbound, handle.clone(), self.clone()));
        Ok(handle.open().await?.with_guard(Some(guard)))
    }
}

/// Dispatches the server-opened streams of one session.
async fn serve_inbound(mut inbound: mpsc::UnboundedReceiver<MuxStream>, handle: MuxHandle, ctx: Backchannel) {
    while let Some(mut stream) = inbound.recv().await {
        let handle = handle.clone();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let magic = match sidechannel::read_magic(&mut stream).await {
                Ok(magic) => magic,
                Err(e) => return tracing::debug!(error = %e, "server-opened stream failed"),
            };
            if &magic == SIDECHANNEL_MAGIC {
                // The user may outlive the channel while still pumping data.
                let stream = stream.with_guard(handle.guard());
                if let Err(e) = sidechannel::accept(stream, &ctx.sidechannels).await {
                    tracing::debug!(error = %e, "sidechannel refused");
                }
            } else if let Some(served) = &ctx.served {
                let info = ConnInfo { transport: ctx.kind, remote_addr: None, backchannel: None };
                let conn = Conn::new(crate::transport::Replay::new(&magic, stream), info);
                let _ = served.send(Ok(conn)).await;
            }
            // Otherwise the stream is dropped, which resets it.
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Address {
        Address::Tcp { host: host.into(), port }
    }

    #[test]
    fn parses_gitaly_addresses() {
        assert_eq!(Address::parse("tcp://gitaly:8075").expect("tcp"), tcp("gitaly", 8075));
        assert_eq!(Address::parse("127.0.0.1:9999").expect("bare"), tcp("127.0.0.1", 9999));
        assert_eq!(
            Address::parse("tls://gitaly.example.com:9999").expect("tls"),
            Address::Tls { host: "gitaly.example.com".into(), port: 9999 }
        );
        assert_eq!(Address::parse("tcp://[::1]:80").expect("v6"), tcp("::1", 80));
        assert_eq!(Address::parse("tcp://gitaly").expect("default port"), tcp("gitaly", 443));
        assert_eq!(Address::parse("unix:/run/gitaly.sock").expect("unix"), Address::Unix("/run/gitaly.sock".into()));
        assert_eq!(
            Address::parse("unix:///run/gitaly.sock").expect("unix url"),
            Address::Unix("///run/gitaly.sock".into())
        );
        assert_eq!(Address::parse("unix:rel.sock").expect("relative"), Address::Unix("rel.sock".into()));
    }

    #[test]
    fn rejects_bad_addresses() {
        for bad in ["tcp://host:1/path", "tls://host:1/", "tcp://:80", "tcp://host:port", "tcp://::1:80", "unix:"] {
            assert!(matches!(Address::parse(bad), Err(DialError::InvalidAddress { .. })), "{bad} should be invalid");
        }
        assert!(matches!(Address::parse("dns:///gitaly:80"), Err(DialError::UnsupportedScheme { .. })));
        assert!(matches!(Address::parse("http://gitaly:80"), Err(DialError::UnsupportedScheme { .. })));
    }

    #[test]
    fn interceptor_adds_fresh_token() {
        use tonic::service::Interceptor;
        let mut i = TokenInterceptor::new(Some("secret"));
        let req = i.call(tonic::Request::new(())).expect("intercept");
        let header = req.metadata().get("authorization").and_then(|v| v.to_str().ok());
        crate::auth::verify(header, "secret", SystemTime::now()).expect("valid token");

        let mut none = TokenInterceptor::new(None);
        let req = none.call(tonic::Request::new(())).expect("intercept");
        assert!(req.metadata().get("authorization").is_none());
    }
}
