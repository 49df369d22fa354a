//! The `gitaly` binary: --version, check, serve (and the legacy form), with
//! TCP, Unix and TLS listeners, JSON access logs, metrics and SIGTERM.

#![allow(clippy::disallowed_methods, reason = "tests run the real binary")]

use cairn_node::client::{DialOptions, dial};
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::server_service_client::ServerServiceClient;
use cairn_proto::gitaly::*;
use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_gitaly");

fn gitaly(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().expect("run gitaly")
}

#[test]
fn version() {
    let out = gitaly(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Gitaly, version 18."), "{text}");
    assert!(!gitaly(&["--bogus"]).status.success());
}

#[test]
fn check_reports_storages_and_every_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!(
            "socket_path = \"{d}/s.sock\"\nunknown_key = 1\n[[storage]]\nname = \"default\"\npath = \"{d}\"\n",
            d = dir.path().display()
        ),
    )
    .expect("write config");
    let out = gitaly(&["check", good.to_str().expect("utf-8")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("warning: unknown configuration key \"unknown_key\""), "{text}");
    assert!(text.contains("storage \"default\""), "{text}");
    assert!(text.contains("readable, writeable"), "{text}");
    assert!(text.contains("Check: OK"), "{text}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "listen_addr = \"nope\"\n[logging]\nformat = \"xml\"\n[[storage]]\nname = \"x\"\npath = \"/nonexistent\"\n",
    )
    .expect("write config");
    let out = gitaly(&["check", bad.to_str().expect("utf-8")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    for key in ["listen_addr:", "logging.format:", "storage.[0].path:", "storage \"x\" at /nonexistent: missing"] {
        assert!(text.contains(key), "{key} missing in {text}");
    }
    let out = gitaly(&["serve", bad.to_str().expect("utf-8")]);
    assert!(!out.status.success(), "serve refuses an invalid config");
    assert!(String::from_utf8_lossy(&out.stderr).contains("logging.format"));
    let out = gitaly(&["check", "/nonexistent/config.toml"]);
    assert!(!out.status.success());
}

struct Served {
    child: Child,
    lines: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn start(args: &[&str]) -> Self {
        let mut child =
            Command::new(BIN).args(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    fn wait_for(&self, what: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        loop {
            let v = self.lines.recv_timeout(Duration::from_secs(20)).expect("log line in time");
            if what(&v) {
                return v;
            }
        }
    }
}

fn tls_files(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).expect("cert");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).expect("cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("key");
    (cert_path, key_path)
}

#[tokio::test]
async fn serve_on_every_listener_with_json_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().join("storage");
    std::fs::create_dir_all(&storage).expect("mkdir");
    crate::support::git::TestRepo::create(&storage, "group/project.git", crate::support::git::Format::Sha1);
    let (cert, key) = tls_files(dir.path());
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
listen_addr = "127.0.0.1:0"
tls_listen_addr = "127.0.0.1:0"
socket_path = "{d}/gitaly.socket"
prometheus_listen_addr = "127.0.0.1:0"
[tls]
certificate_path = "{cert}"
key_path = "{key}"
[auth]
token = "secret"
[logging]
format = "json"
level = "info"
[[storage]]
name = "default"
path = "{storage}"
"#,
            d = dir.path().display(),
            cert = cert.display(),
            key = key.display(),
            storage = storage.display()
        ),
    )
    .expect("config");
    let served = Served::start(&["serve", config.to_str().expect("utf-8")]);
    let start = served.wait_for(|v| v["message"] == "starting Gitaly");
    let tcp = start["listen_addr"].as_str().expect("tcp").to_owned();
    let tls = start["tls_listen_addr"].as_str().expect("tls").to_owned();
    let socket = start["socket_path"].as_str().expect("unix").to_owned();
    let metrics = start["prometheus_listen_addr"].as_str().expect("metrics").to_owned();

    let opts = DialOptions { token: Some("secret".into()), tls_ca: Some(cert.clone()), ..Default::default() };
    for address in
        [format!("tcp://{tcp}"), format!("tls://{}", tls.replace("127.0.0.1", "localhost")), format!("unix:{socket}")]
    {
        let conn = dial(&address, opts.clone()).await.unwrap_or_else(|e| panic!("dial {address}: {e}"));
        let info = ServerServiceClient::new(conn.channel()).server_info(ServerInfoRequest {}).await;
        assert_eq!(info.unwrap_or_else(|e| panic!("{address}: {e}")).into_inner().storage_statuses.len(), 1);
    }

    // One JSON line per RPC, with upstream's field names.
    let conn = dial(&format!("tcp://{tcp}"), opts.clone()).await.expect("dial");
    let mut req = tonic::Request::new(RepositoryExistsRequest {
        repository: Some(Repository {
            storage_name: "default".into(),
            relative_path: "group/project.git".into(),
            gl_repository: "project-1".into(),
            ..Default::default()
        }),
    });
    req.metadata_mut().insert("x-gitlab-correlation-id", "corr-123".parse().expect("ascii"));
    assert!(
        RepositoryServiceClient::new(conn.channel()).repository_exists(req).await.expect("exists").into_inner().exists
    );
    let line = served.wait_for(|v| v["correlation_id"] == "corr-123");
    assert_eq!(line["msg"], "finished unary call with code OK");
    assert_eq!(line["grpc.method"], "RepositoryExists");
    assert_eq!(line["grpc.service"], "gitaly.RepositoryService");
    assert_eq!(line["grpc.code"], "OK");
    assert_eq!(line["grpc.request.repoPath"], "group/project.git");
    assert_eq!(line["grpc.request.repoStorage"], "default");
    assert_eq!(line["grpc.request.glRepository"], "project-1");
    assert!(line["grpc.time_ms"].as_f64().is_some());
    assert_eq!(line["level"], "info");

    let page = crate::support::http_get(metrics.parse().expect("addr"), "/metrics").await;
    for t in ["tcp", "tls", "unix"] {
        assert!(page.contains(&format!("gitaly_connections_total{{type=\"{t}\"}}")), "{t}: {page}");
    }

    // SIGTERM: a graceful exit.
    let pid = served.child.id();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).expect("pid"),
        rustix::process::Signal::TERM,
    )
    .expect("signal");
    let mut served = served;
    let status = tokio::task::spawn_blocking(move || served.child.wait()).await.expect("join").expect("wait");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn legacy_invocation_serves_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "socket_path = \"{d}/g.sock\"\n[logging]\nformat = \"json\"\n[[storage]]\nname = \"default\"\npath = \"{d}\"\n",
            d = dir.path().display()
        ),
    )
    .expect("config");
    let served = Served::start(&[config.to_str().expect("utf-8")]);
    served.wait_for(|v| v["message"] == "starting Gitaly");
    let conn = dial(&format!("unix:{}/g.sock", dir.path().display()), DialOptions::default()).await.expect("dial");
    ServerServiceClient::new(conn.channel()).server_info(ServerInfoRequest {}).await.expect("info");
}

/// `gitaly readiness` (the operator's exec readiness probe) asks the running
/// node through its own socket with its token.
#[test]
fn readiness_probe_asks_the_running_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().join("storage");
    std::fs::create_dir_all(&storage).expect("mkdir");
    let write = |name: &str, token: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "socket_path = \"{d}/gitaly.socket\"\n[auth]\ntoken = \"{token}\"\n[logging]\nformat = \"json\"\n[[storage]]\nname = \"default\"\npath = \"{s}\"\n",
                d = dir.path().display(),
                s = storage.display()
            ),
        )
        .expect("write config");
        path
    };
    let good = write("config.toml", "secret");
    let wrong = write("wrong.toml", "not-the-token");

    let out = gitaly(&["readiness", good.to_str().expect("utf-8")]);
    assert!(!out.status.success(), "not ready while nothing listens");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("not ready: "), "{out:?}");

    let served = Served::start(&["serve", good.to_str().expect("utf-8")]);
    served.wait_for(|v| v["message"] == "starting Gitaly");
    let out = gitaly(&["readiness", "-config", good.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ready\n");

    let out = gitaly(&["readiness", wrong.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PermissionDenied"), "{out:?}");
    drop(served);
}
