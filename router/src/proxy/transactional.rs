//! Transactional writes: the request goes to the primary and every healthy
//! up-to-date secondary at once, each node votes on its reference updates
//! (see [`crate::transactions`]), the client sees only the primary's answer,
//! and the repository's bookkeeping follows the votes.

use super::route::settle_forwarded;
use super::{Call, Shared};
use crate::db::repositories::Outcome;
use crate::transactions::{self, CallEnd, Decision, Registration};
use base64::Engine as _;
use bytes::Bytes;
use cairn_proto::gitaly::Repository;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tonic::Status;
use tonic::body::Body;

/// Repository-scoped mutators whose nodes vote (upstream's transactional
/// set, less creations, which take the creation path, and the calls the
/// router answers itself).
pub(crate) const TRANSACTIONAL: &[&str] = &[
    "/gitaly.CleanupService/ApplyBfgObjectMapStream",
    "/gitaly.CleanupService/RewriteHistory",
    "/gitaly.ConflictsService/ResolveConflicts",
    "/gitaly.ObjectPoolService/DisconnectGitAlternates",
    "/gitaly.ObjectPoolService/FetchIntoObjectPool",
    "/gitaly.ObjectPoolService/LinkRepositoryToObjectPool",
    "/gitaly.OperationService/UserApplyPatch",
    "/gitaly.OperationService/UserCherryPick",
    "/gitaly.OperationService/UserCommitFiles",
    "/gitaly.OperationService/UserCreateBranch",
    "/gitaly.OperationService/UserCreateTag",
    "/gitaly.OperationService/UserDeleteBranch",
    "/gitaly.OperationService/UserDeleteTag",
    "/gitaly.OperationService/UserFFBranch",
    "/gitaly.OperationService/UserMergeBranch",
    "/gitaly.OperationService/UserMergeToRef",
    "/gitaly.OperationService/UserRebaseToRef",
    "/gitaly.OperationService/UserRebaseConfirmable",
    "/gitaly.OperationService/UserRevert",
    "/gitaly.OperationService/UserSquash",
    "/gitaly.OperationService/UserUpdateBranch",
    "/gitaly.OperationService/UserUpdateSubmodule",
    "/gitaly.RefService/DeleteRefs",
    "/gitaly.RefService/UpdateReferences",
    "/gitaly.RepositoryService/FetchBundle",
    "/gitaly.RepositoryService/FetchRemote",
    "/gitaly.RepositoryService/FetchSourceBranch",
    "/gitaly.RepositoryService/RestoreCustomHooks",
    "/gitaly.RepositoryService/SetCustomHooks",
    "/gitaly.RepositoryService/WriteRef",
    "/gitaly.SSHService/SSHReceivePack",
    "/gitaly.SmartHTTPService/PostReceivePack",
];

/// Repository-scoped mutators that are not fanned out, and why.
#[cfg(test)]
const NOT_TRANSACTIONAL: &[&str] = &[
    // Creations take the creation path: CreateRepository and
    // CreateRepositoryFromURL fan out there with votes; the others are made
    // on one node and replicated (see docs/consistency.md).
    "/gitaly.ObjectPoolService/CreateObjectPool",
    "/gitaly.RepositoryService/CreateFork",
    "/gitaly.RepositoryService/CreateRepository",
    "/gitaly.RepositoryService/CreateRepositoryFromBundle",
    "/gitaly.RepositoryService/CreateRepositoryFromSnapshot",
    "/gitaly.RepositoryService/CreateRepositoryFromURL",
    "/gitaly.RepositoryService/ReplicateRepository",
    "/gitaly.RepositoryService/RestoreRepository",
    // Answered by the router itself on every replica.
    "/gitaly.ObjectPoolService/DeleteObjectPool",
    "/gitaly.RepositoryService/RemoveRepository",
    // Called by a node's own hooks, never through the router.
    "/gitaly.HookService/ProcReceiveHook",
    // Changes no references (a cache of language statistics).
    "/gitaly.CommitService/CommitLanguages",
    // Rewrites the reference storage format, which is per replica: done on
    // the primary, the others follow by replication.
    "/gitaly.RepositoryService/MigrateReferenceBackend",
];

