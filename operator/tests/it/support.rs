//! Fixtures shared by the tests.

use cairn_operator::types::GitalyCluster;
use std::path::PathBuf;

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// An example file as a GitalyCluster with namespace and uid filled in
/// (owner references need the uid).
pub(crate) fn example(name: &str) -> GitalyCluster {
    let text = std::fs::read_to_string(root().join("examples").join(name)).expect("read example");
    let mut gc: GitalyCluster = serde_yaml::from_str(&text).expect("example deserializes into GitalyCluster");
    gc.metadata.namespace.get_or_insert_with(|| "cairn".into());
    gc.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
    gc.metadata.generation = Some(1);
    gc
}
