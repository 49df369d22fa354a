//! Routing of repository-scoped calls by their operation type.

use super::frame::{self, Collected};
use super::{Call, Shared, pick, repository_at, rewrite};
use crate::db::repositories::{IntentId, Outcome, RepoState, WriteBy};
use crate::election;
use cairn_proto::facts::{self, Operation};
use cairn_proto::gitaly::Repository;
use std::sync::Arc;
use tonic::Status;
use tonic::body::Body;

/// Methods that create the repository they target.
const CREATIONS: &[&str] = &[
    "/gitaly.RepositoryService/CreateRepository",
    "/gitaly.RepositoryService/CreateFork",
    "/gitaly.RepositoryService/CreateRepositoryFromBundle",
    "/gitaly.RepositoryService/CreateRepositoryFromSnapshot",
    "/gitaly.RepositoryService/CreateRepositoryFromURL",
    "/gitaly.RepositoryService/ReplicateRepository",
    "/gitaly.RepositoryService/RestoreRepository",
    "/gitaly.ObjectPoolService/CreateObjectPool",
];

/// Creations whose nodes vote on what they created (the new repository's
/// files), so they run on every healthy assigned node at once. The others
/// need a source only one node is sure to have (a fork's origin, a bundle
/// streamed once) and are created on one node, then replicated.
const TRANSACTIONAL_CREATIONS: &[&str] =
    &["/gitaly.RepositoryService/CreateRepository", "/gitaly.RepositoryService/CreateRepositoryFromURL"];

/// Creations that update the repository instead when it already exists.
const UPSERTS: &[&str] =
    &["/gitaly.RepositoryService/ReplicateRepository", "/gitaly.RepositoryService/RestoreRepository"];

/// Reads whose answer depends on how a replica is packed: always the primary.
const PRIMARY_READS: &[&str] =
    &["/gitaly.RepositoryService/RepositorySize", "/gitaly.RepositoryService/GetObjectDirectorySize"];

/// Header a client sets to read from the primary only.
const ACCESSOR_POLICY: &str = "gitaly-route-repository-accessor-policy";

/// Codes with which a node refuses a call before changing anything.
fn changed_nothing(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        InvalidArgument
            | NotFound
            | AlreadyExists
            | PermissionDenied
            | Unauthenticated
            | Unimplemented
            | FailedPrecondition
    )
}

pub(crate) fn not_found(virtual_storage: &str, relative_path: &str) -> Status {
    let mut status = Status::not_found("repository not found");
    let md = status.metadata_mut();
    if let Ok(v) = virtual_storage.parse() {
        md.insert("storage_name", v);
    }
    if let Ok(v) = relative_path.parse() {
        md.insert("relative_path", v);
    }
    status
}

/// The target repository, validated against the configuration.
pub(crate) fn target(shared: &Shared, call: &Call) -> Result<Repository, Status> {
    let path = call.facts.target_repository.ok_or_else(|| Status::internal("RPC without a target repository"))?;
    let repo =
        repository_at(&call.first.message, path)?.ok_or_else(|| Status::invalid_argument("repository not set"))?;
    if repo.storage_name.is_empty() {
        return Err(Status::invalid_argument("storage name not set"));
    }
    if repo.relative_path.is_empty() {
        return Err(Status::invalid_argument("relative path not set"));
    }
    if shared.config.virtual_storage(&repo.storage_name).is_none() {
        return Err(Status::invalid_argument(format!("virtual storage {:?} does not exist", repo.storage_name)));
    }
    Ok(repo)
}

impl Shared {
    pub(super) async fn repository_scoped(
        self: &Arc<Self>,
        call: Call,
        rest: Body,
    ) -> Result<http::Response<Body>, Status> {
        let repo = target(self, &call)?;
        let method = call.facts.full_method;
        if let Some(response) = self.intercept(&call, &repo).await? {
            return Ok(response);
        }
        match call.facts.op {
            Some(Operation::Accessor) => self.accessor(call, rest, repo).await,
            Some(Operation::Mutator) if CREATIONS.contains(&method) => self.creation(call, rest, repo).await,
            Some(Operation::Mutator) => self.mutator(call, rest, repo).await,
            Some(Operation::Maintenance) => self.maintenance(call, rest, repo).await,
            None => Err(Status::internal(format!("{method} has no operation type"))),
        }
    }

