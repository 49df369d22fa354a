//! RepositoryService: repository lifecycle and repository-wide queries.
//! The rest of the service's RPCs answer UNIMPLEMENTED for now.

mod bundle_input;
mod calculate_checksum;
mod config;
mod create_bundle;
mod create_bundle_from_ref_list;
mod create_fork;
mod create_repository;
mod create_repository_from_bundle;
mod create_repository_from_url;
mod custom_hooks;
mod fetch_bundle;
mod fetch_remote;
mod fetch_source_branch;
mod find_license;
mod find_merge_base;
mod get_archive;
mod get_file_attributes;
mod get_raw_changes;
mod get_snapshot;
mod has_local_branches;
pub(super) mod internal;
mod object_format;
mod objects_size;
mod optimize_repository;
mod prune_unreachable_objects;
mod remove_repository;
mod replicate_repository;
mod repository_exists;
mod repository_info;
mod search_files;
mod size;
mod write_ref;

use super::{Deps, correlation_id, respond, transaction};
use crate::transaction::{Phase, Vote, Voting};
use cairn_proto::gitaly::repository_service_server;
use cairn_proto::gitaly::*;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

/// Handlers of RepositoryService.
#[derive(Debug, Clone)]
pub(super) struct RepositoryService {
    deps: Deps,
}

impl RepositoryService {
    pub(super) fn new(deps: &Deps) -> Self {
        Self { deps: deps.clone() }
    }

    /// The request's transaction, bound to the repository it names.
    fn voting<T>(
        &self,
        req: &Request<T>,
        repository: impl FnOnce(&T) -> Option<&Repository>,
    ) -> Result<Option<Voting>, Status> {
        let repository = repository(req.get_ref()).cloned().unwrap_or_default();
        Ok(transaction(req)?.map(|tx| self.deps.transactions.voting(tx, &repository)))
    }
}

/// The vote of a repository creation (see `lifecycle::create_seeded`):
/// none outside transactions; upstream answers FAILED_PRECONDITION when a
/// vote is not committed.
fn creation_vote(
    voting: Option<Voting>,
) -> impl Fn(Phase, Vote) -> futures::future::BoxFuture<'static, crate::error::Result<()>> {
    move |phase: Phase, hash: Vote| {
        let voting = voting.clone();
        Box::pin(async move {
            let Some(voting) = voting else { return Ok(()) };
            voting.vote(hash, phase).await.map_err(|e| {
                let step = if phase == Phase::Prepared { "preparatory vote" } else { "committing vote" };
                crate::error::Error::failed_precondition(format!("{step}: {}", crate::error::error_chain(&e)))
            })
        })
    }
}

type StreamResult<T> = Result<Response<BoxStream<T>>, Status>;

#[tonic::async_trait]
impl repository_service_server::RepositoryService for RepositoryService {
    async fn repository_exists(
        &self,
        req: Request<RepositoryExistsRequest>,
    ) -> Result<Response<RepositoryExistsResponse>, Status> {
        respond(repository_exists::handle(&self.deps, req.into_inner()))
    }

    async fn create_repository(
        &self,
        req: Request<CreateRepositoryRequest>,
    ) -> Result<Response<CreateRepositoryResponse>, Status> {
        let cid = correlation_id(&req);
        let voting = self.voting(&req, |r| r.repository.as_ref())?;
        respond(create_repository::handle(&self.deps, req.into_inner(), voting, cid.as_deref()).await)
    }

    async fn remove_repository(
        &self,
        req: Request<RemoveRepositoryRequest>,
    ) -> Result<Response<RemoveRepositoryResponse>, Status> {
        let voting = self.voting(&req, |r| r.repository.as_ref())?;
        respond(remove_repository::handle(&self.deps, req.into_inner(), voting).await)
    }

    async fn object_format(&self, req: Request<ObjectFormatRequest>) -> Result<Response<ObjectFormatResponse>, Status> {
        respond(object_format::handle(&self.deps, req.into_inner()).await)
    }

    async fn has_local_branches(
        &self,
        req: Request<HasLocalBranchesRequest>,
    ) -> Result<Response<HasLocalBranchesResponse>, Status> {
        respond(has_local_branches::handle(&self.deps, req.into_inner()).await)
    }

    async fn repository_size(
        &self,
        req: Request<RepositorySizeRequest>,
    ) -> Result<Response<RepositorySizeResponse>, Status> {
        respond(size::repository_size(&self.deps, req.into_inner()).await)
    }

