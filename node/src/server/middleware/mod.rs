//! The one middleware stack every RPC passes through, in this order:
//!
//! 1. request info: the RPC's facts, correlation id, start time. First, so
//!    every later step is logged and measured, including rejections.
//! 2. authentication. Before the limiter, so a queued call's token cannot
//!    expire while it waits and unauthenticated calls take no slots.
//! 3. the target repository, read from the first request message through
//!    the facts table's field path (for the log line and the limiter key).
//! 4. concurrency limits, per RPC and repository.
//! 5. the service itself.
//! 6. the answer: UNIMPLEMENTED stubs get upstream's message naming the
//!    method; the response body is observed so metrics and the log line
//!    record the final code, messages sent and duration.
//!
//! One stack serves unary and streaming RPCs alike.

mod auth;
mod body;
pub mod limit;

use crate::config;
use crate::server::access_log::{AccessLog, Line};
use crate::server::metrics::{HandledLabels, Metrics, RpcLabels};
use body::{InboundBody, ObservedBody, OnFinish};
use cairn_proto::facts::RpcFacts;
use cairn_proto::gitaly::Repository;
use limit::{LimitOutcome, Limiters, Permit};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::body::Body;

/// The largest first message read ahead to find the repository (tonic's
/// default decode limit; larger messages are rejected by the service).
const MAX_PEEK: usize = 4 * 1024 * 1024;

/// Shared state of the stack.
#[derive(Debug)]
pub struct State {
    pub metrics: Metrics,
    pub auth: config::Auth,
    pub limiters: Limiters,
    pub log: AccessLog,
}

/// The tower layer.
#[derive(Debug, Clone)]
pub struct Stack {
    state: Arc<State>,
}

impl Stack {
    pub fn new(state: State) -> Self {
        Self { state: Arc::new(state) }
    }
}

impl<S> tower::Layer<S> for Stack {
    type Service = StackService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StackService { inner, state: self.state.clone() }
    }
}

/// The stack wrapped around the gRPC routes.
#[derive(Debug, Clone)]
pub struct StackService<S> {
    inner: S,
    state: Arc<State>,
}

/// Methods served that are not Gitaly's: (path, service, method, type).
const OTHER_METHODS: [(&str, &str, &str, &str); 4] = [
    ("/grpc.health.v1.Health/Check", "grpc.health.v1.Health", "Check", "unary"),
    ("/grpc.health.v1.Health/Watch", "grpc.health.v1.Health", "Watch", "server_stream"),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "grpc.reflection.v1.ServerReflection",
        "ServerReflectionInfo",
        "bidi_stream",
    ),
    (
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "grpc.reflection.v1alpha.ServerReflection",
        "ServerReflectionInfo",
        "bidi_stream",
    ),
];

/// What the stack knows about a call, available to handlers through
/// request extensions.
#[derive(Debug, Clone)]
pub struct RpcContext {
    pub facts: Option<&'static RpcFacts>,
    /// Metric labels: from the facts, the other served methods, or
    /// `unknown` (so clients cannot create label values at will).
    labels: RpcLabels,
    pub service: String,
    pub method: String,
    pub correlation_id: String,
    pub start: Instant,
}

impl RpcContext {
    fn labels(&self) -> RpcLabels {
        self.labels.clone()
    }
}

fn labels_for(path: &str, facts: Option<&'static RpcFacts>) -> RpcLabels {
    let (grpc_service, grpc_method, grpc_type) = match facts {
        Some(f) => (f.service, f.method, f.grpc_type()),
        None => OTHER_METHODS
            .iter()
            .find(|(p, ..)| *p == path)
            .map_or(("unknown", "unknown", "unknown"), |(_, s, m, t)| (*s, *m, *t)),
    };
    RpcLabels { grpc_type, grpc_service, grpc_method }
}

fn split_path(path: &str) -> (String, String) {
    let trimmed = path.trim_start_matches('/');
    match trimmed.split_once('/') {
        Some((s, m)) => (s.to_owned(), m.to_owned()),
        None => (trimmed.to_owned(), String::new()),
    }
}

fn new_correlation_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The go-grpc-prometheus / Go spelling of a status code.
pub(crate) fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "Canceled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        _ => "Unknown",
    }
}

struct Finish {
    state: Arc<State>,
    ctx: RpcContext,
    repository: Option<Repository>,
    limit: Option<LimitOutcome>,
    client_name: Option<String>,
    peer: Option<String>,
    _permit: Option<Permit>,
}

