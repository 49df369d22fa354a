//! The node's config.toml, with Gitaly's keys.
//!
//! Loading is two steps: [`Config::from_toml`] decodes the file (collecting a
//! warning for every key it does not know, because operators roll out config
//! and binaries separately), then [`Config::validate`] checks it and reports
//! every problem with its dotted key path (`storage.[1].path: ...`).

mod duration;
mod validate;

pub use duration::{GoDuration, ParseDurationError};
pub use validate::{ValidationError, ValidationErrors};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything config.toml can say. Field names follow upstream's TOML keys.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    /// Executable whose JSON output is merged over the file (upstream feature).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_command: Option<PathBuf>,
    /// Unix socket to serve gRPC on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<PathBuf>,
    /// Plain TCP address to serve gRPC on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_addr: Option<String>,
    /// TCP address to serve gRPC over TLS on; needs `[tls]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_listen_addr: Option<String>,
    /// HTTP address for `/metrics`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus_listen_addr: Option<String>,
    /// Where helper executables (gitaly-hooks, gitaly-ssh) live. Defaults to
    /// the directory of the running `gitaly` binary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<PathBuf>,
    /// Parent of the per-process runtime directory. Defaults to a temp dir.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_dir: Option<PathBuf>,
    /// How long a graceful shutdown waits for in-flight RPCs.
    pub graceful_restart_timeout: Option<GoDuration>,
    pub auth: Auth,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    #[serde(rename = "storage")]
    pub storages: Vec<Storage>,
    pub logging: Logging,
    pub prometheus: Prometheus,
    pub git: Git,
    pub hooks: Hooks,
    pub gitlab: Gitlab,
    #[serde(rename = "gitlab-shell")]
    pub gitlab_shell: GitlabShell,
    pub concurrency: Vec<Concurrency>,
    pub rate_limiting: Vec<RateLimiting>,
    pub pack_objects_cache: PackObjectsCache,
    pub pack_objects_limiting: PackObjectsLimiting,
    pub timeout: Timeouts,
    pub daily_maintenance: DailyMaintenance,
    pub backup: Backup,
    pub transactions: Transactions,
    pub adaptive_limiting: AdaptiveLimiting,
    /// cgroups are accepted so existing files load, but Cairn does not manage
    /// cgroups; in Kubernetes the pod's limits play that role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroups: Option<toml::Table>,
}

/// `[auth]`: the shared secret clients sign tokens with.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Auth {
    /// Empty disables authentication.
    pub token: String,
    /// Check tokens and count the outcome, but never reject (token rollout).
    pub transitioning: bool,
}

/// `[tls]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Tls {
    pub certificate_path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_path: Option<PathBuf>,
    /// The key inline as PEM, instead of `key_path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// `[[storage]]`: a named directory of repositories.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct Storage {
    pub name: String,
    pub path: PathBuf,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[logging]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Logging {
    /// `text` or `json` (a string, so a typo is a validation error with its
    /// key rather than a parse failure of the whole file).
    pub format: String,
    /// `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// Directory for helper logs (gitaly_hooks.log). The server logs to stdout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentry_dsn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentry_environment: Option<String>,
}

impl Default for Logging {
    fn default() -> Self {
        Self {
            format: "text".to_owned(),
            level: "info".to_owned(),
            dir: None,
            sentry_dsn: None,
            sentry_environment: None,
        }
    }
}

impl Logging {
    /// The configured format; anything but `json` logs text.
    pub fn log_format(&self) -> LogFormat {
        if self.format.eq_ignore_ascii_case("json") { LogFormat::Json } else { LogFormat::Text }
    }
}

/// `[prometheus]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Prometheus {
    pub scrape_timeout: GoDuration,
    /// Buckets of `grpc_server_handling_seconds`, in seconds.
    pub grpc_latency_buckets: Vec<f64>,
}

