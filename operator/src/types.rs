//! The `GitalyCluster` custom resource (group `cairn.dev`, version `v1alpha1`).
//!
//! The CEL rules here are what the apiserver enforces on create and update
//! (immutable names and classes, volumes and node counts that may only grow);
//! [`crate::validate`] repeats the checks the operator can make without the
//! old object, so a bad spec also shows up as a `Degraded` condition.

// KubeSchema derives a private shadow type per struct, which trips this lint.
#![allow(unreachable_pub)]

use k8s_openapi::api::core::v1::{Affinity, Container, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Desired state of a Cairn cluster: routers in front of node StatefulSets,
/// one per virtual storage, with their database, TLS and tokens.
// Each printcolumn repeats `type_`, which clippy reads as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cairn.dev",
    version = "v1alpha1",
    kind = "GitalyCluster",
    plural = "gitalyclusters",
    shortname = "gc",
    namespaced,
    status = "GitalyClusterStatus",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Nodes", type_ = "string", json_path = ".status.nodesReady"),
    printcolumn(name = "Routers", type_ = "string", json_path = ".status.routersReady"),
    printcolumn(name = "Replication", type_ = "integer", json_path = ".spec.replicationFactor"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.routerVersion", priority = "1"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.storages.all(s, s.nodes >= self.replicationFactor)")
    .message("replicationFactor must not exceed the node count of any virtual storage"))]
#[x_kube(validation = Rule::new("oldSelf.storages.all(o, self.storages.exists(s, s.name == o.name))")
    .message("a virtual storage cannot be removed: its repositories live on its volumes"))]
pub struct GitalyClusterSpec {
    /// Cairn version to run; the default image tag for nodes and routers.
    /// Changing it upgrades nodes first, then migrates the database, then
    /// rolls the routers.
    #[x_kube(validation = Rule::new("self.matches('^[0-9A-Za-z][0-9A-Za-z.+_-]{0,62}$')")
        .message("version must be a tag-like string, e.g. 18.2.1"))]
    #[schemars(length(max = 63))]
    pub version: String,
    /// Image repositories and tags.
    #[serde(default)]
    pub images: Images,
    /// Virtual storages; each becomes one StatefulSet of storage nodes.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("size(self) >= 1").message("at least one virtual storage is required"))]
    pub storages: Vec<VirtualStorage>,
    /// The routers (praefect) clients connect to.
    #[serde(default)]
    pub routers: Routers,
    /// Copies kept of each repository (the router's default_replication_factor).
    #[serde(default = "default_replication_factor")]
    #[x_kube(validation = Rule::new("self >= 1").message("replicationFactor must be at least 1"))]
    pub replication_factor: u32,
    /// The router's PostgreSQL metadata store.
    pub database: Database,
    /// TLS between clients, routers and nodes.
    #[serde(default)]
    pub tls: Tls,
    /// The shared token clients, routers and nodes authenticate with.
    #[serde(default)]
    pub auth: Auth,
    /// Settings written into every node's config.toml, and node pod extras.
    #[serde(default)]
    pub node: NodeSettings,
}

fn default_replication_factor() -> u32 {
    3
}

/// Where images come from. Tags default to `spec.version`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Images {
    /// Registry and path prepended to `cairn-node`, `cairn-router`
    /// (default `ghcr.io/cairn-dev`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_prefix: Option<String>,
    /// Node image repository, replacing `<prefix>/cairn-node`; the tag is
    /// always `spec.version` (it drives the upgrade order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Router image repository, replacing `<prefix>/cairn-router`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<String>,
    /// Image for the managed database (default `postgres:16`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<String>,
    /// Pull policy for every container (default IfNotPresent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<String>,
    /// Secrets used to pull the images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<String>,
}

