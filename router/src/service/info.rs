//! PraefectInfoService: what the router knows about repositories and their
//! replicas, and the administrative changes the subcommands make
//! (authoritative replica, replication factor, reverification).

use crate::config::Config;
use crate::db::Db;
use crate::db::admin::SetReplicationFactorError;
use crate::db::repositories::RepoState;
use crate::election;
use crate::health::HealthView;
use crate::nodes::Nodes;
use cairn_proto::gitaly::dataloss_response::{
    Repository as DatalossRepository, repository::Storage as DatalossStorage,
};
use cairn_proto::gitaly::get_repository_metadata_request::Query;
use cairn_proto::gitaly::mark_unverified_request::Selector;
use cairn_proto::gitaly::praefect_info_service_server::PraefectInfoService;
use cairn_proto::gitaly::repository_replicas_response::RepositoryDetails;
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::*;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Repositories per Dataloss message.
const DATALOSS_CHUNK: usize = 100;

/// The service's state: the metadata store, node connections, health.
#[derive(Debug, Clone)]
pub struct InfoService {
    db: Db,
    nodes: Nodes,
    health: HealthView,
    config: Arc<Config>,
}

/// One replica as reports show it (upstream's `RepositoryMetadata.Replicas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub storage: String,
    /// -1 when the replica has no record (not created).
    pub generation: i64,
    pub assigned: bool,
    pub healthy: bool,
    pub valid_primary: bool,
}

/// Every configured assigned storage and every storage with a record,
/// sorted by storage name.
pub fn replica_statuses(state: &RepoState, configured: &[String], health: &HealthView) -> Vec<ReplicaStatus> {
    let assigned = state.assigned(configured);
    let candidates = election::candidates(state, configured, health);
    let healthy = health.consensus(&state.virtual_storage);
    let mut storages: Vec<&str> = assigned.clone();
    for r in &state.replicas {
        if !storages.contains(&r.storage.as_str()) {
            storages.push(&r.storage);
        }
    }
    storages.sort_unstable();
    storages
        .into_iter()
        .map(|s| ReplicaStatus {
            storage: s.to_owned(),
            generation: state.generation_of(s),
            assigned: assigned.contains(&s),
            healthy: healthy.contains(s),
            valid_primary: candidates.iter().any(|c| c == s),
        })
        .collect()
}

type DatalossStream = Pin<Box<dyn futures::Stream<Item = Result<DatalossResponse, Status>> + Send>>;

impl InfoService {
    pub fn new(db: Db, nodes: Nodes, health: HealthView, config: Arc<Config>) -> Self {
        Self { db, nodes, health, config }
    }

    fn configured(&self, virtual_storage: &str) -> Option<Vec<String>> {
        self.config.virtual_storage(virtual_storage).map(|vs| vs.nodes.iter().map(|n| n.storage.clone()).collect())
    }

    async fn checksum(
        &self,
        virtual_storage: &str,
        storage: &str,
        relative_path: &str,
        replica_path: &str,
    ) -> Result<RepositoryDetails, Status> {
        let node = self
            .nodes
            .get(virtual_storage, storage)
            .ok_or_else(|| Status::internal(format!("no connection to {virtual_storage:?}/{storage:?}")))?;
        let conn = node.connection().await.map_err(|e| Status::internal(e.to_string()))?;
        let resp = RepositoryServiceClient::new(conn.channel())
            .calculate_checksum(CalculateChecksumRequest {
                repository: Some(Repository {
                    storage_name: storage.to_owned(),
                    relative_path: replica_path.to_owned(),
                    ..Default::default()
                }),
            })
            .await?
            .into_inner();
        Ok(RepositoryDetails {
            repository: Some(Repository {
                storage_name: storage.to_owned(),
                relative_path: relative_path.to_owned(),
                ..Default::default()
            }),
            checksum: resp.checksum,
        })
    }
}

#[tonic::async_trait]
impl PraefectInfoService for InfoService {
    async fn repository_replicas(
        &self,
        request: Request<RepositoryReplicasRequest>,
    ) -> Result<Response<RepositoryReplicasResponse>, Status> {
        let repository = request.into_inner().repository.unwrap_or_default();
        let (vs, path) = (repository.storage_name.as_str(), repository.relative_path.as_str());
        let state = self
            .db
            .repository(vs, path)
            .await?
            .ok_or_else(|| Status::not_found("get repository id: repository not found"))?;
        let configured = self.configured(vs).unwrap_or_default();
        let replica_path = state.replica_path.clone();
        let assigned: Vec<String> = state.assigned(&configured).into_iter().map(str::to_owned).collect();
        let (primary, _term) = election::ensure_primary(&self.db, &self.health, &configured, state).await?;
        let primary = primary.ok_or_else(|| Status::unavailable("get primary: primary node is not available"))?;
        if !assigned.contains(&primary) {
            return Err(Status::unknown(format!("primary {primary:?} is not an assigned host")));
        }
        let secondaries = assigned.iter().filter(|s| **s != primary);
        let (primary, replicas) = futures::join!(
            self.checksum(vs, &primary, path, &replica_path),
            futures::future::try_join_all(secondaries.map(|s| self.checksum(vs, s, path, &replica_path)))
        );
        let internal = |e: Status| Status::internal(e.message().to_owned());
        Ok(Response::new(RepositoryReplicasResponse {
            primary: Some(primary.map_err(internal)?),
            replicas: replicas.map_err(internal)?,
        }))
    }

