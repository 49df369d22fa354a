//! CommitService: commits, trees, history walks, blame and signatures.

mod find_commit;

use super::{Deps, respond};
use cairn_proto::gitaly::commit_service_server;
use cairn_proto::gitaly::*;
use tonic::{Request, Response, Status};

/// Handlers of CommitService.
#[derive(Debug, Clone)]
pub(super) struct CommitService {
    deps: Deps,
}

impl CommitService {
    pub(super) fn new(deps: &Deps) -> Self {
        Self { deps: deps.clone() }
    }
}

#[tonic::async_trait]
impl commit_service_server::CommitService for CommitService {
    async fn find_commit(&self, req: Request<FindCommitRequest>) -> Result<Response<FindCommitResponse>, Status> {
        respond(find_commit::handle(&self.deps, req.into_inner()).await)
    }
}
