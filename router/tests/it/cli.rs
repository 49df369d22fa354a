//! The real `praefect` binary: SQL subcommands, node checks, config
//! validation, tracking and removing repositories, and the subcommands that
//! ask the router's PraefectInfoService (served here in the test process on
//! a Unix socket).

#![allow(clippy::disallowed_methods, reason = "tests run the praefect binary")]

use crate::support::cluster::{NodeProc, bin_dir, free_port};
use crate::support::pg::TestDb;
use cairn_router::config::Config;
use cairn_router::db::{Db, migrate};
use cairn_router::health::HealthView;
use cairn_router::nodes::Nodes;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What one run of the binary printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// Runs `praefect args...` with `stdin` and extra environment.
pub async fn praefect_with(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
    use tokio::io::AsyncWriteExt as _;
    let mut cmd = tokio::process::Command::new(bin_dir().join("praefect"));
    cmd.args(args)
        .env_remove("NTP_HOST")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("start praefect");
    let mut input = child.stdin.take().expect("stdin");
    // A command that exits without reading its input closes the pipe first.
    if let Err(e) = input.write_all(stdin.unwrap_or("").as_bytes()).await {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("praefect finished in time")
        .expect("praefect output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub async fn praefect(args: &[&str]) -> Run {
    praefect_with(args, None, &[]).await
}

/// A router config in a temporary directory: one virtual storage
/// `default` with the given `[[virtual_storage.node]]` entries.
pub struct Setup {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub socket: PathBuf,
    pub config: Arc<Config>,
}

impl Setup {
    pub fn new(db: &TestDb, nodes: &str, extra: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("cairn-praefect-").tempdir().expect("temp dir");
        let socket = dir.path().join("praefect.sock");
        let text = format!(
            "socket_path = {socket:?}\n{extra}\n[auth]\ntoken = \"router-secret\"\n{}\n\
             [[virtual_storage]]\nname = \"default\"\n{nodes}",
            db.toml()
        );
        let path = dir.path().join("config.toml");
        std::fs::write(&path, &text).expect("write config");
        let config = Config::from_toml(&text).expect("valid config").config;
        Self { _dir: dir, path, socket, config: Arc::new(config) }
    }

    pub fn config_arg(&self) -> &str {
        self.path.to_str().expect("utf-8 path")
    }

    /// `praefect -config <this> args...`.
    pub async fn run(&self, args: &[&str]) -> Run {
        let mut all = vec!["-config", self.config_arg()];
        all.extend_from_slice(args);
        praefect(&all).await
    }
}

/// A node entry for a node that does not exist (nothing listens there).
pub fn dead_node(storage: &str) -> String {
    format!(
        "[[virtual_storage.node]]\nstorage = {storage:?}\naddress = \"tcp://127.0.0.1:{}\"\ntoken = \"x\"\n",
        free_port()
    )
}

/// A health view in which exactly `healthy` storages of `default` are up.
pub fn health(healthy: &[&str]) -> HealthView {
    let h = HealthView::default();
    for s in healthy {
        h.set_local("default", s, true);
    }
    h.finish_round(None);
    h
}

/// The router's own services, served on `socket` until dropped.
pub struct Served {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(socket: &Path, db: &Db, config: &Arc<Config>, health: &HealthView) -> Served {
    let nodes = Nodes::new(config, None);
    let routes = cairn_router::service::routes(db, &nodes, health, config, &Default::default());
    let listener = tokio::net::UnixListener::bind(socket).expect("bind router socket");
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder().add_routes(routes).serve_with_incoming(incoming).await;
    });
    Served { task }
}

pub async fn migrated_db() -> (TestDb, Db) {
    let test_db = TestDb::new();
    let db = Db::new(&test_db.config()).expect("pool");
    migrate::migrate(&db, true, |_, _| {}).await.expect("migrate");
    (test_db, db)
}

/// An empty bare repository at `relative` in the node's storage.
pub fn git_init(node: &NodeProc, relative: &str) {
    let path = node.path_of(relative);
    std::fs::create_dir_all(&path).expect("repository dir");
    let out = std::process::Command::new("git").args(["init", "--bare", "-q"]).arg(&path).output().expect("git init");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_subcommands_ping_migrate_report_and_revert() {
    let test_db = TestDb::new();
    let setup = Setup::new(&test_db, &dead_node("s1"), "");
    let latest = migrate::MIGRATIONS.last().expect("migrations").id;

    assert_eq!(setup.run(&["sql-ping"]).await.ok().stdout, "praefect sql-ping: OK\n");

    let status = setup.run(&["sql-migrate-status"]).await.ok().stdout;
    assert!(status.contains("MIGRATION") && status.contains("APPLIED"), "{status}");
    assert!(status.lines().any(|l| l.contains(latest) && l.contains("| no ")), "{status}");

    let first = setup.run(&["sql-migrate", "-verbose"]).await.ok().stdout;
    let n = migrate::MIGRATIONS.len();
    assert!(first.starts_with(&format!("praefect sql-migrate: migrations to apply: {n}\n")), "{first}");
    assert!(
        first.contains(&format!("{latest}: migrating")) && first.contains(&format!("{latest}: applied")),
        "{first}"
    );
    assert!(first.contains("CREATE TABLE"), "-verbose shows the statements: {first}");
    assert!(first.ends_with(&format!("praefect sql-migrate: OK (applied {n} migrations)\n")), "{first}");
    assert_eq!(setup.run(&["sql-migrate"]).await.ok().stdout, "praefect sql-migrate: all migrations are up\n");

    let status = setup.run(&["sql-migrate-status"]).await.ok().stdout;
    let row = status.lines().find(|l| l.contains(latest)).expect("row").to_owned();
    assert!(!row.contains("| no ") && row.contains("| 20"), "applied at a date: {row}");
    assert!(status.starts_with("+-"), "bordered table: {status}");

    let dry = setup.run(&["sql-migrate-down", "1"]).await.ok().stdout;
    assert_eq!(dry, format!("DRY RUN -- would roll back:\n\n- {latest}\n\nTo apply these migrations run with -f\n"));
    assert_eq!(setup.run(&["sql-migrate"]).await.ok().stdout, "praefect sql-migrate: all migrations are up\n");

    let bad = setup.run(&["sql-migrate-down", "0"]).await;
    assert_eq!((bad.code, bad.stderr.as_str()), (1, "number of migrations to roll back must be 1 or more\n"));
    let missing = setup.run(&["sql-migrate-down"]).await;
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("requires a single positional argument"), "{}", missing.stderr);

    let applied = setup.run(&["sql-migrate-down", "-f", "1"]).await.ok().stdout;
    assert_eq!(applied, "OK (applied 1 \"down\" migrations)\n");
    let status = setup.run(&["sql-migrate-status"]).await.ok().stdout;
    assert!(status.lines().any(|l| l.contains(latest) && l.contains("| no ")), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_storages_prints_the_configured_nodes() {
    let test_db = TestDb::new();
    let nodes = "[[virtual_storage.node]]\nstorage = \"gitaly-1\"\naddress = \"tcp://127.0.0.1:1\"\n\
                 [[virtual_storage.node]]\nstorage = \"g2\"\naddress = \"unix:/tmp/g2.sock\"\n";
    let setup = Setup::new(&test_db, nodes, "");
    let out = setup.run(&["list-storages"]).await.ok().stdout;
    assert_eq!(
        out,
        "VIRTUAL_STORAGE\tNODE    \tADDRESS          \t\n\
         default        \tgitaly-1\ttcp://127.0.0.1:1\t\n\
         default        \tg2      \tunix:/tmp/g2.sock\t\n"
    );
    let one = setup.run(&["list-storages", "--virtual-storage=default"]).await.ok().stdout;
    assert_eq!(one, out);
    let none = setup.run(&["list-storages", "-virtual-storage", "other"]).await.ok().stdout;
    assert_eq!(none, "No virtual storages named other.\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn dial_nodes_reports_live_and_dead_nodes() {
    let test_db = TestDb::new();
    let (n1, n2) = (NodeProc::start("gitaly-1", "t1"), NodeProc::start("gitaly-2", "t2"));
    let dead = dead_node("gitaly-3");
    let dead_address = dead.lines().find_map(|l| l.strip_prefix("address = ")).expect("address").trim_matches('"');
    let setup = Setup::new(&test_db, &format!("{}{}{dead}", n1.router_entry(), n2.router_entry()), "");
    let run = setup.run(&["dial-nodes", "-timeout", "3s"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    for node in [&n1, &n2] {
        let a = node.address();
        assert!(run.stdout.contains(&format!("[{a}]: dialed successfully!")), "{}", run.stdout);
        assert!(run.stdout.contains(&format!("[{a}]: SUCCESS: node is healthy!")), "{}", run.stdout);
        assert!(
            run.stdout.contains(&format!(
                "[{a}]: SUCCESS: confirmed Gitaly storage {:?} in virtual storages [default] is served",
                node.storage_name
            )),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains(&format!("[{a}]: SUCCESS: node configuration is consistent!")), "{}", run.stdout);
    }
    assert!(run.stdout.contains(&format!("[{dead_address}]: ERROR: dialing failed")), "{}", run.stdout);
    assert_eq!(run.stderr, format!("the following nodes are not healthy: {dead_address}\n"));

    // A storage the node does not have.
    let wrong = "[[virtual_storage.node]]\nstorage = \"nope\"\n".to_owned()
        + &format!("address = {:?}\ntoken = \"t1\"\n", n1.address());
    let setup = Setup::new(&test_db, &wrong, "");
    let run = setup.run(&["dial-nodes"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("ERROR: configured storage was not reported by remote: \"nope\""), "{}", run.stdout);
}

/// Answers SNTP queries on 127.0.0.1 with the local time shifted by `skew`.
fn fake_ntp(skew: Duration) -> (u16, std::thread::JoinHandle<()>) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    socket.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let port = socket.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        let mut buf = [0u8; 48];
        // One query per check run.
        if let Ok((n, peer)) = socket.recv_from(&mut buf) {
            assert_eq!(n, 48);
            assert_eq!(buf[0] & 0b111, 3, "client mode");
            let mut answer = [0u8; 48];
            answer[0] = 0b00_100_100; // version 4, server
            answer[1] = 1; // stratum
            answer[24..32].copy_from_slice(&buf[40..48]);
            let now = SystemTime::now() + skew;
            let stamp = cairn_router::service::ntp::ntp_timestamp(now);
            answer[32..40].copy_from_slice(&stamp);
            answer[40..48].copy_from_slice(&stamp);
            socket.send_to(&answer, peer).expect("answer");
        }
    });
    (port, handle)
}

#[tokio::test(flavor = "multi_thread")]
async fn check_runs_upstreams_checks() {
    let test_db = TestDb::new();
    let (n1, n2) = (NodeProc::start("gitaly-1", "t1"), NodeProc::start("gitaly-2", "t2"));
    let setup = Setup::new(&test_db, &format!("{}{}", n1.router_entry(), n2.router_entry()), "");

    // Schema not migrated: fatal.
    let run = setup.run(&["check"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let n = migrate::MIGRATIONS.len();
    assert!(run.stdout.contains(&format!("Failed (fatal) error: {n} migrations have not been run")), "{}", run.stdout);
    assert!(run.stdout.contains("check(s) failed, at least one was fatal."), "{}", run.stdout);
    assert_eq!(run.stderr, "checks failed\n");

    setup.run(&["sql-migrate"]).await.ok();
    let run = setup.run(&["check"]).await.ok();
    assert!(
        run.stdout.starts_with(
            "Checking praefect migrations - confirms whether or not all praefect migrations have run [fatal]\nPassed\n"
        ),
        "{}",
        run.stdout
    );
    for expected in [
        "Checking gitaly node connectivity & disk access",
        "SUCCESS: node configuration is consistent!",
        "successfully read from database\nsuccessfully wrote to database\nPassed\n",
        "All repositories are available.\nPassed\n",
        "Skipping clock synchronization: NTP_HOST is not set\n",
    ] {
        assert!(run.stdout.contains(expected), "missing {expected:?} in\n{}", run.stdout);
    }
    assert!(run.stdout.ends_with("\nAll checks passed.\n"), "{}", run.stdout);

    let quiet = setup.run(&["check", "-q"]).await.ok().stdout;
    assert!(quiet.starts_with("Checking praefect migrations...Passed\nChecking gitaly node connectivity"), "{quiet}");
    assert!(!quiet.contains("SUCCESS"), "{quiet}");

    // NTP: in sync, then an hour off.
    let (port, server) = fake_ntp(Duration::ZERO);
    let host = format!("127.0.0.1:{port}");
    let args = ["-config", setup.config_arg(), "check"];
    let run = praefect_with(&args, None, &[("NTP_HOST", &host)]).await.ok();
    server.join().expect("ntp server");
    assert!(
        run.stdout.contains(&format!("checking with NTP service at {host} and allowed clock drift 60000 ms\nPassed\n")),
        "{}",
        run.stdout
    );
    let (port, server) = fake_ntp(Duration::from_secs(3600));
    let host = format!("127.0.0.1:{port}");
    let run = praefect_with(&args, None, &[("NTP_HOST", &host), ("DRIFT_THRESHOLD", "30s")]).await;
    server.join().expect("ntp server");
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("Failed (fatal) error: praefect: clock is not synced"), "{}", run.stdout);

    // A dead node is fatal; its repositories count as unavailable (a warning).
    drop(n2);
    let run = setup.run(&["check"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("the following nodes are not healthy"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_validate_prints_errors_as_json() {
    let valid = "listen_addr = \"localhost:1000\"\n[database]\ndbname = \"praefect\"\n[[virtual_storage]]\n\
                 name = \"praefect\"\n[[virtual_storage.node]]\naddress = \"tcp://gitaly-1.example.com:8075\"\n\
                 storage = \"praefect-internal-1\"\n";
    let run = praefect_with(&["configuration", "validate"], Some(valid), &[]).await.ok();
    assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("", ""));

    let run = praefect_with(&["configuration", "validate"], Some("[[virtual_storage]]\nname = \"a\"\n"), &[]).await;
    assert_eq!(run.code, 2, "{run:?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let errors = report["errors"].as_array().expect("errors");
    assert!(
        errors.iter().any(|e| e.get("key").is_none() && e["message"].as_str().is_some_and(|m| m.contains("listen")))
    );
    assert!(errors.iter().any(|e| e["key"] == serde_json::json!(["virtual_storage", "[0]", "node"])), "{}", run.stdout);
    assert!(run.stdout.starts_with("{\n  \"errors\": [\n"), "indented like upstream: {}", run.stdout);

    let run = praefect_with(&["configuration", "validate"], Some("listen_addr = \n"), &[]).await;
    assert_eq!(run.code, 2);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert!(report["errors"][0]["message"].as_str().is_some_and(|m| m.contains("line 1")), "{}", run.stdout);

    let run = praefect_with(&["configuration", "validate", "extra"], Some(valid), &[]).await;
    assert_eq!((run.code, run.stderr.as_str()), (1, "invalid argument(s)\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_invocations_fail_clearly() {
    let version = praefect(&["-version"]).await.ok().stdout;
    assert_eq!(version, format!("Praefect, version {}\n", cairn_node::server_version()));
    assert_eq!(praefect(&["--version"]).await.ok().stdout, version);

    let missing = praefect(&["sql-ping"]).await;
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.ends_with("Required flag \"config\" not set\n"), "{}", missing.stderr);

    let unknown = praefect(&["-config", "/nonexistent", "frobnicate"]).await;
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.starts_with("praefect: unknown command \"frobnicate\""), "{}", unknown.stderr);

    let bad_flag = praefect(&["-config", "/x", "sql-ping", "-bogus"]).await;
    assert_eq!(bad_flag.code, 2);
    assert!(
        bad_flag.stderr.starts_with("flag provided but not defined: -bogus\nUsage: praefect"),
        "{}",
        bad_flag.stderr
    );

    let positional = praefect(&["-config", "/x", "sql-ping", "extra"]).await;
    assert_eq!(positional.code, 1);
    assert!(positional.stderr.starts_with("sql-ping doesn't accept positional arguments"), "{}", positional.stderr);

    let unreadable = praefect(&["-config", "/nonexistent/config.toml", "sql-ping"]).await;
    assert_eq!(unreadable.code, 1);
    assert!(unreadable.stderr.starts_with("error reading config file: "), "{}", unreadable.stderr);

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "socket_path = \"/tmp/x.sock\"\nbogus_key = 1\n[database]\ndbname = \"p\"\n[[virtual_storage]]\nname = \"v\"\n",
    )
    .expect("write");
    let invalid = praefect(&["-config", path.to_str().expect("utf-8"), "list-storages"]).await;
    assert_eq!(invalid.code, 1, "{invalid:?}");
    assert!(invalid.stderr.contains("bogus_key"), "unknown keys warn: {}", invalid.stderr);
    assert!(invalid.stderr.contains("  virtual_storage.[0].node: no nodes configured"), "{}", invalid.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn track_metadata_and_remove_repository() {
    let (test_db, db) = migrated_db().await;
    let (n1, n2) = (NodeProc::start("gitaly-1", "t1"), NodeProc::start("gitaly-2", "t2"));
    let setup = Setup::new(&test_db, &format!("{}{}", n1.router_entry(), n2.router_entry()), "");
    let _served = serve(&setup.socket, &db, &setup.config, &health(&["gitaly-1", "gitaly-2"])).await;
    git_init(&n1, "legacy/a.git");
    git_init(&n1, "legacy/b.git");

    let track = |path: &'static str, extra: &'static [&'static str]| {
        let setup = &setup;
        async move {
            let replica = format!("legacy/{path}");
            let mut args = vec![
                "track-repository",
                "-virtual-storage",
                "default",
                "-relative-path",
                path,
                "-replica-path",
                &replica,
                "-authoritative-storage",
                "gitaly-1",
            ];
            args.extend_from_slice(extra);
            setup.run(&args).await
        }
    };

    let missing = track("nope.git", &[]).await;
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.stderr,
        "attempting to track repository in praefect database: authoritative repository does not exist\n"
    );

    let run = track("a.git", &[]).await.ok();
    assert_eq!(
        run.stdout,
        "Finished adding new repository to be tracked in praefect database.\n\
         Added replication job to replicate repository to \"gitaly-2\".\n"
    );
    let state = db.repository("default", "a.git").await.expect("load").expect("tracked");
    assert_eq!((state.replica_path.as_str(), state.primary.as_deref()), ("legacy/a.git", Some("gitaly-1")));
    let jobs: i64 = db
        .client()
        .await
        .expect("client")
        .query_one(
            "SELECT count(*) FROM replication_jobs WHERE repository_id = $1 AND target_storage = 'gitaly-2'",
            &[&state.id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(jobs, 1);

    let meta = setup.run(&["metadata", "-virtual-storage", "default", "-relative-path", "a.git"]).await.ok().stdout;
    assert_eq!(
        meta,
        format!(
            "Repository ID: {}\nVirtual Storage: \"default\"\nRelative Path: \"a.git\"\nReplica Path: \"legacy/a.git\"\n\
             Primary: \"gitaly-1\"\nGeneration: 0\nReplicas:\n\
             - Storage: \"gitaly-1\"\n  Assigned: true\n  Generation: 0, fully up to date\n  Healthy: true\n  Valid Primary: true\n  Verified At: unverified\n\
             - Storage: \"gitaly-2\"\n  Assigned: true\n  Generation: replica not yet created\n  Healthy: true\n  Valid Primary: false\n  Verified At: unverified\n",
            state.id
        )
    );
    let by_id = setup.run(&["metadata", "-repository-id", &state.id.to_string()]).await.ok().stdout;
    assert_eq!(by_id, meta);

    // Replicated now: the second node holds it at generation 0.
    let run = track("b.git", &["-replicate-immediately"]).await.ok();
    assert!(run.stdout.ends_with("Finished replicating repository to \"gitaly-2\".\n"), "{}", run.stdout);
    assert!(n2.path_of("legacy/b.git").join("HEAD").exists(), "replica on gitaly-2");
    let b = db.repository("default", "b.git").await.expect("load").expect("tracked");
    assert_eq!(b.generation_of("gitaly-2"), 0);

    let again = track("b.git", &[]).await.ok();
    assert!(again.stdout.starts_with("repository is already tracked in praefect database\n"), "{}", again.stdout);

    // Removal: dry run, database only, then the records are gone.
    let remove = ["remove-repository", "-virtual-storage", "default", "-relative-path", "a.git"];
    let dry = setup.run(&remove).await.ok().stdout;
    assert_eq!(
        dry,
        "Repository found in the database.\nRe-run the command with -apply to remove repositories from the database \
         and disk or -apply and -db-only to remove from database only.\n"
    );
    let mut apply = remove.to_vec();
    apply.extend(["-apply", "-db-only"]);
    let run = setup.run(&apply).await.ok().stdout;
    assert_eq!(
        run,
        "Repository found in the database.\nAttempting to remove a.git from the database...\n\
         Repository removal from database completed.\n"
    );
    assert!(db.repository("default", "a.git").await.expect("load").is_none());
    assert!(n1.path_of("legacy/a.git").exists(), "-db-only leaves disks alone");
    let gone = setup.run(&remove).await;
    assert_eq!((gone.code, gone.stderr.as_str()), (1, "repository is not being tracked in Praefect\n"));
    let meta = setup.run(&["metadata", "-virtual-storage", "default", "-relative-path", "a.git"]).await;
    assert_eq!(meta.code, 1);
    assert_eq!(meta.stderr, "get metadata: rpc error: code = NotFound desc = repository not found\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn info_subcommands_through_the_router() {
    let (test_db, db) = migrated_db().await;
    let nodes = format!("{}{}{}", dead_node("s1"), dead_node("s2"), dead_node("s3"));
    let setup = Setup::new(&test_db, &nodes, "");
    let health = health(&["s1", "s2", "s3"]);
    let _served = serve(&setup.socket, &db, &setup.config, &health).await;
    let id = crate::info_service::behind_repository(&db, "repo.git").await;

    let run = setup.run(&["dataloss"]).await.ok().stdout;
    assert_eq!(run, "Virtual storage: default\n  All repositories are available!\n");
    let run = setup.run(&["dataloss", "-partially-unavailable"]).await.ok().stdout;
    assert_eq!(
        run,
        "Virtual storage: default\n  Repositories:\n    repo.git:\n      Primary: s1\n      In-Sync Storages:\n\
         \x20       s1, assigned host\n      Outdated Storages:\n        s2 is behind by 1 change or less, assigned host\n\
         \x20       s3 is behind by 2 changes or less, assigned host\n"
    );

    let run = setup
        .run(&[
            "set-replication-factor",
            "-virtual-storage",
            "default",
            "-relative-path",
            "repo.git",
            "-replication-factor",
            "2",
        ])
        .await
        .ok()
        .stdout;
    assert!(run == "current assignments: s1, s2\n" || run == "current assignments: s1, s3\n", "{run}");
    let bad = setup
        .run(&[
            "set-replication-factor",
            "-virtual-storage",
            "default",
            "-relative-path",
            "repo.git",
            "-replication-factor",
            "4",
        ])
        .await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("code = InvalidArgument"), "{}", bad.stderr);
    assert!(bad.stderr.contains("attempted to set replication factor 4 but virtual storage only contains 3 storages"));

    setup
        .run(&[
            "accept-dataloss",
            "-virtual-storage",
            "default",
            "-relative-path",
            "repo.git",
            "-authoritative-storage",
            "s2",
        ])
        .await
        .ok();
    let state = db.repository_by_id(id).await.expect("load").expect("exists");
    assert_eq!(state.up_to_date().collect::<Vec<_>>(), vec!["s2"]);
    let missing = setup.run(&["accept-dataloss", "-virtual-storage", "default", "-relative-path", "repo.git"]).await;
    assert_eq!((missing.code, missing.stderr.as_str()), (1, "Required flag \"authoritative-storage\" not set\n"));

    db.client()
        .await
        .expect("client")
        .execute("UPDATE storage_repositories SET verified_at = now() WHERE repository_id = $1", &[&id])
        .await
        .expect("verify");
    let run = setup.run(&["verify", "-repository-id", &id.to_string()]).await.ok().stdout;
    assert_eq!(run, "3 replicas marked unverified\n");
    let run = setup.run(&["verify", "-virtual-storage", "default", "-storage", "s1"]).await.ok().stdout;
    assert_eq!(run, "0 replicas marked unverified\n");
    let run = setup.run(&["verify"]).await;
    assert_eq!(run.stderr, "(repository id), (virtual storage) or (virtual storage, storage) required\n");
}

/// A node that only answers WalkRepos, with a fixed list.
struct FakeWalker(Vec<(&'static str, SystemTime)>);

#[tonic::async_trait]
impl cairn_proto::gitaly::internal_gitaly_server::InternalGitaly for FakeWalker {
    async fn walk_repos(
        &self,
        request: tonic::Request<cairn_proto::gitaly::WalkReposRequest>,
    ) -> Result<tonic::Response<tonic::codegen::BoxStream<cairn_proto::gitaly::WalkReposResponse>>, tonic::Status> {
        assert_eq!(request.into_inner().storage_name, "s1");
        let items: Vec<_> = self
            .0
            .iter()
            .map(|(path, at)| {
                Ok(cairn_proto::gitaly::WalkReposResponse {
                    relative_path: (*path).to_owned(),
                    modification_time: Some((*at).into()),
                })
            })
            .collect();
        Ok(tonic::Response::new(Box::pin(tokio_stream::iter(items))))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn list_untracked_repositories_walks_every_storage() {
    let (test_db, db) = migrated_db().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("node.sock");
    let day_ago = SystemTime::now() - Duration::from_secs(86_400);
    let walker = FakeWalker(vec![
        ("@cluster/repositories/aa/bb/1", day_ago),
        ("legacy/old.git", day_ago),
        ("legacy/new.git", SystemTime::now()),
    ]);
    let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(cairn_proto::gitaly::internal_gitaly_server::InternalGitalyServer::new(walker))
            .serve_with_incoming(incoming),
    );
    db.track_repository("default", "tracked.git", "@cluster/repositories/aa/bb/1", "s1", &[], &[])
        .await
        .expect("track")
        .expect("new");
    let node = format!("[[virtual_storage.node]]\nstorage = \"s1\"\naddress = \"unix:{}\"\n", socket.display());
    let setup = Setup::new(&test_db, &node, "");

    let header = "The following repositories were found on disk, but missing from the tracking database:\n";
    let old = r#"{"relative_path":"legacy/old.git","storage":"s1","virtual_storage":"default"}"#;
    let new = r#"{"relative_path":"legacy/new.git","storage":"s1","virtual_storage":"default"}"#;
    let run = setup.run(&["list-untracked-repositories"]).await.ok();
    assert_eq!(run.stdout, format!("{header}{old}\n"));
    let run = setup.run(&["list-untracked-repositories", "-older-than", "0", "-delimiter", ","]).await.ok();
    assert_eq!(run.stdout, format!("{header}{old},{new},"));
    task.abort();

    let dead = Setup::new(&test_db, &dead_node("s1"), "");
    let run = dead.run(&["list-untracked-repositories"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.starts_with("dial nodes: dial with \"s1\" gitaly at "), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn track_repositories_validates_every_line_first() {
    let (test_db, db) = migrated_db().await;
    let n1 = NodeProc::start("gitaly-1", "t1");
    let setup = Setup::new(&test_db, &format!("{}{}", n1.router_entry(), dead_node("gitaly-2")), "");
    git_init(&n1, "legacy/a.git");
    git_init(&n1, "legacy/b.git");
    let line = |rel: &str, replica: &str| {
        format!(
            r#"{{"relative_path":"{rel}","replica_path":"{replica}","virtual_storage":"default","authoritative_storage":"gitaly-1"}}"#
        )
    };
    let input = setup.path.with_file_name("input.ndjson");
    let input_arg = input.to_str().expect("utf-8").to_owned();
    std::fs::write(
        &input,
        [
            line("a.git", "legacy/a.git"),
            line("a.git", "legacy/a.git"),
            line("c.git", "legacy/missing.git"),
            r#"{"relative_path":"d.git"}"#.to_owned(),
        ]
        .join("\n"),
    )
    .expect("write input");
    let run = setup.run(&["track-repositories", "-input-path", &input_arg]).await;
    assert_eq!((run.code, run.stderr.as_str()), (1, "invalid entries found, aborting\n"), "{}", run.stdout);
    assert_eq!(
        run.stdout,
        format!(
            "Validating repository information in {input_arg:?}\nFound 3 invalid request(s) in {input_arg:?}:\n\
             \x20 line 2, relative_path: \"a.git\", replica_path: \"legacy/a.git\"\n\
             \x20   duplicate entries for relative_path, line [1, 2]\n\
             \x20 line 3, relative_path: \"c.git\", replica_path: \"legacy/missing.git\"\n\
             \x20   not a valid git repository\n\
             \x20 line 4, relative_path: \"d.git\", replica_path: \"\"\n\
             \x20   \"replica-path\" is a required parameter\n\
             \x20   \"virtual-storage\" is a required parameter\n\
             \x20   \"authoritative-storage\" is a required parameter\n"
        )
    );
    assert!(db.repository("default", "a.git").await.expect("load").is_none(), "nothing tracked");

    std::fs::write(&input, [line("a.git", "legacy/a.git"), line("b.git", "legacy/b.git")].join("\n") + "\n")
        .expect("write input");
    let run = setup.run(&["track-repositories", "-input-path", &input_arg]).await.ok();
    assert!(
        run.stdout
            .contains("All repository details are correctly formatted\nTracking 2 repositories in Praefect DB...\n"),
        "{}",
        run.stdout
    );
    for path in ["a.git", "b.git"] {
        let state = db.repository("default", path).await.expect("load").expect("tracked");
        assert_eq!(state.generation_of("gitaly-1"), 0);
    }
}