    async fn dataloss(&self, request: Request<DatalossRequest>) -> Result<Response<DatalossStream>, Status> {
        let req = request.into_inner();
        let configured = self
            .configured(&req.virtual_storage)
            .ok_or_else(|| Status::unknown(format!("unknown virtual storage: {:?}", req.virtual_storage)))?;
        let repos = self.db.repositories(Some(&req.virtual_storage)).await?;
        let mut out = Vec::new();
        for state in &repos {
            let replicas = replica_statuses(state, &configured, &self.health);
            // Only repositories with an assigned replica that could not serve.
            if !replicas.iter().any(|r| r.assigned && !r.valid_primary) {
                continue;
            }
            let unavailable = !replicas.iter().any(|r| r.valid_primary);
            if !req.include_partially_replicated && !unavailable {
                continue;
            }
            out.push(DatalossRepository {
                relative_path: state.relative_path.clone(),
                primary: state.primary.clone().unwrap_or_default(),
                unavailable,
                storages: replicas
                    .into_iter()
                    .map(|r| DatalossStorage {
                        behind_by: state.generation - r.generation,
                        name: r.storage,
                        assigned: r.assigned,
                        healthy: r.healthy,
                        valid_primary: r.valid_primary,
                    })
                    .collect(),
            });
        }
        let messages: Vec<Result<DatalossResponse, Status>> =
            out.chunks(DATALOSS_CHUNK).map(|chunk| Ok(DatalossResponse { repositories: chunk.to_vec() })).collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(messages))))
    }

    async fn set_authoritative_storage(
        &self,
        request: Request<SetAuthoritativeStorageRequest>,
    ) -> Result<Response<SetAuthoritativeStorageResponse>, Status> {
        let req = request.into_inner();
        let configured = self
            .configured(&req.virtual_storage)
            .ok_or_else(|| Status::invalid_argument(format!("unknown virtual storage: {:?}", req.virtual_storage)))?;
        if !configured.contains(&req.authoritative_storage) {
            return Err(Status::invalid_argument(format!(
                "unknown authoritative storage: {:?}",
                req.authoritative_storage
            )));
        }
        if !self.db.set_authoritative(&req.virtual_storage, &req.relative_path, &req.authoritative_storage).await? {
            return Err(Status::invalid_argument("repository does not exist on virtual storage"));
        }
        tracing::warn!(
            virtual_storage = %req.virtual_storage,
            relative_path = %req.relative_path,
            authoritative_storage = %req.authoritative_storage,
            "accepted data loss: the authoritative replica is now the only up-to-date one"
        );
        Ok(Response::new(SetAuthoritativeStorageResponse {}))
    }

    async fn mark_unverified(
        &self,
        request: Request<MarkUnverifiedRequest>,
    ) -> Result<Response<MarkUnverifiedResponse>, Status> {
        let marked = match request.into_inner().selector {
            Some(Selector::RepositoryId(id)) => self.db.mark_repository_unverified(id).await?,
            Some(Selector::VirtualStorage(vs)) => self.db.mark_storage_unverified(&vs, None).await?,
            Some(Selector::Storage(s)) => self.db.mark_storage_unverified(&s.virtual_storage, Some(&s.storage)).await?,
            None => return Err(Status::unknown("unknown selector: <nil>")),
        };
        Ok(Response::new(MarkUnverifiedResponse { replicas_marked: marked as i64 }))
    }

    async fn set_replication_factor(
        &self,
        request: Request<SetReplicationFactorRequest>,
    ) -> Result<Response<SetReplicationFactorResponse>, Status> {
        let req = request.into_inner();
        let configured = self.configured(&req.virtual_storage).unwrap_or_default();
        match self
            .db
            .set_replication_factor(
                &req.virtual_storage,
                &req.relative_path,
                i64::from(req.replication_factor),
                &configured,
            )
            .await
        {
            Ok(storages) => Ok(Response::new(SetReplicationFactorResponse { storages })),
            Err(SetReplicationFactorError::Db(e)) => Err(e.into()),
            Err(e) => Err(Status::invalid_argument(format!("set replication factor: {e}"))),
        }
    }

    async fn get_repository_metadata(
        &self,
        request: Request<GetRepositoryMetadataRequest>,
    ) -> Result<Response<GetRepositoryMetadataResponse>, Status> {
        let state = match request.into_inner().query {
            Some(Query::RepositoryId(id)) => self.db.repository_by_id(id).await?,
            Some(Query::Path(p)) => self.db.repository(&p.virtual_storage, &p.relative_path).await?,
            None => return Err(Status::internal("unknown query type: <nil>")),
        };
        let state = state.ok_or_else(|| Status::not_found("repository not found"))?;
        let configured = self.configured(&state.virtual_storage).unwrap_or_default();
        let verified = self.db.verified_at(state.id).await?;
        let replicas = replica_statuses(&state, &configured, &self.health)
            .into_iter()
            .map(|r| get_repository_metadata_response::Replica {
                verified_at: verified.get(&r.storage).map(|t| prost_types::Timestamp::from(*t)),
                storage: r.storage,
                assigned: r.assigned,
                generation: r.generation,
                healthy: r.healthy,
                valid_primary: r.valid_primary,
            })
            .collect();
        Ok(Response::new(GetRepositoryMetadataResponse {
            repository_id: state.id,
            virtual_storage: state.virtual_storage,
            relative_path: state.relative_path,
            replica_path: state.replica_path,
            primary: state.primary.unwrap_or_default(),
            generation: state.generation,
            replicas,
        }))
    }
}
