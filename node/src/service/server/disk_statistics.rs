//! DiskStatistics: available and used bytes of each storage's file system
//! (both zero when the file system cannot be queried).

use crate::error::Result;
use crate::service::{Deps, blocking};
use cairn_proto::gitaly::{DiskStatisticsResponse, disk_statistics_response::StorageStatus};

pub(super) async fn handle(deps: &Deps) -> Result<DiskStatisticsResponse> {
    let roots = deps.storages.all().to_vec();
    blocking(move || {
        let storage_statuses = roots
            .iter()
            .map(|root| {
                let (available, used) = match crate::fsinfo::usage(&root.path) {
                    Ok(u) => u,
                    Err(e) => {
                        tracing::error!(storage = %root.name, error = %e, "retrieve disk statistics");
                        (0, 0)
                    }
                };
                StorageStatus { storage_name: root.name.clone(), available, used }
            })
            .collect();
        Ok(DiskStatisticsResponse { storage_statuses })
    })
    .await
}