/// The request metadata naming the transaction a node takes part in.
pub(crate) const TRANSACTION_KEY: &str = "gitaly-reference-transaction";

/// How long the answer waits at most, after the primary finished, for
/// secondaries that may still commit the last vote: under load a healthy
/// secondary trails the primary by seconds, and leaving it out would make it
/// outdated (and the next writes less redundant) for no fault. One still
/// running by then counts as holding the write only if it already
/// committed its last vote.
const SECONDARY_GRACE: std::time::Duration = crate::service::ref_transaction::VOTE_TIMEOUT;

/// A secondary that casts no vote for this long is not waited for any more
/// (a paused or cut-off node).
const SECONDARY_IDLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Request frames a secondary may fall behind the primary by before it is
/// cut off (it is then repaired by replication instead of slowing the push).
const SECONDARY_BACKLOG: usize = 1024;

/// The metadata value telling `node` which transaction it votes in.
fn transaction_header(id: u64, node: &str, primary: bool) -> http::HeaderValue {
    let json = serde_json::json!({ "id": id, "node": node, "primary": primary });
    let encoded = base64::engine::general_purpose::STANDARD.encode(json.to_string());
    http::HeaderValue::from_str(&encoded).expect("base64 is a valid header value")
}

/// What a finished transaction means for the repository's records.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    /// A write to an existing repository.
    Write,
    /// A creation: replicas that hold it are recorded at generation 0.
    Creation,
}

impl Kind {
    fn outcome(self, decision: Decision, primary: &str, assigned: &[String]) -> Outcome {
        let outdated = |updated: &[String]| assigned.iter().filter(|s| !updated.contains(s)).cloned().collect();
        match (self, decision) {
            (Kind::Write, Decision::Unchanged) => Outcome::Unchanged,
            (Kind::Write, Decision::Changed { updated, source }) => {
                Outcome::Changed { outdated: outdated(&updated), updated, source }
            }
            (Kind::Creation, Decision::Unchanged) => {
                Outcome::Created { created: vec![], outdated: vec![], source: primary.to_owned() }
            }
            (Kind::Creation, Decision::Changed { updated, source }) => {
                Outcome::Created { outdated: outdated(&updated), created: updated, source }
            }
        }
    }
}

impl Shared {
    pub(super) async fn transactional(
        self: &Arc<Self>,
        call: Call,
        rest: Body,
        repo: Repository,
    ) -> Result<http::Response<Body>, Status> {
        let vs = repo.storage_name.clone();
        let (state, primary, term, intent) = self.begin_write(&call, &repo).await?;
        let storages = self.storages(&vs);
        let secondaries: Vec<String> = state
            .assigned(&storages)
            .into_iter()
            .filter(|s| *s != primary && state.is_up_to_date(s) && self.health.locally_healthy(&vs, s))
            .map(str::to_owned)
            .collect();
        let write = FanOut { state, primary, secondaries, term, intent, kind: Kind::Write };
        self.fan_out(call, rest, repo, write).await
    }

