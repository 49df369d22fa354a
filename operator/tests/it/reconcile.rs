//! Reconcile scenarios against the fake apiserver: create (with the
//! nodes -> migration -> routers order), config change, scale, certificate
//! renewal, migration failure during an upgrade, deletion, invalid spec.

use crate::fake::{self, Fake, NS, apps, core, cr_path, job};
use crate::support::example;
use cairn_operator::names::{CONFIG_HASH, FINALIZER, TLS_HASH};
use cairn_operator::types::GitalyCluster;
use http::Method;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;

const T0: i64 = 1_800_000_000;

fn fixed_now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(T0).expect("valid time")
}

fn with_finalizer(mut gc: GitalyCluster) -> GitalyCluster {
    gc.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
    gc
}

fn applied(calls: &[fake::Call]) -> Vec<String> {
    calls.iter().filter(|c| c.method == Method::PATCH).map(|c| c.path.clone()).collect()
}

fn annotation(obj: &Value, key: &str) -> String {
    obj["spec"]["template"]["metadata"]["annotations"][key].as_str().unwrap_or_default().to_owned()
}

fn condition(gc: &GitalyCluster, type_: &str) -> (String, String, String) {
    let st = gc.status.clone().expect("status written");
    let c = st.conditions.iter().find(|c| c.type_ == type_).unwrap_or_else(|| panic!("condition {type_} set"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

/// Runs a fresh cluster all the way to Ready and returns the fake.
async fn ready_cluster(gc: GitalyCluster) -> Fake {
    let fake = Fake::start(&with_finalizer(gc), fixed_now);
    fake.on_apply(fake::statefulsets_ready);
    fake.on_apply(fake::jobs_succeed);
    fake.on_apply(fake::deployments_ready);
    fake.reconcile("cairn").await;
    fake.reconcile("cairn").await;
    assert_eq!(condition(&fake.cr("cairn"), "Ready").0, "True", "cluster reached Ready");
    fake.take_calls();
    fake
}

#[tokio::test]
async fn create_adds_finalizer_then_nodes_then_migration_then_routers() {
    let gc = example("cluster.yaml");
    let fake = Fake::start(&gc, fixed_now);

    // First pass only adds the finalizer.
    fake.reconcile("cairn").await;
    let calls = fake.take_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].path, cr_path("cairn"));
    assert_eq!(fake.cr("cairn").metadata.finalizers, Some(vec![FINALIZER.to_owned()]));

    // Second pass: everything but the Job and the routers (nodes not ready yet).
    fake.reconcile("cairn").await;
    let calls = fake.take_calls();
    let paths = applied(&calls);
    for p in [
        core("secrets", "cairn-token"),
        core("secrets", "cairn-postgres"),
        apps("statefulsets", "cairn-postgres"),
        core("configmaps", "cairn-default-config"),
        core("configmaps", "cairn-router-config"),
        core("services", "cairn-default"),
        core("services", "cairn-router"),
        apps("statefulsets", "cairn-default"),
        core("secrets", "cairn-gitlab"),
    ] {
        assert!(paths.contains(&p), "{p} not applied: {paths:?}");
    }
    assert!(calls.iter().all(|c| c.method != Method::PATCH || c.query.contains("fieldManager=cairn-operator")));
    assert!(!paths.iter().any(|p| p.contains("/jobs/") || p.contains("/deployments/")), "{paths:?}");
    let cm_pos = paths.iter().position(|p| p == &core("configmaps", "cairn-default-config"));
    let sts_pos = paths.iter().position(|p| p == &apps("statefulsets", "cairn-default"));
    assert!(cm_pos < sts_pos, "ConfigMap applied before the StatefulSet that mounts it");
    let sts = fake.get(&apps("statefulsets", "cairn-default")).expect("sts");
    assert_eq!(sts["spec"]["replicas"], json!(3));
    assert_eq!(sts["metadata"]["ownerReferences"][0]["kind"], json!("GitalyCluster"));
    let gc = fake.cr("cairn");
    assert_eq!(gc.status.as_ref().and_then(|s| s.phase.clone()).as_deref(), Some("Provisioning"));
    assert_eq!(condition(&gc, "Progressing").0, "True");

    // Nodes ready: the migration Job runs, routers still wait.
    fake.on_apply(fake::statefulsets_ready);
    fake.reconcile("cairn").await;
    let paths = applied(&fake.take_calls());
    assert!(paths.contains(&job("cairn-migrate-0-1-0")), "{paths:?}");
    assert!(!paths.iter().any(|p| p.contains("/deployments/")), "{paths:?}");
    assert_eq!(fake.cr("cairn").status.and_then(|s| s.phase).as_deref(), Some("Migrating"));

    // Migration done: routers at the version, then Ready.
    fake.on_apply(fake::jobs_succeed);
    fake.on_apply(fake::deployments_ready);
    fake.reconcile("cairn").await;
    let dep = fake.get(&apps("deployments", "cairn-router")).expect("router Deployment");
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("ghcr.io/cairn-dev/cairn-router:0.1.0")
    );
    let gc = fake.cr("cairn");
    let st = gc.status.clone().expect("status");
    assert_eq!(condition(&gc, "Ready"), ("True".into(), "Ready".into(), "all nodes and routers are ready".into()));
    assert_eq!(condition(&gc, "DatabaseMigrated").0, "True");
    assert_eq!(st.nodes_ready.as_deref(), Some("3/3"));
    assert_eq!(st.routers_ready.as_deref(), Some("1/1"));
    assert_eq!(st.connection_secret.as_deref(), Some("cairn-gitlab"));
    let conn = fake.get(&core("secrets", "cairn-gitlab")).expect("connection secret");
    assert!(conn["data"]["address"].is_string() && conn["data"]["token"].is_string());
}

