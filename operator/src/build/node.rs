//! Node objects, one set per virtual storage: ConfigMap, headless Service,
//! StatefulSet and PodDisruptionBudget.

use super::{
    Inputs, NODE_FILES, NODE_METRICS_PORT, NODE_PORT, NODE_TLS_PORT, ROUTER_FILES, ROUTER_METRICS_PORT, ROUTER_PORT,
    ROUTER_TLS_PORT, container_security, hash, mount, pod_security, pull_secrets, render_container, render_volumes,
    string_map, tls_mount,
};
use crate::names::{self, Component};
use crate::types::{AntiAffinity, Placement, VirtualStorage};
use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, Container, ContainerPort, ExecAction, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodAffinityTerm, PodAntiAffinity, PodSpec, PodTemplateSpec, Probe, Service, ServicePort, ServiceSpec,
    TCPSocketAction, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// The node config of one virtual storage (identical for every ordinal).
pub fn node_configmap(inputs: &Inputs<'_>, vs: &VirtualStorage) -> ConfigMap {
    let toml = crate::config::node_toml(&inputs.gc.spec, &inputs.paths);
    ConfigMap {
        metadata: inputs.meta(inputs.names.node_config(&vs.name), Component::Node),
        data: Some(BTreeMap::from([("config.toml".to_owned(), toml)])),
        ..ConfigMap::default()
    }
}

/// Headless Service giving each node a stable DNS name. Not-ready nodes
/// stay resolvable: routers do their own health checks and failover.
pub fn node_service(inputs: &Inputs<'_>, vs: &VirtualStorage) -> Service {
    let mut ports = vec![port("grpc", NODE_PORT), port("metrics", NODE_METRICS_PORT)];
    if inputs.tls() {
        ports.insert(1, port("grpc-tls", NODE_TLS_PORT));
    }
    Service {
        metadata: inputs.meta(inputs.names.node_set(&vs.name), Component::Node),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(inputs.names.node_selector(&vs.name)),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

pub(super) fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

pub(super) fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

/// At most one node of a set down at a time, voluntarily.
pub fn node_pdb(inputs: &Inputs<'_>, vs: &VirtualStorage) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: inputs.meta(inputs.names.node_set(&vs.name), Component::Node),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(inputs.names.node_selector(&vs.name)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// The StatefulSet of one virtual storage. Its pod template carries the
/// node config hash (no node count in it, so scaling does not roll pods),
/// the certificate fingerprint and the version.
pub fn node_statefulset(inputs: &Inputs<'_>, vs: &VirtualStorage) -> StatefulSet {
    let spec = &inputs.gc.spec;
    let names = &inputs.names;
    let version = spec.version.as_str();
    let node_toml = crate::config::node_toml(spec, &inputs.paths);
    let sidecar_router = match (spec.routers.placement, &inputs.router_version) {
        (Placement::Sidecar, Some(v)) => Some(v.clone()),
        _ => None,
    };

    let mut hash_parts = vec![node_toml.as_str()];
    let router_toml;
    if sidecar_router.is_some() {
        // Sidecar routers read the node list, so here a scale does roll pods.
        router_toml = crate::config::router_toml(spec, names, &inputs.db, &inputs.paths);
        hash_parts.push(router_toml.as_str());
    }
    let mut annotations = string_map(&[
        (names::CONFIG_HASH, hash(&hash_parts)),
        (names::VERSION, version.to_owned()),
        ("cluster-autoscaler.kubernetes.io/safe-to-evict", "false".to_owned()),
    ]);
    if let Some(t) = &inputs.tls_hash {
        annotations.insert(names::TLS_HASH.into(), t.clone());
    }
    if let Some(v) = &sidecar_router {
        annotations.insert("cairn.dev/router-version".into(), v.clone());
    }

    let mut labels = inputs.names.labels(Component::Node);
    labels.insert(names::STORAGE_LABEL.into(), vs.name.clone());
    if sidecar_router.is_some() {
        labels.insert(names::ROUTER_LABEL.into(), "true".into());
    }

    let mut node_mounts = vec![mount("node-config", "/etc/gitaly", true), mount("repo-data", "/var/opt/gitaly", false)];
    if inputs.tls() {
        node_mounts.push(tls_mount());
    }
    if spec.node.gitlab.is_some() {
        node_mounts.push(mount("gitlab", "/etc/cairn/gitlab", true));
    }
    let mut ports = vec![container_port("grpc", NODE_PORT), container_port("metrics", NODE_METRICS_PORT)];
    if inputs.tls() {
        ports.push(container_port("grpc-tls", NODE_TLS_PORT));
    }
    let node = Container {
        name: "node".into(),
        image: Some(inputs.node_image(version)),
        image_pull_policy: Some(inputs.pull_policy()),
        command: Some(vec!["/usr/local/bin/gitaly".into(), "serve".into(), "/etc/gitaly/config.toml".into()]),
        ports: Some(ports),
        // Ready means ServerService.ReadinessCheck passes (storages
        // readable and writable, git works), not just an open port.
        readiness_probe: Some(Probe {
            exec: Some(ExecAction {
                command: Some(vec![
                    "/usr/local/bin/gitaly".into(),
                    "readiness".into(),
                    "/etc/gitaly/config.toml".into(),
                ]),
            }),
            initial_delay_seconds: Some(2),
            period_seconds: Some(5),
            timeout_seconds: Some(4),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        liveness_probe: Some(tcp_liveness(NODE_PORT)),
        resources: vs.resources.clone(),
        volume_mounts: Some(node_mounts),
        security_context: Some(container_security()),
        ..Container::default()
    };

    let mut files = vec![(&NODE_FILES, names.node_config(&vs.name))];
    let mut containers = vec![node];
    if let Some(v) = &sidecar_router {
        files.push((&ROUTER_FILES, names.router_config()));
        containers.push(router_container(inputs, v));
    }
    let render_image = inputs.node_image(version);
    let file_refs: Vec<_> = files.iter().map(|(f, _)| *f).collect();
    let db = sidecar_router.is_some();
    let mut volumes = render_volumes(inputs, &files, db);
    if let Some(g) = &spec.node.gitlab {
        volumes.push(super::secret_volume("gitlab", g.secret_name.clone()));
    }
    containers.extend(spec.node.sidecars.iter().cloned());

    let pod = PodSpec {
        init_containers: Some(vec![render_container(inputs, render_image, &file_refs, db)]),
        containers,
        volumes: Some(volumes),
        affinity: Some(affinity(inputs, vs)),
        tolerations: (!vs.tolerations.is_empty()).then(|| vs.tolerations.clone()),
        node_selector: (!vs.node_selector.is_empty()).then(|| vs.node_selector.clone()),
        priority_class_name: vs.priority_class_name.clone(),
        // Longer than graceful_restart_timeout so in-flight RPCs finish
        // before the kubelet kills the node.
        termination_grace_period_seconds: Some(i64::from(spec.node.graceful_shutdown_seconds) + 10),
        automount_service_account_token: Some(false),
        security_context: Some(pod_security()),
        image_pull_secrets: pull_secrets(inputs),
        ..PodSpec::default()
    };

    StatefulSet {
        metadata: inputs.meta(names.node_set(&vs.name), Component::Node),
        spec: Some(StatefulSetSpec {
            replicas: Some(i32::try_from(vs.nodes).unwrap_or(i32::MAX)),
            service_name: Some(names.node_set(&vs.name)),
            // Nodes do not depend on each other's start.
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                ..StatefulSetUpdateStrategy::default()
            }),
            // Repository data outlives the pods, the StatefulSet and the cluster.
            persistent_volume_claim_retention_policy: Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_deleted: Some("Retain".into()),
                when_scaled: Some("Retain".into()),
            }),
            selector: LabelSelector { match_labels: Some(names.node_selector(&vs.name)), ..LabelSelector::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("repo-data".into()),
                    labels: Some(names.node_selector(&vs.name)),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    storage_class_name: Some(vs.storage_class_name.clone()),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([("storage".to_owned(), Quantity(vs.volume_size.clone()))])),
                        ..VolumeResourceRequirements::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            }]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// The user's affinity plus anti-affinity between the set's nodes.
fn affinity(inputs: &Inputs<'_>, vs: &VirtualStorage) -> Affinity {
    let mut a = vs.affinity.clone().unwrap_or_default();
    let term = PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_labels: Some(inputs.names.node_selector(&vs.name)),
            ..LabelSelector::default()
        }),
        topology_key: "kubernetes.io/hostname".into(),
        ..PodAffinityTerm::default()
    };
    let anti = a.pod_anti_affinity.get_or_insert_with(PodAntiAffinity::default);
    match vs.pod_anti_affinity {
        AntiAffinity::Required => {
            anti.required_during_scheduling_ignored_during_execution.get_or_insert_with(Vec::new).push(term)
        }
        AntiAffinity::Preferred => anti
            .preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(WeightedPodAffinityTerm { weight: 100, pod_affinity_term: term }),
    }
    a
}