    /// Sends the call to the primary and the secondaries at once under one
    /// transaction, answers with the primary's response, and records the
    /// outcome the votes decide before the client sees the final status.
    pub(super) async fn fan_out(
        self: &Arc<Self>,
        call: Call,
        rest: Body,
        repo: Repository,
        write: FanOut,
    ) -> Result<http::Response<Body>, Status> {
        let FanOut { state, primary, secondaries, term, intent, kind } = write;
        let vs = repo.storage_name.clone();
        let assigned: Vec<String> = state.assigned(&self.storages(&vs)).into_iter().map(str::to_owned).collect();
        let (voters, threshold) = transactions::voters(&primary, &secondaries);
        let id = self
            .transactions
            .register(voters, threshold, Registration { repository_id: state.id, primary: primary.clone(), term })
            .map_err(|e| Status::internal(e.to_string()))?;

        let mut bodies = tee(rest, secondaries.len()).into_iter();
        let primary_body = bodies.next().expect("tee returns the primary's body first");
        // Secondaries run in the background; each reports how its call ended.
        let mut ends: Vec<(String, oneshot::Receiver<CallEnd>)> = Vec::new();
        for (storage, body) in secondaries.iter().zip(bodies) {
            let (tx, rx) = oneshot::channel();
            ends.push((storage.clone(), rx));
            let (shared, call) = (self.clone(), detached(&call));
            let (repo, state, storage) = (repo.clone(), state.clone(), storage.clone());
            tokio::spawn(async move {
                let end = shared.run_secondary(&call, &repo, &state, &storage, body, id).await;
                shared.transactions.cancel_voter(id, &storage).ok();
                let _ = tx.send(end);
            });
        }

        let cid = call.correlation_id();
        let shared = self.clone();
        let source = primary.clone();
        let settle = move |code: Option<tonic::Code>| async move {
            // The primary is done: votes it never cast will not come.
            shared.transactions.cancel_voter(id, &source).ok();
            let mut by_node: HashMap<String, CallEnd> = HashMap::new();
            by_node.insert(source.clone(), code.map_or(CallEnd::Broken, CallEnd::Finished));
            let deadline = tokio::time::Instant::now() + SECONDARY_GRACE;
            for (storage, rx) in ends {
                let end = shared.secondary_end(id, &storage, rx, deadline).await;
                by_node.insert(storage, end);
            }
            let decision = match shared.transactions.finish(id) {
                Ok(summary) => {
                    let decision = transactions::decide(&summary, &source, &by_node);
                    match &decision {
                        Decision::Changed { updated, .. } if updated.len() < by_node.len() => tracing::warn!(
                            transaction_id = id, correlation_id = %cid, ?summary, ?by_node, ?decision,
                            "replicas left out of a write; they will be repaired"
                        ),
                        _ => {
                            tracing::debug!(transaction_id = id, ?summary, ?by_node, ?decision, "transaction finished")
                        }
                    }
                    decision
                }
                Err(e) => {
                    tracing::error!(error = %e, "transaction vanished; replicating from the primary");
                    Decision::Changed { updated: vec![source.clone()], source: source.clone() }
                }
            };
            if let Decision::Changed { updated, .. } = &decision {
                shared.metrics.count_transaction(updated.len(), by_node.len());
            }
            let outcome = kind.outcome(decision, &source, &assigned);
            if let Err(e) = shared.db.settle(intent, &outcome, &cid).await {
                // The intent stays; the next recovery pass settles it.
                tracing::error!(error = %e, correlation_id = %cid, "could not record a write's outcome");
            }
        };

        let header = Some((TRANSACTION_KEY, transaction_header(id, &primary, true)));
        settle_forwarded(self.forward_write(&call, primary_body, &repo, &state, &primary, header).await, settle).await
    }

    /// How a secondary's call ended, waiting (until `deadline`) only while
    /// it may still commit the last vote and keeps casting votes.
    async fn secondary_end(
        &self,
        id: u64,
        storage: &str,
        mut rx: oneshot::Receiver<CallEnd>,
        deadline: tokio::time::Instant,
    ) -> CallEnd {
        let mut cast = self.transactions.votes_cast(id, storage);
        while self.transactions.pending(id, storage) {
            let wait = deadline.min(tokio::time::Instant::now() + SECONDARY_IDLE);
            match tokio::time::timeout_at(wait, &mut rx).await {
                Ok(Ok(end)) => return end,
                Ok(Err(_)) => return CallEnd::Broken,
                Err(_) => {
                    let now = self.transactions.votes_cast(id, storage);
                    if now == cast || tokio::time::Instant::now() >= deadline {
                        return CallEnd::Running;
                    }
                    cast = now;
                }
            }
        }
        // Its votes are settled either way: no need to wait.
        match rx.try_recv() {
            Ok(end) => end,
            Err(oneshot::error::TryRecvError::Closed) => CallEnd::Broken,
            Err(oneshot::error::TryRecvError::Empty) => CallEnd::Running,
        }
    }

