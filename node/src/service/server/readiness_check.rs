//! ReadinessCheck: the node is ready when git runs and every storage is
//! readable and writeable. Failed checks are reported by name, not as an
//! RPC error, so a probe can show what is wrong.

use crate::error::Result;
use crate::service::{Deps, blocking};
use cairn_proto::gitaly::readiness_check_response::{
    Failure, Ok as Ready, Result as Outcome, failure::Response as Failed,
};
use cairn_proto::gitaly::{ReadinessCheckRequest, ReadinessCheckResponse};
use std::time::Duration;

/// Used when the request gives no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn handle(deps: &Deps, req: ReadinessCheckRequest) -> Result<ReadinessCheckResponse> {
    let timeout =
        req.timeout.and_then(|d| Duration::try_from(d).ok()).filter(|d| !d.is_zero()).unwrap_or(DEFAULT_TIMEOUT);
    let checks = async {
        let mut failed = Vec::new();
        if let Err(e) = deps.git.version().await {
            failed.push(Failed { name: "git".into(), error_message: crate::error::error_chain(&e) });
        }
        let roots = deps.storages.all().to_vec();
        let storage_failures = blocking(move || {
            Ok(roots
                .iter()
                .filter_map(|root| match crate::fsinfo::probe(&root.path) {
                    (true, true) => None,
                    (readable, _) => Some(Failed {
                        name: format!("storage {}", root.name),
                        error_message: if readable { "not writeable".into() } else { "not readable".into() },
                    }),
                })
                .collect::<Vec<_>>())
        })
        .await?;
        failed.extend(storage_failures);
        Result::<_, crate::error::Error>::Ok(failed)
    };
    let failed = match tokio::time::timeout(timeout, checks).await {
        Ok(r) => r?,
        Err(_) => {
            vec![Failed { name: "timeout".into(), error_message: format!("checks took longer than {timeout:?}") }]
        }
    };
    let result = if failed.is_empty() {
        Outcome::OkResponse(Ready {})
    } else {
        Outcome::FailureResponse(Failure { failed_checks: failed })
    };
    Ok(ReadinessCheckResponse { result: Some(result) })
}
