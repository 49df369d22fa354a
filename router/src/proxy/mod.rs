//! The transparent proxy: every Gitaly RPC the router does not answer
//! itself arrives here as raw HTTP/2. The first request message is read,
//! its repository looked up through the facts table and rewritten from
//! (virtual storage, relative path) to (node storage, replica path), and
//! the call is forwarded byte for byte to the node(s) the routing rules
//! pick: accessors to one healthy up-to-date replica, mutators to the
//! primary (bracketed by a write intent), maintenance to every replica,
//! storage-scoped calls to one healthy node.

mod frame;
mod intercept;
mod route;
mod sidechannel;
mod transactional;

use crate::config::Config;
use crate::db::Db;
use crate::health::HealthView;
use crate::nodes::{Node, Nodes};
use cairn_proto::facts::{self, RpcFacts, Scope};
use cairn_proto::gitaly::Repository;
use cairn_proto::raw;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::Status;
use tonic::body::Body;

/// What the proxy needs; shared by every call.
pub struct Shared {
    pub config: Arc<Config>,
    pub db: Db,
    pub nodes: Nodes,
    pub health: HealthView,
    pub router_name: String,
    pub metrics: Arc<crate::metrics::RouterMetrics>,
    /// Votes of the transactional writes in flight.
    pub transactions: crate::transactions::Manager,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("router_name", &self.router_name).finish_non_exhaustive()
    }
}

/// The tower service the server falls back to for every unknown path.
#[derive(Debug, Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

impl Proxy {
    pub fn new(shared: Shared) -> Self {
        Self { shared: Arc::new(shared) }
    }
}

impl tower::Service<http::Request<Body>> for Proxy {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            Ok(match shared.handle(req).await {
                Ok(response) => response,
                Err(status) => status.into_http(),
            })
        })
    }
}

/// A request as it arrived: head and first message (the rest of the body
/// travels separately: it is not `Sync`, and calls are shared across awaits).
pub(crate) struct Call {
    pub facts: &'static RpcFacts,
    pub parts: http::request::Parts,
    pub first: frame::First,
}

impl Call {
    pub(crate) fn correlation_id(&self) -> String {
        self.parts
            .headers
            .get("x-gitlab-correlation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_default()
    }
}

impl Shared {
    async fn handle(self: Arc<Self>, req: http::Request<Body>) -> Result<http::Response<Body>, Status> {
        let path = req.uri().path().to_owned();
        let Some(facts) = facts::lookup(&path) else {
            return Err(Status::unimplemented(format!("unknown method {path}")));
        };
        if facts.intercepted {
            return Err(Status::unimplemented(format!("{path} is not implemented by this router")));
        }
        let (parts, mut body) = req.into_parts();
        let first = frame::read_first(&mut body).await?;
        let call = Call { facts, parts, first };
        if let Some(op) = facts.op {
            self.metrics.count_method_type(op.as_str());
        }
        match facts.scope {
            Some(Scope::Repository) => self.repository_scoped(call, body).await,
            Some(Scope::Storage) => self.storage_scoped(call, body).await,
            _ => Err(Status::unimplemented(format!(
                "{path}: partition-scoped calls are not supported through the router"
            ))),
        }
    }

    /// The configured storage names of a virtual storage.
    pub(crate) fn storages(&self, virtual_storage: &str) -> Vec<String> {
        self.nodes.storages(virtual_storage)
    }

    pub(crate) fn node(&self, virtual_storage: &str, storage: &str) -> Result<&Arc<Node>, Status> {
        self.nodes
            .get(virtual_storage, storage)
            .ok_or_else(|| Status::internal(format!("no connection to node {virtual_storage:?}/{storage:?}")))
    }

