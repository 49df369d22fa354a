//! Pushes run hooks as upstream Gitaly runs them: stock git pushes through
//! gitaly-ssh, the node's receive-pack runs gitaly-hooks, which calls
//! HookService, which runs the repository's and the global custom hooks.
//! Plus HookService's answers to malformed requests, called directly.

#![allow(clippy::disallowed_methods, reason = "tests drive the real git CLI and the front-door binaries")]

use crate::support::git::{Format, TestRepo};
use crate::support::{Node, STORAGE};
use cairn_proto::gitaly::hook_service_client::HookServiceClient;
use cairn_proto::gitaly::*;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const GITALY_SSH: &str = env!("CARGO_BIN_EXE_gitaly-ssh");

pub(crate) fn script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write hook");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Client-side `git push` through gitaly-ssh, off the async threads.
pub(crate) async fn push(node: &Node, from: &Path, relative: &str, args: &[&str]) -> Output {
    let payload = format!(
        r#"{{"repository":{{"storageName":"{STORAGE}","relativePath":"{relative}","glRepository":"project-7","glProjectPath":"group/project"}},"glId":"user-42","glUsername":"jane"}}"#
    );
    let env = [
        ("GIT_SSH_COMMAND".to_owned(), format!("{GITALY_SSH} receive-pack")),
        ("GIT_SSH_VARIANT".to_owned(), "simple".to_owned()),
        ("GITALY_ADDRESS".to_owned(), format!("unix:{}", node.socket.display())),
        ("GITALY_PAYLOAD".to_owned(), payload),
    ];
    let mut argv: Vec<String> = vec!["push".into()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let from = from.to_owned();
    tokio::task::spawn_blocking(move || {
        Command::new("git")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", "/nonexistent")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .envs(env)
            .arg("-C")
            .arg(&from)
            .args(&argv)
            .stdin(Stdio::null())
            .output()
            .expect("git runs")
    })
    .await
    .expect("join")
}

pub(crate) fn refs(repo: &Path) -> String {
    let out = Command::new("git").arg("-C").arg(repo).args(["for-each-ref"]).output().expect("git runs");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Every object file and pack of `repo`, and any quarantine left behind.
pub(crate) fn objects(repo: &Path) -> Vec<PathBuf> {
    crate::support::snapshot(&repo.join("objects")).into_keys().collect()
}

pub(crate) fn quarantines(repo: &Path) -> Vec<String> {
    std::fs::read_dir(repo.join("objects"))
        .expect("objects dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("incoming-"))
        .collect()
}

/// A server repository with one commit on main, and a client repository
/// with an unrelated commit the server does not have.
pub(crate) fn repos(node: &Node, format: Format, tmp: &Path) -> (TestRepo, TestRepo, String) {
    let server = node.create_repo("hooks.git", format);
    server.commit_on("main", &[("README", "server\n")], "server root");
    let client = TestRepo::create(tmp, "client.git", format);
    let pushed = client.commit_on("topic", &[("file", "client side\n")], "client commit");
    (server, client, pushed)
}

async fn hooks_run_in_order(format: Format) {
    let global = tempfile::tempdir().expect("tempdir");
    let global_dir = global.path().to_owned();
    let node = Node::start_with(|c| c.hooks.custom_hooks_dir = Some(global_dir)).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, client, pushed) = repos(&node, format, tmp.path());
    let log = tmp.path().join("hooks.log");
    let log = log.display();
    let ids = "GL_ID=$GL_ID GL_USERNAME=$GL_USERNAME GL_REPOSITORY=$GL_REPOSITORY GL_PROJECT_PATH=$GL_PROJECT_PATH GL_PROTOCOL=$GL_PROTOCOL";
    // The pushed commit is only in git's quarantine during pre-receive:
    // `git cat-file` finds it only through the object directories the hook
    // environment names.
    script(
        &server.path.join("custom_hooks/pre-receive"),
        &format!(
            r#"while read old new ref; do
  echo "pre-receive $old $new $ref $(git cat-file -t $new) {ids} opts=$GIT_PUSH_OPTION_COUNT:$GIT_PUSH_OPTION_0:$GIT_PUSH_OPTION_1 objdir=$GIT_OBJECT_DIRECTORY" >> {log}
done
echo "hello from pre-receive""#
        ),
    );
    script(&server.path.join("custom_hooks/update.d/01-update"), &format!(r#"echo "update $1 $2 $3 {ids}" >> {log}"#));
    script(&server.path.join("custom_hooks/update.d/02-backup~"), &format!(r#"echo "editor backup ran" >> {log}"#));
    script(
        &global.path().join("post-receive.d/post"),
        &format!(
            r#"read old new ref
echo "post-receive $old $new $ref $(git cat-file -t $new) {ids} dir=$PWD" >> {log}
echo "post says hi" >&2"#
        ),
    );
    let out =
        push(&node, &client.path, "hooks.git", &["-o", "first", "-o", "second", "ssh://gitaly/x.git", "topic"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "push: {stderr}");
    assert!(stderr.contains("remote: hello from pre-receive"), "{stderr}");
    assert!(stderr.contains("remote: post says hi"), "{stderr}");

    let zero = "0".repeat(pushed.len());
    let ids = "GL_ID=user-42 GL_USERNAME=jane GL_REPOSITORY=project-7 GL_PROJECT_PATH=group/project GL_PROTOCOL=ssh";
    let text = std::fs::read_to_string(tmp.path().join("hooks.log")).expect("hooks ran");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let (pre, objdir) = lines[0].split_once(" objdir=").expect("objdir logged");
    assert_eq!(pre, format!("pre-receive {zero} {pushed} refs/heads/topic commit {ids} opts=2:first:second"));
    assert!(objdir.contains("/objects/tmp_objdir-incoming-") || objdir.contains("/objects/incoming-"), "{objdir}");
    assert_eq!(lines[1], format!("update refs/heads/topic {zero} {pushed} {ids}"));
    let repo_dir = server.path.canonicalize().expect("canonical");
    assert_eq!(
        lines[2],
        format!("post-receive {zero} {pushed} refs/heads/topic commit {ids} dir={}", repo_dir.display())
    );
    assert_eq!(server.git(&["rev-parse", "refs/heads/topic"]), pushed);
    assert_eq!(quarantines(&server.path), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_runs_pre_receive_update_and_post_receive_hooks_sha1() {
    hooks_run_in_order(Format::Sha1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_runs_pre_receive_update_and_post_receive_hooks_sha256() {
    hooks_run_in_order(Format::Sha256).await;
}

/// A rejecting pre-receive hook (the repository's, or the global one)
/// fails the push with its message, and the repository is left as it was:
/// no objects, no references, no quarantine directory.
async fn rejection_changes_nothing(format: Format, global_hook: bool) {
    let global = tempfile::tempdir().expect("tempdir");
    let global_dir = global.path().to_owned();
    let node = Node::start_with(|c| c.hooks.custom_hooks_dir = Some(global_dir)).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, client, _) = repos(&node, format, tmp.path());
    let hook = if global_hook {
        global.path().join("pre-receive.d/reject")
    } else {
        server.path.join("custom_hooks/pre-receive")
    };
    script(&hook, "cat > /dev/null\necho 'GL-HOOK-ERR: pushes to this project are frozen' >&2\nexit 1");
    let update_ran = tmp.path().join("update-ran");
    script(&server.path.join("custom_hooks/update"), &format!("touch {}", update_ran.display()));
    let (refs_before, objects_before) = (refs(&server.path), objects(&server.path));

    let out = push(&node, &client.path, "hooks.git", &["ssh://gitaly/x.git", "topic"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "push must fail");
    assert!(stderr.contains("remote: GL-HOOK-ERR: pushes to this project are frozen"), "{stderr}");
    assert!(stderr.contains("pre-receive hook declined"), "{stderr}");

    assert_eq!(refs(&server.path), refs_before, "no reference changed");
    assert_eq!(objects(&server.path), objects_before, "no object added, no quarantine left");
    assert_eq!(quarantines(&server.path), Vec::<String>::new());
    assert!(!update_ran.exists(), "the update hook never ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejecting_pre_receive_hook_leaves_repository_unchanged_sha1() {
    rejection_changes_nothing(Format::Sha1, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejecting_pre_receive_hook_leaves_repository_unchanged_sha256() {
    rejection_changes_nothing(Format::Sha256, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_custom_hooks_dir_rejects_push() {
    rejection_changes_nothing(Format::Sha1, true).await;
}

fn hook_client(channel: tonic::transport::Channel) -> HookServiceClient<tonic::transport::Channel> {
    HookServiceClient::new(channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_rpcs_answer_bad_requests_like_upstream() {
    let node = Node::start().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_server, _, _) = repos(&node, Format::Sha1, tmp.path());
    let repo = node.repo("hooks.git");
    let mut client = hook_client(node.channel().await);

    // Without a payload the receive hooks fail in-band (exit 1 + reason).
    let first = PreReceiveHookRequest { repository: Some(repo.clone()), ..Default::default() };
    let mut stream = client.pre_receive_hook(futures::stream::iter(vec![first])).await.expect("rpc").into_inner();
    let mut last = None;
    while let Some(m) = stream.message().await.expect("message") {
        last = Some(m);
    }
    let last = last.expect("an answer");
    assert_eq!(last.exit_status.map(|s| s.value), Some(1));
    assert!(String::from_utf8_lossy(&last.stderr).contains("extracting hooks payload"), "{last:?}");

    // UpdateHook reports the same problem as an RPC error.
    let req =
        UpdateHookRequest { repository: Some(repo.clone()), r#ref: b"refs/heads/x".to_vec(), ..Default::default() };
    let mut stream = client.update_hook(req).await.expect("rpc").into_inner();
    let status = loop {
        match stream.message().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("expected an error"),
            Err(s) => break s,
        }
    };
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");

    // An unknown transaction state is INVALID_ARGUMENT.
    let first = ReferenceTransactionHookRequest { repository: Some(repo.clone()), state: 7, ..Default::default() };
    let status =
        client.reference_transaction_hook(futures::stream::iter(vec![first])).await.expect_err("invalid state");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    // Repository validation comes first.
    let status = client
        .post_receive_hook(futures::stream::iter(vec![PostReceiveHookRequest::default()]))
        .await
        .expect_err("no repository");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let missing = PreReceiveHookRequest { repository: Some(node.repo("missing.git")), ..Default::default() };
    let status = client.pre_receive_hook(futures::stream::iter(vec![missing])).await.expect_err("missing");
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_is_not_blocked_by_a_lock_a_killed_git_left() {
    let node = Node::start().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, client, pushed) = repos(&node, Format::Sha1, tmp.path());
    let lock = server.path.join("refs/heads/topic.lock");
    std::fs::write(&lock, "").expect("write lock");
    std::fs::File::open(&lock)
        .expect("open lock")
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        .expect("age lock");
    let out = push(&node, &client.path, "hooks.git", &["ssh://gitaly/x.git", "topic"]).await;
    assert!(out.status.success(), "push: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(server.git(&["rev-parse", "refs/heads/topic"]), pushed);
    assert!(!lock.exists());
}
