//! Examples are valid; bad specs are rejected with clear messages.

#![allow(clippy::disallowed_methods, reason = "runs check-jsonschema, not git")]

use crate::support::{example, root};
use cairn_operator::validate::{validate, validate_update};

#[test]
fn examples_are_valid() {
    for file in ["cluster.yaml", "production.yaml"] {
        let gc = example(file);
        validate(&gc.spec).unwrap_or_else(|e| panic!("{file}: {e:?}"));
    }
}

#[test]
fn examples_match_the_crd_schema() {
    // check-jsonschema against the CRD's openAPIV3Schema when it is installed.
    let Ok(out) = std::process::Command::new("check-jsonschema").arg("--version").output() else {
        eprintln!("skipped: check-jsonschema not installed (pip install check-jsonschema)");
        return;
    };
    if !out.status.success() {
        eprintln!("skipped: check-jsonschema not usable");
        return;
    }
    let crd: serde_json::Value = serde_yaml::from_str(&cairn_operator::types::crd_yaml().expect("crd")).expect("yaml");
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let dir = tempfile::tempdir().expect("tempdir");
    let schema_path = dir.path().join("schema.json");
    std::fs::write(&schema_path, serde_json::to_vec(schema).expect("json")).expect("write");
    for file in ["cluster.yaml", "production.yaml"] {
        let status = std::process::Command::new("check-jsonschema")
            .arg("--schemafile")
            .arg(&schema_path)
            .arg(root().join("examples").join(file))
            .status()
            .expect("run check-jsonschema");
        assert!(status.success(), "{file} does not match the CRD schema");
    }
}

#[test]
fn bad_specs_are_rejected_with_field_paths() {
    let base = example("cluster.yaml");
    type Change = Box<dyn Fn(&mut cairn_operator::types::GitalyClusterSpec)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "rf",
            Box::new(|s| s.replication_factor = 4),
            "spec.replicationFactor: 4 exceeds the 3 nodes of virtual storage \"default\"",
        ),
        (
            "name",
            Box::new(|s| s.storages[0].name = "Bad_Name".into()),
            "spec.storages[0].name: \"Bad_Name\" must be a DNS label of at most 32 characters",
        ),
        (
            "size",
            Box::new(|s| s.storages[0].volume_size = "lots".into()),
            "spec.storages[0].volumeSize: \"lots\" is not a quantity, e.g. 100Gi",
        ),
        ("db", Box::new(|s| s.database.managed = None), "spec.database: needs exactly one of external or managed"),
        (
            "tls",
            Box::new(|s| s.tls.mode = cairn_operator::types::TlsMode::Secret),
            "spec.tls.secretName: is required when tls.mode is secret",
        ),
        (
            "version",
            Box::new(|s| s.version = "v 1".into()),
            "spec.version: \"v 1\" must be a tag-like string, e.g. 18.2.1",
        ),
        (
            "rpc",
            Box::new(|s| {
                s.node.concurrency.push(
                    serde_json::from_value(serde_json::json!({"rpc": "PostUploadPack", "maxPerRepo": 1}))
                        .expect("limit"),
                )
            }),
            "spec.node.concurrency[0].rpc: \"PostUploadPack\" is not a full method name like /gitaly.SmartHTTPService/PostUploadPackWithSidechannel",
        ),
    ];
    for (what, change, want) in cases {
        let mut spec = base.spec.clone();
        change(&mut spec);
        let errs = validate(&spec).expect_err(what);
        assert_eq!(errs, vec![want.to_owned()], "{what}");
    }
}

#[test]
fn shrinking_and_removing_are_refused() {
    let old = example("production.yaml").spec;
    let mut new = old.clone();
    new.storages[0].nodes = 2;
    new.storages[0].volume_size = "100Gi".into();
    new.storages[0].storage_class_name = "hdd".into();
    let errs = validate_update(&old, &new).expect_err("shrink refused");
    assert_eq!(
        errs,
        vec![
            "spec.storages[default].nodes: cannot be reduced from 3 to 2: move repositories off the storage first"
                .to_owned(),
            "spec.storages[default].volumeSize: can only grow (500Gi -> 100Gi)".to_owned(),
            "spec.storages[default].storageClassName: is immutable".to_owned(),
        ]
    );
    let mut gone = old.clone();
    gone.storages.clear();
    assert!(validate_update(&old, &gone).expect_err("removal refused")[0].contains("cannot be removed"));
    let mut grow = old.clone();
    grow.storages[0].nodes = 5;
    grow.storages[0].volume_size = "1Ti".into();
    validate_update(&old, &grow).expect("growing is fine");
}

#[test]
fn crd_rejects_the_same_transitions() {
    // The CEL rules in the CRD carry the same messages admins see from kubectl.
    let crd = cairn_operator::types::crd_yaml().expect("crd");
    for m in [
        "nodes cannot be reduced: move repositories off the storage first",
        "volumeSize can only grow",
        "storageClassName is immutable",
        "a virtual storage cannot be removed: its repositories live on its volumes",
        "replicationFactor must not exceed the node count of any virtual storage",
        "database needs exactly one of external or managed",
    ] {
        assert!(crd.contains(m), "CRD lacks rule message {m:?}");
    }
}
