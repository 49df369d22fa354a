//! Pushes ask GitLab's internal API, as upstream Gitaly does: a small HTTP
//! server inside the test plays GitLab (checking the JWT and recording every
//! call), a stock git pushes through gitaly-ssh, and the node's receive
//! hooks call `/allowed`, `/pre_receive` and `/post_receive`. The fake
//! `/allowed` calls back into the node with the push's quarantine, as GitLab
//! does, to check that reads see the quarantined objects.

#![allow(clippy::disallowed_methods, reason = "tests drive the real git CLI and the front-door binaries")]

use crate::hooks::{objects, push, quarantines, refs, repos, script};
use crate::support::git::Format;
use crate::support::{Node, STORAGE};
use base64::Engine as _;
use bytes::Bytes;
use cairn_proto::gitaly::commit_service_client::CommitServiceClient;
use cairn_proto::gitaly::*;
use futures::future::BoxFuture;
use hmac::{Hmac, Mac as _};
use http_body_util::{BodyExt as _, Full};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

const SECRET: &str = "the-shared-secret";

/// One request the fake GitLab received.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) path: String,
    /// Whether `Gitlab-Shell-Api-Request` held a valid token.
    jwt_ok: bool,
    authorization: Option<String>,
    content_type: Option<String>,
    body: serde_json::Value,
}

/// Status, content type, body.
pub(crate) type Reply = (u16, &'static str, String);
pub(crate) type Handler = Arc<dyn Fn(Call) -> BoxFuture<'static, Reply> + Send + Sync>;

/// The fake GitLab; stops serving when dropped.
pub(crate) struct FakeGitlab {
    calls: Arc<Mutex<Vec<Call>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGitlab {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGitlab {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls lock").clone()
    }

    pub(crate) fn paths(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.path).collect()
    }

    /// Serves on loopback TCP; the URL to configure.
    pub(crate) async fn tcp(handler: Handler) -> (Self, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = calls.clone();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(serve_connection(s, handler.clone(), recorded.clone()));
            }
        });
        (Self { calls, task }, url)
    }

    /// Serves HTTPS on loopback with a self-signed certificate for
    /// `localhost`, written as PEM to `ca_file`; the URL to configure.
    async fn https(handler: Handler, ca_file: &Path) -> (Self, String) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        std::fs::write(ca_file, cert.cert.pem()).expect("write CA");
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key.into())
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("https://localhost:{}", listener.local_addr().expect("addr").port());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = calls.clone();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let (acceptor, handler, recorded) = (acceptor.clone(), handler.clone(), recorded.clone());
                tokio::spawn(async move {
                    if let Ok(s) = acceptor.accept(s).await {
                        serve_connection(s, handler, recorded).await;
                    }
                });
            }
        });
        (Self { calls, task }, url)
    }

    /// Serves on a Unix socket at `path`.
    fn unix(path: &Path, handler: Handler) -> Self {
        let listener = tokio::net::UnixListener::bind(path).expect("bind unix");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = calls.clone();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(serve_connection(s, handler.clone(), recorded.clone()));
            }
        });
        Self { calls, task }
    }
}

