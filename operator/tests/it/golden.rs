//! Builder output compared with golden YAML under operator/tests/golden/.
//! `UPDATE_GOLDEN=1 cargo test -p cairn-operator --test it golden` rewrites them.

use crate::support::{example, root};
use cairn_operator::build::{self, Inputs};
use cairn_operator::config::DbConn;
use serde::Serialize;

fn check<T: Serialize>(name: &str, obj: &T) {
    let text = serde_yaml::to_string(obj).expect("object serializes");
    let path = root().join("operator/tests/golden").join(format!("{name}.yaml"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        text == want,
        "{name} differs from {}; if the change is intended, run\n  UPDATE_GOLDEN=1 cargo test -p cairn-operator --test it golden\n--- got ---\n{text}",
        path.display()
    );
}

fn inputs(gc: &cairn_operator::types::GitalyCluster) -> Inputs<'_> {
    let db = DbConn {
        host: "pg.example.internal".into(),
        port: 5432,
        user: "praefect".into(),
        dbname: "praefect".into(),
        sslmode: "require".into(),
    };
    let mut i = Inputs::new(gc, db);
    i.tls_hash = Some("0123456789abcdef".into());
    i.router_version = Some(gc.spec.version.clone());
    i
}

#[test]
fn golden_production() {
    let gc = example("production.yaml");
    let i = inputs(&gc);
    let vs = &gc.spec.storages[0];
    check("production-node-statefulset", &build::node_statefulset(&i, vs));
    check("production-node-service", &build::node_service(&i, vs));
    check("production-node-pdb", &build::node_pdb(&i, vs));
    check("production-node-configmap", &build::node_configmap(&i, vs));
    check("production-router-configmap", &build::router_configmap(&i));
    check("production-router-deployment", &build::router_deployment(&i, "0.1.0"));
    check("production-router-service", &build::router_service(&i));
    check("production-migration-job", &build::migration_job(&i, "0.1.0"));
}

#[test]
fn golden_cluster_managed_db() {
    let gc = example("cluster.yaml");
    let i = inputs(&gc);
    check("cluster-postgres-statefulset", &build::postgres_statefulset(&i));
    check("cluster-node-statefulset", &build::node_statefulset(&i, &gc.spec.storages[0]));
}

#[test]
fn sidecar_placement_puts_a_router_in_each_node_pod() {
    let mut gc = example("cluster.yaml");
    gc.spec.routers.placement = cairn_operator::types::Placement::Sidecar;
    let i = inputs(&gc);
    let sts = build::node_statefulset(&i, &gc.spec.storages[0]);
    let pod = sts.spec.expect("spec").template;
    let names: Vec<_> = pod.spec.as_ref().expect("pod").containers.iter().map(|c| c.name.clone()).collect();
    assert_eq!(names, ["node", "router"]);
    let labels = pod.metadata.expect("meta").labels.expect("labels");
    assert_eq!(labels.get("cairn.dev/router").map(String::as_str), Some("true"));
    check("cluster-sidecar-node-statefulset", &build::node_statefulset(&i, &gc.spec.storages[0]));
}