    /// Runs the write on one secondary and waits for its end.
    async fn run_secondary(
        &self,
        call: &Call,
        repo: &Repository,
        state: &crate::db::repositories::RepoState,
        storage: &str,
        body: Body,
        id: u64,
    ) -> CallEnd {
        let header = Some((TRANSACTION_KEY, transaction_header(id, storage, false)));
        match self.forward_write(call, body, repo, state, storage, header).await {
            Ok(response) => drain(response).await,
            Err(status) => {
                tracing::warn!(storage, error = %status, "transactional write did not reach a secondary");
                CallEnd::Broken
            }
        }
    }
}

/// A write ready to fan out: its intent is recorded.
pub(super) struct FanOut {
    pub state: crate::db::repositories::RepoState,
    pub primary: String,
    /// Healthy secondaries that vote with the primary.
    pub secondaries: Vec<String>,
    /// The primary's term when the write started.
    pub term: i64,
    pub intent: crate::db::repositories::IntentId,
    pub kind: Kind,
}

/// A copy of the call for a secondary's forward, which outlives the
/// primary's. Sidechannels belong to the primary's call alone.
fn detached(call: &Call) -> Call {
    let mut parts = http::Request::new(()).into_parts().0;
    parts.method = call.parts.method.clone();
    parts.uri = call.parts.uri.clone();
    parts.version = call.parts.version;
    parts.headers = call.parts.headers.clone();
    parts.headers.remove(cairn_node::transport::SIDECHANNEL_ID_KEY);
    Call {
        facts: call.facts,
        parts,
        first: super::frame::First { message: call.first.message.clone(), leftover: call.first.leftover.clone() },
    }
}

/// Reads a secondary's answer to its end.
async fn drain(response: http::Response<Body>) -> CallEnd {
    use http_body_util::BodyExt as _;
    if let Some(code) = super::frame::grpc_code(response.headers()) {
        return CallEnd::Finished(code);
    }
    let mut body = response.into_body();
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    return super::frame::grpc_code(trailers).map_or(CallEnd::Broken, CallEnd::Finished);
                }
            }
            Some(Err(_)) | None => return CallEnd::Broken,
        }
    }
}

enum Piece {
    Frame(Bytes),
    Failed(Status),
    End,
}

/// Copies the client's request stream to the primary (first body, with
/// backpressure) and `secondaries` more bodies. A secondary that falls
/// [`SECONDARY_BACKLOG`] frames behind is cut off: its stream fails rather
/// than ending, so the node cannot mistake it for a complete request.
fn tee(rest: Body, secondaries: usize) -> Vec<Body> {
    use http_body_util::BodyExt as _;
    let (primary_tx, primary_rx) = mpsc::channel::<Piece>(8);
    let mut others = Vec::with_capacity(secondaries);
    let mut bodies = vec![piece_body(primary_rx)];
    for _ in 0..secondaries {
        let (tx, rx) = mpsc::channel::<Piece>(SECONDARY_BACKLOG);
        others.push(Some(tx));
        bodies.push(piece_body(rx));
    }
    tokio::spawn(async move {
        let mut rest = rest;
        let mut primary = Some(primary_tx);
        loop {
            let piece = match rest.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => Piece::Frame(data),
                    // Empty DATA frames carry nothing, and h2 servers count
                    // them per connection (too many: GOAWAY for every call).
                    _ => continue,
                },
                Some(Err(status)) => Piece::Failed(status),
                None => Piece::End,
            };
            let last = !matches!(piece, Piece::Frame(_));
            for slot in &mut others {
                if let Some(tx) = slot
                    && tx.try_send(piece.clone_piece()).is_err()
                {
                    // Full (too slow) or gone: cut it off.
                    *slot = None;
                }
            }
            if let Some(tx) = &primary
                && tx.send(piece).await.is_err()
            {
                primary = None;
            }
            if last || (primary.is_none() && others.iter().all(Option::is_none)) {
                return;
            }
        }
    });
    bodies
}