    /// Sends `message` (already rewritten) plus the rest of the client's
    /// stream to `node`, with one more request header if `extra` (a
    /// transaction's), relaying a sidechannel when the call asks for one.
    pub(crate) async fn forward(
        &self,
        node: &Node,
        parts: &http::request::Parts,
        message: &[u8],
        leftover: bytes::Bytes,
        rest: Option<Body>,
        extra: Option<(&'static str, http::HeaderValue)>,
    ) -> Result<http::Response<Body>, Status> {
        use tower::ServiceExt as _;
        let conn = node
            .connection()
            .await
            .map_err(|e| Status::unavailable(format!("node {:?} is unreachable: {e}", node.storage)))?;
        let mut headers = parts.headers.clone();
        for h in ["authorization", "content-length", "host"] {
            headers.remove(h);
        }
        if !node.token.is_empty() {
            let bearer = cairn_node::auth::bearer(&node.token, std::time::SystemTime::now());
            headers.insert(
                "authorization",
                bearer.parse().map_err(|_| Status::internal("node token is not a valid header value"))?,
            );
        }
        if let Some((name, value)) = extra {
            headers.insert(name, value);
        }
        let relay = sidechannel::relay(&parts.extensions, &mut headers, &conn)?;
        let mut request = http::Request::new(frame::request_body(frame::encode(message), leftover, rest));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = parts.uri.path().parse().map_err(|_| Status::internal("invalid request path"))?;
        *request.headers_mut() = headers;
        let response = conn.raw_channel().oneshot(request).await.map_err(|e| {
            if let Some(relay) = &relay {
                relay.abort();
            }
            Status::unavailable(format!("node {:?}: {e}", node.storage))
        })?;
        Ok(response.map(Body::new))
    }

    async fn storage_scoped(&self, call: Call, rest: Body) -> Result<http::Response<Body>, Status> {
        let field = call.facts.storage.ok_or_else(|| Status::internal("storage-scoped RPC without a storage field"))?;
        let virtual_storage = raw::merged_bytes(&call.first.message, field.numbers)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        if virtual_storage.is_empty() {
            return Err(Status::invalid_argument("storage name not set"));
        }
        if self.config.virtual_storage(&virtual_storage).is_none() {
            return Err(Status::invalid_argument(format!("virtual storage {virtual_storage:?} does not exist")));
        }
        if call.facts.op != Some(facts::Operation::Accessor) {
            return Err(Status::unimplemented(format!(
                "{}: storage-scoped mutators are not supported through the router",
                call.facts.full_method
            )));
        }
        let healthy: Vec<&Arc<Node>> = self
            .nodes
            .of(&virtual_storage)
            .iter()
            .filter(|n| self.health.locally_healthy(&virtual_storage, &n.storage))
            .collect();
        let node = pick(&healthy).ok_or_else(|| Status::unavailable("no healthy nodes"))?;
        let message = raw::replace_merged(&call.first.message, field.numbers, node.storage.as_bytes())
            .ok_or_else(|| Status::invalid_argument("malformed request message"))?;
        self.forward(node, &call.parts, &message, call.first.leftover, Some(rest), None).await
    }
}

/// One element at random.
pub(crate) fn pick<T: Clone>(items: &[T]) -> Option<T> {
    if items.is_empty() { None } else { Some(items[fastrand::usize(..items.len())].clone()) }
}

/// The repository at `path` in `message`, as a decoder merges it.
pub(crate) fn repository_at(message: &[u8], path: facts::FieldPath) -> Result<Option<Repository>, Status> {
    let Some(bytes) = raw::merged_bytes(message, path.numbers) else { return Ok(None) };
    prost::Message::decode(bytes.as_slice())
        .map(Some)
        .map_err(|e| Status::invalid_argument(format!("malformed repository in request: {e}")))
}

/// `message` with the repository at `path` replaced by `repo`.
pub(crate) fn rewrite(message: &[u8], path: facts::FieldPath, repo: &Repository) -> Result<Vec<u8>, Status> {
    raw::replace_merged(message, path.numbers, &prost::Message::encode_to_vec(repo))
        .ok_or_else(|| Status::invalid_argument("malformed request message"))
}
