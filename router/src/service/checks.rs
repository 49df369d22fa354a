//! The startup checks `praefect check` prints and ReadinessCheck answers:
//! schema current, every node reachable and its storages usable, the
//! database readable and writeable, repositories available, clocks in sync.

use crate::config::Config;
use crate::db::repositories::RepoState;
use crate::db::{Db, migrate};
use crate::health::HealthView;
use cairn_node::client::{DialOptions, dial};
use cairn_proto::gitaly::ServerInfoRequest;
use cairn_proto::gitaly::server_service_client::ServerServiceClient;
use std::collections::BTreeMap;
use std::time::Duration;

/// Whether a failed check fails the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Warning,
    Fatal,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Warning => "warning",
            Self::Fatal => "fatal",
        })
    }
}

/// A check's name, description and severity, as upstream prints them.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    pub name: &'static str,
    pub description: &'static str,
    pub severity: Severity,
}

pub const MIGRATIONS: Check = Check {
    name: "praefect migrations",
    description: "confirms whether or not all praefect migrations have run",
    severity: Severity::Fatal,
};

pub const NODE_CONNECTIVITY: Check = Check {
    name: "gitaly node connectivity & disk access",
    description: "confirms if praefect can reach all of its gitaly nodes, and whether or not the gitaly nodes can \
                  read/write from and to its storages.",
    severity: Severity::Fatal,
};

pub const DATABASE_READ_WRITE: Check = Check {
    name: "database read/write",
    description: "checks if praefect can write/read to and from the database",
    severity: Severity::Fatal,
};

pub const UNAVAILABLE_REPOSITORIES: Check = Check {
    name: "unavailable repositories",
    description: "lists repositories that are missing a valid primary, hence rendering them unavailable",
    severity: Severity::Warning,
};

pub const CLOCK_SYNC: Check = Check {
    name: "clock synchronization",
    description: "checks if system clock is in sync with NTP service. You can use NTP_HOST env var to provide NTP \
                  service URL to query and DRIFT_THRESHOLD to provide allowed drift as a duration (1ms, 20sec, etc.)",
    severity: Severity::Fatal,
};

/// Fails when migrations this binary knows are not applied.
pub async fn migrations(db: &Db) -> Result<(), String> {
    let pending = migrate::pending(db).await.map_err(|e| e.to_string())?;
    if pending.is_empty() { Ok(()) } else { Err(format!("{} migrations have not been run", pending.len())) }
}

/// Reads and writes the database in a rolled-back transaction.
pub async fn database_read_write(db: &Db, log: &mut dyn FnMut(String)) -> Result<(), String> {
    db.probe_read_write().await.map_err(|e| e.to_string())?;
    log("successfully read from database".to_owned());
    log("successfully wrote to database".to_owned());
    Ok(())
}

/// What dialing one node address showed.
#[derive(Debug, Clone)]
pub struct NodeReport {
    pub address: String,
    /// Progress lines, without the `[address]: ` prefix.
    pub lines: Vec<String>,
    pub ok: bool,
    /// (virtual storage, storage) configured on this address.
    pub storages: Vec<(String, String)>,
}

/// One address's storages: storage -> virtual storages it backs.
#[derive(Debug, Clone, Default)]
struct Target {
    token: String,
    storages: BTreeMap<String, Vec<String>>,
}

/// Dials every configured node address (once per address), checks its
/// gRPC health and asks ServerInfo whether every storage configured on it
/// is served, readable and writeable. Nodes are checked concurrently; the
/// reports come back in configuration order.
pub async fn ping_all(config: &Config, timeout: Duration) -> Vec<NodeReport> {
    let mut targets: Vec<(String, Target)> = Vec::new();
    for vs in &config.virtual_storages {
        for node in &vs.nodes {
            let idx = match targets.iter().position(|(a, _)| *a == node.address) {
                Some(i) => i,
                None => {
                    targets.push((node.address.clone(), Target::default()));
                    targets.len() - 1
                }
            };
            let target = &mut targets[idx].1;
            target.token = node.token.clone();
            target.storages.entry(node.storage.clone()).or_default().push(vs.name.clone());
        }
    }
    let checks = targets.into_iter().map(|(address, target)| async move {
        let mut report = NodeReport {
            address: address.clone(),
            lines: Vec::new(),
            ok: false,
            storages: target
                .storages
                .iter()
                .flat_map(|(s, vss)| vss.iter().map(move |vs| (vs.clone(), s.clone())))
                .collect(),
        };
        let result = tokio::time::timeout(timeout, check_node(&address, &target, &mut report.lines)).await;
        report.ok = match result {
            Ok(ok) => ok,
            Err(_) => {
                report.lines.push(format!("ERROR: timed out after {timeout:?}"));
                false
            }
        };
        report
    });
    futures::future::join_all(checks).await
}

