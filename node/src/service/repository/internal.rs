//! Reaching the node that holds a source repository: the `gitaly-servers`
//! request metadata (base64 of a JSON map from storage name to
//! `{"address": ..., "token": ...}`) says where each storage lives, as
//! GitLab and Praefect send it.

use crate::client::{Connection, DialOptions};
use crate::error::{Error, Result};
use crate::git::remote::InternalRemote;
use crate::service::Deps;
use cairn_proto::gitaly::{Repository, SshUploadPackWithSidechannelRequest};
use std::collections::HashMap;
use tonic::metadata::MetadataMap;

/// Metadata key carrying the servers map.
pub(in crate::service) const GITALY_SERVERS: &str = "gitaly-servers";

/// One entry of the servers map.
#[derive(Clone, serde::Deserialize)]
pub(in crate::service) struct ServerInfo {
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub token: String,
}

impl std::fmt::Debug for ServerInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerInfo").field("address", &self.address).finish_non_exhaustive()
    }
}

/// Why the metadata did not name a usable server (upstream's wording).
#[derive(Debug, thiserror::Error)]
pub(in crate::service) enum ServersError {
    #[error("empty gitaly-servers metadata")]
    Missing,
    #[error("failed decoding base64: {0}")]
    Base64(String),
    #[error("failed unmarshalling json: {0}")]
    Json(String),
    #[error("storage name not found")]
    UnknownStorage,
    #[error("empty Gitaly address")]
    EmptyAddress,
}

/// The server holding `storage`, from the request's metadata.
pub(in crate::service) fn server_for(
    metadata: &MetadataMap,
    storage: &str,
) -> std::result::Result<ServerInfo, ServersError> {
    use base64::Engine as _;
    let raw = metadata.get(GITALY_SERVERS).ok_or(ServersError::Missing)?;
    let raw = raw.to_str().map_err(|e| ServersError::Base64(e.to_string()))?;
    let json =
        base64::engine::general_purpose::STANDARD.decode(raw).map_err(|e| ServersError::Base64(e.to_string()))?;
    let servers: HashMap<String, ServerInfo> =
        serde_json::from_slice(&json).map_err(|e| ServersError::Json(e.to_string()))?;
    let server = servers.get(storage).cloned().ok_or(ServersError::UnknownStorage)?;
    if server.address.is_empty() {
        return Err(ServersError::EmptyAddress);
    }
    Ok(server)
}

/// A gRPC connection to `server`.
pub(in crate::service) async fn connect(
    server: &ServerInfo,
) -> std::result::Result<Connection, crate::client::DialError> {
    let token = (!server.token.is_empty()).then(|| server.token.clone());
    crate::client::dial(&server.address, DialOptions { token, ..Default::default() }).await
}

/// How `git fetch` reaches `repository` on `server` through gitaly-ssh.
pub(in crate::service) fn internal_remote(
    deps: &Deps,
    server: &ServerInfo,
    repository: &Repository,
) -> Result<InternalRemote> {
    let request = SshUploadPackWithSidechannelRequest {
        repository: Some(repository.clone()),
        // Lets a fetch ask for a single object id (FetchSourceBranch).
        git_config_options: vec!["uploadpack.allowAnySHA1InWant=true".to_owned()],
        git_protocol: "version=2".to_owned(),
    };
    Ok(InternalRemote {
        // gitaly-ssh is installed next to gitaly-hooks (both in bin_dir).
        gitaly_ssh: deps.hooks.binary.with_file_name("gitaly-ssh"),
        address: server.address.clone(),
        token: server.token.clone(),
        payload: to_protojson(&request)?,
    })
}

/// Encodes `msg` as protojson, the payload format gitaly-ssh reads.
fn to_protojson<T: prost::Message + prost::Name>(msg: &T) -> Result<String> {
    crate::protojson::encode(msg).map_err(|e| Error::internal("encode payload", e))
}

/// Whether two repository messages name the same repository on this node
/// (upstream compares storage and cleaned relative path).
pub(in crate::service) fn same_repository(deps: &Deps, a: &Repository, b: &Repository) -> bool {
    match (deps.storages.repo_for_create(Some(a)), deps.storages.repo_for_create(Some(b))) {
        (Ok(a), Ok(b)) => a.path == b.path,
        _ => false,
    }
}
