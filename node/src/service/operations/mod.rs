//! OperationService: changes GitLab makes on a user's behalf (branches,
//! tags, commits, merges). Every change goes through [`update`]: objects
//! in a quarantine, the receive hooks, then one checked reference update.
//! RPCs not listed here answer UNIMPLEMENTED.

mod common;
mod conflicts;
mod rebase;
mod start;
mod update;
mod user_apply_patch;
mod user_cherry_pick;
mod user_commit_files;
mod user_create_branch;
mod user_create_tag;
mod user_delete_branch;
mod user_delete_tag;
mod user_ff_branch;
mod user_merge_branch;
mod user_merge_to_ref;
mod user_squash;
mod user_update_branch;
mod user_update_submodule;

use super::{Deps, correlation_id, respond, transaction};
use cairn_proto::gitaly::*;
use cairn_proto::gitaly::{conflicts_service_server, operation_service_server};
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};
use update::Call;

/// Handlers of OperationService.
#[derive(Debug, Clone)]
pub(super) struct OperationService {
    deps: Deps,
}

impl OperationService {
    pub(super) fn new(deps: &Deps) -> Self {
        Self { deps: deps.clone() }
    }
}

/// Runs `handle` with the call's context: its metadata, the router's
/// transaction and the correlation id.
macro_rules! call {
    ($self:ident, $req:ident, $handler:path) => {{
        let cid = correlation_id(&$req);
        let tx = transaction(&$req)?;
        let (metadata, _, req) = $req.into_parts();
        let call = Call { deps: &$self.deps, metadata: &metadata, transaction: tx, correlation_id: cid.as_deref() };
        respond($handler(call, req).await)
    }};
}

/// Where a streaming operation sends its answers.
pub(super) struct Responder<T> {
    tx: tokio::sync::mpsc::Sender<std::result::Result<T, Status>>,
}

impl<T> Responder<T> {
    /// Sends one answer; fails once the client has gone away.
    pub(super) async fn send(&self, msg: T) -> crate::error::Result<()> {
        self.tx.send(Ok(msg)).await.map_err(|_| crate::error::Error::canceled("client went away"))
    }
}

/// The client's next message of a request stream, `None` at its end.
pub(super) async fn receive<T>(stream: &mut Streaming<T>) -> crate::error::Result<Option<T>> {
    stream.message().await.map_err(|s| crate::error::Error::new(s.code(), s.message().to_owned()))
}

/// Runs a streaming `handle` with the call's context as [`call!`] does,
/// answering through a [`Responder`]; an error it returns ends the stream.
macro_rules! streaming {
    ($self:ident, $req:ident, $handler:path) => {{
        let cid = correlation_id(&$req);
        let tx = transaction(&$req)?;
        let (metadata, _, requests) = $req.into_parts();
        let deps = $self.deps.clone();
        let (sender, rx) = tokio::sync::mpsc::channel(2);
        tokio::spawn(async move {
            let out = Responder { tx: sender };
            let call = Call { deps: &deps, metadata: &metadata, transaction: tx, correlation_id: cid.as_deref() };
            if let Err(e) = $handler(call, requests, &out).await {
                let _ = out.tx.send(Err(e.into())).await;
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)) as BoxStream<_>))
    }};
}

#[tonic::async_trait]
impl operation_service_server::OperationService for OperationService {
    async fn user_create_branch(
        &self,
        req: Request<UserCreateBranchRequest>,
    ) -> Result<Response<UserCreateBranchResponse>, Status> {
        call!(self, req, user_create_branch::handle)
    }

    async fn user_delete_branch(
        &self,
        req: Request<UserDeleteBranchRequest>,
    ) -> Result<Response<UserDeleteBranchResponse>, Status> {
        call!(self, req, user_delete_branch::handle)
    }

    async fn user_create_tag(
        &self,
        req: Request<UserCreateTagRequest>,
    ) -> Result<Response<UserCreateTagResponse>, Status> {
        call!(self, req, user_create_tag::handle)
    }