#[tokio::test]
async fn generated_token_is_kept() {
    let fake = ready_cluster(example("cluster.yaml")).await;
    let before = fake.get(&core("secrets", "cairn-token")).expect("token")["data"].clone();
    fake.reconcile("cairn").await;
    let paths = applied(&fake.take_calls());
    assert!(!paths.contains(&core("secrets", "cairn-token")), "an existing token is never rewritten");
    assert_eq!(fake.get(&core("secrets", "cairn-token")).expect("token")["data"], before);
}

#[tokio::test]
async fn config_change_rolls_nodes_scale_does_not() {
    let fake = ready_cluster(example("cluster.yaml")).await;
    let sts_path = apps("statefulsets", "cairn-default");
    let hash0 = annotation(&fake.get(&sts_path).expect("sts"), CONFIG_HASH);
    let router0 = annotation(&fake.get(&apps("deployments", "cairn-router")).expect("dep"), CONFIG_HASH);

    // Scale 3 -> 5: node template unchanged, router config lists 5 nodes.
    fake.edit("cairn", |gc| gc.spec.storages[0].nodes = 5);
    fake.reconcile("cairn").await;
    let sts = fake.get(&sts_path).expect("sts");
    assert_eq!(sts["spec"]["replicas"], json!(5));
    assert_eq!(annotation(&sts, CONFIG_HASH), hash0, "scaling must not roll node pods");
    let router_cm = fake.get(&core("configmaps", "cairn-router-config")).expect("router config");
    let toml = router_cm["data"]["config.toml"].as_str().expect("config");
    assert!(toml.contains("cairn-default-4.cairn-default.cairn.svc:8075"), "{toml}");
    let router1 = annotation(&fake.get(&apps("deployments", "cairn-router")).expect("dep"), CONFIG_HASH);
    assert_ne!(router1, router0, "routers roll to learn the new nodes");

    // A node setting changes the node config and rolls the nodes.
    fake.edit("cairn", |gc| gc.spec.node.pack_objects_cache.enabled = true);
    fake.reconcile("cairn").await;
    let sts = fake.get(&sts_path).expect("sts");
    assert_ne!(annotation(&sts, CONFIG_HASH), hash0, "config change must roll node pods");
    let cm = fake.get(&core("configmaps", "cairn-default-config")).expect("node config");
    assert!(cm["data"]["config.toml"].as_str().expect("toml").contains("[pack_objects_cache]\nenabled = true"));
}