impl Default for Prometheus {
    fn default() -> Self {
        Self {
            scrape_timeout: GoDuration(Duration::from_secs(10)),
            grpc_latency_buckets: vec![0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 10.0, 30.0, 60.0, 300.0, 1500.0],
        }
    }
}

/// `[git]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Git {
    /// The git executable; defaults to `git` on PATH.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bin_path: Option<PathBuf>,
    pub use_bundled_binaries: bool,
    pub catfile_cache_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub committer_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub committer_email: Option<String>,
    /// Extra `-c key=value` for every git command.
    pub config: Vec<GitConfigEntry>,
}

/// One `[[git.config]]` entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct GitConfigEntry {
    pub key: String,
    pub value: String,
}

/// `[hooks]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Hooks {
    /// Global custom hooks (`<dir>/<hook>.d/*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_hooks_dir: Option<PathBuf>,
}

/// `[gitlab]`: GitLab's internal API, called from hooks.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Gitlab {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relative_url_root: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    #[serde(rename = "http-settings")]
    pub http_settings: GitlabHttpSettings,
}

/// `[gitlab.http-settings]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct GitlabHttpSettings {
    pub read_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_path: Option<PathBuf>,
    pub self_signed_cert: bool,
}

/// `[gitlab-shell]`: deprecated source of the secret and hooks defaults.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct GitlabShell {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
}

/// One `[[concurrency]]` limit: per RPC, per repository.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Concurrency {
    /// Full method name, `/gitaly.SmartHTTPService/PostUploadPackWithSidechannel`.
    pub rpc: String,
    /// Concurrent calls allowed per repository; 0 means unlimited.
    pub max_per_repo: i64,
    /// Calls allowed to wait per repository; 0 means unbounded.
    pub max_queue_size: i64,
    /// How long a call may wait; 0 means forever.
    pub max_queue_wait: GoDuration,
    pub adaptive: bool,
    pub min_limit: i64,
    pub max_limit: i64,
    pub initial_limit: i64,
}

/// One `[[rate_limiting]]` entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RateLimiting {
    pub rpc: String,
    pub interval: GoDuration,
    pub burst: i64,
}

/// `[pack_objects_cache]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct PackObjectsCache {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    pub max_age: Option<GoDuration>,
    pub min_occurrences: Option<i64>,
    /// Cairn extension: bound on the bytes the cache keeps on disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
}

impl PackObjectsCache {
    /// Upstream's default `max_age`.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5 * 60);
    /// Default `max_size` (Cairn extension): 10 GiB.
    pub const DEFAULT_MAX_SIZE: u64 = 10 << 30;

    /// `max_age`, defaulting to 5 minutes as upstream (0 also means default).
    pub fn max_age(&self) -> Duration {
        self.max_age.map(GoDuration::get).filter(|d| !d.is_zero()).unwrap_or(Self::DEFAULT_MAX_AGE)
    }

    /// `min_occurrences`, defaulting to 1 as upstream.
    pub fn min_occurrences(&self) -> u64 {
        self.min_occurrences.map_or(1, |n| u64::try_from(n).unwrap_or(0))
    }

    /// `max_size`, defaulting to [`Self::DEFAULT_MAX_SIZE`].
    pub fn max_size(&self) -> u64 {
        self.max_size.unwrap_or(Self::DEFAULT_MAX_SIZE)
    }
}

/// `[pack_objects_limiting]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct PackObjectsLimiting {
    pub max_concurrency: Option<i64>,
    pub max_queue_length: Option<i64>,
    pub max_queue_wait: Option<GoDuration>,
    pub adaptive: bool,
    pub min_limit: i64,
    pub max_limit: i64,
    pub initial_limit: i64,
}

/// `[timeout]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Timeouts {
    pub upload_pack_negotiation: Option<GoDuration>,
    pub upload_archive_negotiation: Option<GoDuration>,
}

/// `[daily_maintenance]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct DailyMaintenance {
    pub start_hour: u32,
    pub start_minute: u32,
    pub duration: Option<GoDuration>,
    pub storages: Vec<String>,
    pub disabled: bool,
}

