//! ObjectPoolService: object pools (shared object stores of fork networks)
//! and their members. Git work lives in [`crate::git::objectpool`].

mod create;
mod delete;
mod disconnect;
mod fetch;
mod get;
mod link;

use super::{Deps, respond, transaction};
use crate::error::{Error, Result};
use crate::storage::RepoPath;
use crate::transaction::{Phase, Vote, Voting};
use cairn_proto::gitaly::object_pool_service_server;
use cairn_proto::gitaly::*;
use tonic::{Request, Response, Status};

/// Handlers of ObjectPoolService.
#[derive(Debug, Clone)]
pub(super) struct ObjectPoolService {
    deps: Deps,
}

impl ObjectPoolService {
    pub(super) fn new(deps: &Deps) -> Self {
        Self { deps: deps.clone() }
    }

    /// The request's transaction, bound to the repository it names.
    fn voting<T>(&self, req: &Request<T>, repository: Option<&Repository>) -> Result<Option<Voting>, Status> {
        let repository = repository.cloned().unwrap_or_default();
        Ok(transaction(req)?.map(|tx| self.deps.transactions.voting(tx, &repository)))
    }
}

/// Upstream's message for a pool path that is not a pool's.
const INVALID_POOL_DIR: &str = "invalid object pool directory";

/// A pool named by a request: where it is, valid or not.
pub(crate) struct Pool {
    pub path: RepoPath,
    /// Whether it is a valid git directory.
    pub valid: bool,
}

/// Resolves the pool a request names, as upstream's `FromProto`: the path
/// must lie inside the storage and look like a pool's (Rails'
/// `@pools/xx/yy/<hash>.git` or the router's `@cluster/pools/xx/yy/<id>`,
/// checked as sent, so `<pool>/..` is refused).
pub(crate) fn resolve_pool(deps: &Deps, repository: Option<&Repository>) -> Result<Pool> {
    let path = deps.storages.repo_for_create(repository)?;
    let relative = repository.map(|r| r.relative_path.as_str()).unwrap_or_default();
    if !crate::git::stats::is_pool_path(relative) {
        return Err(Error::invalid_argument(INVALID_POOL_DIR));
    }
    let valid = deps.storages.repo(repository).is_ok();
    Ok(Pool { path, valid })
}

/// Like [`resolve_pool`], refusing a pool that is not a valid repository.
pub(crate) fn existing_pool(deps: &Deps, repository: Option<&Repository>) -> Result<RepoPath> {
    let pool = resolve_pool(deps, repository)?;
    if !pool.valid {
        return Err(Error::failed_precondition("object pool is not a valid git repository"));
    }
    Ok(pool.path)
}

/// A vote function for the git layer: none outside a transaction.
pub(crate) fn vote_with(
    voting: Option<Voting>,
) -> impl Fn(Phase, Vote) -> futures::future::BoxFuture<'static, Result<()>> {
    move |phase: Phase, hash: Vote| {
        let voting = voting.clone();
        Box::pin(async move {
            match voting {
                Some(v) => v.vote(hash, phase).await.map_err(Error::from),
                None => Ok(()),
            }
        })
    }
}

#[tonic::async_trait]
impl object_pool_service_server::ObjectPoolService for ObjectPoolService {
    async fn create_object_pool(
        &self,
        req: Request<CreateObjectPoolRequest>,
    ) -> Result<Response<CreateObjectPoolResponse>, Status> {
        let cid = super::correlation_id(&req);
        respond(create::handle(&self.deps, req.into_inner(), cid.as_deref()).await)
    }

    async fn delete_object_pool(
        &self,
        req: Request<DeleteObjectPoolRequest>,
    ) -> Result<Response<DeleteObjectPoolResponse>, Status> {
        respond(delete::handle(&self.deps, req.into_inner()).await)
    }

    async fn link_repository_to_object_pool(
        &self,
        req: Request<LinkRepositoryToObjectPoolRequest>,
    ) -> Result<Response<LinkRepositoryToObjectPoolResponse>, Status> {
        let voting = self.voting(&req, req.get_ref().repository.as_ref())?;
        respond(link::handle(&self.deps, req.into_inner(), voting).await)
    }

    async fn disconnect_git_alternates(
        &self,
        req: Request<DisconnectGitAlternatesRequest>,
    ) -> Result<Response<DisconnectGitAlternatesResponse>, Status> {
        let cid = super::correlation_id(&req);
        let voting = self.voting(&req, req.get_ref().repository.as_ref())?;
        respond(disconnect::handle(&self.deps, req.into_inner(), voting, cid.as_deref()).await)
    }

    async fn fetch_into_object_pool(
        &self,
        req: Request<FetchIntoObjectPoolRequest>,
    ) -> Result<Response<FetchIntoObjectPoolResponse>, Status> {
        let cid = super::correlation_id(&req);
        let tx = transaction(&req)?;
        let (metadata, _, req) = req.into_parts();
        respond(fetch::handle(&self.deps, &metadata, req, tx, cid.as_deref()).await)
    }

    async fn get_object_pool(
        &self,
        req: Request<GetObjectPoolRequest>,
    ) -> Result<Response<GetObjectPoolResponse>, Status> {
        respond(get::handle(&self.deps, req.into_inner()).await)
    }
}