    /// The message with target (and additional) repository rewritten to
    /// `storage`.
    pub(super) async fn rewritten(
        &self,
        call: &Call,
        repo: &Repository,
        state: &RepoState,
        storage: &str,
    ) -> Result<Vec<u8>, Status> {
        let path = call.facts.target_repository.ok_or_else(|| Status::internal("RPC without a target repository"))?;
        let mut physical = repo.clone();
        physical.storage_name = storage.to_owned();
        physical.relative_path = state.replica_path.clone();
        let mut message = rewrite(&call.first.message, path, &physical)?;
        if let Some(additional_path) = call.facts.additional_repository
            && let Some(additional) = repository_at(&message, additional_path)?
        {
            if additional.storage_name != repo.storage_name {
                return Err(Status::invalid_argument(format!(
                    "additional repository is on virtual storage {:?}, not {:?}",
                    additional.storage_name, repo.storage_name
                )));
            }
            let other = self
                .db
                .repository(&additional.storage_name, &additional.relative_path)
                .await?
                .ok_or_else(|| not_found(&additional.storage_name, &additional.relative_path))?;
            let mut physical = additional.clone();
            physical.storage_name = storage.to_owned();
            physical.relative_path = other.replica_path;
            message = rewrite(&message, additional_path, &physical)?;
        }
        // A start repository naming the target itself (GitLab sends one
        // for same-project operations) becomes the node's own replica, so
        // the node reads it in place instead of calling back through the
        // router; other repositories are reached through `gitaly-servers`.
        if let Some(start_path) = start_repository(call.facts.full_method)
            && let Some(start) = repository_at(&message, start_path)?
            && start.storage_name == repo.storage_name
            && start.relative_path == repo.relative_path
        {
            let mut same = start;
            same.storage_name = storage.to_owned();
            same.relative_path = state.replica_path.clone();
            message = rewrite(&message, start_path, &same)?;
        }
        Ok(message)
    }

    async fn accessor(&self, call: Call, rest: Body, repo: Repository) -> Result<http::Response<Body>, Status> {
        let vs = repo.storage_name.as_str();
        let state =
            self.db.repository(vs, &repo.relative_path).await?.ok_or_else(|| not_found(vs, &repo.relative_path))?;
        let storages = self.storages(vs);
        let primary_only = PRIMARY_READS.contains(&call.facts.full_method)
            || call.parts.headers.get(ACCESSOR_POLICY).is_some_and(|v| v.as_bytes() == b"primary-only");
        let mut order: Vec<String> = if primary_only {
            let (primary, _) = election::ensure_primary(&self.db, &self.health, &storages, state.clone()).await?;
            match primary {
                Some(p) if self.health.locally_healthy(vs, &p) => vec![p],
                _ => return Err(Status::unavailable("primary gitaly is not healthy")),
            }
        } else {
            state
                .up_to_date()
                .filter(|s| storages.iter().any(|c| c == s) && self.health.locally_healthy(vs, s))
                .map(str::to_owned)
                .collect()
        };
        fastrand::shuffle(&mut order);
        // A call whose whole request is its first message can be sent again
        // to the next replica when a node turns out to be gone, so reads
        // move away from a dead node before the next health check.
        let retryable = !call.facts.client_streaming;
        let mut rest = Some(rest);
        let mut last_error = Status::unavailable("no suitable node to serve the request");
        let method = call.facts.full_method;
        for storage in order {
            let message = self.rewritten(&call, &repo, &state, &storage).await?;
            let node = self.node(vs, &storage)?;
            let body = if retryable { None } else { rest.take() };
            match self.forward(node, &call.parts, &message, call.first.leftover.clone(), body, None).await {
                Ok(response) => {
                    self.metrics.count_read(vs, &storage);
                    if super::intercept::is_get_object_pool(method) {
                        return self.get_object_pool(response, vs).await;
                    }
                    return Ok(response);
                }
                Err(status) if retryable && status.code() == tonic::Code::Unavailable => {
                    tracing::warn!(storage, error = %status, "node unreachable; trying another replica");
                    self.health.set_local(vs, &storage, false);
                    last_error = status;
                }
                Err(status) => return Err(status),
            }
        }
        Err(last_error)
    }