    async fn get_object_directory_size(
        &self,
        req: Request<GetObjectDirectorySizeRequest>,
    ) -> Result<Response<GetObjectDirectorySizeResponse>, Status> {
        respond(size::object_directory_size(&self.deps, req.into_inner()).await)
    }

    async fn repository_info(
        &self,
        req: Request<RepositoryInfoRequest>,
    ) -> Result<Response<RepositoryInfoResponse>, Status> {
        respond(repository_info::handle(&self.deps, req.into_inner()).await)
    }

    async fn write_ref(&self, req: Request<WriteRefRequest>) -> Result<Response<WriteRefResponse>, Status> {
        let cid = correlation_id(&req);
        let tx = transaction(&req)?;
        let (metadata, _, req) = req.into_parts();
        respond(write_ref::handle(&self.deps, &metadata, req, tx, cid.as_deref()).await)
    }

    async fn optimize_repository(
        &self,
        req: Request<OptimizeRepositoryRequest>,
    ) -> Result<Response<OptimizeRepositoryResponse>, Status> {
        let cid = correlation_id(&req);
        respond(optimize_repository::handle(&self.deps, req.into_inner(), cid.as_deref()).await)
    }

    async fn prune_unreachable_objects(
        &self,
        req: Request<PruneUnreachableObjectsRequest>,
    ) -> Result<Response<PruneUnreachableObjectsResponse>, Status> {
        let cid = correlation_id(&req);
        respond(prune_unreachable_objects::handle(&self.deps, req.into_inner(), cid.as_deref()).await)
    }

    async fn find_merge_base(
        &self,
        req: Request<FindMergeBaseRequest>,
    ) -> Result<Response<FindMergeBaseResponse>, Status> {
        respond(find_merge_base::handle(&self.deps, req.into_inner()).await)
    }

    async fn get_config(&self, req: Request<GetConfigRequest>) -> StreamResult<GetConfigResponse> {
        respond(config::get_config(&self.deps, req.into_inner()).await)
    }

    async fn calculate_checksum(
        &self,
        req: Request<CalculateChecksumRequest>,
    ) -> Result<Response<CalculateChecksumResponse>, Status> {
        respond(calculate_checksum::handle(&self.deps, req.into_inner()).await)
    }

    async fn set_custom_hooks(
        &self,
        req: Request<Streaming<SetCustomHooksRequest>>,
    ) -> Result<Response<SetCustomHooksResponse>, Status> {
        let tx = transaction(&req)?;
        let stream = req.into_inner().map_ok(|m| (m.repository, m.data));
        respond(custom_hooks::set(&self.deps, stream, tx).await.map(|()| SetCustomHooksResponse {}))
    }

    async fn restore_custom_hooks(
        &self,
        req: Request<Streaming<RestoreCustomHooksRequest>>,
    ) -> Result<Response<RestoreCustomHooksResponse>, Status> {
        let tx = transaction(&req)?;
        let stream = req.into_inner().map_ok(|m| (m.repository, m.data));
        respond(custom_hooks::set(&self.deps, stream, tx).await.map(|()| RestoreCustomHooksResponse {}))
    }

    async fn get_custom_hooks(&self, req: Request<GetCustomHooksRequest>) -> StreamResult<GetCustomHooksResponse> {
        let repo = req.into_inner().repository;
        respond(custom_hooks::get(&self.deps, repo, |data| GetCustomHooksResponse { data }).await)
    }

    async fn backup_custom_hooks(
        &self,
        req: Request<BackupCustomHooksRequest>,
    ) -> StreamResult<BackupCustomHooksResponse> {
        let repo = req.into_inner().repository;
        respond(custom_hooks::get(&self.deps, repo, |data| BackupCustomHooksResponse { data }).await)
    }

    async fn get_archive(&self, req: Request<GetArchiveRequest>) -> StreamResult<GetArchiveResponse> {
        respond(get_archive::handle(&self.deps, req.into_inner()).await)
    }

    async fn search_files_by_name(
        &self,
        req: Request<SearchFilesByNameRequest>,
    ) -> StreamResult<SearchFilesByNameResponse> {
        respond(search_files::by_name(&self.deps, req.into_inner()).await)
    }

    async fn search_files_by_content(
        &self,
        req: Request<SearchFilesByContentRequest>,
    ) -> StreamResult<SearchFilesByContentResponse> {
        respond(search_files::by_content(&self.deps, req.into_inner()).await)
    }

    async fn find_license(&self, req: Request<FindLicenseRequest>) -> Result<Response<FindLicenseResponse>, Status> {
        respond(find_license::handle(&self.deps, req.into_inner()).await)
    }