/// The router container, used by the Deployment and by sidecar placement.
pub(super) fn router_container(inputs: &Inputs<'_>, version: &str) -> Container {
    let mut ports = vec![container_port("grpc", ROUTER_PORT), container_port("metrics", ROUTER_METRICS_PORT)];
    let mut mounts = vec![mount("router-config", "/etc/praefect", true)];
    if inputs.tls() {
        ports.push(container_port("grpc-tls", ROUTER_TLS_PORT));
        mounts.push(tls_mount());
    }
    Container {
        name: "router".into(),
        image: Some(inputs.router_image(version)),
        image_pull_policy: Some(inputs.pull_policy()),
        command: Some(vec!["/usr/local/bin/praefect".into(), "-config".into(), "/etc/praefect/config.toml".into()]),
        ports: Some(ports),
        // The router's grpc.health.v1 says SERVING only when it can route.
        readiness_probe: Some(Probe {
            grpc: Some(k8s_openapi::api::core::v1::GRPCAction { port: ROUTER_PORT, service: None }),
            initial_delay_seconds: Some(2),
            period_seconds: Some(5),
            ..Probe::default()
        }),
        liveness_probe: Some(tcp_liveness(ROUTER_PORT)),
        resources: inputs.gc.spec.routers.resources.clone(),
        volume_mounts: Some(mounts),
        security_context: Some(container_security()),
        ..Container::default()
    }
}

/// Liveness: the port accepts connections (a wedged process gets restarted;
/// readiness carries the real health).
fn tcp_liveness(port: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(port), ..TCPSocketAction::default() }),
        initial_delay_seconds: Some(10),
        period_seconds: Some(10),
        failure_threshold: Some(6),
        ..Probe::default()
    }
}