    /// The primary a write may go to, with the term it holds, and the
    /// write's intent recorded.
    pub(super) async fn begin_write(
        &self,
        call: &Call,
        repo: &Repository,
    ) -> Result<(RepoState, String, i64, IntentId), Status> {
        let vs = repo.storage_name.as_str();
        let storages = self.storages(vs);
        // A concurrent election between reading the state and recording the
        // intent changes the term: read again and retry once.
        for _ in 0..2 {
            let state =
                self.db.repository(vs, &repo.relative_path).await?.ok_or_else(|| not_found(vs, &repo.relative_path))?;
            let (primary, term) = election::ensure_primary(&self.db, &self.health, &storages, state.clone()).await?;
            let Some(primary) = primary else { return Err(Status::unavailable("repository has no primary")) };
            if !self.health.locally_healthy(vs, &primary) {
                return Err(Status::unavailable("primary gitaly is not healthy"));
            }
            if !state.is_up_to_date(&primary) {
                return Err(Status::failed_precondition("repository is in read-only mode"));
            }
            if !state.assigned(&storages).contains(&primary.as_str()) {
                return Err(Status::unavailable("primary node is not assigned"));
            }
            let intent = self
                .db
                .begin_write(
                    state.id,
                    &primary,
                    term,
                    WriteBy {
                        router: &self.router_name,
                        method: call.facts.full_method,
                        correlation_id: &call.correlation_id(),
                    },
                )
                .await?;
            if let Some(intent) = intent {
                return Ok((state, primary, term, intent));
            }
        }
        Err(Status::unavailable("the repository's primary changed while the write was starting; retry"))
    }

    async fn mutator(
        self: &Arc<Self>,
        call: Call,
        rest: Body,
        repo: Repository,
    ) -> Result<http::Response<Body>, Status> {
        if super::transactional::TRANSACTIONAL.contains(&call.facts.full_method) {
            return self.transactional(call, rest, repo).await;
        }
        let vs = repo.storage_name.clone();
        let (state, primary, _, intent) = self.begin_write(&call, &repo).await?;
        let storages = self.storages(&vs);
        let outdated: Vec<String> =
            state.assigned(&storages).into_iter().filter(|s| *s != primary).map(str::to_owned).collect();
        let cid = call.correlation_id();
        let shared = self.clone();
        let source = primary.clone();
        let settle = move |code: Option<tonic::Code>| async move {
            let outcome = match code {
                Some(code) if changed_nothing(code) => Outcome::Unchanged,
                _ => Outcome::Changed { updated: vec![source.clone()], outdated, source },
            };
            if let Err(e) = shared.db.settle(intent, &outcome, &cid).await {
                // The intent stays; the next recovery pass settles it.
                tracing::error!(error = %e, correlation_id = %cid, "could not record a write's outcome");
            }
        };
        settle_forwarded(self.forward_write(&call, rest, &repo, &state, &primary, None).await, settle).await
    }

