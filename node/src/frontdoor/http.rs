//! `gitaly-http`: a small smart-HTTP server so stock git can clone, fetch
//! and push over HTTP against a node, as Workhorse does for GitLab:
//!
//! ```text
//! GET  /<relative_path>/info/refs?service=git-upload-pack   InfoRefsUploadPack
//! GET  /<relative_path>/info/refs?service=git-receive-pack  InfoRefsReceivePack
//! POST /<relative_path>/git-upload-pack                     PostUploadPackWithSidechannel
//! POST /<relative_path>/git-receive-pack                    PostReceivePack
//! ```
//!
//! Every repository is on the one `--storage`. Request bodies may be
//! gzip-encoded (`Content-Encoding: gzip`, as git sends large ones); the
//! `Git-Protocol` header selects protocol v2. There is no user
//! authentication: put it behind something that does, or bind to loopback.

use std::convert::Infallible;
use std::ffi::OsString;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use clap::Parser;
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use http::{Method, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::io::AsyncWriteExt as _;
use tonic::Request;

use crate::client::{Connection, DialOptions};
use cairn_proto::gitaly::smart_http_service_client::SmartHttpServiceClient;
use cairn_proto::gitaly::{InfoRefsRequest, PostReceivePackRequest, PostUploadPackWithSidechannelRequest, Repository};

/// Command line of `gitaly-http`.
#[derive(Debug, Parser)]
#[command(name = "gitaly-http", about = "Smart-HTTP front door for git in front of a Cairn node")]
pub struct Args {
    /// Address to serve HTTP on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The node: tcp://host:port, tls://host:port or unix:/path.
    #[arg(long)]
    pub address: String,
    /// Storage holding the repositories.
    #[arg(long)]
    pub storage: String,
    /// The node's shared secret, if it requires authentication.
    #[arg(long)]
    pub token: Option<String>,
    /// GitLab user id sent with pushes (receive-pack requires one).
    #[arg(long, default_value = "user-1")]
    pub gl_id: String,
}

type Body = UnsyncBoxBody<Bytes, io::Error>;

struct State {
    conn: Connection,
    storage: String,
    gl_id: String,
}

/// Entry point of the binary.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gitaly-http: start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gitaly-http: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until the process is stopped. Prints `listening on <addr>` once
/// the socket is bound (tests and scripts read the port from it).
pub async fn serve(args: Args) -> anyhow::Result<()> {
    let opts = DialOptions { token: args.token.clone(), backchannel: true, ..Default::default() };
    let conn = crate::client::dial(&args.address, opts).await?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    {
        let mut out = io::stdout().lock();
        writeln!(out, "listening on {}", listener.local_addr()?)?;
        out.flush()?;
    }
    let state = Arc::new(State { conn, storage: args.storage, gl_id: args.gl_id });
    loop {
        let (stream, _) = listener.accept().await?;
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, req).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                tracing::debug!(error = %e, "http connection failed");
            }
        });
    }
}

async fn route(state: &State, req: hyper::Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let protocol = req.headers().get("git-protocol").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let repo = |suffix: &str| {
        path.strip_suffix(suffix).map(|p| p.trim_start_matches('/')).filter(|p| !p.is_empty()).map(|p| Repository {
            storage_name: state.storage.clone(),
            relative_path: p.to_owned(),
            // Push hooks require GitLab's repository identifier; without
            // GitLab the path is the only identity there is.
            gl_repository: p.to_owned(),
            ..Default::default()
        })
    };
    let result = match (req.method(), repo("/info/refs"), repo("/git-upload-pack"), repo("/git-receive-pack")) {
        (&Method::GET, Some(repository), _, _) => {
            let service = query.split('&').find_map(|kv| kv.strip_prefix("service="));
            match service {
                Some(svc @ ("git-upload-pack" | "git-receive-pack")) => {
                    info_refs(state, repository, svc, protocol).await
                }
                _ => Err(text(StatusCode::FORBIDDEN, "only smart HTTP is supported")),
            }
        }
        (&Method::POST, _, Some(repository), _) => upload_pack(state, repository, protocol, body(req)).await,
        (&Method::POST, _, _, Some(repository)) => receive_pack(state, repository, protocol, body(req)).await,
        _ => Err(text(StatusCode::NOT_FOUND, "not found")),
    };
    result.unwrap_or_else(|r| r)
}

fn text(code: StatusCode, message: &str) -> Response<Body> {
    let body = Full::new(Bytes::from(format!("{message}\n"))).map_err(|never| match never {}).boxed_unsync();
    Response::builder()
        .status(code)
        .header("content-type", "text/plain; charset=utf-8")
        .body(body)
        .expect("static headers are valid")
}