static RENEW_CLOCK: AtomicI64 = AtomicI64::new(T0);
fn renew_now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(RENEW_CLOCK.load(Ordering::SeqCst)).expect("valid time")
}

fn secret_field(fake: &Fake, name: &str, key: &str) -> String {
    use base64::Engine;
    let v = fake.get(&core("secrets", name)).unwrap_or_else(|| panic!("secret {name}"));
    let b = base64::engine::general_purpose::STANDARD.decode(v["data"][key].as_str().expect("key")).expect("base64");
    String::from_utf8(b).expect("utf8")
}

#[tokio::test]
async fn certificate_renewal_keeps_ca_and_key() {
    let mut gc = with_finalizer(example("production.yaml"));
    gc.metadata.name = Some("cairn".into());
    gc.metadata.namespace = Some(NS.into());
    let fake = Fake::start(&gc, renew_now);
    fake.put(
        &core("secrets", "praefect-db"),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "praefect-db", "namespace": NS},
               "stringData": {"host": "pg", "user": "praefect", "password": "pw", "dbname": "praefect"}}),
    );
    fake.on_apply(fake::statefulsets_ready);
    fake.on_apply(fake::jobs_succeed);
    fake.on_apply(fake::deployments_ready);
    fake.reconcile("cairn").await;
    let ca0 = secret_field(&fake, "cairn-ca", "ca.crt");
    let crt0 = secret_field(&fake, "cairn-tls", "tls.crt");
    let key0 = secret_field(&fake, "cairn-tls", "tls.key");
    let info0 = cairn_operator::certs::inspect(&crt0).expect("cert");
    let hash0 = annotation(&fake.get(&apps("statefulsets", "cairn-default")).expect("sts"), TLS_HASH);
    for host in
        ["cairn-default-0.cairn-default.cairn.svc", "cairn-default-2.cairn-default.cairn.svc", "cairn-router.cairn.svc"]
    {
        assert!(
            info0.sans.iter().any(|s| cairn_operator::certs::san_matches(s, host)),
            "{host} not in {:?}",
            info0.sans
        );
    }

    // Within the renewal window nothing changes.
    RENEW_CLOCK.store(T0 + 30 * 86_400, Ordering::SeqCst);
    fake.take_calls();
    fake.reconcile("cairn").await;
    assert!(!applied(&fake.take_calls()).contains(&core("secrets", "cairn-tls")));

    // 70 of 90 days later: renewed, same key, same CA.
    RENEW_CLOCK.store(T0 + 70 * 86_400, Ordering::SeqCst);
    fake.reconcile("cairn").await;
    let paths = applied(&fake.take_calls());
    assert!(paths.contains(&core("secrets", "cairn-tls")), "{paths:?}");
    assert!(!paths.contains(&core("secrets", "cairn-ca")), "the CA is never replaced by renewal");
    let crt1 = secret_field(&fake, "cairn-tls", "tls.crt");
    assert_ne!(crt1, crt0);
    assert_eq!(secret_field(&fake, "cairn-tls", "tls.key"), key0, "renewal keeps the key");
    assert_eq!(secret_field(&fake, "cairn-ca", "ca.crt"), ca0);
    let info1 = cairn_operator::certs::inspect(&crt1).expect("cert");
    assert!(info1.not_after > info0.not_after);
    assert_eq!(info1.issuer, info0.issuer);
    assert_eq!(secret_field(&fake, "cairn-tls", "ca.crt"), ca0);
    let hash1 = annotation(&fake.get(&apps("statefulsets", "cairn-default")).expect("sts"), TLS_HASH);
    assert_ne!(hash1, hash0, "nodes restart to load the renewed certificate");
    let gc = fake.cr("cairn");
    assert_eq!(condition(&gc, "CertificatesReady").0, "True");
}

