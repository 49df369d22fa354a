//! The operator's controller: watches GitalyCluster objects and everything
//! they own. Logs JSON to stdout; `RUST_LOG` sets the filter. Probes and
//! metrics on `CAIRN_OPERATOR_HTTP_ADDR` (default 0.0.0.0:8080).

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
    let health = std::sync::Arc::new(cairn_operator::http::Health::default());
    let addr = std::env::var("CAIRN_OPERATOR_HTTP_ADDR").unwrap_or_else(|_| "0.0.0.0:8080".to_owned());
    let addr = addr.parse().map_err(|e| anyhow::anyhow!("CAIRN_OPERATOR_HTTP_ADDR {addr:?}: {e}"))?;
    let server = tokio::spawn(cairn_operator::http::serve(addr, health.clone()));
    cairn_operator::controller::run(client, health).await;
    server.abort();
    Ok(())
}
