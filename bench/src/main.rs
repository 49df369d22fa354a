//! `cairn-load`: drives one RPC at a fixed concurrency against any
//! Gitaly-protocol server and prints throughput and latency percentiles.
//! With `--pid` it also samples the server's resident memory.
//!
//! ```text
//! cairn-load --address unix:/tmp/gitaly.socket --rpc RepositoryExists \
//!     --repository default:demo.git --concurrency 16 --duration 10s --pid 1234
//! cairn-load --address unix:/tmp/gitaly.socket --rpc FindCommit --inputs commit-ids.txt ...
//! cairn-load --address tcp://127.0.0.1:2305 --once --rpc CreateRepository --repository default:demo.git
//! ```
//!
//! RPCs: ServerInfo, RepositoryExists, FindCommit (inputs: revisions),
//! TreeEntry, LastCommitForPath (inputs: paths at `--revision`), GetBlob
//! (inputs: blob ids), GetTreeEntries (inputs: directories at `--revision`),
//! FindAllBranches, ListCommits (first page of `--revision`), and
//! CreateRepository (default branch `--revision`; with `--once`), and the
//! writes GitLab makes for users: UserCreateBranch (a new branch at
//! `--revision` per call), UserCommitFiles (one new file on a new branch
//! started from `--revision` per call) and UserMergeToRef (inputs: commits
//! merged into `--revision`, each into its own target ref). Inputs are
//! used round-robin so calls do not all hit the same object. With `--pid`,
//! the server's CPU time per request is reported from `/proc/<pid>/stat`.
//! `--once` makes one call and exits 0 or 1 with the error: a smoke test,
//! or a way to create a repository from a script.

use anyhow::{Context as _, bail};
use cairn_node::client::AuthChannel;
use cairn_node::client::{DialOptions, dial};
use cairn_proto::gitaly::blob_service_client::BlobServiceClient;
use cairn_proto::gitaly::commit_service_client::CommitServiceClient;
use cairn_proto::gitaly::operation_service_client::OperationServiceClient;
use cairn_proto::gitaly::ref_service_client::RefServiceClient;
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::server_service_client::ServerServiceClient;
use cairn_proto::gitaly::*;
use clap::Parser;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(version, about = "Load generator for Gitaly-protocol servers")]
struct Args {
    /// Server address: tcp://host:port, tls://host:port or unix:/path.
    #[arg(long)]
    address: String,
    /// RPC to call (see the module docs for the list).
    #[arg(long, default_value = "ServerInfo")]
    rpc: String,
    /// File with one input per line (revisions, paths or blob ids).
    #[arg(long)]
    inputs: Option<std::path::PathBuf>,
    /// Revision for path-based RPCs and ListCommits; default branch for CreateRepository.
    #[arg(long, default_value = "main")]
    revision: String,
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
    /// Make one call, print its outcome and exit (no measurement).
    #[arg(long)]
    once: bool,
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

/// One RPC with its clients and round-robin inputs.
#[derive(Clone)]
struct Call {
    rpc: String,
    repo: Repository,
    revision: Vec<u8>,
    inputs: Arc<Vec<String>>,
    next: usize,
    server: ServerServiceClient<AuthChannel>,
    repository: RepositoryServiceClient<AuthChannel>,
    commit: CommitServiceClient<AuthChannel>,
    blob: BlobServiceClient<AuthChannel>,
    refs: RefServiceClient<AuthChannel>,
    operations: OperationServiceClient<AuthChannel>,
}

/// Names of branches and refs the write RPCs create, unique per process run.
fn unique(prefix: &str) -> Vec<u8> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}/{}-{n}", std::process::id()).into_bytes()
}

/// The user the write RPCs act for.
fn bench_user() -> User {
    User {
        gl_id: "user-1".into(),
        name: b"Bench User".to_vec(),
        email: b"bench@example.com".to_vec(),
        gl_username: "bench".into(),
        timezone: "UTC".into(),
    }
}

/// Reads a server stream to its end, failing on any error status.
async fn drain<T>(stream: tonic::Response<tonic::Streaming<T>>) -> Result<(), tonic::Status> {
    let mut s = stream.into_inner();
    while s.message().await?.is_some() {}
    Ok(())
}

