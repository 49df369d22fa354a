//! Calls the router answers from its metadata or handles across all
//! replicas itself instead of forwarding them as they are.

use super::frame::{Collected, unary_response};
use super::{Call, Shared};
use cairn_proto::gitaly::{
    GetObjectPoolResponse, RemoveRepositoryRequest, RemoveRepositoryResponse, Repository, RepositoryExistsResponse,
    repository_service_client::RepositoryServiceClient,
};
use std::time::Duration;
use tonic::Status;
use tonic::body::Body;

const REPOSITORY_EXISTS: &str = "/gitaly.RepositoryService/RepositoryExists";
const REMOVE_REPOSITORY: &str = "/gitaly.RepositoryService/RemoveRepository";
const DELETE_OBJECT_POOL: &str = "/gitaly.ObjectPoolService/DeleteObjectPool";
const GET_OBJECT_POOL: &str = "/gitaly.ObjectPoolService/GetObjectPool";

/// How long a removal waits for nodes before answering anyway; replicas
/// left behind are found by the cleaner.
const REMOVAL_TIMEOUT: Duration = Duration::from_secs(10);

impl Shared {
    /// Answers `call` itself when it is one of the intercepted methods.
    pub(super) async fn intercept(
        &self,
        call: &Call,
        repo: &Repository,
    ) -> Result<Option<http::Response<Body>>, Status> {
        match call.facts.full_method {
            REPOSITORY_EXISTS => {
                let state = self.db.repository(&repo.storage_name, &repo.relative_path).await?;
                let exists = state.is_some_and(|s| !s.replicas.is_empty());
                Ok(Some(unary_response(&RepositoryExistsResponse { exists })))
            }
            REMOVE_REPOSITORY => {
                if !self.remove(repo).await? {
                    return Err(Status::not_found("repository does not exist"));
                }
                Ok(Some(unary_response(&RemoveRepositoryResponse {})))
            }
            DELETE_OBJECT_POOL => {
                if !crate::db::repositories::is_rails_pool_path(&repo.relative_path) {
                    return Err(Status::invalid_argument("invalid object pool path"));
                }
                // An unknown pool is already gone.
                self.remove(repo).await?;
                Ok(Some(unary_response(&cairn_proto::gitaly::DeleteObjectPoolResponse {})))
            }
            _ => Ok(None),
        }
    }

    /// Deletes the records first, then every replica it had. `false` when
    /// the repository was not recorded.
    async fn remove(&self, repo: &Repository) -> Result<bool, Status> {
        let vs = repo.storage_name.as_str();
        let Some(state) = self.db.delete_repository(vs, &repo.relative_path).await? else { return Ok(false) };
        let mut storages: Vec<String> = state.replicas.iter().map(|r| r.storage.clone()).collect();
        for s in &state.assignments {
            if !storages.contains(s) {
                storages.push(s.clone());
            }
        }
        let removals = storages.into_iter().filter_map(|storage| {
            let node = self.nodes.get(vs, &storage)?.clone();
            let replica = Repository {
                storage_name: storage.clone(),
                relative_path: state.replica_path.clone(),
                ..Default::default()
            };
            Some(async move {
                let result = tokio::time::timeout(REMOVAL_TIMEOUT, async {
                    let conn = node.connection().await.map_err(|e| Status::unavailable(e.to_string()))?;
                    RepositoryServiceClient::new(conn.channel())
                        .remove_repository(RemoveRepositoryRequest { repository: Some(replica) })
                        .await
                        .map(drop)
                })
                .await;
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(s)) if s.code() == tonic::Code::NotFound => {}
                    Ok(Err(s)) => tracing::warn!(storage, error = %s, "removing a replica failed"),
                    Err(_) => tracing::warn!(storage, "removing a replica timed out"),
                }
            })
        });
        futures::future::join_all(removals).await;
        Ok(true)
    }

    /// GetObjectPool: routed as a read, with the pool's replica path in the
    /// answer mapped back to the pool's relative path.
    pub(super) async fn get_object_pool(
        &self,
        response: http::Response<Body>,
        vs: &str,
    ) -> Result<http::Response<Body>, Status> {
        let collected = Collected::read(response).await?;
        let status = collected.status();
        if status.code() != tonic::Code::Ok {
            return Err(status);
        }
        let message = collected.message().ok_or_else(|| Status::internal("node answered without a message"))?;
        let mut answer: GetObjectPoolResponse =
            prost::Message::decode(message).map_err(|e| Status::internal(format!("malformed node answer: {e}")))?;
        if let Some(pool) = answer.object_pool.as_mut().and_then(|p| p.repository.as_mut()) {
            match self.db.repository_by_replica_path(vs, &pool.relative_path).await? {
                Some(state) => {
                    pool.storage_name = vs.to_owned();
                    pool.relative_path = state.relative_path;
                }
                // A pool the router does not track is not a pool of this cluster.
                None => answer.object_pool = None,
            }
        }
        Ok(unary_response(&answer))
    }
}

pub(super) fn is_get_object_pool(method: &str) -> bool {
    method == GET_OBJECT_POOL
}