    async fn user_delete_tag(
        &self,
        req: Request<UserDeleteTagRequest>,
    ) -> Result<Response<UserDeleteTagResponse>, Status> {
        call!(self, req, user_delete_tag::handle)
    }

    async fn user_update_branch(
        &self,
        req: Request<UserUpdateBranchRequest>,
    ) -> Result<Response<UserUpdateBranchResponse>, Status> {
        call!(self, req, user_update_branch::handle)
    }

    async fn user_ff_branch(
        &self,
        req: Request<UserFfBranchRequest>,
    ) -> Result<Response<UserFfBranchResponse>, Status> {
        call!(self, req, user_ff_branch::handle)
    }

    async fn user_commit_files(
        &self,
        req: Request<Streaming<UserCommitFilesRequest>>,
    ) -> Result<Response<UserCommitFilesResponse>, Status> {
        call!(self, req, user_commit_files::handle)
    }

    async fn user_update_submodule(
        &self,
        req: Request<UserUpdateSubmoduleRequest>,
    ) -> Result<Response<UserUpdateSubmoduleResponse>, Status> {
        call!(self, req, user_update_submodule::handle)
    }

    async fn user_merge_to_ref(
        &self,
        req: Request<UserMergeToRefRequest>,
    ) -> Result<Response<UserMergeToRefResponse>, Status> {
        call!(self, req, user_merge_to_ref::handle)
    }

    async fn user_merge_branch(
        &self,
        req: Request<Streaming<UserMergeBranchRequest>>,
    ) -> Result<Response<BoxStream<UserMergeBranchResponse>>, Status> {
        streaming!(self, req, user_merge_branch::handle)
    }

    async fn user_cherry_pick(
        &self,
        req: Request<UserCherryPickRequest>,
    ) -> Result<Response<UserCherryPickResponse>, Status> {
        call!(self, req, user_cherry_pick::cherry_pick)
    }

    async fn user_revert(&self, req: Request<UserRevertRequest>) -> Result<Response<UserRevertResponse>, Status> {
        call!(self, req, user_cherry_pick::revert)
    }

    async fn user_rebase_confirmable(
        &self,
        req: Request<Streaming<UserRebaseConfirmableRequest>>,
    ) -> Result<Response<BoxStream<UserRebaseConfirmableResponse>>, Status> {
        streaming!(self, req, rebase::confirmable)
    }

    async fn user_rebase_to_ref(
        &self,
        req: Request<UserRebaseToRefRequest>,
    ) -> Result<Response<UserRebaseToRefResponse>, Status> {
        call!(self, req, rebase::to_ref)
    }

    async fn user_squash(&self, req: Request<UserSquashRequest>) -> Result<Response<UserSquashResponse>, Status> {
        call!(self, req, user_squash::handle)
    }

    async fn user_apply_patch(
        &self,
        req: Request<Streaming<UserApplyPatchRequest>>,
    ) -> Result<Response<UserApplyPatchResponse>, Status> {
        call!(self, req, user_apply_patch::handle)
    }
}

/// Handlers of ConflictsService.
#[derive(Debug, Clone)]
pub(super) struct ConflictsService {
    deps: Deps,
}

impl ConflictsService {
    pub(super) fn new(deps: &Deps) -> Self {
        Self { deps: deps.clone() }
    }
}

#[tonic::async_trait]
impl conflicts_service_server::ConflictsService for ConflictsService {
    async fn list_conflict_files(
        &self,
        req: Request<ListConflictFilesRequest>,
    ) -> Result<Response<BoxStream<ListConflictFilesResponse>>, Status> {
        let cid = correlation_id(&req);
        let messages = conflicts::list_conflict_files(&self.deps, cid.as_deref(), req.into_inner()).await?;
        Ok(Response::new(Box::pin(futures::stream::iter(messages.into_iter().map(Ok)))))
    }

    async fn resolve_conflicts(
        &self,
        req: Request<Streaming<ResolveConflictsRequest>>,
    ) -> Result<Response<ResolveConflictsResponse>, Status> {
        call!(self, req, conflicts::resolve_conflicts)
    }
}