/// The HTTP answer for a failed RPC.
fn rpc_error(status: &tonic::Status) -> Response<Body> {
    let code = match status.code() {
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        tonic::Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    text(code, status.message())
}

fn streaming(content_type: String, data: impl Stream<Item = io::Result<Bytes>> + Send + 'static) -> Response<Body> {
    let body = StreamBody::new(data.map_ok(Frame::data)).boxed_unsync();
    Response::builder()
        .header("content-type", content_type)
        .header("cache-control", "no-cache")
        .body(body)
        .expect("static headers are valid")
}

/// The request body, gunzipped if the client compressed it.
fn body(req: hyper::Request<Incoming>) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let gzip = req.headers().get("content-encoding").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let raw = req.into_body().into_data_stream().map_err(io::Error::other);
    let decoder = gzip.then(|| flate2::write::GzDecoder::new(Vec::new()));
    futures::stream::unfold((Box::pin(raw), decoder, false), |(mut raw, mut decoder, done)| async move {
        if done {
            return None;
        }
        loop {
            let item = raw.next().await;
            let Some(dec) = decoder.as_mut() else {
                return item.map(|chunk| (chunk, (raw, decoder, false)));
            };
            let out = match item {
                Some(Ok(chunk)) => dec.write_all(&chunk).map(|()| false),
                Some(Err(e)) => return Some((Err(e), (raw, decoder, true))),
                None => dec.try_finish().map(|()| true),
            };
            match out {
                Err(e) => return Some((Err(e), (raw, decoder, true))),
                Ok(finished) => {
                    let data = std::mem::take(dec.get_mut());
                    if !data.is_empty() || finished {
                        return Some((Ok(Bytes::from(data)), (raw, decoder, finished)));
                    }
                }
            }
        }
    })
}

async fn info_refs(
    state: &State,
    repository: Repository,
    service: &str,
    git_protocol: String,
) -> Result<Response<Body>, Response<Body>> {
    let mut client = SmartHttpServiceClient::new(state.conn.channel());
    let req = InfoRefsRequest { repository: Some(repository), git_protocol, ..Default::default() };
    let answer = if service == "git-upload-pack" {
        client.info_refs_upload_pack(req).await
    } else {
        client.info_refs_receive_pack(req).await
    };
    let stream = answer.map_err(|s| rpc_error(&s))?.into_inner();
    let data = stream.map(|r| r.map(|m| Bytes::from(m.data)).map_err(io::Error::other));
    Ok(streaming(format!("application/x-{service}-advertisement"), data))
}

async fn upload_pack(
    state: &State,
    repository: Repository,
    git_protocol: String,
    body: impl Stream<Item = io::Result<Bytes>> + Send + 'static,
) -> Result<Response<Body>, Response<Body>> {
    let (id, waiter) = state.conn.sidechannels().register();
    let mut req = Request::new(PostUploadPackWithSidechannelRequest {
        repository: Some(repository),
        git_protocol,
        ..Default::default()
    });
    req.metadata_mut().insert(crate::transport::SIDECHANNEL_ID_KEY, id.into());
    let mut client = SmartHttpServiceClient::new(state.conn.channel());
    let mut rpc = tokio::spawn(async move { client.post_upload_pack_with_sidechannel(req).await });
    let channel = tokio::select! {
        sc = waiter.wait() => sc.map_err(|e| text(StatusCode::BAD_GATEWAY, &e.to_string()))?,
        r = &mut rpc => {
            return Err(match r {
                Ok(Err(status)) => rpc_error(&status),
                _ => text(StatusCode::BAD_GATEWAY, "the node did not open the sidechannel"),
            });
        }
    };
    let (reader, mut writer) = channel.into_split();
    tokio::spawn(async move {
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else { return };
            if writer.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = writer.close_write().await;
    });
    // The answer is the sidechannel's bytes; the RPC's verdict comes after
    // them, and a failure aborts the response so git sees it.
    let verdict = futures::stream::once(async move {
        match rpc.await {
            Ok(Ok(_)) => None,
            Ok(Err(status)) => Some(Err(io::Error::other(status.message().to_owned()))),
            Err(e) => Some(Err(io::Error::other(e))),
        }
    })
    .filter_map(std::future::ready);
    let data = tokio_util::io::ReaderStream::with_capacity(reader, 64 * 1024).chain(verdict);
    Ok(streaming("application/x-git-upload-pack-result".into(), data))
}

async fn receive_pack(
    state: &State,
    repository: Repository,
    git_protocol: String,
    body: impl Stream<Item = io::Result<Bytes>> + Send + 'static,
) -> Result<Response<Body>, Response<Body>> {
    let first = PostReceivePackRequest {
        gl_repository: repository.gl_repository.clone(),
        repository: Some(repository),
        gl_id: state.gl_id.clone(),
        git_protocol,
        ..Default::default()
    };
    // A body that fails mid-way ends the request stream early; git on the
    // node then sees a truncated pack and rejects the push.
    let rest = tokio_stream::StreamExt::map_while(Box::pin(body), Result::ok)
        .map(|data| PostReceivePackRequest { data: data.to_vec(), ..Default::default() });
    let input = futures::stream::once(async move { first }).chain(rest);
    let mut client = SmartHttpServiceClient::new(state.conn.channel());
    let stream = client.post_receive_pack(input).await.map_err(|s| rpc_error(&s))?.into_inner();
    let data = stream.map(|r| r.map(|m| Bytes::from(m.data)).map_err(io::Error::other));
    Ok(streaming("application/x-git-receive-pack-result".into(), data))
}