async fn check_node(address: &str, target: &Target, log: &mut Vec<String>) -> bool {
    log.push("dialing...".to_owned());
    let opts = DialOptions { token: Some(target.token.clone()).filter(|t| !t.is_empty()), ..Default::default() };
    let conn = match dial(address, opts).await {
        Ok(c) => c,
        Err(e) => {
            log.push(format!("ERROR: dialing failed: {}", cairn_node::error::error_chain(&e)));
            return false;
        }
    };
    log.push("dialed successfully!".to_owned());
    log.push("checking health...".to_owned());
    let mut health = tonic_health::pb::health_client::HealthClient::new(conn.channel());
    match health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await {
        Ok(resp) => {
            let status = resp.into_inner().status();
            if status != tonic_health::pb::health_check_response::ServingStatus::Serving {
                log.push(format!(
                    "ERROR: health check did not report serving, instead reported: {}",
                    status.as_str_name()
                ));
                return false;
            }
        }
        Err(e) => {
            log.push(format!("ERROR: unable to request health check: {}", status_text(&e)));
            return false;
        }
    }
    log.push("SUCCESS: node is healthy!".to_owned());
    log.push("checking consistency...".to_owned());
    if !storages_consistent(&conn, target, log).await {
        log.push("ERROR: consistency check failed".to_owned());
        return false;
    }
    log.push("SUCCESS: node configuration is consistent!".to_owned());
    true
}

async fn storages_consistent(conn: &cairn_node::client::Connection, target: &Target, log: &mut Vec<String>) -> bool {
    let resp = match ServerServiceClient::new(conn.channel()).server_info(ServerInfoRequest {}).await {
        Ok(r) => r.into_inner(),
        Err(e) => {
            log.push(format!("ERROR: failed to receive state from the remote: {}", status_text(&e)));
            return false;
        }
    };
    if resp.storage_statuses.is_empty() {
        log.push("ERROR: remote has no configured storages".to_owned());
        return false;
    }
    let mut consistent = true;
    let mut seen = std::collections::BTreeSet::new();
    for status in &resp.storage_statuses {
        let Some(virtual_storages) = target.storages.get(&status.storage_name) else { continue };
        if !seen.insert(status.storage_name.clone()) {
            log.push(format!("ERROR: remote has duplicated storage: {:?}", status.storage_name));
            consistent = false;
            continue;
        }
        if status.readable && status.writeable {
            log.push(format!(
                "SUCCESS: confirmed Gitaly storage {:?} in virtual storages [{}] is served",
                status.storage_name,
                virtual_storages.join(" ")
            ));
        } else {
            log.push(format!("ERROR: storage {:?} is not readable or writable", status.storage_name));
            consistent = false;
        }
    }
    for storage in target.storages.keys() {
        if !seen.contains(storage) {
            log.push(format!("ERROR: configured storage was not reported by remote: {storage:?}"));
            consistent = false;
        }
    }
    consistent
}

/// The error [`ping_all`] reports when some node failed.
pub fn unhealthy_error(reports: &[NodeReport]) -> Result<(), String> {
    let bad: Vec<&str> = reports.iter().filter(|r| !r.ok).map(|r| r.address.as_str()).collect();
    if bad.is_empty() { Ok(()) } else { Err(format!("the following nodes are not healthy: {}", bad.join(", "))) }
}

/// A health view in which exactly the nodes that answered are healthy,
/// for checks run outside a serving router.
pub fn health_from_reports(config: &Config, reports: &[NodeReport]) -> HealthView {
    let health = HealthView::default();
    for vs in &config.virtual_storages {
        for node in &vs.nodes {
            let ok = reports.iter().any(|r| r.address == node.address && r.ok);
            health.set_local(&vs.name, &node.storage, ok);
        }
    }
    health.finish_round(None);
    health
}

/// Repositories without a valid primary, counted per virtual storage.
pub async fn unavailable_repositories(
    db: &Db,
    config: &Config,
    health: &HealthView,
) -> Result<BTreeMap<String, usize>, String> {
    let mut counts = BTreeMap::new();
    for vs in &config.virtual_storages {
        let configured: Vec<String> = vs.nodes.iter().map(|n| n.storage.clone()).collect();
        let repos = db.repositories(Some(&vs.name)).await.map_err(|e| e.to_string())?;
        let n = repos
            .iter()
            .filter(|r: &&RepoState| crate::election::candidates(r, &configured, health).is_empty())
            .count();
        if n > 0 {
            counts.insert(vs.name.clone(), n);
        }
    }
    Ok(counts)
}

/// The sentence upstream prints for one virtual storage's count.
pub fn unavailable_message(virtual_storage: &str, count: usize) -> String {
    if count == 1 {
        format!("virtual-storage {virtual_storage:?} has {count} repository that is unavailable.")
    } else {
        format!("virtual-storage {virtual_storage:?} has {count} repositories that are unavailable.")
    }
}

/// A gRPC status the way Go clients print one.
pub fn status_text(status: &tonic::Status) -> String {
    format!("rpc error: code = {:?} desc = {}", status.code(), status.message())
}
