//! The node and router `config.toml` files, written from the operator's
//! own small typed model (the operator must not link the servers; a test
//! loads what it writes with the real loaders).
//!
//! Secrets never enter the ConfigMaps: the files carry placeholders that a
//! `render-config` init container replaces from mounted Secret files and the
//! pod name (see [`PLACEHOLDERS`]), so one ConfigMap serves every ordinal.

use crate::names::{self, Names};
use crate::types::{GitalyClusterSpec, TlsMode};
use serde::Serialize;
use std::path::PathBuf;

/// Replaced at pod start by the pod name (the node's storage name, the
/// router's identity).
pub const POD_NAME: &str = "@@POD_NAME@@";
/// Replaced by the auth token.
pub const TOKEN: &str = "@@TOKEN@@";
/// Replaced by the database password.
pub const DB_PASSWORD: &str = "@@DB_PASSWORD@@";
/// Every placeholder, for the render script and tests.
pub const PLACEHOLDERS: [&str; 3] = [POD_NAME, TOKEN, DB_PASSWORD];

/// Where files are inside the pods. Tests point these at a temp dir so the
/// real loaders' file checks pass.
#[derive(Clone, Debug)]
pub struct Paths {
    pub storage: PathBuf,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub git: PathBuf,
    pub gitlab_secret: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            storage: "/var/opt/gitaly".into(),
            tls_cert: "/etc/cairn/tls/tls.crt".into(),
            tls_key: "/etc/cairn/tls/tls.key".into(),
            git: "/usr/bin/git".into(),
            gitlab_secret: "/etc/cairn/gitlab/secret".into(),
        }
    }
}

/// Database settings that go into the router file (the password is a placeholder).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DbConn {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub sslmode: String,
}

#[derive(Serialize)]
struct NodeFile {
    listen_addr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_listen_addr: Option<String>,
    prometheus_listen_addr: String,
    graceful_restart_timeout: String,
    auth: AuthT,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<TlsT>,
    storage: Vec<StorageT>,
    logging: LoggingT,
    git: GitT,
    #[serde(skip_serializing_if = "Option::is_none")]
    gitlab: Option<GitlabT>,
    pack_objects_cache: PackCacheT,
    #[serde(skip_serializing_if = "Option::is_none")]
    pack_objects_limiting: Option<PackLimitT>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    concurrency: Vec<ConcurrencyT>,
}

#[derive(Serialize)]
struct AuthT {
    token: String,
}
#[derive(Serialize)]
struct TlsT {
    certificate_path: PathBuf,
    key_path: PathBuf,
}
#[derive(Serialize)]
struct StorageT {
    name: String,
    path: PathBuf,
}
#[derive(Serialize)]
struct LoggingT {
    format: String,
    level: String,
}
#[derive(Serialize)]
struct GitT {
    bin_path: PathBuf,
}
#[derive(Serialize)]
struct GitlabT {
    url: String,
    secret_file: PathBuf,
}
#[derive(Serialize)]
struct PackCacheT {
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_age: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_occurrences: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_size: Option<u64>,
}
#[derive(Serialize)]
struct PackLimitT {
    max_concurrency: u32,
}
#[derive(Serialize)]
struct ConcurrencyT {
    rpc: String,
    max_per_repo: u32,
    max_queue_size: u32,
    max_queue_wait: String,
}

/// The node config.toml of every node in the cluster. It holds no
/// per-ordinal data and no node count, so scaling never changes it (and
/// never rolls node pods).
pub fn node_toml(spec: &GitalyClusterSpec, paths: &Paths) -> String {
    let tls = spec.tls.mode != TlsMode::Disabled;
    let n = &spec.node;
    let file = NodeFile {
        listen_addr: format!("0.0.0.0:{}", names::NODE_PORT),
        tls_listen_addr: tls.then(|| format!("0.0.0.0:{}", names::NODE_TLS_PORT)),
        prometheus_listen_addr: format!("0.0.0.0:{}", names::NODE_METRICS_PORT),
        graceful_restart_timeout: format!("{}s", n.graceful_shutdown_seconds),
        auth: AuthT { token: TOKEN.into() },
        tls: tls.then(|| TlsT { certificate_path: paths.tls_cert.clone(), key_path: paths.tls_key.clone() }),
        storage: vec![StorageT { name: POD_NAME.into(), path: paths.storage.clone() }],
        logging: LoggingT { format: "json".into(), level: "info".into() },
        git: GitT { bin_path: paths.git.clone() },
        gitlab: n.gitlab.as_ref().map(|g| GitlabT { url: g.url.clone(), secret_file: paths.gitlab_secret.clone() }),
        pack_objects_cache: PackCacheT {
            enabled: n.pack_objects_cache.enabled,
            max_age: n.pack_objects_cache.max_age_seconds.map(|s| format!("{s}s")),
            min_occurrences: n.pack_objects_cache.min_occurrences,
            max_size: n.pack_objects_cache.max_size_bytes,
        },
        pack_objects_limiting: n.pack_objects_max_concurrency.map(|max_concurrency| PackLimitT { max_concurrency }),
        concurrency: n
            .concurrency
            .iter()
            .map(|c| ConcurrencyT {
                rpc: c.rpc.clone(),
                max_per_repo: c.max_per_repo,
                max_queue_size: c.max_queue_size,
                max_queue_wait: format!("{}s", c.max_queue_wait_seconds),
            })
            .collect(),
    };
    to_toml(&file)
}