    /// Sends a write (rewritten for `storage`) to `storage`'s node, with
    /// one more header if `extra`; an unreachable node is taken out of
    /// routing until its next check.
    pub(super) async fn forward_write(
        &self,
        call: &Call,
        rest: Body,
        repo: &Repository,
        state: &RepoState,
        storage: &str,
        extra: Option<(&'static str, http::HeaderValue)>,
    ) -> Result<http::Response<Body>, Status> {
        let vs = repo.storage_name.as_str();
        let forwarded = async {
            let message = self.rewritten(call, repo, state, storage).await?;
            let node = self.node(vs, storage)?;
            self.forward(node, &call.parts, &message, call.first.leftover.clone(), Some(rest), extra).await
        }
        .await;
        if let Err(status) = &forwarded
            && status.code() == tonic::Code::Unavailable
        {
            self.health.set_local(vs, storage, false);
        }
        forwarded
    }

    async fn creation(
        self: &Arc<Self>,
        call: Call,
        rest: Body,
        repo: Repository,
    ) -> Result<http::Response<Body>, Status> {
        let vs = repo.storage_name.clone();
        let method = call.facts.full_method;
        if self.db.repository(&vs, &repo.relative_path).await?.is_some() {
            if UPSERTS.contains(&method) {
                return self.mutator(call, rest, repo).await;
            }
            return Err(Status::already_exists("repository already exists"));
        }
        let storages = self.storages(&vs);
        let healthy: Vec<String> = storages.iter().filter(|s| self.health.locally_healthy(&vs, s)).cloned().collect();
        // An object pool lives where its origin does.
        let origin = match call.facts.additional_repository {
            Some(path) => repository_at(&call.first.message, path)?,
            None => None,
        };
        let (primary, assignments) = match origin {
            Some(origin) => {
                let state = self
                    .db
                    .repository(&origin.storage_name, &origin.relative_path)
                    .await?
                    .ok_or_else(|| not_found(&origin.storage_name, &origin.relative_path))?;
                let (primary, _) = election::ensure_primary(&self.db, &self.health, &storages, state.clone()).await?;
                let primary = primary
                    .filter(|p| healthy.contains(p))
                    .ok_or_else(|| Status::unavailable("primary gitaly is not healthy"))?;
                (primary, state.assignments.clone())
            }
            None => {
                let primary = pick(&healthy).ok_or_else(|| Status::unavailable("no healthy nodes"))?;
                let factor = self.config.virtual_storage(&vs).map_or(0, |v| v.default_replication_factor) as usize;
                let assignments = if factor == 0 {
                    Vec::new()
                } else {
                    let mut others: Vec<String> = storages.iter().filter(|s| **s != primary).cloned().collect();
                    fastrand::shuffle(&mut others);
                    others.truncate(factor.saturating_sub(1));
                    others.insert(0, primary.clone());
                    others
                };
                (primary, assignments)
            }
        };
        let cid = call.correlation_id();
        let Some((state, intent)) = self
            .db
            .begin_create(
                &vs,
                &repo.relative_path,
                &primary,
                &assignments,
                WriteBy { router: &self.router_name, method, correlation_id: &cid },
            )
            .await?
        else {
            return Err(Status::already_exists("repository already exists"));
        };
        if TRANSACTIONAL_CREATIONS.contains(&method) {
            // Every healthy assigned node creates it under one transaction,
            // so an acknowledged creation already has its replicas.
            let secondaries: Vec<String> = state
                .assigned(&storages)
                .into_iter()
                .filter(|s| *s != primary && healthy.iter().any(|h| h == s))
                .map(str::to_owned)
                .collect();
            let term = state.term;
            let creation = super::transactional::FanOut {
                state,
                primary,
                secondaries,
                term,
                intent,
                kind: super::transactional::Kind::Creation,
            };
            return self.fan_out(call, rest, repo, creation).await;
        }
        let outdated: Vec<String> =
            state.assigned(&storages).into_iter().filter(|s| **s != primary).map(str::to_owned).collect();
        let shared = self.clone();
        let replica_path = state.replica_path.clone();
        let source = primary.clone();
        let settle = move |code: Option<tonic::Code>| async move {
            let created = match code {
                Some(tonic::Code::Ok) => true,
                Some(code) if changed_nothing(code) => false,
                // Failed half-way: what is on the primary's disk decides.
                _ => shared.replica_exists(&vs, &source, &replica_path).await.unwrap_or(false),
            };
            let outcome = if created {
                Outcome::Created { created: vec![source.clone()], outdated, source }
            } else {
                Outcome::Created { created: vec![], outdated: vec![], source }
            };
            if let Err(e) = shared.db.settle(intent, &outcome, &cid).await {
                tracing::error!(error = %e, correlation_id = %cid, "could not record a creation's outcome");
            }
        };
        settle_forwarded(self.forward_write(&call, rest, &repo, &state, &primary, None).await, settle).await
    }

    /// Asks `storage`'s node whether the replica exists on disk.
    pub(crate) async fn replica_exists(&self, vs: &str, storage: &str, replica_path: &str) -> Result<bool, Status> {
        use cairn_proto::gitaly::{RepositoryExistsRequest, repository_service_client::RepositoryServiceClient};
        let node = self.node(vs, storage)?;
        let conn = node.connection().await.map_err(|e| Status::unavailable(e.to_string()))?;
        let request = RepositoryExistsRequest {
            repository: Some(Repository {
                storage_name: storage.to_owned(),
                relative_path: replica_path.to_owned(),
                ..Default::default()
            }),
        };
        Ok(RepositoryServiceClient::new(conn.channel()).repository_exists(request).await?.into_inner().exists)
    }

    /// Runs a housekeeping call on every healthy assigned replica; answers
    /// with the primary's response, or the first error (primary first).
    async fn maintenance(&self, call: Call, _rest: Body, repo: Repository) -> Result<http::Response<Body>, Status> {
        let vs = repo.storage_name.as_str();
        let state =
            self.db.repository(vs, &repo.relative_path).await?.ok_or_else(|| not_found(vs, &repo.relative_path))?;
        let storages = self.storages(vs);
        let mut targets: Vec<String> = state
            .assigned(&storages)
            .into_iter()
            .filter(|s| state.generation_of(s) >= 0 && self.health.locally_healthy(vs, s))
            .map(str::to_owned)
            .collect();
        if targets.is_empty() {
            return Err(Status::unavailable("no healthy nodes"));
        }
        // Primary first, so its error wins ties.
        targets.sort_by_key(|s| Some(s) != state.primary.as_ref());
        let calls = targets.iter().map(|storage| {
            let call = &call;
            let repo = &repo;
            let state = &state;
            async move {
                let message = self.rewritten(call, repo, state, storage).await?;
                let node = self.node(vs, storage)?;
                let response =
                    self.forward(node, &call.parts, &message, call.first.leftover.clone(), None, None).await?;
                Collected::read(response).await
            }
        });
        let results = futures::future::join_all(calls).await;
        let mut answer = None;
        for result in results {
            let collected = result?;
            let status = collected.status();
            if status.code() != tonic::Code::Ok {
                return Err(status);
            }
            answer.get_or_insert(collected);
        }
        answer.map(Collected::into_response).ok_or_else(|| Status::internal("no maintenance answer"))
    }
}

/// Passes a forwarded write's answer through, calling `settle` with its
/// final code once it ends (before the client sees it); a call that never
/// reached the node settles as having changed nothing.
pub(super) async fn settle_forwarded<F, Fut>(
    forwarded: Result<http::Response<Body>, Status>,
    settle: F,
) -> Result<http::Response<Body>, Status>
where
    F: FnOnce(Option<tonic::Code>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    match forwarded {
        Ok(response) => Ok(settle_on_finish(response, settle).await),
        Err(status) => {
            settle(Some(tonic::Code::InvalidArgument)).await;
            Err(status)
        }
    }
}

/// Passes `response` through, calling `settle` with the call's final code
/// before the client sees it (so an acknowledged write is recorded), or
/// with `None` when the node's stream broke off.
async fn settle_on_finish<F, Fut>(response: http::Response<Body>, settle: F) -> http::Response<Body>
where
    F: FnOnce(Option<tonic::Code>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    use http_body_util::BodyExt as _;
    if let Some(code) = frame::grpc_code(response.headers()) {
        // Trailers-only answer: the call is over.
        settle(Some(code)).await;
        return response;
    }
    let (head, mut body) = response.into_parts();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<bytes::Bytes>, Status>>(4);
    tokio::spawn(async move {
        let mut client_gone = false;
        loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        settle(frame::grpc_code(trailers)).await;
                        let _ = tx.send(Ok(frame)).await;
                        return;
                    }
                    if frame.data_ref().is_some_and(bytes::Bytes::is_empty) {
                        continue;
                    }
                    // Keep reading after the client left: the outcome still
                    // has to be recorded.
                    if !client_gone && tx.send(Ok(frame)).await.is_err() {
                        client_gone = true;
                    }
                }
                Some(Err(status)) => {
                    settle(None).await;
                    let _ = tx.send(Err(status)).await;
                    return;
                }
                None => {
                    settle(None).await;
                    return;
                }
            }
        }
    });
    http::Response::from_parts(
        head,
        Body::new(http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx))),
    )
}