impl Piece {
    fn clone_piece(&self) -> Self {
        match self {
            Piece::Frame(b) => Piece::Frame(b.clone()),
            Piece::Failed(s) => Piece::Failed(Status::new(s.code(), s.message())),
            Piece::End => Piece::End,
        }
    }
}

fn piece_body(rx: mpsc::Receiver<Piece>) -> Body {
    let stream = futures::stream::unfold((rx, false), |(mut rx, done)| async move {
        if done {
            return None;
        }
        match rx.recv().await {
            Some(Piece::Frame(data)) => Some((Ok(http_body::Frame::data(data)), (rx, false))),
            Some(Piece::End) => None,
            Some(Piece::Failed(status)) => Some((Err(status), (rx, true))),
            None => Some((Err(Status::cancelled("request stream cut off by the router")), (rx, true))),
        }
    });
    Body::new(http_body_util::StreamBody::new(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transactional_method_exists_and_is_a_repository_mutator() {
        for method in TRANSACTIONAL {
            let facts = cairn_proto::facts::lookup(method).unwrap_or_else(|| panic!("{method} is not in the protocol"));
            assert_eq!(facts.op, Some(cairn_proto::facts::Operation::Mutator), "{method}");
            assert_eq!(facts.scope, Some(cairn_proto::facts::Scope::Repository), "{method}");
        }
    }

    #[test]
    fn every_repository_mutator_is_either_transactional_or_listed_with_a_reason() {
        use cairn_proto::facts::{Operation, RPCS, Scope};
        let mut uncovered: Vec<&str> = RPCS
            .iter()
            .filter(|r| r.op == Some(Operation::Mutator) && r.scope == Some(Scope::Repository))
            .map(|r| r.full_method)
            .filter(|m| !TRANSACTIONAL.contains(m))
            .collect();
        uncovered.sort_unstable();
        let mut listed = NOT_TRANSACTIONAL.to_vec();
        listed.sort_unstable();
        assert_eq!(uncovered, listed);
    }

    #[test]
    fn the_transaction_header_is_base64_json_as_upstream() {
        let v = transaction_header(7, "gitaly-1", true);
        let json = base64::engine::general_purpose::STANDARD.decode(v.as_bytes()).expect("base64");
        let parsed: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(parsed, serde_json::json!({ "id": 7, "node": "gitaly-1", "primary": true }));
    }

    trait Frames {
        async fn frames(self) -> Vec<Vec<u8>>;
    }

    impl Frames for Body {
        async fn frames(mut self) -> Vec<Vec<u8>> {
            use http_body_util::BodyExt as _;
            let mut out = Vec::new();
            while let Some(frame) = self.frame().await {
                out.push(frame.expect("frame").into_data().expect("data").to_vec());
            }
            out
        }
    }

    #[tokio::test]
    async fn tee_copies_the_stream_and_cuts_off_a_stalled_secondary() {
        use http_body_util::BodyExt as _;
        let (tx, rx) = mpsc::channel::<Result<http_body::Frame<Bytes>, Status>>(4);
        let source = Body::new(http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)));
        let mut bodies = tee(source, 2);
        let stalled = bodies.pop().expect("second secondary");
        let secondary = bodies.pop().expect("first secondary");
        let primary = bodies.pop().expect("primary");
        let sending = tokio::spawn(async move {
            for i in 0..(SECONDARY_BACKLOG + 10) {
                tx.send(Ok(http_body::Frame::data(Bytes::from(i.to_string())))).await.expect("send");
                tx.send(Ok(http_body::Frame::data(Bytes::new()))).await.expect("send");
            }
        });
        let (p, s) = tokio::join!(primary.frames(), secondary.frames());
        sending.await.expect("sender");
        assert!(p.iter().chain(&s).all(|f| !f.is_empty()), "no empty DATA frame is forwarded");
        let (p, s) = (Bytes::from(p.concat()), Bytes::from(s.concat()));
        assert_eq!(p, s);
        assert!(p.starts_with(b"0123"));
        // Nobody read the stalled one while the stream went on: it fails.
        assert!(stalled.collect().await.is_err(), "a cut-off secondary must not see a complete request");
    }
}
