//! `cairn-load`: drives one RPC at a fixed concurrency against any
//! Gitaly-protocol server and prints throughput and latency percentiles.
//! With `--pid` it also samples the server's resident memory.
//!
//! ```text
//! cairn-load --address unix:/tmp/gitaly.socket --rpc RepositoryExists \
//!     --repository default:demo.git --concurrency 16 --duration 10s --pid 1234
//! ```

use anyhow::{Context as _, bail};
use cairn_node::client::{DialOptions, dial};
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::server_service_client::ServerServiceClient;
use cairn_proto::gitaly::{Repository, RepositoryExistsRequest, ServerInfoRequest};
use clap::Parser;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(version, about = "Load generator for Gitaly-protocol servers")]
struct Args {
    /// Server address: tcp://host:port, tls://host:port or unix:/path.
    #[arg(long)]
    address: String,
    /// RPC to call: ServerInfo or RepositoryExists.
    #[arg(long, default_value = "ServerInfo")]
    rpc: String,
    /// Concurrent streams (each an independent loop of calls).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long to measure, e.g. 10s or 1m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Warm-up before measuring.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Repository as storage:relative/path (RepositoryExists).
    #[arg(long, default_value = "default:demo.git")]
    repository: String,
    /// Authentication token.
    #[arg(long)]
    token: Option<String>,
    /// Connections to spread the streams over.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// PID of the server, to report its resident memory (Linux).
    #[arg(long)]
    pid: Option<u32>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("bad duration unit in {s:?}")),
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[derive(Clone)]
enum Call {
    ServerInfo(ServerServiceClient<cairn_node::client::AuthChannel>),
    RepositoryExists(RepositoryServiceClient<cairn_node::client::AuthChannel>, Repository),
}

impl Call {
    async fn once(&mut self) -> Result<(), tonic::Status> {
        match self {
            Call::ServerInfo(c) => c.server_info(ServerInfoRequest {}).await.map(|_| ()),
            Call::RepositoryExists(c, r) => {
                let exists = c.repository_exists(RepositoryExistsRequest { repository: Some(r.clone()) }).await?;
                if exists.into_inner().exists {
                    Ok(())
                } else {
                    Err(tonic::Status::not_found("repository does not exist"))
                }
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (storage, path) = args.repository.split_once(':').context("--repository must be storage:path")?;
    let repo = Repository { storage_name: storage.into(), relative_path: path.into(), ..Default::default() };
    let mut calls = Vec::new();
    for _ in 0..args.connections.max(1) {
        let conn = dial(&args.address, DialOptions { token: args.token.clone(), ..Default::default() })
            .await
            .with_context(|| format!("dial {}", args.address))?;
        calls.push(match args.rpc.as_str() {
            "ServerInfo" => Call::ServerInfo(ServerServiceClient::new(conn.channel())),
            "RepositoryExists" => Call::RepositoryExists(RepositoryServiceClient::new(conn.channel()), repo.clone()),
            other => bail!("unsupported --rpc {other:?} (ServerInfo, RepositoryExists)"),
        });
    }
    // Fail fast on a misconfigured target rather than measuring errors.
    calls[0].clone().once().await.context("first call")?;

    let idle_rss = args.pid.and_then(rss_kib);
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    let mut workers = Vec::new();
    for i in 0..args.concurrency {
        let mut call = calls[i % calls.len()].clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                let r = call.once().await;
                if t >= measure_from {
                    match r {
                        Ok(()) => latencies.push(t.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut peak_rss = 0;
    if let Some(pid) = args.pid {
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(100)).await;
            peak_rss = peak_rss.max(rss_kib(pid).unwrap_or(0));
        }
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await?;
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    let secs = args.duration.as_secs_f64();
    println!("rpc={} concurrency={} connections={} duration={secs:.1}s", args.rpc, args.concurrency, args.connections);
    println!(
        "requests={} errors={errors} throughput={:.0} req/s p50={:.3}ms p99={:.3}ms max={:.3}ms",
        all.len(),
        all.len() as f64 / secs,
        percentile(&all, 0.50).as_secs_f64() * 1000.0,
        percentile(&all, 0.99).as_secs_f64() * 1000.0,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
    if let Some(pid) = args.pid {
        println!(
            "server_rss_idle={} KiB server_rss_peak_under_load={peak_rss} KiB (pid {pid})",
            idle_rss.map_or("?".to_owned(), |v| v.to_string())
        );
    }
    if errors > 0 {
        bail!("{errors} calls failed");
    }
    Ok(())
}
