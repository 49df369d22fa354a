//! The committed CRD (and the chart's copy) equal crdgen's output.

use crate::support::root;

const REGENERATE: &str = "cargo run -p cairn-operator --bin crdgen > crds/gitalyclusters.cairn.dev.yaml";

#[test]
fn committed_crd_matches_crdgen() {
    let want = cairn_operator::types::crd_yaml().expect("CRD serializes");
    let have = std::fs::read_to_string(root().join("crds/gitalyclusters.cairn.dev.yaml")).unwrap_or_default();
    assert!(have == want, "crds/gitalyclusters.cairn.dev.yaml is stale; regenerate with:\n  {REGENERATE}");
}

#[test]
fn chart_crd_matches_crdgen() {
    let charts = root().join("charts/cairn");
    if !charts.exists() {
        eprintln!("skipped: charts/cairn does not exist yet");
        return;
    }
    let want = cairn_operator::types::crd_yaml().expect("CRD serializes");
    let have = std::fs::read_to_string(charts.join("crds/gitalyclusters.cairn.dev.yaml")).unwrap_or_default();
    assert!(
        have == want,
        "charts/cairn/crds/gitalyclusters.cairn.dev.yaml is stale; regenerate with:\n  {REGENERATE}\n  cp crds/gitalyclusters.cairn.dev.yaml charts/cairn/crds/"
    );
}

#[test]
fn crd_has_names_columns_and_rules() {
    let crd = cairn_operator::types::crd_yaml().expect("CRD serializes");
    for needle in [
        "name: gitalyclusters.cairn.dev",
        "- gc",
        "scope: Namespaced",
        "status: {}",
        "name: Nodes",
        "name: Routers",
        "name: Replication",
        "name: Phase",
        "name: Age",
        "name: Ready",
        "rule: self >= oldSelf",
        "rule: self == oldSelf",
        "quantity(self).compareTo(quantity(oldSelf)) >= 0",
        "x-kubernetes-list-type: map",
    ] {
        assert!(crd.contains(needle), "CRD lacks {needle:?}");
    }
}