impl OnFinish for Finish {
    fn finish(self: Box<Self>, status: Option<(i32, String)>, sent_messages: u64) {
        // No status at all: the client went away before the answer ended.
        let (code, message) = status.unwrap_or((1, "client disconnected".to_owned()));
        let elapsed = self.ctx.start.elapsed();
        let labels = self.ctx.labels();
        let m = &self.state.metrics;
        m.msg_sent.get_or_create(&labels).inc_by(sent_messages);
        m.handling_seconds.get_or_create(&labels).observe(elapsed.as_secs_f64());
        m.handled
            .get_or_create(&HandledLabels {
                grpc_type: labels.grpc_type,
                grpc_service: labels.grpc_service,
                grpc_method: labels.grpc_method,
                grpc_code: code_name(code),
            })
            .inc();

        let streaming = labels.grpc_type != "unary";
        let mut line = Line::default();
        line.str(
            "msg",
            format!("finished {} call with code {}", if streaming { "streaming" } else { "unary" }, code_name(code)),
        )
        .str("correlation_id", self.ctx.correlation_id.clone())
        .str("grpc.service", self.ctx.service.clone())
        .str("grpc.method", self.ctx.method.clone())
        .str("grpc.code", code_name(code))
        .num("grpc.time_ms", elapsed.as_secs_f64() * 1000.0)
        .str("grpc.request.fullMethod", format!("/{}/{}", self.ctx.service, self.ctx.method));
        if let Some(r) = &self.repository {
            line.str("grpc.request.repoStorage", r.storage_name.clone())
                .str("grpc.request.repoPath", r.relative_path.clone())
                .str("grpc.request.glRepository", r.gl_repository.clone())
                .str("grpc.request.glProjectPath", r.gl_project_path.clone());
        }
        if let Some(c) = &self.client_name {
            line.str("grpc.meta.client_name", c.clone());
        }
        if let Some(p) = &self.peer {
            line.str("peer.address", p.clone());
        }
        if let Some(l) = &self.limit {
            line.str("limit.limiting_type", "per-rpc")
                .str("limit.limiting_key", l.key.clone())
                .int("limit.concurrency_queue_ms", i64::try_from(l.queue_ms).unwrap_or(i64::MAX))
                .int("limit.concurrency_in_progress", i64::try_from(l.in_progress).unwrap_or(i64::MAX))
                .int("limit.concurrency_queue_length", i64::try_from(l.queue_length).unwrap_or(i64::MAX))
                // The field name GitLab's documentation tells admins to grep for.
                .int("acquire_ms", i64::try_from(l.queue_ms).unwrap_or(i64::MAX));
            if let Some(reason) = l.dropped {
                line.str("limit.concurrency_dropped", reason);
            }
        }
        if code != 0 {
            line.str("error", message);
        }
        self.state.log.write(&line);
    }
}

impl<S> StackService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    async fn handle(state: Arc<State>, mut inner: S, mut req: http::Request<Body>) -> http::Response<Body> {
        // 1. Request info.
        let path = req.uri().path().to_owned();
        let facts = cairn_proto::facts::lookup(&path);
        let (service, method) = split_path(&path);
        let correlation_id = match req.headers().get("x-gitlab-correlation-id").and_then(|v| v.to_str().ok()) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => {
                let id = new_correlation_id();
                if let Ok(v) = http::HeaderValue::from_str(&id) {
                    req.headers_mut().insert("x-gitlab-correlation-id", v);
                }
                id
            }
        };
        let ctx = RpcContext {
            facts,
            labels: labels_for(&path, facts),
            service,
            method,
            correlation_id,
            start: Instant::now(),
        };
        let labels = ctx.labels();
        state.metrics.started.get_or_create(&labels).inc();
        let client_name = ["x-gitlab-client-name", "client_name"]
            .iter()
            .find_map(|k| req.headers().get(*k).and_then(|v| v.to_str().ok()).map(str::to_owned));
        let peer = req
            .extensions()
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|c| c.remote_addr())
            .map(|a| a.to_string());
        req.extensions_mut().insert(ctx.clone());
        let mut finish = Box::new(Finish {
            state: state.clone(),
            ctx,
            repository: None,
            limit: None,
            client_name,
            peer,
            _permit: None,
        });
        let reject = |finish: Box<Finish>, status: tonic::Status| {
            let (parts, body) = status.into_http::<Body>().into_parts();
            let known = body::status_of(&parts.headers);
            http::Response::from_parts(parts, Body::new(ObservedBody::new(body, known, finish)))
        };

        // 2. Authentication.
        let header = req.headers().get("authorization").and_then(|v| v.to_str().ok());
        if let Err(status) = auth::check(&state.auth, &state.metrics, &path, header) {
            return reject(finish, status);
        }

        // 3. The target repository, from the first request message.
        let received = state.metrics.msg_received.get_or_create(&labels).clone();
        let (parts, mut body) = req.into_parts();
        let (replay, ended) = match facts.filter(|f| f.target_repository.is_some()) {
            Some(f) => {
                let (replay, first, ended) = body::read_first_message(&mut body, MAX_PEEK).await;
                finish.repository = first.and_then(|m| f.target_repository_in(&m));
                (replay, ended)
            }
            None => (Default::default(), false),
        };
        let req = http::Request::from_parts(parts, Body::new(InboundBody::new(replay, body, ended, Some(received))));

        // 4. Concurrency limits, keyed by the repository's relative path.
        let limiter = facts.and_then(|f| state.limiters.get(f.full_method));
        let key = finish.repository.as_ref().map(|r| r.relative_path.clone()).filter(|k| !k.is_empty());
        if let (Some(limiter), Some(key)) = (limiter, key) {
            let (permit, outcome) = limiter.acquire(&key).await;
            finish.limit = Some(outcome);
            match permit {
                Ok(p) => finish._permit = Some(p),
                Err(e) => return reject(finish, e.into()),
            }
        }

        // 5. The service.
        let resp = match inner.call(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };

        // 6. The answer.
        let (mut parts, body) = resp.into_parts();
        let mut known = body::status_of(&parts.headers);
        if let Some((12, msg)) = &known
            && (msg.is_empty() || msg == "Not yet implemented")
        {
            let text = match (facts, finish.ctx.method.is_empty()) {
                (Some(f), _) => format!("method {} not implemented", f.method),
                (None, false) => format!("unknown method {} for service {}", finish.ctx.method, finish.ctx.service),
                (None, true) => format!("unknown service {}", finish.ctx.service),
            };
            if let Ok(v) = http::HeaderValue::from_str(&body::percent_encode(&text)) {
                parts.headers.insert("grpc-message", v);
            }
            known = Some((12, text));
        }
        http::Response::from_parts(parts, Body::new(ObservedBody::new(body, known, finish)))
    }
}

impl<S> tower::Service<http::Request<Body>> for StackService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // Take the service that was driven to readiness and leave a clone.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move { Ok(Self::handle(state, inner, req).await) })
    }
}