/// Where a method's request names the repository its change starts from
/// (or, for ResolveConflicts, merges in), when it may differ from the target (upstream marks none of these as an
/// additional repository).
fn start_repository(method: &str) -> Option<facts::FieldPath> {
    let (names, numbers): (&'static [&'static str], &'static [u32]) = match method {
        "/gitaly.OperationService/UserCherryPick" | "/gitaly.OperationService/UserRevert" => {
            (&["start_repository"], &[7])
        }
        "/gitaly.OperationService/UserCommitFiles" => (&["header", "start_repository"], &[1, 8]),
        "/gitaly.OperationService/UserRebaseConfirmable" => (&["header", "remote_repository"], &[1, 6]),
        "/gitaly.ConflictsService/ResolveConflicts" => (&["header", "target_repository"], &[1, 3]),
        _ => return None,
    };
    Some(facts::FieldPath { names, numbers })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::gitaly::*;
    use prost::Message as _;

    #[test]
    fn start_repository_paths_find_the_field() {
        let start = Repository { storage_name: "vs".into(), relative_path: "fork.git".into(), ..Default::default() };
        let s = Some(start.clone());
        let header = user_commit_files_request::UserCommitFilesRequestPayload::Header(UserCommitFilesRequestHeader {
            start_repository: s.clone(),
            ..Default::default()
        });
        let rebase = user_rebase_confirmable_request::UserRebaseConfirmableRequestPayload::Header(
            user_rebase_confirmable_request::Header { remote_repository: s.clone(), ..Default::default() },
        );
        let cases = [
            (
                "UserCherryPick",
                UserCherryPickRequest { start_repository: s.clone(), ..Default::default() }.encode_to_vec(),
            ),
            ("UserRevert", UserRevertRequest { start_repository: s.clone(), ..Default::default() }.encode_to_vec()),
            (
                "UserCommitFiles",
                UserCommitFilesRequest { user_commit_files_request_payload: Some(header) }.encode_to_vec(),
            ),
            (
                "UserRebaseConfirmable",
                UserRebaseConfirmableRequest { user_rebase_confirmable_request_payload: Some(rebase) }.encode_to_vec(),
            ),
        ];
        for (method, bytes) in cases {
            let path = start_repository(&format!("/gitaly.OperationService/{method}")).expect("listed");
            assert_eq!(repository_at(&bytes, path).expect("decodes"), Some(start.clone()), "{method}");
        }
        let conflicts =
            resolve_conflicts_request::ResolveConflictsRequestPayload::Header(ResolveConflictsRequestHeader {
                target_repository: s.clone(),
                ..Default::default()
            });
        let bytes = ResolveConflictsRequest { resolve_conflicts_request_payload: Some(conflicts) }.encode_to_vec();
        let path = start_repository("/gitaly.ConflictsService/ResolveConflicts").expect("listed");
        assert_eq!(repository_at(&bytes, path).expect("decodes"), Some(start.clone()));
        assert!(start_repository("/gitaly.OperationService/UserCreateBranch").is_none());
    }
}
