//! Router objects: ConfigMap, Deployment, ClusterIP Service, PDB, and the
//! per-version migration Job.

use super::node::{port, router_container};
use super::{
    Inputs, ROUTER_FILES, ROUTER_METRICS_PORT, ROUTER_PORT, ROUTER_TLS_PORT, container_security, hash, mount,
    pod_security, pull_secrets, render_container, render_volumes, string_map,
};
use crate::names::{self, Component};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, PodTemplateSpec, Service, ServiceSpec};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// The router config (lists every node).
pub fn router_configmap(inputs: &Inputs<'_>) -> ConfigMap {
    let toml = crate::config::router_toml(&inputs.gc.spec, &inputs.names, &inputs.db, &inputs.paths);
    ConfigMap {
        metadata: inputs.meta(inputs.names.router_config(), Component::Router),
        data: Some(BTreeMap::from([("config.toml".to_owned(), toml)])),
        ..ConfigMap::default()
    }
}

/// Router pods at `version`. Surge one pod before stopping one, so clients
/// always have a router.
pub fn router_deployment(inputs: &Inputs<'_>, version: &str) -> Deployment {
    let names = &inputs.names;
    let router_toml = crate::config::router_toml(&inputs.gc.spec, names, &inputs.db, &inputs.paths);
    let mut annotations =
        string_map(&[(names::CONFIG_HASH, hash(&[router_toml.as_str()])), (names::VERSION, version.to_owned())]);
    if let Some(t) = &inputs.tls_hash {
        annotations.insert(names::TLS_HASH.into(), t.clone());
    }
    let mut labels = names.labels(Component::Router);
    labels.insert(names::ROUTER_LABEL.into(), "true".into());
    let files = [(&ROUTER_FILES, names.router_config())];
    Deployment {
        metadata: inputs.meta(names.router(), Component::Router),
        spec: Some(DeploymentSpec {
            replicas: Some(i32::try_from(inputs.gc.spec.routers.replicas).unwrap_or(i32::MAX)),
            selector: LabelSelector {
                match_labels: Some(names.selector(Component::Router)),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    init_containers: Some(vec![render_container(
                        inputs,
                        inputs.node_image(version),
                        &[&ROUTER_FILES],
                        true,
                    )]),
                    containers: vec![router_container(inputs, version)],
                    volumes: Some(render_volumes(inputs, &files, true)),
                    termination_grace_period_seconds: Some(35),
                    automount_service_account_token: Some(false),
                    security_context: Some(pod_security()),
                    image_pull_secrets: pull_secrets(inputs),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The Service GitLab dials; it selects every pod serving the router port.
pub fn router_service(inputs: &Inputs<'_>) -> Service {
    let mut ports = vec![port("grpc", ROUTER_PORT), port("metrics", ROUTER_METRICS_PORT)];
    if inputs.tls() {
        ports.insert(1, port("grpc-tls", ROUTER_TLS_PORT));
    }
    Service {
        metadata: inputs.meta(inputs.names.router(), Component::Router),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(inputs.names.router_selector()),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

pub fn router_pdb(inputs: &Inputs<'_>) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: inputs.meta(inputs.names.router(), Component::Router),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(inputs.names.selector(Component::Router)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// `praefect sql-migrate` with the new router image, once per version. The
/// pod template has no config hash: a Job's template is immutable, and the
/// Job reads the current ConfigMap when it runs anyway.
pub fn migration_job(inputs: &Inputs<'_>, version: &str) -> Job {
    let names = &inputs.names;
    let files = [(&ROUTER_FILES, names.router_config())];
    let mut migrate = Container {
        name: "migrate".into(),
        image: Some(inputs.router_image(version)),
        image_pull_policy: Some(inputs.pull_policy()),
        command: Some(vec![
            "/usr/local/bin/praefect".into(),
            "-config".into(),
            "/etc/praefect/config.toml".into(),
            "sql-migrate".into(),
        ]),
        volume_mounts: Some(vec![mount("router-config", "/etc/praefect", true)]),
        security_context: Some(container_security()),
        ..Container::default()
    };
    if inputs.tls() {
        migrate.volume_mounts.get_or_insert_with(Vec::new).push(super::tls_mount());
    }
    let mut meta = inputs.meta(names.migration(version), Component::Migration);
    meta.annotations = Some(string_map(&[(names::VERSION, version.to_owned())]));
    Job {
        metadata: meta,
        spec: Some(JobSpec {
            backoff_limit: Some(2),
            active_deadline_seconds: Some(600),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names.labels(Component::Migration)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    init_containers: Some(vec![render_container(
                        inputs,
                        inputs.node_image(version),
                        &[&ROUTER_FILES],
                        true,
                    )]),
                    containers: vec![migrate],
                    volumes: Some(render_volumes(inputs, &files, true)),
                    automount_service_account_token: Some(false),
                    security_context: Some(pod_security()),
                    image_pull_secrets: pull_secrets(inputs),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}
