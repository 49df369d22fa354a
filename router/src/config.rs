//! Praefect's config.toml, with upstream's keys.
//!
//! As for the node: decode (warning about unknown keys), then
//! [`Config::validate`] reports every problem with its key path. Shared
//! blocks (`[auth]`, `[tls]`, `[logging]`, `[prometheus]`) are the node's
//! types, so both files read the same way.

use cairn_node::config::{Auth, GoDuration, Logging, Prometheus, Tls, ValidationErrors};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything praefect's config.toml can say.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_listen_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus_listen_addr: Option<String>,
    /// How long a stop waits for in-flight RPCs (default 1m).
    pub graceful_stop_timeout: Option<GoDuration>,
    /// Upstream's testing switch; Cairn has no in-memory queue and refuses it.
    pub memory_queue_enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_command: Option<PathBuf>,
    /// Upstream's opt-out of the per-repository elector; Cairn has only that one.
    pub i_understand_my_election_strategy_is_unsupported_and_will_be_removed_without_warning: bool,
    /// Cairn: this router's identity in the health quorum. Defaults to
    /// `hostname:listen address`, as upstream; the operator sets the pod name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub auth: Auth,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    pub logging: Logging,
    pub sentry: Sentry,
    pub prometheus: Prometheus,
    #[serde(rename = "virtual_storage")]
    pub virtual_storages: Vec<VirtualStorage>,
    pub database: Database,
    pub failover: Failover,
    pub replication: Replication,
    pub reconciliation: Reconciliation,
    pub background_verification: BackgroundVerification,
    pub repositories_cleanup: RepositoriesCleanup,
    pub yamux: Yamux,
}

/// `[sentry]` (accepted; Cairn reports nothing to Sentry).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Sentry {
    pub sentry_dsn: String,
    pub sentry_environment: String,
}

/// `[[virtual_storage]]`: what clients call a storage, backed by nodes.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct VirtualStorage {
    pub name: String,
    /// Replicas per new repository; 0 = every node.
    pub default_replication_factor: u32,
    #[serde(rename = "node")]
    pub nodes: Vec<Node>,
}

/// `[[virtual_storage.node]]`: one storage on one Gitaly.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct Node {
    /// The storage's name on that node.
    pub storage: String,
    pub address: String,
    /// Token the router presents to that node.
    pub token: String,
}

/// `[database]`, the connection the router keeps its metadata through.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct Database {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub dbname: String,
    pub sslmode: String,
    pub sslcert: String,
    pub sslkey: String,
    pub sslrootcert: String,
    /// Upstream's direct connection for LISTEN; Cairn needs no session
    /// state (no LISTEN cache) so it is accepted and unused.
    pub session_pooled: DatabaseConnection,
    pub host_no_proxy: String,
    pub port_no_proxy: u16,
    /// Cairn: most connections the pool opens (default 16).
    pub max_connections: Option<usize>,
}

/// `[database.session_pooled]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct DatabaseConnection {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub dbname: String,
    pub sslmode: String,
    pub sslcert: String,
    pub sslkey: String,
    pub sslrootcert: String,
}

/// `[failover]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Failover {
    /// Upstream: per-repository failover always runs; `false` only warns.
    pub enabled: bool,
    pub election_strategy: String,
    pub error_threshold_window: Option<GoDuration>,
    pub write_error_threshold_count: u32,
    pub read_error_threshold_count: u32,
    pub bootstrap_interval: Option<GoDuration>,
    pub monitor_interval: Option<GoDuration>,
    /// Cairn: a node is healthy by consensus while a majority of routers saw
    /// it answer within this window (upstream fixes it at 10s).
    pub health_window: Option<GoDuration>,
    /// Cairn: period of each router's health checks (upstream: 1s).
    pub health_check_interval: Option<GoDuration>,
}

impl Default for Failover {
    fn default() -> Self {
        Self {
            enabled: true,
            election_strategy: "per_repository".to_owned(),
            error_threshold_window: None,
            write_error_threshold_count: 0,
            read_error_threshold_count: 0,
            bootstrap_interval: None,
            monitor_interval: None,
            health_window: None,
            health_check_interval: None,
        }
    }
}

impl Failover {
    pub fn health_window(&self) -> Duration {
        self.health_window.map_or(Duration::from_secs(5), GoDuration::get)
    }

    pub fn health_check_interval(&self) -> Duration {
        self.health_check_interval.map_or(Duration::from_secs(1), GoDuration::get)
    }
}

/// `[replication]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Replication {
    pub batch_size: u32,
    pub parallel_storage_processing_workers: u32,
}

impl Default for Replication {
    fn default() -> Self {
        Self { batch_size: 10, parallel_storage_processing_workers: 1 }
    }
}

/// `[reconciliation]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Reconciliation {
    /// 0 disables the reconciler.
    pub scheduling_interval: GoDuration,
    pub histogram_buckets: Vec<f64>,
}

