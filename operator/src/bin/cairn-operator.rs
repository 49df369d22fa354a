//! The operator's controller: watches GitalyCluster objects and everything
//! they own. Logs JSON to stdout; `RUST_LOG` sets the filter.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let client = kube::Client::try_default().await?;
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "cairn-operator starting");
    cairn_operator::controller::run(client).await;
    Ok(())
}