/// One virtual storage: a set of identical storage nodes.
#[derive(Deserialize, Serialize, Clone, Debug, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VirtualStorage {
    /// Storage name clients use (e.g. `default`); also part of object names.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$')")
        .message("name must be a DNS label of at most 32 characters"))]
    #[schemars(length(max = 32))]
    pub name: String,
    /// Storage nodes in the set. May grow, never shrink: a removed node's
    /// repositories would be lost to the cluster.
    #[x_kube(validation = Rule::new("self >= 1").message("nodes must be at least 1"))]
    #[x_kube(validation = Rule::new("self >= oldSelf")
        .message("nodes cannot be reduced: move repositories off the storage first"))]
    pub nodes: u32,
    /// Size of each node's volume. May only grow (needs a StorageClass
    /// with allowVolumeExpansion).
    #[x_kube(validation = Rule::new("quantity(self).compareTo(quantity(oldSelf)) >= 0")
        .message("volumeSize can only grow"))]
    #[x_kube(validation = Rule::new("isQuantity(self)").message("volumeSize must be a quantity, e.g. 100Gi"))]
    pub volume_size: String,
    /// StorageClass of the volumes; it must be SSD-backed. Immutable.
    #[serde(default = "default_storage_class")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("storageClassName is immutable"))]
    pub storage_class_name: String,
    /// CPU and memory of each node container (requests == limits recommended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra scheduling constraints; hard pod anti-affinity between the
    /// set's nodes is always added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Whether two nodes of the set may share a Kubernetes node.
    #[serde(default)]
    pub pod_anti_affinity: AntiAffinity,
}

/// Spreading of a set's nodes over Kubernetes nodes.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AntiAffinity {
    /// Never two nodes of a set on one Kubernetes node (production).
    #[default]
    Required,
    /// Spread when possible (small test clusters).
    Preferred,
}

/// The default SSD StorageClass name; clusters name theirs differently, so
/// set it explicitly when yours is not called this.
pub const DEFAULT_STORAGE_CLASS: &str = "ssd";

fn default_storage_class() -> String {
    DEFAULT_STORAGE_CLASS.to_owned()
}

/// Where routers run.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// A Deployment of `replicas` router pods.
    #[default]
    Deployment,
    /// A router container beside each node in the node pods.
    Sidecar,
}

/// The routers.
#[derive(Deserialize, Serialize, Clone, Debug, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Routers {
    /// Router pods (placement `deployment` only).
    #[serde(default = "default_router_replicas")]
    pub replicas: u32,
    #[serde(default)]
    pub placement: Placement,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for Routers {
    fn default() -> Self {
        Self { replicas: default_router_replicas(), placement: Placement::default(), resources: None }
    }
}

fn default_router_replicas() -> u32 {
    2
}

/// The router's database: exactly one of `external` or `managed`.
#[derive(Deserialize, Serialize, Clone, Debug, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.external) != has(self.managed)")
    .message("database needs exactly one of external or managed"))]
pub struct Database {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalDatabase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedDatabase>,
}

/// A PostgreSQL you run. The Secret holds keys `host`, `port`, `user`,
/// `password`, `dbname` and optionally `sslmode`.
#[derive(Deserialize, Serialize, Clone, Debug, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDatabase {
    pub secret_name: String,
}

/// One bundled PostgreSQL StatefulSet, for trying Cairn out (no backups,
/// no failover).
#[derive(Deserialize, Serialize, Clone, Debug, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedDatabase {
    #[serde(default = "default_db_size")]
    pub volume_size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

fn default_db_size() -> String {
    "10Gi".to_owned()
}

/// TLS modes.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain gRPC only.
    #[default]
    Disabled,
    /// The operator runs a CA and issues and renews the serving certificate.
    Managed,
    /// You provide a `kubernetes.io/tls` Secret with `tls.crt`, `tls.key`
    /// and `ca.crt` whose SANs cover the names in docs/operator.md.
    Secret,
}

/// TLS settings.
#[derive(Deserialize, Serialize, Clone, Debug, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode != 'secret' || has(self.secretName)")
    .message("tls.secretName is required when tls.mode is secret"))]
pub struct Tls {
    #[serde(default)]
    pub mode: TlsMode,
    /// Your Secret (mode `secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Lifetime of issued serving certificates (mode `managed`).
    #[serde(default = "default_cert_days")]
    pub certificate_days: u32,
    /// Renew this many days before expiry (mode `managed`).
    #[serde(default = "default_renew_days")]
    pub renew_before_days: u32,
    /// Extra DNS names for the serving certificate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_dns_names: Vec<String>,
}