impl Default for Reconciliation {
    fn default() -> Self {
        Self {
            scheduling_interval: GoDuration(Duration::from_secs(300)),
            histogram_buckets: vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        }
    }
}

/// `[background_verification]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct BackgroundVerification {
    /// 0 or negative disables the verifier.
    pub verification_interval: GoDuration,
    pub delete_invalid_records: bool,
}

impl Default for BackgroundVerification {
    fn default() -> Self {
        Self { verification_interval: GoDuration(Duration::from_secs(7 * 24 * 3600)), delete_invalid_records: true }
    }
}

/// `[repositories_cleanup]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RepositoriesCleanup {
    pub check_interval: GoDuration,
    pub run_interval: GoDuration,
    pub repositories_in_batch: u32,
}

impl Default for RepositoriesCleanup {
    fn default() -> Self {
        Self {
            check_interval: GoDuration(Duration::from_secs(30 * 60)),
            run_interval: GoDuration(Duration::from_secs(24 * 3600)),
            repositories_in_batch: 16,
        }
    }
}

/// `[yamux]` (accepted for compatibility; the backchannel uses yamux's own window).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Yamux {
    pub maximum_stream_window_size_bytes: u32,
    pub accept_backlog: u32,
}

impl Default for Yamux {
    fn default() -> Self {
        Self { maximum_stream_window_size_bytes: 262_144, accept_backlog: 256 }
    }
}

pub use cairn_node::config::LoadError;

/// A decoded router config and the unknown-key warnings decoding produced.
pub type Loaded = cairn_node::config::Loaded<Config>;

impl Config {
    pub fn load(path: &Path) -> Result<Loaded, LoadError> {
        cairn_node::config::load_file(path)
    }

    pub fn from_toml(text: &str) -> Result<Loaded, String> {
        cairn_node::config::decode(text)
    }

    pub fn graceful_stop_timeout(&self) -> Duration {
        self.graceful_stop_timeout.map_or(Duration::from_secs(60), GoDuration::get)
    }

    pub fn virtual_storage(&self, name: &str) -> Option<&VirtualStorage> {
        self.virtual_storages.iter().find(|v| v.name == name)
    }

