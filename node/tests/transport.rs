//! End-to-end tests of the transport layer over real sockets: TCP and TLS on
//! 127.0.0.1 port 0, Unix sockets in a temporary directory.
//!
//! A small `ServerService` (and `grpc.health.v1.Health`) implementation is
//! served through `Listeners::incoming`; request metadata `x-test-mode`
//! selects what the handler does with its sidechannel or backchannel.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use cairn_node::client::{self, ClientSidechannel, Connection, DialOptions};
use cairn_node::transport::{self, BackchannelRegistry, ConnInfo, Listeners, TransportKind};
use cairn_proto::gitaly::server_service_client::ServerServiceClient;
use cairn_proto::gitaly::server_service_server::{ServerService, ServerServiceServer};
use cairn_proto::gitaly::{ServerInfoRequest, ServerInfoResponse};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus};

const SECRET: &str = "transport-test-secret";
/// Upper bound for any single step; generous for a loaded 2-core machine.
const STEP: Duration = Duration::from_secs(30);
const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------
// Test services
// ---------------------------------------------------------------------------

fn metadata_str<'a>(md: &'a tonic::metadata::MetadataMap, key: &str) -> &'a str {
    md.get(key).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn io_status(what: &str, e: &io::Error) -> Status {
    Status::internal(format!("{what}: {:?}: {e}", e.kind()))
}

/// 1 MiB of deterministic pseudo-random bytes (xorshift), shared by both ends.
fn block() -> &'static [u8] {
    static BLOCK: OnceLock<Vec<u8>> = OnceLock::new();
    BLOCK.get_or_init(|| {
        let mut x: u32 = 0x9e37_79b9;
        (0..MIB)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 7) as u8
            })
            .collect()
    })
}

/// The sidechannel of a request, opened towards its backchannel peer.
async fn sidechannel_for<T>(req: &Request<T>, id_offset: i64) -> Result<transport::Sidechannel, Status> {
    let info = req.extensions().get::<ConnInfo>().ok_or_else(|| Status::internal("no ConnInfo"))?;
    let peer = info.backchannel.as_ref().ok_or_else(|| Status::failed_precondition("no backchannel"))?;
    let id = transport::sidechannel_id(req.metadata()).ok_or_else(|| Status::invalid_argument("no sidechannel id"))?;
    transport::open_sidechannel(peer, id + id_offset).await.map_err(|e| io_status("open sidechannel", &e))
}

/// Reads the client's data to the flush, answers it upper-cased, closes.
async fn echo_upper(sc: transport::Sidechannel) -> Result<usize, Status> {
    let (mut r, mut w) = sc.into_split();
    let mut data = Vec::new();
    r.read_to_end(&mut data).await.map_err(|e| io_status("read", &e))?;
    w.write_all(&data.to_ascii_uppercase()).await.map_err(|e| io_status("write", &e))?;
    w.shutdown().await.map_err(|e| io_status("close", &e))?;
    Ok(data.len())
}

#[derive(Clone, Default)]
struct NodeService;

