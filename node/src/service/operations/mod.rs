//! OperationService: changes GitLab makes on a user's behalf (branches,
//! tags, commits, merges). Every change goes through [`update`]: objects
//! in a quarantine, the receive hooks, then one checked reference update.
//! RPCs not listed here answer UNIMPLEMENTED.

mod hook_text;
mod update;
mod user_commit_files;
mod user_create_branch;
mod user_create_tag;
mod user_delete_branch;
mod user_delete_tag;
mod user_ff_branch;
mod user_update_branch;
mod user_update_submodule;

use super::{Deps, correlation_id, respond, transaction};
use cairn_proto::gitaly::operation_service_server;
use cairn_proto::gitaly::*;
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
}
