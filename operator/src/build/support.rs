//! Secrets (token, TLS, GitLab connection) and the managed PostgreSQL.

use super::node::{container_port, port};
use super::{Inputs, string_map};
use crate::certs::Pair;
use crate::names::{self, Component};
use crate::types::TlsMode;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, ExecAction, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec,
    PodTemplateSpec, Probe, Secret, SecretKeySelector, Service, ServiceSpec, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use std::collections::BTreeMap;

fn secret(inputs: &Inputs<'_>, name: String, type_: &str, data: BTreeMap<String, String>, c: Component) -> Secret {
    Secret { metadata: inputs.meta(name, c), type_: Some(type_.into()), string_data: Some(data), ..Secret::default() }
}

/// The generated auth token (written once, never overwritten).
pub fn token_secret(inputs: &Inputs<'_>, token: &str) -> Secret {
    secret(inputs, inputs.names.token(), "Opaque", string_map(&[("token", token.to_owned())]), Component::Router)
}

/// The operator's CA (key kept so renewals sign with the same CA).
pub fn ca_secret(inputs: &Inputs<'_>, ca: &Pair) -> Secret {
    secret(
        inputs,
        inputs.names.ca(),
        "Opaque",
        string_map(&[("ca.crt", ca.cert.clone()), ("ca.key", ca.key.clone())]),
        Component::Router,
    )
}

/// The serving certificate, in cert-manager's layout.
pub fn tls_secret(inputs: &Inputs<'_>, leaf: &Pair, ca_cert: &str) -> Secret {
    secret(
        inputs,
        inputs.names.tls(),
        "kubernetes.io/tls",
        string_map(&[("tls.crt", leaf.cert.clone()), ("tls.key", leaf.key.clone()), ("ca.crt", ca_cert.to_owned())]),
        Component::Router,
    )
}

/// What GitLab needs to reach the cluster.
pub fn gitlab_secret(inputs: &Inputs<'_>, token: &str, ca_cert: Option<&str>) -> Secret {
    let host = inputs.names.router_host();
    let address = if inputs.gc.spec.tls.mode == TlsMode::Disabled {
        format!("tcp://{host}:{}", names::ROUTER_PORT)
    } else {
        format!("tls://{host}:{}", names::ROUTER_TLS_PORT)
    };
    let mut data = string_map(&[("address", address), ("token", token.to_owned())]);
    if let Some(ca) = ca_cert {
        data.insert("ca.crt".into(), ca.to_owned());
    }
    secret(inputs, inputs.names.gitlab(), "Opaque", data, Component::Router)
}

/// Connection Secret of the managed database, in the same layout users give
/// for an external one.
pub fn postgres_secret(inputs: &Inputs<'_>, password: &str) -> Secret {
    let db = &inputs.db;
    secret(
        inputs,
        inputs.names.postgres(),
        "Opaque",
        string_map(&[
            ("host", db.host.clone()),
            ("port", db.port.to_string()),
            ("user", db.user.clone()),
            ("password", password.to_owned()),
            ("dbname", db.dbname.clone()),
            ("sslmode", db.sslmode.clone()),
        ]),
        Component::Database,
    )
}

pub fn postgres_service(inputs: &Inputs<'_>) -> Service {
    Service {
        metadata: inputs.meta(inputs.names.postgres(), Component::Database),
        spec: Some(ServiceSpec {
            selector: Some(inputs.names.selector(Component::Database)),
            ports: Some(vec![port("postgres", names::POSTGRES_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// One PostgreSQL pod for trying Cairn out: no replicas, no backups.
pub fn postgres_statefulset(inputs: &Inputs<'_>) -> StatefulSet {
    let names = &inputs.names;
    let managed = inputs.gc.spec.database.managed.clone();
    let (size, class) = managed.map_or(("10Gi".to_owned(), None), |m| (m.volume_size, m.storage_class_name));
    let image = inputs.gc.spec.images.postgres.clone().unwrap_or_else(|| "postgres:16".to_owned());
    let from_secret = |name: &str, key: &str| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: names.postgres(),
                key: key.into(),
                ..SecretKeySelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    let container = Container {
        name: "postgres".into(),
        image: Some(image),
        ports: Some(vec![container_port("postgres", names::POSTGRES_PORT)]),
        env: Some(vec![
            from_secret("POSTGRES_USER", "user"),
            from_secret("POSTGRES_PASSWORD", "password"),
            from_secret("POSTGRES_DB", "dbname"),
            EnvVar {
                name: "PGDATA".into(),
                value: Some("/var/lib/postgresql/data/pgdata".into()),
                ..EnvVar::default()
            },
        ]),
        readiness_probe: Some(Probe {
            exec: Some(ExecAction {
                command: Some(vec!["sh".into(), "-c".into(), "pg_isready -U \"$POSTGRES_USER\"".into()]),
            }),
            period_seconds: Some(5),
            ..Probe::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: "/var/lib/postgresql/data".into(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    StatefulSet {
        metadata: inputs.meta(names.postgres(), Component::Database),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(names.postgres()),
            selector: LabelSelector {
                match_labels: Some(names.selector(Component::Database)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(names.labels(Component::Database)), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    automount_service_account_token: Some(false),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta { name: Some("data".into()), ..ObjectMeta::default() },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    storage_class_name: class,
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([("storage".to_owned(), Quantity(size))])),
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