async fn serve_connection<S>(stream: S, handler: Handler, calls: Arc<Mutex<Vec<Call>>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let handler = handler.clone();
        let calls = calls.clone();
        async move {
            let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let jwt_ok = header("gitlab-shell-api-request").is_some_and(|t| verify_jwt(&t));
            let authorization = header("authorization");
            let content_type = header("content-type");
            let path = req.uri().path().to_owned();
            let body = req.into_body().collect().await.expect("request body").to_bytes();
            let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            let call = Call { path, jwt_ok, authorization, content_type, body };
            calls.lock().expect("calls lock").push(call.clone());
            let (status, content_type, body) = handler(call).await;
            hyper::Response::builder()
                .status(status)
                .header("content-type", content_type)
                .body(Full::new(Bytes::from(body)))
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
}

/// An HS256 token signed with [`SECRET`], issued by gitlab-shell, current.
fn verify_jwt(token: &str) -> bool {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let Some((input, signature)) = token.rsplit_once('.') else { return false };
    let Ok(signature) = b64.decode(signature) else { return false };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(input.as_bytes());
    if mac.verify_slice(&signature).is_err() {
        return false;
    }
    let Some((header, claims)) = input.split_once('.') else { return false };
    let decode = |part: &str| -> serde_json::Value {
        serde_json::from_slice(&b64.decode(part).unwrap_or_default()).unwrap_or_default()
    };
    let (header, claims) = (decode(header), decode(claims));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    header["alg"] == "HS256"
        && claims["iss"] == "gitlab-shell"
        && claims["exp"].as_u64().is_some_and(|e| e > now)
        && claims["iat"].as_u64().is_some_and(|i| i <= now + 5)
}

pub(crate) fn json(status: u16, body: serde_json::Value) -> Reply {
    (status, "application/json", body.to_string())
}

/// A GitLab that allows everything and shows two messages after the push.
pub(crate) fn allowing() -> Handler {
    Arc::new(|call: Call| {
        Box::pin(async move {
            match call.path.rsplit('/').next().unwrap_or_default() {
                "allowed" => json(200, serde_json::json!({"status": true, "message": ""})),
                "pre_receive" => json(200, serde_json::json!({"reference_counter_increased": true})),
                "post_receive" => json(
                    200,
                    serde_json::json!({
                        "reference_counter_decreased": true,
                        "messages": [
                            {"type": "basic", "message": "To create a merge request for topic, visit:\n  http://gitlab/mr"},
                            {"type": "alert", "message": "This project is read-mostly on Sundays"},
                        ],
                    }),
                ),
                _ => json(404, serde_json::json!({"message": "404 Not Found"})),
            }
        })
    })
}

/// Writes the secret file the node reads and points the config at `url`.
pub(crate) fn configure(cfg: &mut cairn_node::config::Config, url: &str, secret_dir: &Path) {
    let secret_file = secret_dir.join(".gitlab_secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write secret");
    cfg.gitlab.url = Some(url.to_owned());
    cfg.gitlab.secret_file = Some(secret_file);
    cfg.gitlab.http_settings.user = Some("api-user".into());
    cfg.gitlab.http_settings.password = Some("api-pass".into());
    cfg.gitlab.http_settings.read_timeout = Some(10);
}

/// What the fake `/allowed` saw when it read the pushed commit back.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Readback {
    with_quarantine: Option<String>,
    without_quarantine: Option<String>,
    listed_with_quarantine: Vec<String>,
}

/// `/allowed` that reads the pushed commit back through the node, with the
/// push's quarantine and without, as GitLab's access checks do.
fn reading_back(socket: Arc<OnceLock<PathBuf>>, seen: Arc<Mutex<Option<Readback>>>) -> Handler {
    let inner = allowing();
    Arc::new(move |call: Call| {
        let (socket, seen, inner) = (socket.clone(), seen.clone(), inner.clone());
        Box::pin(async move {
            if call.path.ends_with("/allowed") {
                let socket = socket.get().expect("node started").clone();
                let readback = read_back(&socket, &call.body).await;
                *seen.lock().expect("lock") = Some(readback);
            }
            inner(call).await
        })
    })
}

async fn read_back(socket: &Path, body: &serde_json::Value) -> Readback {
    let env: serde_json::Value = serde_json::from_str(body["env"].as_str().expect("env")).expect("env json");
    let new = body["changes"].as_str().expect("changes").split_whitespace().nth(1).expect("new id").to_owned();
    let plain = Repository {
        storage_name: STORAGE.into(),
        relative_path: body["relative_path"].as_str().expect("relative_path").into(),
        gl_repository: body["gl_repository"].as_str().expect("gl_repository").into(),
        ..Default::default()
    };
    let quarantined = Repository {
        git_object_directory: env["GIT_OBJECT_DIRECTORY_RELATIVE"].as_str().expect("object dir").into(),
        git_alternate_object_directories: env["GIT_ALTERNATE_OBJECT_DIRECTORIES_RELATIVE"]
            .as_array()
            .expect("alternates")
            .iter()
            .map(|a| a.as_str().expect("string").to_owned())
            .collect(),
        ..plain.clone()
    };
    let mut client = CommitServiceClient::new(crate::support::unix_channel(socket).await);
    let find = |repository: Repository| {
        let mut client = client.clone();
        let new = new.clone();
        async move {
            client
                .find_commit(FindCommitRequest {
                    repository: Some(repository),
                    revision: new.into_bytes(),
                    ..Default::default()
                })
                .await
                .expect("FindCommit")
                .into_inner()
                .commit
                .map(|c| c.id)
        }
    };
    let with_quarantine = find(quarantined.clone()).await;
    let without_quarantine = find(plain).await;
    let mut listed = client
        .list_commits(ListCommitsRequest {
            repository: Some(quarantined),
            revisions: vec![new, "--not".into(), "--all".into()],
            ..Default::default()
        })
        .await
        .expect("ListCommits")
        .into_inner();
    let mut listed_with_quarantine = Vec::new();
    while let Some(m) = listed.message().await.expect("ListCommits stream") {
        listed_with_quarantine.extend(m.commits.into_iter().map(|c| c.id));
    }
    Readback { with_quarantine, without_quarantine, listed_with_quarantine }
}