#[derive(Serialize)]
struct RouterFile {
    name: String,
    listen_addr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_listen_addr: Option<String>,
    prometheus_listen_addr: String,
    graceful_stop_timeout: String,
    auth: AuthT,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<TlsT>,
    logging: LoggingT,
    failover: FailoverT,
    database: DatabaseT,
    virtual_storage: Vec<VirtualStorageT>,
}
#[derive(Serialize)]
struct FailoverT {
    enabled: bool,
    election_strategy: String,
}
#[derive(Serialize)]
struct DatabaseT {
    host: String,
    port: u16,
    user: String,
    password: String,
    dbname: String,
    sslmode: String,
}
#[derive(Serialize)]
struct VirtualStorageT {
    name: String,
    default_replication_factor: u32,
    node: Vec<NodeT>,
}
#[derive(Serialize)]
struct NodeT {
    storage: String,
    address: String,
    token: String,
}

/// The router config.toml. It lists every node, so a node scale changes it
/// and rolls the routers (they read their node list at start); routers are
/// stateless, so that roll is cheap and keeps nodes untouched.
pub fn router_toml(spec: &GitalyClusterSpec, names: &Names, db: &DbConn, paths: &Paths) -> String {
    let tls = spec.tls.mode != TlsMode::Disabled;
    let file = RouterFile {
        name: POD_NAME.into(),
        listen_addr: format!("0.0.0.0:{}", names::ROUTER_PORT),
        tls_listen_addr: tls.then(|| format!("0.0.0.0:{}", names::ROUTER_TLS_PORT)),
        prometheus_listen_addr: format!("0.0.0.0:{}", names::ROUTER_METRICS_PORT),
        graceful_stop_timeout: "25s".into(),
        auth: AuthT { token: TOKEN.into() },
        tls: tls.then(|| TlsT { certificate_path: paths.tls_cert.clone(), key_path: paths.tls_key.clone() }),
        logging: LoggingT { format: "json".into(), level: "info".into() },
        failover: FailoverT { enabled: true, election_strategy: "per_repository".into() },
        database: DatabaseT {
            host: db.host.clone(),
            port: db.port,
            user: db.user.clone(),
            password: DB_PASSWORD.into(),
            dbname: db.dbname.clone(),
            sslmode: db.sslmode.clone(),
        },
        virtual_storage: spec
            .storages
            .iter()
            .map(|vs| VirtualStorageT {
                name: vs.name.clone(),
                default_replication_factor: spec.replication_factor.min(vs.nodes),
                node: (0..vs.nodes)
                    .map(|i| NodeT {
                        storage: names.node_pod(&vs.name, i),
                        address: if tls {
                            format!("tls://{}:{}", names.node_host(&vs.name, i), names::NODE_TLS_PORT)
                        } else {
                            format!("tcp://{}:{}", names.node_host(&vs.name, i), names::NODE_PORT)
                        },
                        token: TOKEN.into(),
                    })
                    .collect(),
            })
            .collect(),
    };
    to_toml(&file)
}

fn to_toml<T: Serialize>(file: &T) -> String {
    // Every field is a string, number, bool or table of those: always encodable.
    toml::to_string(file).expect("config model serializes to TOML")
}

/// What the render init container does: replace each placeholder. Used by
/// tests to produce the file a pod would read.
pub fn render(template: &str, pod_name: &str, token: &str, db_password: &str) -> String {
    template.replace(POD_NAME, pod_name).replace(TOKEN, token).replace(DB_PASSWORD, db_password)
}

/// Shell run by the `render-config` init container: copies the template,
/// substituting placeholders from the pod name and mounted Secret files.
/// Values are restricted by [`crate::validate::secret_value_ok`] so they
/// need no escaping in sed.
pub fn render_script(template: &str, out: &str) -> String {
    format!(
        "set -eu\n\
         token=$(cat /etc/cairn/token/token)\n\
         dbpw=$(cat /etc/cairn/db/password 2>/dev/null || true)\n\
         sed -e \"s|{POD_NAME}|$POD_NAME|g\" -e \"s|{TOKEN}|$token|g\" -e \"s|{DB_PASSWORD}|$dbpw|g\" {template} > {out}\n"
    )
}