    async fn get_file_attributes(
        &self,
        req: Request<GetFileAttributesRequest>,
    ) -> Result<Response<GetFileAttributesResponse>, Status> {
        respond(get_file_attributes::handle(&self.deps, req.into_inner()).await)
    }

    async fn get_raw_changes(&self, req: Request<GetRawChangesRequest>) -> StreamResult<GetRawChangesResponse> {
        respond(get_raw_changes::handle(&self.deps, req.into_inner()).await)
    }

    async fn create_bundle(&self, req: Request<CreateBundleRequest>) -> StreamResult<CreateBundleResponse> {
        let cid = correlation_id(&req);
        respond(create_bundle::handle(&self.deps, req.into_inner(), cid.as_deref()).await)
    }

    async fn create_bundle_from_ref_list(
        &self,
        req: Request<Streaming<CreateBundleFromRefListRequest>>,
    ) -> StreamResult<CreateBundleFromRefListResponse> {
        let cid = correlation_id(&req);
        respond(create_bundle_from_ref_list::handle(&self.deps, req.into_inner(), cid.as_deref()).await)
    }

    async fn create_repository_from_bundle(
        &self,
        req: Request<Streaming<CreateRepositoryFromBundleRequest>>,
    ) -> Result<Response<CreateRepositoryFromBundleResponse>, Status> {
        let cid = correlation_id(&req);
        let tx = transaction(&req)?;
        respond(create_repository_from_bundle::handle(&self.deps, req.into_inner(), tx, cid.as_deref()).await)
    }

    async fn fetch_bundle(
        &self,
        req: Request<Streaming<FetchBundleRequest>>,
    ) -> Result<Response<FetchBundleResponse>, Status> {
        let cid = correlation_id(&req);
        let tx = transaction(&req)?;
        let (metadata, _, stream) = req.into_parts();
        respond(fetch_bundle::handle(&self.deps, &metadata, stream, tx, cid.as_deref()).await)
    }

    async fn objects_size(
        &self,
        req: Request<Streaming<ObjectsSizeRequest>>,
    ) -> Result<Response<ObjectsSizeResponse>, Status> {
        let cid = correlation_id(&req);
        respond(objects_size::handle(&self.deps, req.into_inner(), cid.as_deref()).await)
    }

    async fn get_snapshot(&self, req: Request<GetSnapshotRequest>) -> StreamResult<GetSnapshotResponse> {
        respond(get_snapshot::handle(&self.deps, req.into_inner()).await)
    }

    async fn replicate_repository(
        &self,
        req: Request<ReplicateRepositoryRequest>,
    ) -> Result<Response<ReplicateRepositoryResponse>, Status> {
        let cid = correlation_id(&req);
        let (metadata, _, req) = req.into_parts();
        respond(replicate_repository::handle(&self.deps, &metadata, req, cid.as_deref()).await)
    }

    async fn create_fork(&self, req: Request<CreateForkRequest>) -> Result<Response<CreateForkResponse>, Status> {
        let cid = correlation_id(&req);
        let voting = self.voting(&req, |r| r.repository.as_ref())?;
        let (metadata, _, req) = req.into_parts();
        respond(create_fork::handle(&self.deps, &metadata, req, voting, cid.as_deref()).await)
    }

    async fn fetch_source_branch(
        &self,
        req: Request<FetchSourceBranchRequest>,
    ) -> Result<Response<FetchSourceBranchResponse>, Status> {
        let cid = correlation_id(&req);
        let tx = transaction(&req)?;
        let (metadata, _, req) = req.into_parts();
        respond(fetch_source_branch::handle(&self.deps, &metadata, req, tx, cid.as_deref()).await)
    }

    async fn fetch_remote(&self, req: Request<FetchRemoteRequest>) -> Result<Response<FetchRemoteResponse>, Status> {
        let cid = correlation_id(&req);
        let tx = transaction(&req)?;
        let (metadata, _, req) = req.into_parts();
        respond(fetch_remote::handle(&self.deps, &metadata, req, tx, cid.as_deref()).await)
    }

    async fn create_repository_from_url(
        &self,
        req: Request<CreateRepositoryFromUrlRequest>,
    ) -> Result<Response<CreateRepositoryFromUrlResponse>, Status> {
        let cid = correlation_id(&req);
        let voting = self.voting(&req, |r| r.repository.as_ref())?;
        respond(create_repository_from_url::handle(&self.deps, req.into_inner(), voting, cid.as_deref()).await)
    }
}

use futures::TryStreamExt as _;
