//! Pure builders: validated spec plus resolved inputs in, Kubernetes objects
//! out. No client here, so every object is testable with golden files.

mod node;
mod router;
mod support;

pub use node::{node_configmap, node_pdb, node_service, node_statefulset};
pub use router::{migration_job, router_configmap, router_deployment, router_pdb, router_service};
pub use support::{
    ca_secret, gitlab_secret, postgres_secret, postgres_service, postgres_statefulset, tls_secret, token_secret,
};

use crate::config::{DbConn, Paths};
use crate::names::{self, Component, Names};
use crate::types::{GitalyCluster, TlsMode};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ObjectFieldSelector,
    PodSecurityContext, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Everything the builders need beyond the spec, resolved by reconcile.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    pub gc: &'a GitalyCluster,
    pub names: Names,
    pub db: DbConn,
    /// Fingerprint of the serving certificate; its change rolls pods
    /// (the servers read certificates at start).
    pub tls_hash: Option<String>,
    /// Version the routers run now; `None` before the first migration.
    pub router_version: Option<String>,
    pub paths: Paths,
}

impl<'a> Inputs<'a> {
    pub fn new(gc: &'a GitalyCluster, db: DbConn) -> Self {
        Self { gc, names: Names::of(gc), db, tls_hash: None, router_version: None, paths: Paths::default() }
    }

    fn tls(&self) -> bool {
        self.gc.spec.tls.mode != TlsMode::Disabled
    }

    /// Metadata with name, namespace, labels and the controller owner reference.
    fn meta(&self, name: String, component: Component) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.names.namespace.clone()),
            labels: Some(self.names.labels(component)),
            owner_references: self.gc.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        }
    }

    fn image(&self, which: &str, repo: Option<&String>, version: &str) -> String {
        let prefix = self.gc.spec.images.repository_prefix.as_deref().unwrap_or("ghcr.io/cairn-dev");
        match repo {
            Some(r) => format!("{r}:{version}"),
            None => format!("{prefix}/{which}:{version}"),
        }
    }

    pub fn node_image(&self, version: &str) -> String {
        self.image("cairn-node", self.gc.spec.images.node.as_ref(), version)
    }

    pub fn router_image(&self, version: &str) -> String {
        self.image("cairn-router", self.gc.spec.images.router.as_ref(), version)
    }

    fn pull_policy(&self) -> String {
        self.gc.spec.images.pull_policy.clone().unwrap_or_else(|| "IfNotPresent".to_owned())
    }

    fn token_secret_name(&self) -> String {
        self.gc.spec.auth.token_secret_name.clone().unwrap_or_else(|| self.names.token())
    }

    fn tls_secret_name(&self) -> String {
        self.gc
            .spec
            .tls
            .secret_name
            .clone()
            .filter(|_| self.gc.spec.tls.mode == TlsMode::Secret)
            .unwrap_or_else(|| self.names.tls())
    }

    fn db_secret_name(&self) -> String {
        match &self.gc.spec.database.external {
            Some(e) => e.secret_name.clone(),
            None => self.names.postgres(),
        }
    }
}

/// Hex sha256 of some text, for pod-template annotations.
pub fn hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

pub(crate) fn string_map(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

/// The pod security settings every Cairn pod uses: uid 1000, and no
/// recursive chown of millions of repository files on each start.
fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_user: Some(1000),
        run_as_group: Some(1000),
        fs_group: Some(1000),
        fs_group_change_policy: Some("OnRootMismatch".into()),
        run_as_non_root: Some(true),
        ..PodSecurityContext::default()
    }
}

fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Capabilities::default() }),
        ..SecurityContext::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount { name: name.into(), mount_path: path.into(), read_only: Some(read_only), ..VolumeMount::default() }
}

fn secret_volume(name: &str, secret: String) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource { secret_name: Some(secret), ..SecretVolumeSource::default() }),
        ..Volume::default()
    }
}

fn configmap_volume(name: &str, cm: String) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource { name: cm, ..ConfigMapVolumeSource::default() }),
        ..Volume::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume { name: name.into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Volume::default() }
}

fn pod_name_env() -> EnvVar {
    EnvVar {
        name: "POD_NAME".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.name".into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// One rendered config file: template volume, output volume and paths.
struct Rendered {
    template_volume: &'static str,
    template_dir: &'static str,
    out_volume: &'static str,
    out_dir: &'static str,
}

const NODE_FILES: Rendered = Rendered {
    template_volume: "node-config-template",
    template_dir: "/etc/cairn/node-template",
    out_volume: "node-config",
    out_dir: "/etc/gitaly",
};
const ROUTER_FILES: Rendered = Rendered {
    template_volume: "router-config-template",
    template_dir: "/etc/cairn/router-template",
    out_volume: "router-config",
    out_dir: "/etc/praefect",
};

/// The `render-config` init container: fills the placeholders of each
/// template from the pod name and the mounted token and database Secrets.
/// It runs the node image because that image has /bin/sh and sed (git
/// needs them); `image` is chosen by the caller so a router pod does not
/// change when only the node version does.
fn render_container(inputs: &Inputs<'_>, image: String, files: &[&Rendered], db: bool) -> Container {
    let mut script = String::new();
    let mut mounts = vec![mount("token", "/etc/cairn/token", true)];
    if db {
        mounts.push(mount("db", "/etc/cairn/db", true));
    }
    for f in files {
        script.push_str(&crate::config::render_script(
            &format!("{}/config.toml", f.template_dir),
            &format!("{}/config.toml", f.out_dir),
        ));
        mounts.push(mount(f.template_volume, f.template_dir, true));
        mounts.push(mount(f.out_volume, f.out_dir, false));
    }
    Container {
        name: "render-config".into(),
        image: Some(image),
        image_pull_policy: Some(inputs.pull_policy()),
        command: Some(vec!["/bin/sh".into(), "-c".into(), script]),
        env: Some(vec![pod_name_env()]),
        volume_mounts: Some(mounts),
        security_context: Some(container_security()),
        ..Container::default()
    }
}

/// Volumes for [`render_container`] plus TLS.
fn render_volumes(inputs: &Inputs<'_>, files: &[(&Rendered, String)], db: bool) -> Vec<Volume> {
    let mut v = vec![secret_volume("token", inputs.token_secret_name())];
    if db {
        v.push(secret_volume("db", inputs.db_secret_name()));
    }
    for (f, cm) in files {
        v.push(configmap_volume(f.template_volume, cm.clone()));
        v.push(empty_dir(f.out_volume));
    }
    if inputs.tls() {
        v.push(secret_volume("tls", inputs.tls_secret_name()));
    }
    v
}

fn tls_mount() -> VolumeMount {
    mount("tls", "/etc/cairn/tls", true)
}

pub(crate) fn pull_secrets(inputs: &Inputs<'_>) -> Option<Vec<k8s_openapi::api::core::v1::LocalObjectReference>> {
    let s = &inputs.gc.spec.images.pull_secrets;
    (!s.is_empty())
        .then(|| s.iter().map(|n| k8s_openapi::api::core::v1::LocalObjectReference { name: n.clone() }).collect())
}

pub(crate) use names::{
    NODE_METRICS_PORT, NODE_PORT, NODE_TLS_PORT, ROUTER_METRICS_PORT, ROUTER_PORT, ROUTER_TLS_PORT,
};