#[tonic::async_trait]
impl ServerService for NodeService {
    async fn server_info(&self, req: Request<ServerInfoRequest>) -> Result<Response<ServerInfoResponse>, Status> {
        let header = req.metadata().get("authorization").and_then(|v| v.to_str().ok());
        cairn_node::auth::verify(header, SECRET, SystemTime::now())
            .map_err(|e| Status::unauthenticated(e.to_string()))?;
        let info = req.extensions().get::<ConnInfo>().cloned().ok_or_else(|| Status::internal("no ConnInfo"))?;
        let peer = info.backchannel.as_ref().map_or_else(|| "none".to_owned(), |p| p.id().to_string());
        let reply = |server_version: String| {
            Ok(Response::new(ServerInfoResponse {
                server_version,
                git_version: format!("{}|{peer}", info.transport.as_str()),
                storage_statuses: Vec::new(),
            }))
        };
        match metadata_str(req.metadata(), "x-test-mode") {
            "" => reply("cairn-test".to_owned()),
            "echo-upper" => {
                let n = echo_upper(sidechannel_for(&req, 0).await?).await?;
                reply(n.to_string())
            }
            "bad-id" => match sidechannel_for(&req, 1000).await {
                Ok(_) => Err(Status::internal("unknown id was accepted")),
                Err(status) => Err(Status::aborted(status.message().to_owned())),
            },
            "read-status" => {
                let mut sc = sidechannel_for(&req, 0).await?;
                let mut data = Vec::new();
                sc.read_to_end(&mut data).await.map_err(|e| io_status("read", &e))?;
                reply(format!("read {}", data.len()))
            }
            "bulk" => {
                let up: usize = metadata_str(req.metadata(), "x-up-mib").parse().unwrap_or(0);
                let down: usize = metadata_str(req.metadata(), "x-down-mib").parse().unwrap_or(0);
                let (mut r, mut w) = sidechannel_for(&req, 0).await?.into_split();
                let mut buf = vec![0u8; MIB];
                for _ in 0..up {
                    r.read_exact(&mut buf).await.map_err(|e| io_status("read", &e))?;
                    if buf != block() {
                        return Err(Status::data_loss("corrupted block"));
                    }
                }
                if r.read(&mut buf).await.map_err(|e| io_status("read end", &e))? != 0 {
                    return Err(Status::data_loss("data after the expected end"));
                }
                for _ in 0..down {
                    w.write_all(block()).await.map_err(|e| io_status("write", &e))?;
                }
                w.shutdown().await.map_err(|e| io_status("close", &e))?;
                reply("bulk".to_owned())
            }
            "call-back" => {
                let peer = info.backchannel.as_ref().ok_or_else(|| Status::failed_precondition("no backchannel"))?;
                let mut client = ServerServiceClient::new(peer.grpc_channel());
                let answer = client.server_info(ServerInfoRequest {}).await?.into_inner();
                reply(format!("via-backchannel:{}", answer.server_version))
            }
            other => Err(Status::invalid_argument(format!("unknown mode {other}"))),
        }
    }
}

/// Served by the *client* on server-opened streams.
#[derive(Clone, Default)]
struct ClientSideService;

#[tonic::async_trait]
impl ServerService for ClientSideService {
    async fn server_info(&self, _: Request<ServerInfoRequest>) -> Result<Response<ServerInfoResponse>, Status> {
        Ok(Response::new(ServerInfoResponse { server_version: "answered-by-client".to_owned(), ..Default::default() }))
    }
}

/// Health, plus a sidechannel echo when asked for service "sidechannel"
/// (for the Go interop probe, which only has the health protos).
#[derive(Clone, Default)]
struct HealthService;

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(&self, req: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        if req.get_ref().service == "sidechannel" {
            echo_upper(sidechannel_for(&req, 0).await?).await?;
        }
        Ok(Response::new(HealthCheckResponse { status: ServingStatus::Serving as i32 }))
    }

    type WatchStream = tokio_stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(&self, _: Request<HealthCheckRequest>) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

// ---------------------------------------------------------------------------
// Server harness
// ---------------------------------------------------------------------------

/// A CA and a leaf for `localhost` / 127.0.0.1 written to `dir`; returns
/// the CA path and the server config.
fn make_certs(dir: &Path) -> (PathBuf, Arc<rustls::ServerConfig>) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "cairn test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA cert");
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca)
        .expect("leaf cert");
    let ca_path = dir.join("ca.pem");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&ca_path, ca.as_ref().pem()).expect("write CA");
    std::fs::write(&cert_path, leaf.pem()).expect("write cert");
    std::fs::write(&key_path, leaf_key.serialize_pem()).expect("write key");
    let config = transport::server_tls_config(&cert_path, &key_path).expect("server TLS config");
    (ca_path, config)
}