impl Call {
    fn input(&mut self) -> Vec<u8> {
        let i = self.next % self.inputs.len().max(1);
        self.next = self.next.wrapping_add(1);
        self.inputs.get(i).map(|s| s.as_bytes().to_vec()).unwrap_or_default()
    }

    async fn once(&mut self) -> Result<(), tonic::Status> {
        let repository = Some(self.repo.clone());
        match self.rpc.as_str() {
            "ServerInfo" => self.server.server_info(ServerInfoRequest {}).await.map(|_| ()),
            "RepositoryExists" => {
                let exists = self.repository.repository_exists(RepositoryExistsRequest { repository }).await?;
                if exists.into_inner().exists {
                    Ok(())
                } else {
                    Err(tonic::Status::not_found("repository does not exist"))
                }
            }
            "FindCommit" => {
                let revision = self.input();
                let found =
                    self.commit.find_commit(FindCommitRequest { repository, revision, trailers: false }).await?;
                found.into_inner().commit.map(|_| ()).ok_or_else(|| tonic::Status::not_found("commit not found"))
            }
            "TreeEntry" => {
                let path = self.input();
                let req = TreeEntryRequest { repository, revision: self.revision.clone(), path, limit: 0, max_size: 0 };
                drain(self.commit.tree_entry(req).await?).await
            }
            "LastCommitForPath" => {
                let path = self.input();
                let req = LastCommitForPathRequest {
                    repository,
                    revision: self.revision.clone(),
                    path,
                    ..Default::default()
                };
                self.commit.last_commit_for_path(req).await.map(|_| ())
            }
            "GetBlob" => {
                let oid = String::from_utf8_lossy(&self.input()).into_owned();
                drain(self.blob.get_blob(GetBlobRequest { repository, oid, limit: -1 }).await?).await
            }
            "GetTreeEntries" => {
                let path = self.input();
                let req =
                    GetTreeEntriesRequest { repository, revision: self.revision.clone(), path, ..Default::default() };
                drain(self.commit.get_tree_entries(req).await?).await
            }
            "FindAllBranches" => {
                drain(self.refs.find_all_branches(FindAllBranchesRequest { repository, ..Default::default() }).await?)
                    .await
            }
            "ListCommits" => {
                let req = ListCommitsRequest {
                    repository,
                    revisions: vec![String::from_utf8_lossy(&self.revision).into_owned()],
                    pagination_params: Some(PaginationParameter { page_token: String::new(), limit: 20 }),
                    ..Default::default()
                };
                drain(self.commit.list_commits(req).await?).await
            }
            "CreateRepository" => {
                let req =
                    CreateRepositoryRequest { repository, default_branch: self.revision.clone(), ..Default::default() };
                self.repository.create_repository(req).await.map(|_| ())
            }
            "UserCreateBranch" => {
                let req = UserCreateBranchRequest {
                    repository,
                    branch_name: unique("bench-branch"),
                    user: Some(bench_user()),
                    start_point: self.revision.clone(),
                };
                self.operations.user_create_branch(req).await.map(|_| ())
            }
            "UserCommitFiles" => {
                use user_commit_files_action::UserCommitFilesActionPayload as Action;
                use user_commit_files_request::UserCommitFilesRequestPayload as Part;
                let branch = unique("bench-commit");
                let path = [b"bench/".as_slice(), &branch[branch.len().saturating_sub(12)..], b".txt"].concat();
                let header = UserCommitFilesRequestHeader {
                    repository,
                    user: Some(bench_user()),
                    branch_name: branch,
                    commit_message: b"Add one file".to_vec(),
                    start_branch_name: self.revision.clone(),
                    ..Default::default()
                };
                let action = |payload| UserCommitFilesRequest {
                    user_commit_files_request_payload: Some(Part::Action(UserCommitFilesAction {
                        user_commit_files_action_payload: Some(payload),
                    })),
                };
                let messages = vec![
                    UserCommitFilesRequest { user_commit_files_request_payload: Some(Part::Header(header)) },
                    action(Action::Header(UserCommitFilesActionHeader {
                        action: user_commit_files_action_header::ActionType::Create as i32,
                        file_path: path,
                        ..Default::default()
                    })),
                    action(Action::Content(b"one file written by cairn-load\n".to_vec())),
                ];
                let r = self.operations.user_commit_files(futures::stream::iter(messages)).await?;
                match r.into_inner().branch_update {
                    Some(u) if !u.commit_id.is_empty() => Ok(()),
                    _ => Err(tonic::Status::internal("no commit in the answer")),
                }
            }
            "UserMergeToRef" => {
                let source_sha = String::from_utf8_lossy(&self.input()).into_owned();
                let req = UserMergeToRefRequest {
                    repository,
                    user: Some(bench_user()),
                    source_sha,
                    target_ref: [b"refs/merge-requests/".as_slice(), &unique("bench"), b"/merge"].concat(),
                    message: b"Merge for the benchmark".to_vec(),
                    first_parent_ref: self.revision.clone(),
                    ..Default::default()
                };
                let r = self.operations.user_merge_to_ref(req).await?;
                if r.into_inner().commit_id.is_empty() {
                    return Err(tonic::Status::internal("no merge commit in the answer"));
                }
                Ok(())
            }
            other => Err(tonic::Status::invalid_argument(format!("unsupported --rpc {other:?}"))),
        }
    }
}