async fn allowed_push_calls_gitlab(format: Format) {
    let socket = Arc::new(OnceLock::new());
    let seen = Arc::new(Mutex::new(None));
    let (gitlab, url) = FakeGitlab::tcp(reading_back(socket.clone(), seen.clone())).await;
    let secrets = tempfile::tempdir().expect("tempdir");
    let node = Node::start_with(|c| configure(c, &url, secrets.path())).await;
    socket.set(node.socket.clone()).expect("set once");
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, client, pushed) = repos(&node, format, tmp.path());
    let log = tmp.path().join("custom.log");
    script(&server.path.join("custom_hooks/pre-receive"), &format!("echo pre-receive >> {}", log.display()));
    script(&server.path.join("custom_hooks/post-receive"), &format!("echo post-receive >> {}", log.display()));

    let out = push(&node, &client.path, "hooks.git", &["-o", "ci.skip", "ssh://gitaly/x.git", "topic"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "push: {stderr}");
    assert_eq!(server.git(&["rev-parse", "refs/heads/topic"]), pushed);
    assert_eq!(quarantines(&server.path), Vec::<String>::new());
    assert_eq!(std::fs::read_to_string(&log).expect("custom hooks ran"), "pre-receive\npost-receive\n");

    // GitLab's messages reach the pusher as git shows remote output.
    assert!(stderr.contains("remote: To create a merge request for topic, visit:"), "{stderr}");
    assert!(stderr.contains("remote:   http://gitlab/mr"), "{stderr}");
    assert!(stderr.contains(&format!("remote: {}", "=".repeat(72))), "{stderr}");
    assert!(stderr.contains(&format!("remote: {}This project is read-mostly on Sundays", " ".repeat(17))), "{stderr}");

    assert_eq!(
        gitlab.paths(),
        ["/api/v4/internal/allowed", "/api/v4/internal/pre_receive", "/api/v4/internal/post_receive"]
    );
    let calls = gitlab.calls();
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("api-user:api-pass"));
    for c in &calls {
        assert!(c.jwt_ok, "{c:?}");
        assert_eq!(c.authorization.as_deref(), Some(basic.as_str()), "{c:?}");
        assert_eq!(c.content_type.as_deref(), Some("application/json"), "{c:?}");
    }
    let zero = "0".repeat(pushed.len());
    let changes = format!("{zero} {pushed} refs/heads/topic\n");
    let allowed = &calls[0].body;
    assert_eq!(allowed["action"], "git-receive-pack");
    assert_eq!(allowed["gl_repository"], "project-7");
    assert_eq!(allowed["relative_path"], "hooks.git");
    assert_eq!(allowed["project"], server.path.display().to_string());
    assert_eq!(allowed["protocol"], "ssh");
    assert_eq!(allowed["user_id"], "42");
    assert_eq!(allowed["changes"], changes.as_str());
    assert!(allowed.get("username").is_none() && allowed.get("key_id").is_none(), "{allowed}");
    let env: serde_json::Value = serde_json::from_str(allowed["env"].as_str().expect("env")).expect("json");
    let object_dir = env["GIT_OBJECT_DIRECTORY_RELATIVE"].as_str().expect("object dir");
    assert!(object_dir.starts_with("objects/") && object_dir.contains("incoming-"), "{env}");
    assert_eq!(env["GIT_ALTERNATE_OBJECT_DIRECTORIES_RELATIVE"], serde_json::json!(["objects"]));
    assert_eq!(calls[1].body, serde_json::json!({"gl_repository": "project-7"}));
    assert_eq!(
        calls[2].body,
        serde_json::json!({
            "gl_repository": "project-7",
            "identifier": "user-42",
            "changes": changes,
            "push_options": ["ci.skip"],
        })
    );

    // While the push was quarantined, only reads naming the quarantine saw it.
    let readback = seen.lock().expect("lock").clone().expect("/allowed read back");
    assert_eq!(
        readback,
        Readback {
            with_quarantine: Some(pushed.clone()),
            without_quarantine: None,
            listed_with_quarantine: vec![pushed.clone()],
        }
    );
    // After the push the objects are the repository's own.
    let after = node_find_commit(&node, &pushed).await;
    assert_eq!(after.as_deref(), Some(pushed.as_str()));
}