/// `[backup]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Backup {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub go_cloud_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
}

/// `[transactions]`: upstream's experimental write-ahead log. Accepted, unused.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Transactions {
    pub enabled: bool,
}

/// `[adaptive_limiting]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct AdaptiveLimiting {
    pub cpu_throttled_threshold: f64,
    pub memory_threshold: f64,
}

/// Why a config file could not be loaded at all (as opposed to validated).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("read config file {path:?}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse config file {path:?}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// A decoded config plus the warnings decoding produced (the router's
/// config is loaded the same way).
#[derive(Debug, Clone)]
pub struct Loaded<C = Config> {
    pub config: C,
    /// One line per unknown key, naming its path.
    pub warnings: Vec<String>,
}

/// Reads and decodes a TOML config file (no validation).
pub fn load_file<C: serde::de::DeserializeOwned>(path: &Path) -> Result<Loaded<C>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
    decode(&text).map_err(|message| LoadError::Parse { path: path.to_owned(), message })
}

/// Decodes TOML config text, warning about unknown keys instead of failing:
/// operators roll out config and binaries separately.
pub fn decode<C: serde::de::DeserializeOwned>(text: &str) -> Result<Loaded<C>, String> {
    let de = toml::Deserializer::parse(text).map_err(|e| e.to_string())?;
    let mut unknown = Vec::new();
    let config: C = serde_ignored::deserialize(de, |path| unknown.push(path.to_string()))
        .map_err(|e: toml::de::Error| e.to_string())?;
    let warnings = unknown.into_iter().map(|k| format!("unknown configuration key {k:?} ignored")).collect();
    Ok(Loaded { config, warnings })
}

impl Config {
    /// Reads and decodes `path` (no validation).
    pub fn load(path: &Path) -> Result<Loaded, LoadError> {
        load_file(path)
    }

    /// Decodes config text, warning about unknown keys instead of failing.
    pub fn from_toml(text: &str) -> Result<Loaded, String> {
        decode(text)
    }

    /// The git executable to run.
    pub fn git_binary(&self) -> PathBuf {
        self.git.bin_path.clone().unwrap_or_else(|| PathBuf::from("git"))
    }

    /// How long shutdown waits for in-flight RPCs (upstream default 1m).
    pub fn graceful_restart_timeout(&self) -> Duration {
        self.graceful_restart_timeout.map_or(Duration::from_secs(60), GoDuration::get)
    }

    /// The storage called `name`.
    pub fn storage(&self, name: &str) -> Option<&Storage> {
        self.storages.iter().find(|s| s.name == name)
    }

    /// The secret for GitLab's internal API, read from `secret` or the secret
    /// file (default `<gitlab-shell.dir>/.gitlab_shell_secret`).
    pub fn gitlab_secret_file(&self) -> Option<PathBuf> {
        if self.gitlab.secret.is_some() {
            return None;
        }
        self.gitlab
            .secret_file
            .clone()
            .or_else(|| self.gitlab_shell.dir.as_ref().map(|d| d.join(".gitlab_shell_secret")))
    }

    /// The pack-objects cache directory: `dir`, or upstream's default
    /// `<first storage>/+gitaly/PackObjectsCache`.
    pub fn pack_objects_cache_dir(&self) -> Option<PathBuf> {
        self.pack_objects_cache
            .dir
            .clone()
            .or_else(|| self.storages.first().map(|s| s.path.join("+gitaly").join("PackObjectsCache")))
    }

    /// Global custom hooks directory, defaulting to `<gitlab-shell.dir>/hooks`.
    pub fn custom_hooks_dir(&self) -> Option<PathBuf> {
        self.hooks.custom_hooks_dir.clone().or_else(|| self.gitlab_shell.dir.as_ref().map(|d| d.join("hooks")))
    }
}

#[cfg(test)]
mod tests;