struct TestServer {
    tcp: SocketAddr,
    tls: SocketAddr,
    unix: PathBuf,
    ca: PathBuf,
    registry: BackchannelRegistry,
    accepted: Arc<Mutex<Vec<TransportKind>>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    async fn start() -> Self {
        Self::start_with(transport::DEFAULT_HANDSHAKE_TIMEOUT).await
    }

    async fn start_with(handshake_timeout: Duration) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, tls_config) = make_certs(dir.path());
        let unix = dir.path().join("gitaly.sock");
        // A stale socket file from a previous run must not prevent binding.
        drop(std::os::unix::net::UnixListener::bind(&unix).expect("stale socket"));
        let listeners = Listeners::bind(Some("127.0.0.1:0"), Some(&unix), Some(("127.0.0.1:0", tls_config)))
            .expect("bind")
            .with_handshake_timeout(handshake_timeout);
        let tcp = listeners.tcp_addr().expect("tcp addr");
        let tls = listeners.tls_addr().expect("tls addr");
        assert_eq!(listeners.unix_path(), Some(unix.as_path()));
        let registry = BackchannelRegistry::default();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let seen = accepted.clone();
        let incoming = listeners.incoming(registry.clone(), move |kind| seen.lock().expect("lock").push(kind));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(ServerServiceServer::new(NodeService))
                .add_service(HealthServer::new(HealthService))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                }),
        );
        Self { tcp, tls, unix, ca, registry, accepted, stop: Some(stop), task: Some(task), _dir: dir }
    }

    fn tcp_url(&self) -> String {
        format!("tcp://{}", self.tcp)
    }

    fn unix_url(&self) -> String {
        format!("unix:{}", self.unix.display())
    }

    fn tls_url(&self) -> String {
        format!("tls://localhost:{}", self.tls.port())
    }

    fn urls(&self) -> [(TransportKind, String); 3] {
        [
            (TransportKind::Tcp, self.tcp_url()),
            (TransportKind::Unix, self.unix_url()),
            (TransportKind::Tls, self.tls_url()),
        ]
    }

    fn options(&self, backchannel: bool) -> DialOptions {
        DialOptions {
            token: Some(SECRET.to_owned()),
            backchannel,
            tls_ca: Some(self.ca.clone()),
            backchannel_server: None,
        }
    }

    async fn dial(&self, url: &str, backchannel: bool) -> Connection {
        tokio::time::timeout(STEP, client::dial(url, self.options(backchannel)))
            .await
            .expect("dial in time")
            .unwrap_or_else(|e| panic!("dial {url}: {e}"))
    }

    /// Graceful shutdown; must finish even with sessions still open.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(STEP, task)
                .await
                .expect("server stops in time")
                .expect("server task")
                .expect("server result");
        }
    }
}

/// Waits until `cond` holds, polling.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn request(mode: &str) -> Request<ServerInfoRequest> {
    let mut req = Request::new(ServerInfoRequest {});
    if !mode.is_empty() {
        req.metadata_mut().insert("x-test-mode", mode.parse().expect("ascii"));
    }
    req
}

async fn server_info(conn: &Connection, req: Request<ServerInfoRequest>) -> Result<ServerInfoResponse, Status> {
    let mut client = ServerServiceClient::new(conn.channel());
    tokio::time::timeout(STEP, client.server_info(req)).await.expect("RPC in time").map(Response::into_inner)
}

/// Runs an RPC with a sidechannel: registers a waiter, sends its id, and
/// runs `body` on the sidechannel if the server opens it. Returns the RPC
/// result and, if the sidechannel arrived, `body`'s result.
async fn with_sidechannel<F, Fut, T>(
    conn: &Connection,
    mut req: Request<ServerInfoRequest>,
    body: F,
) -> (Result<ServerInfoResponse, Status>, Option<io::Result<T>>)
where
    F: FnOnce(ClientSidechannel) -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    let (id, waiter) = conn.sidechannels().register();
    req.metadata_mut().insert("gitaly-sidechannel-id", id.to_string().parse().expect("ascii"));
    let mut client = ServerServiceClient::new(conn.channel());
    let mut rpc = tokio::spawn(async move { client.server_info(req).await.map(Response::into_inner) });
    let outcome = tokio::select! {
        sc = waiter.wait() => match sc {
            Ok(sc) => Some(tokio::time::timeout(STEP, body(sc)).await.expect("sidechannel body in time")),
            Err(e) => Some(Err(e)),
        },
        result = &mut rpc => return (result.expect("RPC task"), None),
    };
    let result = tokio::time::timeout(STEP, rpc).await.expect("RPC in time").expect("RPC task");
    (result, outcome)
}