#[tokio::test]
async fn migration_failure_stops_router_rollout() {
    let fake = ready_cluster(example("cluster.yaml")).await;
    fake.clear_hooks();
    fake.on_apply(fake::statefulsets_ready);
    fake.on_apply(fake::deployments_ready);
    fake.on_apply(fake::jobs_fail);
    fake.edit("cairn", |gc| gc.spec.version = "0.2.0".into());
    fake.reconcile("cairn").await;

    let sts = fake.get(&apps("statefulsets", "cairn-default")).expect("sts");
    assert_eq!(sts["spec"]["template"]["spec"]["containers"][0]["image"], json!("ghcr.io/cairn-dev/cairn-node:0.2.0"));
    assert!(fake.get(&job("cairn-migrate-0-2-0")).is_some(), "migration Job for the new version");
    let dep = fake.get(&apps("deployments", "cairn-router")).expect("dep");
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("ghcr.io/cairn-dev/cairn-router:0.1.0"),
        "routers stay on the old version"
    );
    let gc = fake.cr("cairn");
    let (status, reason, message) = condition(&gc, "Degraded");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "MigrationFailed"));
    assert!(message.contains("cairn-migrate-0-2-0"), "{message}");
    assert_eq!(condition(&gc, "DatabaseMigrated").0, "False");
    assert_eq!(gc.status.and_then(|s| s.router_version).as_deref(), Some("0.1.0"));
}

#[tokio::test]
async fn upgrade_rolls_nodes_before_routers() {
    let fake = ready_cluster(example("cluster.yaml")).await;
    fake.clear_hooks();
    fake.on_apply(fake::deployments_ready);
    fake.on_apply(fake::jobs_succeed);
    fake.edit("cairn", |gc| gc.spec.version = "0.2.0".into());
    // The StatefulSet reports the new generation not yet rolled out.
    fake.on_apply(|path, obj| {
        if path.contains("/statefulsets/") {
            obj["status"]["observedGeneration"] = obj["metadata"]["generation"].clone();
            obj["status"]["updateRevision"] = json!("new");
        }
    });
    fake.reconcile("cairn").await;
    let paths = applied(&fake.take_calls());
    assert!(!paths.iter().any(|p| p.contains("/jobs/")), "no migration before nodes rolled out");
    let dep = fake.get(&apps("deployments", "cairn-router")).expect("dep");
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("ghcr.io/cairn-dev/cairn-router:0.1.0")
    );
    assert_eq!(fake.cr("cairn").status.and_then(|s| s.phase).as_deref(), Some("Upgrading"));

    fake.on_apply(fake::statefulsets_ready);
    fake.reconcile("cairn").await;
    let dep = fake.get(&apps("deployments", "cairn-router")).expect("dep");
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("ghcr.io/cairn-dev/cairn-router:0.2.0")
    );
}

#[tokio::test]
async fn deletion_removes_finalizer_only() {
    let mut gc = with_finalizer(example("cluster.yaml"));
    gc.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(T0).expect("time"),
    ));
    let fake = Fake::start(&gc, fixed_now);
    fake.reconcile("cairn").await;
    let calls = fake.take_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].method, Method::PATCH);
    assert_eq!(calls[0].body[1], json!({"op": "remove", "path": "/metadata/finalizers/0"}));
    assert_eq!(fake.cr("cairn").metadata.finalizers, Some(vec![]));
}

#[tokio::test]
async fn invalid_spec_is_reported_and_nothing_applied() {
    let mut gc = with_finalizer(example("cluster.yaml"));
    gc.spec.replication_factor = 5;
    let fake = Fake::start(&gc, fixed_now);
    fake.reconcile("cairn").await;
    let calls = fake.take_calls();
    assert_eq!(applied(&calls), vec![format!("{}/status", cr_path("cairn"))]);
    let gc = fake.cr("cairn");
    let (status, reason, message) = condition(&gc, "Degraded");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "InvalidSpec"));
    assert_eq!(message, "spec.replicationFactor: 5 exceeds the 3 nodes of virtual storage \"default\"");
}