/// utime + stime of a process, in seconds (Linux reports clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields start after its closing ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
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
    // GitLab names every repository it writes to; receive hooks require it.
    let repo = Repository {
        storage_name: storage.into(),
        relative_path: path.into(),
        gl_repository: "project-bench".into(),
        ..Default::default()
    };
    let inputs: Vec<String> = match &args.inputs {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("read {}", p.display()))?
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    };
    if matches!(args.rpc.as_str(), "FindCommit" | "TreeEntry" | "LastCommitForPath" | "GetBlob" | "GetTreeEntries")
        && inputs.is_empty()
    {
        bail!("--rpc {} needs --inputs", args.rpc);
    }
    let inputs = Arc::new(inputs);
    let mut calls = Vec::new();
    for i in 0..args.connections.max(1) {
        let conn = dial(&args.address, DialOptions { token: args.token.clone(), ..Default::default() })
            .await
            .with_context(|| format!("dial {}", args.address))?;
        let ch = conn.channel();
        calls.push(Call {
            rpc: args.rpc.clone(),
            repo: repo.clone(),
            revision: args.revision.as_bytes().to_vec(),
            inputs: inputs.clone(),
            next: i * 7919,
            server: ServerServiceClient::new(ch.clone()),
            repository: RepositoryServiceClient::new(ch.clone()),
            commit: CommitServiceClient::new(ch.clone()),
            blob: BlobServiceClient::new(ch.clone()),
            refs: RefServiceClient::new(ch.clone()),
            operations: OperationServiceClient::new(ch),
        });
    }
    // Fail fast on a misconfigured target rather than measuring errors.
    calls[0].clone().once().await.context("first call")?;
    if args.once {
        println!("{} {}: ok", args.rpc, args.repository);
        return Ok(());
    }

    let idle_rss = args.pid.and_then(rss_kib);
    let mut cpu_start = None;
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    let mut workers = Vec::new();
    for i in 0..args.concurrency {
        let mut call = calls[i % calls.len()].clone();
        call.next = call.next.wrapping_add(i * 104_729);
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
    let mut cpu_end = None;
    if let Some(pid) = args.pid {
        tokio::time::sleep_until(measure_from.into()).await;
        cpu_start = cpu_seconds(pid);
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(100)).await;
            peak_rss = peak_rss.max(rss_kib(pid).unwrap_or(0));
        }
        cpu_end = cpu_seconds(pid);
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
    if let (Some(a), Some(b)) = (cpu_start, cpu_end)
        && !all.is_empty()
    {
        println!("server_cpu={:.2}s server_cpu_per_request={:.4}ms", b - a, (b - a) * 1000.0 / all.len() as f64);
    }
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
