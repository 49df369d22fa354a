//! gRPC services: one module per service, one file per RPC (or small
//! group). Handlers validate the request, call the git layer and map the
//! answer; cross-cutting work (auth, logging, metrics, limits) happens in
//! `server::middleware`, and error-to-status mapping in [`crate::error`].
//!
//! `ref` is a Rust keyword, so RefService lives in `refs` once it exists.

mod blob;
mod cleanup;
mod commit;
pub(crate) mod convert;
mod diff;
mod hook;
mod internal_gitaly;
mod objectpool;
mod operations;
mod pump;
mod receive;
mod refs;
mod remote;
mod repository;
mod server;
mod smarthttp;
mod ssh;
pub(crate) mod stream;
mod unimplemented;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::git::{CommandFactory, Repo, Repositories};
use crate::storage::{RepoPath, Storages};
use cairn_proto::gitaly::Repository;
use std::sync::Arc;
use stream::Sink;
use tonic::codegen::BoxStream;

/// Size of the data chunks streamed back (upstream streams 128 KiB writes).
pub(crate) const CHUNK_SIZE: usize = 128 * 1024;

/// What handlers may use. Each service keeps only what it needs.
#[derive(Debug, Clone)]
pub struct Deps {
    pub config: Arc<Config>,
    pub storages: Storages,
    pub git: CommandFactory,
    pub repos: Repositories,
    /// The hooks directory pushes run with.
    pub hooks: Arc<crate::hooks::HooksDir>,
    /// The pack-objects cache; `None` when `[pack_objects_cache]` is off.
    pub pack_cache: Option<crate::hooks::pack_cache::PackCache>,
    /// GitLab's internal API, which receive hooks call when `[gitlab] url`
    /// is configured.
    pub gitlab: Option<Arc<crate::gitlab::Client>>,
    /// Votes in routers' reference transactions, over the backchannels of
    /// the node's listeners (its registry is the one they register in).
    pub transactions: crate::transaction::Manager,
    /// Upstream's `gitaly_housekeeping_*` metrics.
    pub housekeeping: crate::server::metrics::Housekeeping,
}

/// Every gRPC service of the protocol, ready to be served. Services (or
/// methods) the node does not implement answer UNIMPLEMENTED naming the
/// method (see `server::middleware::unimplemented`).
pub fn routes(deps: &Deps) -> tonic::service::Routes {
    use cairn_proto::gitaly::*;
    let u = unimplemented::Unimplemented;
    tonic::service::Routes::default()
        .add_service(server_service_server::ServerServiceServer::new(server::ServerService::new(deps)))
        .add_service(repository_service_server::RepositoryServiceServer::new(repository::RepositoryService::new(deps)))
        .add_service(analysis_service_server::AnalysisServiceServer::new(u))
        .add_service(blob_service_server::BlobServiceServer::new(blob::BlobService::new(deps)))
        .add_service(cleanup_service_server::CleanupServiceServer::new(cleanup::CleanupService::new(deps)))
        .add_service(raft_service_server::RaftServiceServer::new(u))
        .add_service(commit_service_server::CommitServiceServer::new(commit::CommitService::new(deps)))
        .add_service(conflicts_service_server::ConflictsServiceServer::new(operations::ConflictsService::new(deps)))
        .add_service(diff_service_server::DiffServiceServer::new(diff::DiffService::new(deps)))
        .add_service(hook_service_server::HookServiceServer::new(hook::HookService::new(deps)))
        .add_service(internal_gitaly_server::InternalGitalyServer::new(internal_gitaly::InternalGitaly::new(deps)))
        .add_service(object_pool_service_server::ObjectPoolServiceServer::new(objectpool::ObjectPoolService::new(deps)))
        .add_service(operation_service_server::OperationServiceServer::new(operations::OperationService::new(deps)))
        .add_service(partition_service_server::PartitionServiceServer::new(u))
        .add_service(praefect_info_service_server::PraefectInfoServiceServer::new(u))
        .add_service(ref_service_server::RefServiceServer::new(refs::RefService::new(deps)))
        .add_service(remote_service_server::RemoteServiceServer::new(remote::RemoteService::new(deps)))
        .add_service(smart_http_service_server::SmartHttpServiceServer::new(smarthttp::SmartHttpService::new(deps)))
        .add_service(ssh_service_server::SshServiceServer::new(ssh::SshService::new(deps)))
        .add_service(ref_transaction_server::RefTransactionServer::new(u))
}

