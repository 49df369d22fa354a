//! Prints the GitalyCluster CRD as YAML:
//! `cargo run -p cairn-operator --bin crdgen > crds/gitalyclusters.cairn.dev.yaml`

fn main() -> anyhow::Result<()> {
    print!("{}", cairn_operator::types::crd_yaml()?);
    Ok(())
}