async fn node_find_commit(node: &Node, id: &str) -> Option<String> {
    let mut client = CommitServiceClient::new(node.channel().await);
    client
        .find_commit(FindCommitRequest {
            repository: Some(node.repo("hooks.git")),
            revision: id.as_bytes().to_vec(),
            ..Default::default()
        })
        .await
        .expect("FindCommit")
        .into_inner()
        .commit
        .map(|c| c.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_push_calls_gitlab_and_reads_see_quarantine_sha1() {
    allowed_push_calls_gitlab(Format::Sha1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_push_calls_gitlab_and_reads_see_quarantine_sha256() {
    allowed_push_calls_gitlab(Format::Sha256).await;
}

/// Pushes against a GitLab answering `/allowed` with `reply`; the push must
/// fail showing `shown`, change nothing, and call nothing else.
async fn rejected(reply: Reply, shown: &str) {
    let reply = Arc::new(reply);
    let handler: Handler = Arc::new(move |call: Call| {
        let reply = reply.clone();
        Box::pin(async move {
            if call.path.ends_with("/allowed") {
                (*reply).clone()
            } else {
                json(200, serde_json::json!({"reference_counter_increased": true, "reference_counter_decreased": true}))
            }
        })
    });
    let (gitlab, url) = FakeGitlab::tcp(handler).await;
    let secrets = tempfile::tempdir().expect("tempdir");
    let node = Node::start_with(|c| configure(c, &url, secrets.path())).await;
    rejected_push(&node, shown).await;
    assert_eq!(gitlab.paths(), ["/api/v4/internal/allowed"]);
}

/// Pushes a new branch and checks it was refused with `shown` and that the
/// repository did not change (nor did the custom pre-receive hook run).
async fn rejected_push(node: &Node, shown: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, client, _) = repos(node, Format::Sha1, tmp.path());
    let log = tmp.path().join("custom.log");
    script(&server.path.join("custom_hooks/pre-receive"), &format!("echo ran >> {}", log.display()));
    let (refs_before, objects_before) = (refs(&server.path), objects(&server.path));
    let out = push(node, &client.path, "hooks.git", &["ssh://gitaly/x.git", "topic"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "push succeeded: {stderr}");
    assert!(stderr.contains(&format!("remote: {shown}")), "{stderr}");
    assert!(stderr.contains("pre-receive hook declined"), "{stderr}");
    assert_eq!(refs(&server.path), refs_before);
    assert_eq!(objects(&server.path), objects_before);
    assert_eq!(quarantines(&server.path), Vec::<String>::new());
    assert!(!log.exists(), "custom hook ran after GitLab refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_refusing_with_an_error_status_rejects_the_push() {
    rejected(
        json(401, serde_json::json!({"status": false, "message": "You are not allowed to push code to this project."})),
        "GitLab: You are not allowed to push code to this project.",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_answering_status_false_rejects_the_push() {
    rejected(
        json(200, serde_json::json!({"status": false, "message": "Branch is protected"})),
        "GitLab: Branch is protected",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_answering_an_error_without_json_rejects_the_push() {
    rejected((502, "text/html", "<html>bad gateway</html>".into()), "GitLab: Internal API error (502)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_gitlab_rejects_the_push() {
    // A port nothing listens on any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let secrets = tempfile::tempdir().expect("tempdir");
    let node = Node::start_with(|c| configure(c, &url, secrets.path())).await;
    rejected_push(&node, "GitLab: Internal API unreachable").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_receive_not_counting_the_push_rejects_it() {
    let handler: Handler = Arc::new(|call: Call| {
        Box::pin(async move {
            match call.path.rsplit('/').next().unwrap_or_default() {
                "allowed" => json(200, serde_json::json!({"status": true})),
                _ => json(200, serde_json::json!({"reference_counter_increased": false})),
            }
        })
    });
    let (gitlab, url) = FakeGitlab::tcp(handler).await;
    let secrets = tempfile::tempdir().expect("tempdir");
    let node = Node::start_with(|c| configure(c, &url, secrets.path())).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, client, _) = repos(&node, Format::Sha1, tmp.path());
    let refs_before = refs(&server.path);
    let out = push(&node, &client.path, "hooks.git", &["ssh://gitaly/x.git", "topic"]).await;
    assert!(!out.status.success(), "push succeeded: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(refs(&server.path), refs_before);
    assert_eq!(gitlab.paths(), ["/api/v4/internal/allowed", "/api/v4/internal/pre_receive"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_over_a_unix_socket_with_relative_url_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("gitlab.socket");
    let gitlab = FakeGitlab::unix(&socket, allowing());
    // GitLab writes socket URLs percent-encoded.
    let url = format!("http+unix://{}", socket.display().to_string().replace('/', "%2F"));
    let node = Node::start_with(|c| {
        configure(c, &url, dir.path());
        c.gitlab.relative_url_root = Some("/gitlab/".into());
    })
    .await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, client, pushed) = repos(&node, Format::Sha1, tmp.path());
    let out = push(&node, &client.path, "hooks.git", &["ssh://gitaly/x.git", "topic"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "push: {stderr}");
    assert!(stderr.contains("remote: To create a merge request for topic, visit:"), "{stderr}");
    assert_eq!(server.git(&["rev-parse", "refs/heads/topic"]), pushed);
    assert_eq!(
        gitlab.paths(),
        [
            "/gitlab/api/v4/internal/allowed",
            "/gitlab/api/v4/internal/pre_receive",
            "/gitlab/api/v4/internal/post_receive"
        ]
    );
    assert!(gitlab.calls().iter().all(|c| c.jwt_ok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_fields_are_validated() {
    let node = Node::start().await;
    let server = node.create_repo("q.git", Format::Sha1);
    let head = server.commit_on("main", &[("a", "a\n")], "root");
    let mut client = CommitServiceClient::new(node.channel().await);
    let find = |object_dir: &str, alternates: &[&str]| FindCommitRequest {
        repository: Some(Repository {
            git_object_directory: object_dir.into(),
            git_alternate_object_directories: alternates.iter().map(|a| (*a).to_owned()).collect(),
            ..node.repo("q.git")
        }),
        revision: head.clone().into_bytes(),
        ..Default::default()
    };
    // An empty quarantine plus the repository's objects finds the commit;
    // the empty quarantine alone does not.
    std::fs::create_dir_all(server.path.join("objects/incoming-test")).expect("mkdir");
    let r = client.find_commit(find("objects/incoming-test", &["objects"])).await.expect("FindCommit");
    assert_eq!(r.into_inner().commit.map(|c| c.id), Some(head.clone()));
    let r = client.find_commit(find("objects/incoming-test", &[])).await.expect("FindCommit");
    assert_eq!(r.into_inner().commit, None);
    for bad in ["../../escape", "/etc", "objects/../.."] {
        let e = client.find_commit(find(bad, &["objects"])).await.expect_err(bad);
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad}: {e:?}");
    }
    // Reading through a quarantine leaves nothing behind in the storage.
    let scratch = node.storage.join("+gitaly/tmp");
    let leftovers: Vec<_> =
        std::fs::read_dir(&scratch).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert_eq!(leftovers, Vec::<PathBuf>::new());
}

/// A commit that exists only in a quarantine directory of `repo`, made by
/// git as receive-pack would have written it.
fn quarantined_commit(repo: &Path, quarantine: &str) -> String {
    let dir = repo.join(quarantine);
    std::fs::create_dir_all(&dir).expect("mkdir quarantine");
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["commit-tree", "main^{tree}", "-p", "main", "-m", "quarantined"])
        .env("GIT_OBJECT_DIRECTORY", &dir)
        .env("GIT_ALTERNATE_OBJECT_DIRECTORIES", repo.join("objects"))
        .env("GIT_AUTHOR_NAME", "A")
        .env("GIT_AUTHOR_EMAIL", "a@example.com")
        .env("GIT_COMMITTER_NAME", "C")
        .env("GIT_COMMITTER_EMAIL", "c@example.com")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_processes_read_through_the_quarantine() {
    let node = Node::start().await;
    let server = node.create_repo("q.git", Format::Sha1);
    server.commit_on("main", &[("a", "line\n")], "root");
    let id = quarantined_commit(&server.path, "objects/incoming-manual");
    let quarantined = Repository {
        git_object_directory: "objects/incoming-manual".into(),
        git_alternate_object_directories: vec!["objects".into()],
        ..node.repo("q.git")
    };
    let mut client = CommitServiceClient::new(node.channel().await);
    let blame = |repository: Repository| RawBlameRequest {
        repository: Some(repository),
        revision: id.clone().into_bytes(),
        path: b"a".to_vec(),
        ..Default::default()
    };
    let mut stream = client.raw_blame(blame(quarantined)).await.expect("RawBlame").into_inner();
    let mut data = Vec::new();
    while let Some(m) = stream.message().await.expect("RawBlame stream") {
        data.extend(m.data);
    }
    let text = String::from_utf8_lossy(&data);
    assert!(text.contains("\tline"), "{text}");
    // Without the quarantine the revision does not exist.
    let plain = match client.raw_blame(blame(node.repo("q.git"))).await {
        Ok(r) => r.into_inner().message().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(plain.is_err(), "{plain:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_over_https_trusts_ca_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("gitlab-ca.pem");
    let (gitlab, url) = FakeGitlab::https(allowing(), &ca_file).await;
    let node = Node::start_with(|c| {
        configure(c, &url, dir.path());
        c.gitlab.http_settings.ca_file = Some(ca_file.clone());
    })
    .await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, client, pushed) = repos(&node, Format::Sha1, tmp.path());
    let out = push(&node, &client.path, "hooks.git", &["ssh://gitaly/x.git", "topic"]).await;
    assert!(out.status.success(), "push: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(server.git(&["rev-parse", "refs/heads/topic"]), pushed);
    assert_eq!(gitlab.paths().len(), 3, "{:?}", gitlab.paths());
    assert!(gitlab.calls().iter().all(|c| c.jwt_ok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_over_https_with_an_untrusted_certificate_rejects_the_push() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (gitlab, url) = FakeGitlab::https(allowing(), &dir.path().join("unused-ca.pem")).await;
    let node = Node::start_with(|c| configure(c, &url, dir.path())).await;
    rejected_push(&node, "GitLab: Internal API unreachable").await;
    assert_eq!(gitlab.paths(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_reads_follow_the_repository_alternates() {
    let node = Node::start().await;
    // `pool.git` holds the commit; `q.git` borrows it through a relative
    // alternates entry, as object pools are linked.
    let pool = node.create_repo("pools/pool.git", Format::Sha1);
    let shared = pool.commit_on("main", &[("a", "pooled\n")], "pooled");
    let server = node.create_repo("group/q.git", Format::Sha1);
    std::fs::write(server.path.join("objects/info/alternates"), "../../../pools/pool.git/objects\n")
        .expect("alternates");
    std::fs::create_dir_all(server.path.join("objects/incoming-empty")).expect("mkdir");
    let mut client = CommitServiceClient::new(node.channel().await);
    let find = |repository: Repository| FindCommitRequest {
        repository: Some(repository),
        revision: shared.clone().into_bytes(),
        ..Default::default()
    };
    let quarantined = Repository {
        git_object_directory: "objects/incoming-empty".into(),
        git_alternate_object_directories: vec!["objects".into()],
        ..node.repo("group/q.git")
    };
    for repository in [node.repo("group/q.git"), quarantined] {
        let r = client.find_commit(find(repository.clone())).await.expect("FindCommit");
        assert_eq!(r.into_inner().commit.map(|c| c.id).as_deref(), Some(shared.as_str()), "{repository:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_receive_failure_is_shown_but_the_push_stands() {
    let handler: Handler = Arc::new(|call: Call| {
        Box::pin(async move {
            match call.path.rsplit('/').next().unwrap_or_default() {
                "allowed" => json(200, serde_json::json!({"status": true})),
                "pre_receive" => json(200, serde_json::json!({"reference_counter_increased": true})),
                _ => json(500, serde_json::json!({"message": "redis is down"})),
            }
        })
    });
    let (_gitlab, url) = FakeGitlab::tcp(handler).await;
    let secrets = tempfile::tempdir().expect("tempdir");
    let node = Node::start_with(|c| configure(c, &url, secrets.path())).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, client, pushed) = repos(&node, Format::Sha1, tmp.path());
    let log = tmp.path().join("custom.log");
    script(&server.path.join("custom_hooks/post-receive"), &format!("echo ran >> {}", log.display()));
    let out = push(&node, &client.path, "hooks.git", &["ssh://gitaly/x.git", "topic"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // References are updated before post-receive runs; git reports the
    // hook's failure without failing the push.
    assert_eq!(server.git(&["rev-parse", "refs/heads/topic"]), pushed);
    assert!(
        stderr.contains("remote: GitLab: http post to gitlab api /post_receive endpoint: redis is down"),
        "{stderr}"
    );
    assert!(!log.exists(), "custom post-receive ran after GitLab failed");
}