impl Deps {
    /// Resolves an existing repository and runs `read` with it opened, on
    /// the blocking pool (gix is synchronous).
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        repository: Option<&Repository>,
        read: impl FnOnce(&Repo, &RepoPath) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let path = self.storages.repo(repository)?;
        self.read_at(path, read).await
    }

    /// Runs `read` on a repository already resolved (for handlers that check
    /// the repository, then other fields, before doing any work).
    pub(crate) async fn read_at<T: Send + 'static>(
        &self,
        path: RepoPath,
        read: impl FnOnce(&Repo, &RepoPath) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let repos = self.repos.clone();
        blocking(move || {
            let repo = open_repo(&repos, &path)?;
            read(&repo, &path)
        })
        .await
    }

    /// A streaming answer from a resolved repository: `produce` runs on the
    /// blocking pool and sends messages through the sink (bounded, so a slow
    /// client slows the producer instead of filling memory).
    pub(crate) fn stream_at<T: Send + 'static>(
        &self,
        path: RepoPath,
        produce: impl FnOnce(&Repo, &RepoPath, &Sink<T>) -> Result<()> + Send + 'static,
    ) -> BoxStream<T> {
        let repos = self.repos.clone();
        stream::blocking_stream(move |sink| {
            let repo = open_repo(&repos, &path)?;
            produce(&repo, &path, sink)
        })
    }
}

/// Opens a resolved repository; a request naming a quarantine reads its
/// objects from there (see [`Repositories::open_with_objects`]).
pub(crate) fn open_repo(repos: &Repositories, path: &RepoPath) -> Result<Repo> {
    let scratch = path.storage_root.join(crate::storage::PRIVATE_DIR).join("tmp");
    Ok(repos.open_with_objects(&path.path, path.object_dir.as_deref(), &path.alternate_object_dirs, &scratch)?)
}

/// A resolved repository's quarantine, for git processes.
pub(crate) fn quarantine(path: &RepoPath) -> crate::git::repo::Quarantine {
    crate::git::repo::Quarantine { object_dir: path.object_dir.clone(), alternates: path.alternate_object_dirs.clone() }
}

/// The router's transaction a request takes part in (see
/// [`crate::transaction::from_request`]).
pub(crate) fn transaction<T>(
    req: &tonic::Request<T>,
) -> std::result::Result<Option<crate::transaction::Transaction>, tonic::Status> {
    crate::transaction::from_request(req).map_err(|e| Error::from(e).into())
}

/// The correlation id the client sent, for git's `CORRELATION_ID`.
pub(crate) fn correlation_id<T>(req: &tonic::Request<T>) -> Option<String> {
    req.metadata().get("x-gitlab-correlation-id").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Runs blocking file-system or gix work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::internal("blocking task", e))?
}

/// Streams `data` as messages of at most [`CHUNK_SIZE`] bytes each (no
/// message at all for empty data, as upstream).
pub(crate) fn chunked<T: Send + 'static>(data: Vec<u8>, make: impl Fn(Vec<u8>) -> T + Send + 'static) -> BoxStream<T> {
    let chunks: Vec<tonic::Result<T>> = data.chunks(CHUNK_SIZE).map(|c| Ok(make(c.to_vec()))).collect();
    Box::pin(futures::stream::iter(chunks))
}

/// Converts a handler result into tonic's.
pub(crate) fn respond<T>(r: Result<T>) -> std::result::Result<tonic::Response<T>, tonic::Status> {
    r.map(tonic::Response::new).map_err(Into::into)
}
