//! Git over the wire: stock git clones, fetches, pushes and archives through
//! `gitaly-ssh` (SSHService, with and without sidechannel) and through the
//! `gitaly-http` front door (SmartHTTPService) against a real node; raw RPCs
//! for malformed input and vanishing clients.

#![allow(clippy::disallowed_methods, reason = "tests drive the real git CLI and the front-door binaries")]

use crate::support::fixture::{LONG_COMMITS, copy_repo, rel};
use crate::support::git::Format;
use crate::support::wire::{GITALY_SSH, HttpFrontDoor, assert_fsck_and_refs, git, git_ok, refs};
use crate::support::{Node, STORAGE};
use cairn_proto::gitaly::smart_http_service_client::SmartHttpServiceClient;
use cairn_proto::gitaly::ssh_service_client::SshServiceClient;
use cairn_proto::gitaly::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A gitaly-ssh payload for `relative` on the node's storage, in protojson.
fn payload(relative: &str, extra: &str) -> String {
    format!(
        r#"{{"repository":{{"storageName":"{STORAGE}","relativePath":"{relative}","glRepository":"project-1"}}{extra}}}"#
    )
}

/// Environment making git talk to `node` through gitaly-ssh in `mode`.
fn ssh_env(node: &Node, mode: &str, payload: String, sidechannel: bool) -> Vec<(String, String)> {
    let mut env = vec![
        ("GIT_SSH_COMMAND".to_owned(), format!("{GITALY_SSH} {mode}")),
        ("GIT_SSH_VARIANT".to_owned(), "simple".to_owned()),
        ("GITALY_ADDRESS".to_owned(), format!("unix:{}", node.socket.display())),
        ("GITALY_PAYLOAD".to_owned(), payload),
    ];
    if sidechannel {
        env.push(("GITALY_USE_SIDECHANNEL".to_owned(), "1".to_owned()));
    }
    env
}

/// Copies `<fmt>/long.git` into the node's own storage.
fn long_copy(node: &Node, format: Format) -> (String, PathBuf) {
    let path = copy_repo(&node.storage, format, "long");
    (rel(format, "long"), path)
}

/// A new commit on top of `parent` in `repo` (bare), made with plumbing.
async fn new_commit(repo: &Path, parent: &str, message: &str) -> String {
    let dir = Some(repo.to_owned());
    let tree = git_ok(dir.clone(), &["rev-parse", &format!("{parent}^{{tree}}")], vec![]).await;
    git_ok(dir, &["commit-tree", &tree, "-p", parent, "-m", message], vec![]).await
}