/// Client body: sends `data` framed, then reads the raw answer to EOF.
async fn send_and_read(mut sc: ClientSidechannel, data: Vec<u8>) -> io::Result<Vec<u8>> {
    sc.write_all(&data).await?;
    sc.close_write().await?;
    let mut answer = Vec::new();
    sc.read_to_end(&mut answer).await?;
    Ok(answer)
}

fn client_routes() -> tonic::service::Routes {
    tonic::service::Routes::new(ServerServiceServer::new(ClientSideService))
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test]
async fn plain_grpc_over_tcp_unix_and_tls() {
    let server = TestServer::start().await;
    for (kind, url) in server.urls() {
        let conn = server.dial(&url, false).await;
        let info = server_info(&conn, request("")).await.unwrap_or_else(|s| panic!("{url}: {s}"));
        assert_eq!(info.server_version, "cairn-test");
        assert_eq!(info.git_version, format!("{}|none", kind.as_str()), "{url}");
        // Without a backchannel, sidechannel waiters fail instead of hanging.
        let (_, waiter) = conn.sidechannels().register();
        assert!(waiter.wait().await.is_err());
    }
    let accepted = server.accepted.lock().expect("lock").clone();
    for kind in [TransportKind::Tcp, TransportKind::Unix, TransportKind::Tls] {
        assert!(accepted.contains(&kind), "on_accept saw {accepted:?}");
    }
    assert!(server.registry.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn backchannel_rpc_sidechannel_and_reverse_grpc_over_tcp_unix_and_tls() {
    let server = TestServer::start().await;
    for (kind, url) in server.urls() {
        let mut opts = server.options(true);
        opts.backchannel_server = Some(client_routes());
        let conn = client::dial(&url, opts).await.unwrap_or_else(|e| panic!("dial {url}: {e}"));

        // Plain RPC over a client-opened yamux stream; the handler sees the peer.
        let info = server_info(&conn, request("")).await.unwrap_or_else(|s| panic!("{url}: {s}"));
        let (transport_label, peer) = info.git_version.split_once('|').expect("label|peer");
        assert_eq!(transport_label, kind.as_str());
        let peer_id: u64 = peer.parse().unwrap_or_else(|_| panic!("{url}: no backchannel peer in {peer:?}"));
        let registered = server.registry.get(peer_id).expect("peer registered");
        assert_eq!(registered.id(), peer_id);

        // Sidechannel round trip: framed request, raw upper-cased answer.
        let payload = b"hello sidechannel ".repeat(10_000);
        let (result, body) =
            with_sidechannel(&conn, request("echo-upper"), |sc| send_and_read(sc, payload.clone())).await;
        let answer = body.expect("sidechannel opened").expect("sidechannel body");
        assert_eq!(answer, payload.to_ascii_uppercase(), "{url}");
        assert_eq!(result.expect("RPC").server_version, payload.len().to_string());
        assert_eq!(conn.sidechannels().pending(), 0);

        // Reverse gRPC: the server calls the client over a server-opened stream.
        let info = server_info(&conn, request("call-back")).await.unwrap_or_else(|s| panic!("{url}: {s}"));
        assert_eq!(info.server_version, "via-backchannel:answered-by-client");
    }
    server.stop().await;
}

#[tokio::test]
async fn large_sidechannel_transfers() {
    const SIZE_MIB: usize = 64;
    let server = TestServer::start().await;
    for (kind, url) in server.urls() {
        let conn = server.dial(&url, true).await;
        for (up, down) in [(SIZE_MIB, 0), (0, SIZE_MIB)] {
            let mut req = request("bulk");
            req.metadata_mut().insert("x-up-mib", up.to_string().parse().expect("ascii"));
            req.metadata_mut().insert("x-down-mib", down.to_string().parse().expect("ascii"));
            let start = Instant::now();
            let (result, body) = with_sidechannel(&conn, req, |sc| async move {
                let (mut r, mut w) = sc.into_split();
                let send = async {
                    for _ in 0..up {
                        w.write_all(block()).await?;
                    }
                    w.close_write().await
                };
                let receive = async {
                    let mut buf = vec![0u8; MIB];
                    for _ in 0..down {
                        r.read_exact(&mut buf).await?;
                        assert!(buf == block(), "corrupted block");
                    }
                    assert_eq!(r.read(&mut buf).await?, 0, "data after the expected end");
                    Ok(())
                };
                tokio::try_join!(send, receive).map(|_| ())
            })
            .await;
            body.expect("sidechannel opened").expect("transfer");
            result.unwrap_or_else(|s| panic!("{url}: {s}"));
            let secs = start.elapsed().as_secs_f64();
            let direction = if up > 0 { "client->server" } else { "server->client" };
            eprintln!(
                "throughput {kind:?} {direction}: {SIZE_MIB} MiB in {secs:.2}s = {:.0} MiB/s",
                SIZE_MIB as f64 / secs
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn stalled_clients_do_not_block_others() {
    let server = TestServer::start_with(Duration::from_secs(1)).await;
    // Three bytes of an HTTP/2 preface, and three bytes towards the TLS port.
    let mut stalled_plain = tokio::net::TcpStream::connect(server.tcp).await.expect("connect");
    stalled_plain.write_all(b"PRI").await.expect("write");
    let mut stalled_tls = tokio::net::TcpStream::connect(server.tls).await.expect("connect");
    stalled_tls.write_all(b"\x16\x03\x01").await.expect("write");

    for (_, url) in server.urls() {
        for backchannel in [false, true] {
            let conn = server.dial(&url, backchannel).await;
            server_info(&conn, request("")).await.unwrap_or_else(|s| panic!("{url}: {s}"));
        }
    }
    // The stalled connections are dropped once the handshake timeout passes.
    for mut stalled in [stalled_plain, stalled_tls] {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(STEP, stalled.read_to_end(&mut buf)).await.expect("server closes the stall");
        assert!(read.is_err() || buf.is_empty(), "unexpected data {buf:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn backchannel_followed_by_garbage_closes_only_that_connection() {
    let server = TestServer::start().await;
    let good = server.dial(&server.tcp_url(), true).await;
    server_info(&good, request("")).await.expect("good client works");
    assert_eq!(server.registry.len(), 1);

    let mut bad = tokio::net::TcpStream::connect(server.tcp).await.expect("connect");
    bad.write_all(b"backchannel\x07this is not a yamux frame header at all").await.expect("write");
    let mut buf = Vec::new();
    // The server may send a GoAway before closing; either way the socket ends.
    let _ = tokio::time::timeout(STEP, bad.read_to_end(&mut buf)).await.expect("garbage connection is closed");

    eventually("garbage session unregistered", || server.registry.len() == 1).await;
    server_info(&good, request("")).await.expect("good client still works");
    let fresh = server.dial(&server.unix_url(), true).await;
    server_info(&fresh, request("")).await.expect("new clients work");
    drop((good, fresh));
    server.stop().await;
}

#[tokio::test]
async fn unknown_sidechannel_id_fails_fast_without_hanging_the_client() {
    let server = TestServer::start().await;
    let conn = server.dial(&server.tcp_url(), true).await;
    let start = Instant::now();
    let (result, body) = with_sidechannel(&conn, request("bad-id"), |_| async { Ok(()) }).await;
    assert!(body.is_none(), "the waiter must not receive a stream for another id");
    let status = result.expect_err("server handshake must fail");
    assert_eq!(status.code(), tonic::Code::Aborted, "{status:?}");
    // The client closed the stream at once: no wait for the 5 s handshake deadline.
    assert!(start.elapsed() < transport::SIDECHANNEL_TIMEOUT, "took {:?}", start.elapsed());
    assert_eq!(conn.sidechannels().pending(), 0, "dropped waiter is unregistered");
    // The session is still healthy.
    server_info(&conn, request("")).await.expect("connection still works");
    server.stop().await;
}

/// Sends `raw` bytes (not framed by the client) on a sidechannel and returns
/// the server's verdict.
async fn raw_sidechannel(
    conn: &Connection,
    raw: &'static [u8],
    half_close: bool,
) -> Result<ServerInfoResponse, Status> {
    let (result, body) = with_sidechannel(conn, request("read-status"), |sc| async move {
        let mut stream = sc.into_raw().await?;
        stream.write_all(raw).await?;
        if half_close {
            stream.shutdown().await?;
        }
        let mut rest = Vec::new();
        // The server ends the stream after its verdict; a reset is fine too.
        let _ = stream.read_to_end(&mut rest).await;
        Ok(())
    })
    .await;
    assert!(body.is_some(), "sidechannel must open");
    result
}

#[tokio::test]
async fn sidechannel_framing_errors_reach_the_server() {
    let server = TestServer::start().await;
    let conn = server.dial(&server.unix_url(), true).await;

    let ok = raw_sidechannel(&conn, b"0009hello0004000a world0000", false).await.expect("valid frames");
    assert_eq!(ok.server_version, "read 11");

    for truncated in [&b"0009hello"[..], b"0009hel", b"00", b""] {
        let status = raw_sidechannel(&conn, truncated, true).await.expect_err("EOF without flush");
        assert!(status.message().contains("UnexpectedEof"), "{truncated:?}: {status:?}");
    }
    for magic in [&b"0001"[..], b"0002", b"0003"] {
        // No half-close: the server must reject the header by itself.
        let status = raw_sidechannel(&conn, magic, false).await.expect_err("magic length");
        assert!(status.message().contains("InvalidData"), "{magic:?}: {status:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn registry_forgets_closed_sessions_and_late_opens_fail() {
    let server = TestServer::start().await;
    let mut conns = Vec::new();
    for (_, url) in server.urls() {
        let conn = server.dial(&url, true).await;
        server_info(&conn, request("")).await.expect("RPC");
        conns.push(conn);
    }
    assert_eq!(server.registry.len(), 3);
    let peers = server.registry.peers();
    let mut ids: Vec<u64> = peers.iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2, 3], "peer ids count from 1");

    drop(conns);
    eventually("all sessions unregistered", || server.registry.is_empty()).await;
    for peer in peers {
        tokio::time::timeout(STEP, peer.closed()).await.expect("peer reports closed");
        assert!(peer.is_closed());
        let err = peer.open_stream().await.expect_err("open after disconnect");
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
        assert!(transport::open_sidechannel(&peer, 0).await.is_err());
    }
    server.stop().await;
}

#[tokio::test]
async fn server_shutdown_closes_backchannel_sessions() {
    let server = TestServer::start().await;
    let conn = server.dial(&server.tcp_url(), true).await;
    server_info(&conn, request("")).await.expect("RPC");
    let peer = server.registry.peers().pop().expect("one peer");
    let registry = server.registry.clone();
    // Graceful stop must not wait for the client to hang up.
    server.stop().await;
    tokio::time::timeout(STEP, peer.closed()).await.expect("session closed by the server");
    eventually("session unregistered", || registry.is_empty()).await;
    assert!(server_info(&conn, request("")).await.is_err(), "server is gone");
}

#[tokio::test]
async fn token_is_sent_and_verified() {
    let server = TestServer::start().await;
    for backchannel in [false, true] {
        let conn = server.dial(&server.tcp_url(), backchannel).await;
        server_info(&conn, request("")).await.expect("valid token accepted");

        let mut anonymous = server.options(backchannel);
        anonymous.token = None;
        let conn = client::dial(&server.tcp_url(), anonymous).await.expect("dial");
        let status = server_info(&conn, request("")).await.expect_err("missing token rejected");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }
    server.stop().await;
}

#[tokio::test]
async fn dial_errors_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = format!("unix:{}", dir.path().join("nobody.sock").display());
    let err = client::dial(&missing, DialOptions::default()).await.expect_err("no server");
    assert!(matches!(err, client::DialError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("nobody.sock"), "{err}");
    let err = client::dial("tcp://127.0.0.1:1/x", DialOptions::default()).await.expect_err("path");
    assert!(matches!(err, client::DialError::InvalidAddress { .. }), "{err}");

    // A TLS server whose certificate is not trusted is refused.
    let server = TestServer::start().await;
    let untrusted_ca = dir.path().join("other-ca.pem");
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    std::fs::write(&untrusted_ca, other.cert.pem()).expect("write");
    let opts = DialOptions { tls_ca: Some(untrusted_ca), ..DialOptions::default() };
    assert!(client::dial(&server.tls_url(), opts).await.is_err());
    server.stop().await;
}

// ---------------------------------------------------------------------------
// Interop with hashicorp/yamux and grpc-go
// ---------------------------------------------------------------------------

const GOPATH: &str = "/usr/share/gocode";

/// Builds the Go probe, or explains why the test is skipped.
#[allow(clippy::disallowed_methods, reason = "test tooling, not git: builds the Go interop probe")]
fn build_go_probe(out: &Path) -> Result<PathBuf, String> {
    let go = std::process::Command::new("go").arg("version").output();
    if !matches!(go, Ok(ref o) if o.status.success()) {
        return Err("`go` is not installed".to_owned());
    }
    for package in ["github.com/hashicorp/yamux", "google.golang.org/grpc/health/grpc_health_v1"] {
        if !Path::new(GOPATH).join("src").join(package).is_dir() {
            return Err(format!("Go package {package} is not in {GOPATH} (Debian golang-*-dev packages)"));
        }
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/backchannel_client.go");
    let binary = out.join("backchannel_client");
    let cache = std::env::temp_dir().join("cairn-go-build-cache");
    let build = std::process::Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOCACHE", cache)
        .env("GOFLAGS", "")
        .output()
        .expect("run go build");
    assert!(build.status.success(), "go build failed: {}", String::from_utf8_lossy(&build.stderr));
    Ok(binary)
}

#[tokio::test]
#[allow(clippy::disallowed_methods, reason = "test tooling, not git: runs the Go interop probe")]
async fn go_hashicorp_yamux_and_grpc_go_interop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let binary = match build_go_probe(dir.path()) {
        Ok(binary) => binary,
        Err(reason) => {
            eprintln!("SKIPPED go_hashicorp_yamux_and_grpc_go_interop: {reason}");
            return;
        }
    };
    // 8 MiB each way: far beyond yamux's 256 KiB initial window, so window
    // updates must work in both directions between the two implementations.
    const SIZE: usize = 8 * MIB;
    let expected_answer: Vec<u8> = (0..SIZE).map(|i| b'A' + (i % 26) as u8).collect();
    let expected = hex::encode(sha2::Sha256::digest(&expected_answer));

    let server = TestServer::start().await;
    let targets = [("tcp", server.tcp.to_string()), ("unix", server.unix.display().to_string())];
    for (network, address) in targets {
        let child = tokio::process::Command::new(&binary)
            .args([network, &address, &SIZE.to_string()])
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(120), child)
            .await
            .expect("Go probe finishes")
            .expect("run Go probe");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "Go probe over {network} failed: {}\n{stdout}",
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines,
            vec!["health SERVING".to_owned(), format!("sidechannel {SIZE} {expected}"), "health SERVING".to_owned()],
            "over {network}"
        );
    }
    eventually("Go sessions unregistered", || server.registry.is_empty()).await;
    server.stop().await;
}
