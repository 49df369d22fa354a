//! ServerInfo: versions and, per storage, whether it is readable and
//! writeable, its file system type and its filesystem id.

use crate::error::{Error, Result};
use crate::service::{Deps, blocking};
use crate::storage::{StorageRoot, metadata};
use cairn_proto::gitaly::{ServerInfoResponse, server_info_response::StorageStatus};

pub(super) async fn handle(deps: &Deps) -> Result<ServerInfoResponse> {
    let git_version = deps.git.version().await.map_err(|e| Error::internal("detect git version", e))?;
    let roots = deps.storages.all().to_vec();
    let storage_statuses = blocking(move || Ok(roots.iter().map(storage_status).collect())).await?;
    Ok(ServerInfoResponse { server_version: crate::server_version(), git_version, storage_statuses })
}

fn storage_status(root: &StorageRoot) -> StorageStatus {
    let (readable, writeable) = crate::fsinfo::probe(&root.path);
    StorageStatus {
        storage_name: root.name.clone(),
        readable,
        writeable,
        fs_type: crate::fsinfo::fs_type(&root.path),
        filesystem_id: metadata::read_filesystem_id(&root.path).unwrap_or_default(),
        // A single node is always exactly one replica; the router reports
        // the real factor.
        replication_factor: 1,
    }
}