async fn ssh_round_trip(format: Format, sidechannel: bool, protocol: &str) {
    let node = Node::start().await;
    let (relative, source) = long_copy(&node, format);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mirror = tmp.path().join("mirror.git");
    let extra = if protocol.is_empty() { String::new() } else { format!(r#","gitProtocol":"{protocol}""#) };
    let fetch_env = ssh_env(&node, "upload-pack", payload(&relative, &extra), sidechannel);

    // Clone every reference.
    let url = "ssh://gitaly/repo.git";
    git_ok(None, &["clone", "--mirror", "--quiet", url, mirror.to_str().expect("utf-8")], fetch_env.clone()).await;
    assert_fsck_and_refs(&mirror, &source);
    let count = git_ok(Some(mirror.clone()), &["rev-list", "--count", "--all"], vec![]).await;
    assert_eq!(count, LONG_COMMITS.to_string());

    // New commits on the server arrive with a fetch.
    let server_main = git_ok(Some(source.clone()), &["rev-parse", "refs/heads/main"], vec![]).await;
    let advanced = new_commit(&source, &server_main, "server side").await;
    git_ok(Some(source.clone()), &["update-ref", "refs/heads/main", &advanced], vec![]).await;
    git_ok(Some(mirror.clone()), &["fetch", "--quiet", "origin"], fetch_env.clone()).await;
    assert_fsck_and_refs(&mirror, &source);

    // A push of a new branch lands on the server.
    let pushed = new_commit(&mirror, &advanced, "client side").await;
    let push_env = ssh_env(&node, "receive-pack", payload(&relative, &format!(r#","glId":"user-1"{extra}"#)), false);
    let spec = format!("{pushed}:refs/heads/pushed");
    git_ok(Some(mirror.clone()), &["push", "--quiet", url, &spec], push_env).await;
    let on_server = git_ok(Some(source.clone()), &["rev-parse", "refs/heads/pushed"], vec![]).await;
    assert_eq!(on_server, pushed);
    let fsck = git(Some(source.clone()), &["fsck", "--strict"], vec![]).await;
    assert!(fsck.status.success(), "server fsck: {}", String::from_utf8_lossy(&fsck.stderr));
    assert_no_quarantine(&source);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitaly_ssh_clone_fetch_push_with_sidechannel() {
    ssh_round_trip(Format::Sha1, true, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitaly_ssh_clone_fetch_push_without_sidechannel_protocol_v2() {
    ssh_round_trip(Format::Sha1, false, "version=2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitaly_ssh_sha256_clone_fetch_push() {
    ssh_round_trip(Format::Sha256, true, "version=2").await;
}

async fn http_round_trip(format: Format, protocol: &str) {
    let node = Node::start().await;
    let (relative, source) = long_copy(&node, format);
    let front = tokio::task::block_in_place(|| HttpFrontDoor::start(&node, STORAGE));
    let tmp = tempfile::tempdir().expect("tempdir");
    let mirror = tmp.path().join("mirror.git");
    let url = front.url(&relative);
    let proto = format!("protocol.version={}", protocol.trim_start_matches("version="));
    let m = mirror.to_str().expect("utf-8");
    git_ok(None, &["-c", &proto, "clone", "--mirror", "--quiet", &url, m], vec![]).await;
    assert_fsck_and_refs(&mirror, &source);

    let server_main = git_ok(Some(source.clone()), &["rev-parse", "refs/heads/main"], vec![]).await;
    let advanced = new_commit(&source, &server_main, "server side").await;
    git_ok(Some(source.clone()), &["update-ref", "refs/heads/main", &advanced], vec![]).await;
    git_ok(Some(mirror.clone()), &["-c", &proto, "fetch", "--quiet", "origin"], vec![]).await;
    assert_fsck_and_refs(&mirror, &source);

    let pushed = new_commit(&mirror, &advanced, "client side").await;
    let spec = format!("{pushed}:refs/heads/pushed");
    // A small postBuffer makes git send the pack chunked and gzip-free,
    // while the request of the fetch above was gzip-encoded.
    git_ok(Some(mirror.clone()), &["-c", &proto, "-c", "http.postBuffer=4096", "push", "--quiet", &url, &spec], vec![])
        .await;
    let on_server = git_ok(Some(source.clone()), &["rev-parse", "refs/heads/pushed"], vec![]).await;
    assert_eq!(on_server, pushed);
    assert_no_quarantine(&source);

    // A missing repository is a clear HTTP error, not a hang.
    let missing = git(None, &["-c", &proto, "ls-remote", &front.url("missing.git")], vec![]).await;
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("404") || stderr.contains("not found"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_front_door_clone_fetch_push_protocol_v0() {
    http_round_trip(Format::Sha1, "version=0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_front_door_clone_fetch_push_protocol_v2() {
    http_round_trip(Format::Sha1, "version=2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_front_door_sha256() {
    http_round_trip(Format::Sha256, "version=2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_archive_remote_via_upload_archive() {
    let node = Node::start().await;
    let (relative, source) = long_copy(&node, Format::Sha1);
    let env = ssh_env(&node, "upload-archive", payload(&relative, ""), false);
    let tmp = tempfile::tempdir().expect("tempdir");
    let tar = tmp.path().join("out.tar");
    let t = tar.to_str().expect("utf-8");
    git_ok(None, &["archive", "--remote=ssh://gitaly/repo.git", "--format=tar", "-o", t, "main"], env.clone()).await;
    let expected = git_ok(Some(source.clone()), &["archive", "--format=tar", "main"], vec![]).await;
    let listing = Command::new("tar").arg("-tf").arg(&tar).output().expect("tar");
    let names = String::from_utf8_lossy(&listing.stdout).lines().count();
    assert_eq!(names, 100, "all 100 files of the tip tree");
    assert!(!expected.is_empty());
    // A missing revision is git's error, in-band, with a non-zero exit.
    let bad = git(None, &["archive", "--remote=ssh://gitaly/repo.git", "no-such-rev"], env).await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no-such-rev"), "{}", String::from_utf8_lossy(&bad.stderr));
}

fn ssh_client(channel: tonic::transport::Channel) -> SshServiceClient<tonic::transport::Channel> {
    SshServiceClient::new(channel)
}

/// Runs SSHUploadPack with `stdin`, returning (stdout, stderr, exit status, result).
async fn upload_pack_raw(
    node: &Node,
    relative: &str,
    protocol: &str,
    stdin: Vec<u8>,
) -> (Vec<u8>, String, Option<i32>, Result<(), tonic::Status>) {
    let first = SshUploadPackRequest {
        repository: Some(node.repo(relative)),
        git_protocol: protocol.to_owned(),
        ..Default::default()
    };
    let reqs = vec![first, SshUploadPackRequest { stdin, ..Default::default() }];
    let mut responses = ssh_client(node.channel().await)
        .ssh_upload_pack(futures::stream::iter(reqs))
        .await
        .expect("call starts")
        .into_inner();
    let (mut out, mut err, mut exit) = (Vec::new(), Vec::new(), None);
    let result = loop {
        match tokio::time::timeout(Duration::from_secs(30), responses.message()).await.expect("answer in time") {
            Ok(Some(r)) => {
                out.extend(r.stdout);
                err.extend(r.stderr);
                if let Some(s) = r.exit_status {
                    exit = Some(s.value);
                }
            }
            Ok(None) => break Ok(()),
            Err(s) => break Err(s),
        }
    };
    (out, String::from_utf8_lossy(&err).into_owned(), exit, result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unknown_input_gets_clear_errors() {
    let node = Node::start().await;
    let (relative, _) = long_copy(&node, Format::Sha1);

    // A truncated pkt-line: git reports the early end, with an exit status.
    let (_, stderr, exit, result) = upload_pack_raw(&node, &relative, "", b"00".to_vec()).await;
    let status = result.expect_err("truncated input fails");
    assert!(matches!(status.code(), tonic::Code::Cancelled | tonic::Code::Internal), "{status:?}");
    assert!(exit.is_some_and(|c| c != 0), "exit status sent: {exit:?}");
    assert!(stderr.contains("fatal"), "{stderr}");

    // An oversized pkt-line length.
    let mut big = b"fff5".to_vec();
    big.extend(vec![b'x'; 65521]);
    let (_, stderr, exit, result) = upload_pack_raw(&node, &relative, "", big).await;
    let status = result.expect_err("oversized packet fails");
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert!(exit.is_some_and(|c| c != 0));
    assert!(status.message().contains("protocol error") || stderr.contains("protocol error"), "{status:?} {stderr}");

    // Protocol v2: an unknown capability is refused by name.
    let mut v2 = Vec::new();
    v2.extend(b"0014command=ls-refs\n");
    v2.extend(b"0014frobnicate-caps\n");
    v2.extend(b"0000");
    let (_, stderr, _, result) = upload_pack_raw(&node, &relative, "version=2", v2).await;
    let status = result.expect_err("unknown capability fails");
    assert!(status.message().contains("unknown capability") || stderr.contains("unknown capability"), "{status:?}");

    // Bad request fields.
    let bad_config = SshUploadPackRequest {
        repository: Some(node.repo(&relative)),
        git_config_options: vec!["no-section=1".into()],
        ..Default::default()
    };
    let status = ssh_client(node.channel().await)
        .ssh_upload_pack(futures::stream::iter(vec![bad_config]))
        .await
        .expect_err("bad config key");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let with_stdin =
        SshUploadPackRequest { repository: Some(node.repo(&relative)), stdin: b"0000".to_vec(), ..Default::default() };
    let status = ssh_client(node.channel().await)
        .ssh_upload_pack(futures::stream::iter(vec![with_stdin]))
        .await
        .expect_err("stdin in first request");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    // Sidechannel RPCs need a backchannel connection.
    let status = ssh_client(node.channel().await)
        .ssh_upload_pack_with_sidechannel(SshUploadPackWithSidechannelRequest {
            repository: Some(node.repo(&relative)),
            ..Default::default()
        })
        .await
        .expect_err("no backchannel");
    assert_eq!(status.code(), tonic::Code::Aborted);
    let status = SmartHttpServiceClient::new(node.channel().await)
        .post_upload_pack_with_sidechannel(PostUploadPackWithSidechannelRequest {
            repository: Some(node.repo(&relative)),
            ..Default::default()
        })
        .await
        .expect_err("no backchannel");
    assert_eq!(status.code(), tonic::Code::Internal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_refs_prefix_and_advertisement() {
    let node = Node::start().await;
    let (relative, source) = long_copy(&node, Format::Sha1);
    let mut client = SmartHttpServiceClient::new(node.channel().await);
    let req = InfoRefsRequest { repository: Some(node.repo(&relative)), ..Default::default() };
    let mut stream = client.info_refs_upload_pack(req.clone()).await.expect("info refs").into_inner();
    let mut data = Vec::new();
    while let Some(m) = stream.message().await.expect("message") {
        data.extend(m.data);
    }
    assert!(data.starts_with(b"001e# service=git-upload-pack\n0000"), "{:?}", String::from_utf8_lossy(&data[..40]));
    let text = String::from_utf8_lossy(&data);
    let main = git_ok(Some(source), &["rev-parse", "refs/heads/main"], vec![]).await;
    assert!(text.contains(&format!("{main} refs/heads/main")), "advertises main");
    assert!(text.ends_with("0000"));

    let mut stream = client.info_refs_receive_pack(req.clone()).await.expect("info refs").into_inner();
    let first = stream.message().await.expect("message").expect("data");
    assert!(first.data.starts_with(b"001f# service=git-receive-pack\n0000"));

    let v2 = InfoRefsRequest { git_protocol: "version=2".into(), ..req };
    let mut stream = client.info_refs_upload_pack(v2).await.expect("info refs").into_inner();
    let mut data = Vec::new();
    while let Some(m) = stream.message().await.expect("message") {
        data.extend(m.data);
    }
    assert!(String::from_utf8_lossy(&data).contains("version 2"), "protocol v2 advertisement");

    let missing = InfoRefsRequest { repository: Some(node.repo("missing.git")), ..Default::default() };
    let status = client.info_refs_upload_pack(missing).await.expect_err("missing repository");
    assert_eq!(status.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_to_missing_repository_is_not_found() {
    let node = Node::start().await;
    let first = SshReceivePackRequest {
        repository: Some(node.repo("missing.git")),
        gl_id: "user-1".into(),
        ..Default::default()
    };
    let status = ssh_client(node.channel().await)
        .ssh_receive_pack(futures::stream::iter(vec![first.clone()]))
        .await
        .expect_err("missing repository");
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    let no_user = SshReceivePackRequest { gl_id: String::new(), ..first };
    let status = ssh_client(node.channel().await)
        .ssh_receive_pack(futures::stream::iter(vec![no_user]))
        .await
        .expect_err("no gl_id");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("empty GlId"));

    // Through gitaly-ssh, git fails and says why.
    let (_, source) = long_copy(&node, Format::Sha1);
    let env = ssh_env(&node, "receive-pack", payload("missing.git", r#","glId":"user-1""#), false);
    let out = git(Some(source), &["push", "ssh://gitaly/repo.git", "main:refs/heads/x"], env).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not found") || stderr.contains("NotFound"), "{stderr}");
}

/// `objects/incoming-*` directories left in `repo`.
fn quarantines(repo: &Path) -> Vec<String> {
    std::fs::read_dir(repo.join("objects"))
        .expect("objects dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // git names them `tmp_objdir-incoming-*` (older versions `incoming-*`).
        .filter(|n| n.contains("incoming-"))
        .collect()
}

fn assert_no_quarantine(repo: &Path) {
    assert_eq!(quarantines(repo), Vec::<String>::new(), "no receive quarantine left");
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                found.push(text);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_vanishing_mid_push_leaves_nothing_behind() {
    let node = Node::start().await;
    let (relative, source) = long_copy(&node, Format::Sha1);
    let refs_before = refs(&source);

    // A pack worth sending: a root commit with a large incompressible blob.
    let tmp = tempfile::tempdir().expect("tempdir");
    let local = tmp.path().join("local.git");
    git_ok(None, &["init", "--bare", "--quiet", local.to_str().expect("utf-8")], vec![]).await;
    let mut noise = Vec::with_capacity(4 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while noise.len() < 4 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(tmp.path().join("noise"), &noise).expect("write noise");
    let blob =
        git_ok(Some(local.clone()), &["hash-object", "-w", tmp.path().join("noise").to_str().expect("utf-8")], vec![])
            .await;
    let tree = crate::support::git::git_stdin(
        Some(&local),
        &["mktree"],
        Some(format!("100644 blob {blob}\tnoise\n").as_bytes()),
    );
    let commit = git_ok(Some(local.clone()), &["commit-tree", &tree, "-m", "big"], vec![]).await;
    let pack = tokio::task::spawn_blocking({
        let local = local.clone();
        let commit = commit.clone();
        move || crate::support::git::pack_of(&local, &commit)
    })
    .await
    .expect("join");
    assert!(pack.len() > 1 << 20);

    let zero = "0".repeat(40);
    let command = format!("{zero} {commit} refs/heads/vanish\0report-status\n");
    let mut stdin = format!("{:04x}", command.len() + 4).into_bytes();
    stdin.extend(command.as_bytes());
    stdin.extend(b"0000");
    stdin.extend(&pack[..pack.len() / 2]);

    let (tx, rx) = tokio::sync::mpsc::channel::<SshReceivePackRequest>(4);
    let channel = crate::support::unix_channel(&node.socket).await;
    let mut call = tokio::spawn(async move {
        let mut client = ssh_client(channel);
        let mut responses =
            client.ssh_receive_pack(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
        let mut seen = Vec::new();
        while let Some(m) = responses.message().await? {
            seen.extend(m.stderr);
            seen.extend(m.stdout);
        }
        Ok::<_, tonic::Status>(String::from_utf8_lossy(&seen).into_owned())
    });
    tx.send(SshReceivePackRequest {
        repository: Some(node.repo(&relative)),
        gl_id: "user-1".into(),
        ..Default::default()
    })
    .await
    .expect("send first");
    for chunk in stdin.chunks(64 * 1024) {
        tx.send(SshReceivePackRequest { stdin: chunk.to_vec(), ..Default::default() }).await.expect("send");
    }
    // Give receive-pack time to start unpacking into its quarantine.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while quarantines(&source).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !quarantines(&source).is_empty(),
        "receive-pack started receiving; call: {:?}",
        call.is_finished().then(|| format!("{:?}", futures::executor::block_on(&mut call)))
    );
    // The client vanishes: its call and connection are dropped mid-pack.
    call.abort();
    drop(tx);

    let needle = source.to_str().expect("utf-8").to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let procs = processes_mentioning(&needle);
        let left = quarantines(&source);
        if procs.is_empty() && left.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "leftovers: processes {procs:?}, quarantine {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(refs(&source), refs_before, "no reference was written");
    let has = git(Some(source.clone()), &["cat-file", "-e", &commit], vec![]).await;
    assert!(!has.status.success(), "the pushed commit did not land");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitaly_ssh_usage_errors_exit_1() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        Command::new(GITALY_SSH).args(args).env_clear().envs(env.iter().copied()).output().expect("gitaly-ssh runs")
    };
    let out = run(&["upload-pack"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid number of arguments"));
    let out = run(&["frobnicate", "host", "cmd"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid pack command"));
    let out = run(&["upload-pack", "host", "cmd"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("address can not be empty"));
    let out =
        run(&["upload-pack", "host", "cmd"], &[("GITALY_ADDRESS", "unix:/nonexistent.sock"), ("GITALY_PAYLOAD", "{}")]);
    assert_eq!(out.status.code(), Some(1));
    let node = Node::start().await;
    let address = format!("unix:{}", node.socket.display());
    let out = tokio::task::block_in_place(|| {
        run(&["upload-pack", "host", "cmd"], &[("GITALY_ADDRESS", &address), ("GITALY_PAYLOAD", "{not json")])
    });
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("json unmarshal"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn payload_accepts_protojson_and_proto_names() {
    let req: SshUploadPackRequest = cairn_node::frontdoor::gitaly_ssh::from_protojson(
        r#"{"repository":{"storage_name":"default","relativePath":"a.git","glRepository":"project-1"},"gitConfigOptions":["a.b=c"],"git_protocol":"version=2"}"#,
    )
    .expect("valid payload");
    let repo = req.repository.expect("repository");
    assert_eq!((repo.storage_name.as_str(), repo.relative_path.as_str()), ("default", "a.git"));
    assert_eq!(req.git_config_options, vec!["a.b=c"]);
    assert_eq!(req.git_protocol, "version=2");
}
