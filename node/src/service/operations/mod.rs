//! OperationService: changes GitLab makes on a user's behalf (branches,
//! tags, commits, merges). Every change goes through [`update`]: objects
//! in a quarantine, the receive hooks, then one checked reference update.
//! RPCs not listed here answer UNIMPLEMENTED.

mod update;
mod user_create_branch;
mod user_delete_branch;

use super::{Deps, correlation_id, respond, transaction};
use cairn_proto::gitaly::operation_service_server;
use cairn_proto::gitaly::*;
use tonic::{Request, Response, Status};
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
}