    /// This router's identity in `node_status`: the configured name, else
    /// `hostname:first listener` as upstream.
    pub fn router_name(&self) -> String {
        if let Some(name) = self.name.as_ref().filter(|n| !n.is_empty()) {
            return name.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".to_owned());
        let listener = self
            .listen_addr
            .clone()
            .or_else(|| self.socket_path.as_ref().map(|p| p.display().to_string()))
            .or_else(|| self.tls_listen_addr.clone())
            .unwrap_or_default();
        format!("{host}:{listener}")
    }

    /// Checks the whole config; every problem comes back with its key path.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        if self.listen_addr.is_none() && self.socket_path.is_none() && self.tls_listen_addr.is_none() {
            errors.push("", "no listen address: set listen_addr, tls_listen_addr or socket_path");
        }
        if let Some(addr) = &self.listen_addr {
            errors.listen_addr("listen_addr", addr.strip_prefix("tcp://").unwrap_or(addr));
        }
        if let Some(addr) = &self.tls_listen_addr {
            errors.listen_addr("tls_listen_addr", addr.strip_prefix("tls://").unwrap_or(addr));
            match &self.tls {
                None => errors.push("tls", "tls_listen_addr is set but [tls] is missing"),
                Some(tls) => {
                    errors.file_exists("tls.certificate_path", &tls.certificate_path);
                    match (&tls.key_path, &tls.key) {
                        (Some(_), Some(_)) => errors.push("tls.key", "set key_path or key, not both"),
                        (None, None) => errors.push("tls.key_path", "not set"),
                        (Some(p), None) => errors.file_exists("tls.key_path", p),
                        (None, Some(_)) => {}
                    }
                }
            }
        }
        if let Some(addr) = &self.prometheus_listen_addr {
            errors.listen_addr("prometheus_listen_addr", addr);
        }
        if self.memory_queue_enabled {
            errors.push("memory_queue_enabled", "Cairn keeps its queue in PostgreSQL only; remove this key");
        }
        let strategy = self.failover.election_strategy.as_str();
        if !matches!(strategy, "" | "per_repository" | "sql" | "local") {
            errors.push("failover.election_strategy", format!("{strategy:?} is not one of per_repository, sql, local"));
        }
        if self.failover.health_window() < self.failover.health_check_interval() * 2 {
            errors.push("failover.health_window", "must be at least twice failover.health_check_interval");
        }
        if self.replication.batch_size < 1 {
            errors.push("replication.batch_size", "must be at least 1");
        }
        if self.replication.parallel_storage_processing_workers < 1 {
            errors.push("replication.parallel_storage_processing_workers", "must be at least 1");
        }
        if !self.reconciliation.histogram_buckets.is_sorted() {
            errors.push("reconciliation.histogram_buckets", "must be in ascending order");
        }
        if self.virtual_storages.is_empty() {
            errors.push("virtual_storage", "no virtual storage configured");
        }
        let mut names = std::collections::HashSet::new();
        for (i, vs) in self.virtual_storages.iter().enumerate() {
            let key = format!("virtual_storage.[{i}]");
            if vs.name.is_empty() {
                errors.push(format!("{key}.name"), "not set");
            } else if !names.insert(vs.name.as_str()) {
                errors.push(format!("{key}.name"), format!("virtual storage {:?} is configured twice", vs.name));
            }
            if vs.nodes.is_empty() {
                errors.push(format!("{key}.node"), "no nodes configured");
            }
            if vs.default_replication_factor as usize > vs.nodes.len() {
                errors.push(
                    format!("{key}.default_replication_factor"),
                    format!("{} is more than the {} configured nodes", vs.default_replication_factor, vs.nodes.len()),
                );
            }
            let mut storages = std::collections::HashSet::new();
            for (j, node) in vs.nodes.iter().enumerate() {
                let key = format!("{key}.node.[{j}]");
                if node.storage.is_empty() {
                    errors.push(format!("{key}.storage"), "not set");
                } else if !storages.insert(node.storage.as_str()) {
                    errors.push(format!("{key}.storage"), format!("storage {:?} is listed twice", node.storage));
                }
                if node.address.is_empty() {
                    errors.push(format!("{key}.address"), "not set");
                } else if let Err(e) = cairn_node::client::Address::parse(&node.address) {
                    errors.push(format!("{key}.address"), e.to_string());
                }
            }
        }
        if self.database.dbname.is_empty() {
            errors.push("database.dbname", "not set");
        }
        if self.yamux.maximum_stream_window_size_bytes < 262_144 {
            errors.push("yamux.maximum_stream_window_size_bytes", "must be at least 262144");
        }
        if self.yamux.accept_backlog < 1 {
            errors.push("yamux.accept_backlog", "must be at least 1");
        }
        let cleanup = &self.repositories_cleanup;
        if !cleanup.run_interval.get().is_zero() {
            if cleanup.run_interval.get() < Duration::from_secs(60) {
                errors.push("repositories_cleanup.run_interval", "must be at least 1m (or 0 to disable)");
            }
            if cleanup.check_interval.get() < Duration::from_secs(60) {
                errors.push("repositories_cleanup.check_interval", "must be at least 1m");
            }
        }
        if errors.0.is_empty() { Ok(()) } else { Err(errors) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
listen_addr = "127.0.0.1:2305"
[database]
host = "/run/postgresql"
dbname = "praefect"
[[virtual_storage]]
name = "default"
[[virtual_storage.node]]
storage = "gitaly-1"
address = "tcp://127.0.0.1:8075"
token = "secret"
"#;

    #[test]
    fn minimal_config_is_valid_with_upstream_defaults() {
        let loaded = Config::from_toml(MINIMAL).expect("decodes");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let c = loaded.config;
        c.validate().expect("valid");
        assert_eq!(c.replication.batch_size, 10);
        assert_eq!(c.reconciliation.scheduling_interval.get(), Duration::from_secs(300));
        assert_eq!(c.background_verification.verification_interval.get(), Duration::from_secs(604_800));
        assert_eq!(c.graceful_stop_timeout(), Duration::from_secs(60));
        assert_eq!(c.virtual_storages[0].nodes[0].storage, "gitaly-1");
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let text = r#"
memory_queue_enabled = true
[failover]
election_strategy = "bogus"
[replication]
batch_size = 0
[[virtual_storage]]
name = "a"
default_replication_factor = 3
[[virtual_storage.node]]
storage = "s"
address = "http://x:1"
[[virtual_storage.node]]
storage = "s"
[[virtual_storage]]
name = "a"
"#;
        let c = Config::from_toml(text).expect("decodes").config;
        let errors = c.validate().expect_err("invalid").0;
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        for key in [
            "",
            "memory_queue_enabled",
            "failover.election_strategy",
            "replication.batch_size",
            "virtual_storage.[0].default_replication_factor",
            "virtual_storage.[0].node.[0].address",
            "virtual_storage.[0].node.[1].storage",
            "virtual_storage.[0].node.[1].address",
            "virtual_storage.[1].name",
            "virtual_storage.[1].node",
            "database.dbname",
        ] {
            assert!(keys.contains(&key), "missing {key:?} in {errors:?}");
        }
    }

    #[test]
    fn unknown_keys_warn() {
        let loaded = Config::from_toml(&format!("{MINIMAL}\n[database.session_pooled]\nhost = \"x\"\nbogus = 1\n"))
            .expect("decodes");
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].contains("bogus"));
    }
}
