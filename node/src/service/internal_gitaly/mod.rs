//! InternalGitaly: storage-wide RPCs that Praefect and GitLab's
//! maintenance jobs use (not exposed to ordinary clients by GitLab).

mod walk_repos;

use super::{Deps, respond};
use cairn_proto::gitaly::internal_gitaly_server;
use cairn_proto::gitaly::*;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

/// Handlers of InternalGitaly.
#[derive(Debug, Clone)]
pub(super) struct InternalGitaly {
    deps: Deps,
}

impl InternalGitaly {
    pub(super) fn new(deps: &Deps) -> Self {
        Self { deps: deps.clone() }
    }
}

#[tonic::async_trait]
impl internal_gitaly_server::InternalGitaly for InternalGitaly {
    async fn walk_repos(
        &self,
        req: Request<WalkReposRequest>,
    ) -> Result<Response<BoxStream<WalkReposResponse>>, Status> {
        respond(walk_repos::handle(&self.deps, req.into_inner()))
    }
}