impl Default for Tls {
    fn default() -> Self {
        Self {
            mode: TlsMode::Disabled,
            secret_name: None,
            certificate_days: default_cert_days(),
            renew_before_days: default_renew_days(),
            extra_dns_names: Vec::new(),
        }
    }
}

fn default_cert_days() -> u32 {
    90
}

fn default_renew_days() -> u32 {
    30
}

/// Authentication.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Auth {
    /// Secret with key `token`; when absent the operator generates
    /// `<cluster>-token` once and never overwrites it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_name: Option<String>,
}

/// Node config.toml settings and node pod extras.
#[derive(Deserialize, Serialize, Clone, Debug, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeSettings {
    /// Seconds a stopping node waits for RPCs (`graceful_restart_timeout`);
    /// the pod's termination grace period is this plus 10.
    #[serde(default = "default_graceful_seconds")]
    pub graceful_shutdown_seconds: u32,
    #[serde(default)]
    pub pack_objects_cache: PackObjectsCache,
    /// Per-RPC, per-repository concurrency limits (`[[concurrency]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub concurrency: Vec<ConcurrencyLimit>,
    /// Bound on concurrent pack-objects per client (`[pack_objects_limiting]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack_objects_max_concurrency: Option<u32>,
    /// GitLab's internal API for hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitlab: Option<GitlabApi>,
    /// Your extra containers in every node pod (log shippers, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<Container>,
}

impl Default for NodeSettings {
    fn default() -> Self {
        Self {
            graceful_shutdown_seconds: default_graceful_seconds(),
            pack_objects_cache: PackObjectsCache::default(),
            concurrency: Vec::new(),
            pack_objects_max_concurrency: None,
            gitlab: None,
            sidecars: Vec::new(),
        }
    }
}

fn default_graceful_seconds() -> u32 {
    25
}

/// `[pack_objects_cache]`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PackObjectsCache {
    #[serde(default)]
    pub enabled: bool,
    /// Seconds an entry lives (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_occurrences: Option<u32>,
    /// Bytes the cache may keep on the volume (default 10 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size_bytes: Option<u64>,
}

/// One `[[concurrency]]` entry.
#[derive(Deserialize, Serialize, Clone, Debug, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConcurrencyLimit {
    /// Full method, e.g. `/gitaly.SmartHTTPService/PostUploadPackWithSidechannel`.
    pub rpc: String,
    pub max_per_repo: u32,
    #[serde(default)]
    pub max_queue_size: u32,
    /// Seconds a call may wait in the queue (0 = forever).
    #[serde(default)]
    pub max_queue_wait_seconds: u32,
}

/// GitLab's internal API, called by hooks on push.
#[derive(Deserialize, Serialize, Clone, Debug, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GitlabApi {
    /// e.g. `http://gitlab-webservice-default.gitlab.svc:8181`.
    pub url: String,
    /// Secret with key `secret` (the gitlab-shell secret).
    pub secret_name: String,
}

/// Observed state.
#[derive(Deserialize, Serialize, Clone, Debug, Default, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GitalyClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Provisioning, Upgrading, Migrating, Ready or Degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Ready, Progressing, Degraded, DatabaseMigrated, CertificatesReady.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Ready nodes over desired nodes, all storages ("3/3").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_ready: Option<String>,
    /// Ready routers over desired routers ("2/2").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routers_ready: Option<String>,
    /// Per virtual storage counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storages: Vec<StorageStatus>,
    /// Version the routers run (they move only after nodes and migration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_version: Option<String>,
    /// Last version whose database migration Job succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrated_version: Option<String>,
    /// Secret GitLab reads to connect (`address`, `token`, `ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_secret: Option<String>,
    /// Expiry of the serving certificate (RFC 3339), mode `managed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_not_after: Option<String>,
}

/// One node StatefulSet's counts.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageStatus {
    pub name: String,
    pub replicas: i32,
    pub ready_replicas: i32,
    pub updated_replicas: i32,
    /// True when every pod runs the current template at `spec.version`.
    pub rolled_out: bool,
}

/// The CRD as YAML, exactly as `crdgen` prints it.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    serde_yaml::to_string(&GitalyCluster::crd())
}
