//! Object names, labels and fixed ports, shared with the Helm chart and e2e
//! (see docs/operator.md): change them only together.

use crate::types::GitalyCluster;
use kube::ResourceExt;
use std::collections::BTreeMap;

/// Node plain gRPC port.
pub const NODE_PORT: i32 = 8075;
/// Node TLS gRPC port.
pub const NODE_TLS_PORT: i32 = 9999;
/// Node Prometheus port.
pub const NODE_METRICS_PORT: i32 = 9236;
/// Router plain gRPC port.
pub const ROUTER_PORT: i32 = 2305;
/// Router TLS gRPC port.
pub const ROUTER_TLS_PORT: i32 = 3305;
/// Router Prometheus port.
pub const ROUTER_METRICS_PORT: i32 = 9652;
/// PostgreSQL port of the managed database.
pub const POSTGRES_PORT: i32 = 5432;

/// The one field manager for every server-side apply.
pub const FIELD_MANAGER: &str = "cairn-operator";
/// Finalizer on GitalyCluster objects.
pub const FINALIZER: &str = "cairn.dev/cleanup";
/// Pod-template annotation: sha256 of the config the pod reads.
pub const CONFIG_HASH: &str = "cairn.dev/config-hash";
/// Pod-template annotation: fingerprint of the serving certificate.
pub const TLS_HASH: &str = "cairn.dev/tls-hash";
/// Pod-template annotation: the version this template runs.
pub const VERSION: &str = "cairn.dev/version";
/// Label on pods that serve the router port (Deployment or sidecar).
pub const ROUTER_LABEL: &str = "cairn.dev/router";
/// Label naming a pod's virtual storage.
pub const STORAGE_LABEL: &str = "cairn.dev/virtual-storage";

/// Kinds of pod, for `app.kubernetes.io/component`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Node,
    Router,
    Database,
    Migration,
}

impl Component {
    fn as_str(self) -> &'static str {
        match self {
            Component::Node => "node",
            Component::Router => "router",
            Component::Database => "database",
            Component::Migration => "migration",
        }
    }
}

/// Names of one cluster's objects.
#[derive(Clone, Debug)]
pub struct Names {
    pub cluster: String,
    pub namespace: String,
}

impl Names {
    pub fn of(gc: &GitalyCluster) -> Self {
        Self { cluster: gc.name_any(), namespace: gc.namespace().unwrap_or_else(|| "default".to_owned()) }
    }

    /// StatefulSet and headless Service of a virtual storage.
    pub fn node_set(&self, vs: &str) -> String {
        format!("{}-{vs}", self.cluster)
    }
    pub fn node_config(&self, vs: &str) -> String {
        format!("{}-{vs}-config", self.cluster)
    }
    /// Storage name (= pod name) of node `i`.
    pub fn node_pod(&self, vs: &str, i: u32) -> String {
        format!("{}-{vs}-{i}", self.cluster)
    }
    /// Stable DNS name of node `i` under its headless Service.
    pub fn node_host(&self, vs: &str, i: u32) -> String {
        format!("{}.{}.{}.svc", self.node_pod(vs, i), self.node_set(vs), self.namespace)
    }
    pub fn router(&self) -> String {
        format!("{}-router", self.cluster)
    }
    pub fn router_config(&self) -> String {
        format!("{}-router-config", self.cluster)
    }
    pub fn router_host(&self) -> String {
        format!("{}.{}.svc", self.router(), self.namespace)
    }
    pub fn token(&self) -> String {
        format!("{}-token", self.cluster)
    }
    pub fn ca(&self) -> String {
        format!("{}-ca", self.cluster)
    }
    pub fn tls(&self) -> String {
        format!("{}-tls", self.cluster)
    }
    pub fn postgres(&self) -> String {
        format!("{}-postgres", self.cluster)
    }
    pub fn gitlab(&self) -> String {
        format!("{}-gitlab", self.cluster)
    }
    /// Migration Job for a router version; one per version, so a new
    /// version always runs its own Job.
    pub fn migration(&self, version: &str) -> String {
        let v: String =
            version.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
        let mut name = format!("{}-migrate-{v}", self.cluster);
        name.truncate(63);
        name.trim_end_matches('-').to_owned()
    }

    /// The labels every object carries.
    pub fn labels(&self, component: Component) -> BTreeMap<String, String> {
        let mut l = self.selector(component);
        l.insert("app.kubernetes.io/managed-by".into(), "cairn-operator".into());
        l
    }

    /// The labels that select a component's pods.
    pub fn selector(&self, component: Component) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".into(), "cairn".into()),
            ("app.kubernetes.io/instance".into(), self.cluster.clone()),
            ("app.kubernetes.io/component".into(), component.as_str().into()),
        ])
    }

    /// Selector of one virtual storage's node pods.
    pub fn node_selector(&self, vs: &str) -> BTreeMap<String, String> {
        let mut l = self.selector(Component::Node);
        l.insert(STORAGE_LABEL.into(), vs.into());
        l
    }

    /// Selector of every pod serving the router port.
    pub fn router_selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".into(), "cairn".into()),
            ("app.kubernetes.io/instance".into(), self.cluster.clone()),
            (ROUTER_LABEL.into(), "true".into()),
        ])
    }
}
