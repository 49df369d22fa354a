//! The pack-objects cache: stock git clones through gitaly-ssh and the
//! gitaly-http front door make upload-pack run gitaly-hooks as its
//! pack-objects hook, which asks PackObjectsHookWithSidechannel; repeated
//! and concurrent clones of the same state are served from one generated
//! pack. Generations and hits are counted with upstream's metrics and the
//! files in the cache directory. Plus the RPC's answers to bad input.

#![allow(clippy::disallowed_methods, reason = "tests drive the real git CLI and the front-door binaries")]

use crate::support::fixture::{copy_repo, rel};
use crate::support::git::Format;
use crate::support::wire::{GITALY_SSH, HttpFrontDoor, assert_fsck_and_refs, git, git_ok, refs};
use crate::support::{Node, STORAGE};
use cairn_node::config::Config;
use cairn_proto::gitaly::hook_service_client::HookServiceClient;
use cairn_proto::gitaly::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Environment making git fetch from `relative` on `node` through gitaly-ssh.
fn ssh_env(node: &Node, relative: &str, extra: &str) -> Vec<(String, String)> {
    let payload = format!(
        r#"{{"repository":{{"storageName":"{STORAGE}","relativePath":"{relative}","glRepository":"project-1"}}{extra}}}"#
    );
    vec![
        ("GIT_SSH_COMMAND".to_owned(), format!("{GITALY_SSH} upload-pack")),
        ("GIT_SSH_VARIANT".to_owned(), "simple".to_owned()),
        ("GITALY_ADDRESS".to_owned(), format!("unix:{}", node.socket.display())),
        ("GITALY_PAYLOAD".to_owned(), payload),
        ("GITALY_USE_SIDECHANNEL".to_owned(), "1".to_owned()),
    ]
}

/// A node with the cache on (every key cached at once) and metrics.
async fn cached_node(adjust: impl FnOnce(&mut Config)) -> Node {
    Node::start_with(|c| {
        c.prometheus_listen_addr = Some("127.0.0.1:0".into());
        c.pack_objects_cache.enabled = true;
        c.pack_objects_cache.min_occurrences = Some(0);
        adjust(c);
    })
    .await
}

/// Clones `relative` through gitaly-ssh into a new mirror under `tmp`.
async fn ssh_clone(node: &Node, relative: &str, tmp: &Path, name: &str) -> PathBuf {
    let mirror = tmp.join(name);
    let m = mirror.to_str().expect("utf-8").to_owned();
    git_ok(None, &["clone", "--mirror", "--quiet", "ssh://gitaly/repo.git", &m], ssh_env(node, relative, "")).await;
    mirror
}

/// The value of the sample `name` (with its labels, as printed) on the
/// node's metrics page; 0 when absent.
async fn metric(node: &Node, sample: &str) -> f64 {
    let text = node.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

#[derive(Debug, PartialEq)]
struct Lookups {
    miss: f64,
    hit: f64,
}

async fn lookups(node: &Node) -> Lookups {
    Lookups {
        miss: metric(node, r#"gitaly_pack_objects_cache_lookups_total{result="miss"}"#).await,
        hit: metric(node, r#"gitaly_pack_objects_cache_lookups_total{result="hit"}"#).await,
    }
}

fn cache_dir(node: &Node) -> PathBuf {
    node.storage.join("+gitaly").join("PackObjectsCache")
}

fn cache_files(node: &Node) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(cache_dir(node)).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    files
}

/// Processes still running for this node: git in its storage (by command
/// line), or anything working in it (gitaly-hooks runs in the repository).
fn leftovers(node: &Node) -> Vec<String> {
    let storage = node.storage.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
        if text.contains(&storage) || cwd.starts_with(&node.storage) {
            found.push(text);
        }
    }
    found
}

async fn assert_no_leftovers(node: &Node) {
    for _ in 0..50 {
        if leftovers(node).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(leftovers(node), Vec::<String>::new(), "no git or gitaly-hooks left running");
    let chan = node.dir.path().join("run");
    let sockets: Vec<_> = walk(&chan).into_iter().filter(|p| p.ends_with("sidechannel")).collect();
    assert!(sockets.is_empty(), "sidechannel sockets left behind: {sockets:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

async fn repeated_ssh_clone_is_a_hit(format: Format) {
    let node = cached_node(|_| {}).await;
    let source = copy_repo(&node.storage, format, "long");
    let relative = rel(format, "long");
    let tmp = tempfile::tempdir().expect("tempdir");

    let first = ssh_clone(&node, &relative, tmp.path(), "first.git").await;
    assert_fsck_and_refs(&first, &source);
    assert_eq!(lookups(&node).await, Lookups { miss: 1.0, hit: 0.0 });
    let generated = metric(&node, "gitaly_pack_objects_generated_bytes_total").await;
    assert!(generated > 0.0, "the first clone generated a pack");
    assert_eq!(cache_files(&node).len(), 1, "one entry on disk");

    let second = ssh_clone(&node, &relative, tmp.path(), "second.git").await;
    assert_fsck_and_refs(&second, &source);
    assert_eq!(lookups(&node).await, Lookups { miss: 1.0, hit: 1.0 });
    assert_eq!(metric(&node, "gitaly_pack_objects_generated_bytes_total").await, generated, "nothing regenerated");
    assert_eq!(metric(&node, "gitaly_pack_objects_served_bytes_total").await, 2.0 * generated);
    assert_eq!(cache_files(&node).len(), 1);
    assert_eq!(refs(&first), refs(&second));
    let dir = cache_dir(&node).display().to_string();
    assert_eq!(metric(&node, &format!(r#"gitaly_streamcache_index_entries{{dir="{dir}"}}"#)).await, 1.0);
    let enabled = format!(r#"gitaly_pack_objects_cache_enabled{{dir="{dir}",max_age="300"}}"#);
    assert_eq!(metric(&node, &enabled).await, 1.0);
    assert_no_leftovers(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_ssh_clone_is_a_cache_hit_sha1() {
    repeated_ssh_clone_is_a_hit(Format::Sha1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_ssh_clone_is_a_cache_hit_sha256() {
    repeated_ssh_clone_is_a_hit(Format::Sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_http_clone_is_a_cache_hit() {
    let node = cached_node(|_| {}).await;
    let source = copy_repo(&node.storage, Format::Sha1, "long");
    let relative = rel(Format::Sha1, "long");
    let front = tokio::task::block_in_place(|| HttpFrontDoor::start(&node, STORAGE));
    let url = format!("http://{}/{relative}", front.addr);
    let tmp = tempfile::tempdir().expect("tempdir");
    for (i, proto) in ["protocol.version=2", "protocol.version=2"].iter().enumerate() {
        let m = tmp.path().join(format!("http{i}.git"));
        git_ok(None, &["-c", proto, "clone", "--mirror", "--quiet", &url, m.to_str().expect("utf-8")], vec![]).await;
        assert_fsck_and_refs(&m, &source);
    }
    assert_eq!(lookups(&node).await, Lookups { miss: 1.0, hit: 1.0 });
    // The protocol is part of the key: an SSH clone of the same state is a
    // generation of its own, and then hits too.
    ssh_clone(&node, &relative, tmp.path(), "ssh1.git").await;
    ssh_clone(&node, &relative, tmp.path(), "ssh2.git").await;
    assert_eq!(lookups(&node).await, Lookups { miss: 2.0, hit: 2.0 });
    drop(front);
    assert_no_leftovers(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clones_share_one_generation() {
    let node = cached_node(|_| {}).await;
    let source = copy_repo(&node.storage, Format::Sha1, "long");
    let relative = rel(Format::Sha1, "long");
    let tmp = tempfile::tempdir().expect("tempdir");
    let (n, r, t) = (&node, &relative, tmp.path());
    let clones = (0..4).map(|i| async move { ssh_clone(n, r, t, &format!("c{i}.git")).await });
    let mirrors = futures::future::join_all(clones).await;
    for m in &mirrors {
        assert_fsck_and_refs(m, &source);
    }
    assert_eq!(lookups(&node).await, Lookups { miss: 1.0, hit: 3.0 });
    assert_eq!(cache_files(&node).len(), 1);
    let generated = metric(&node, "gitaly_pack_objects_generated_bytes_total").await;
    assert_eq!(metric(&node, "gitaly_pack_objects_served_bytes_total").await, 4.0 * generated);
    assert_no_leftovers(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_push_changes_the_key() {
    let node = cached_node(|_| {}).await;
    let source = copy_repo(&node.storage, Format::Sha1, "long");
    let relative = rel(Format::Sha1, "long");
    let tmp = tempfile::tempdir().expect("tempdir");
    ssh_clone(&node, &relative, tmp.path(), "before.git").await;
    let main = git_ok(Some(source.clone()), &["rev-parse", "refs/heads/main"], vec![]).await;
    let tree = git_ok(Some(source.clone()), &["rev-parse", &format!("{main}^{{tree}}")], vec![]).await;
    let next = git_ok(Some(source.clone()), &["commit-tree", &tree, "-p", &main, "-m", "pushed"], vec![]).await;
    git_ok(Some(source.clone()), &["update-ref", "refs/heads/main", &next], vec![]).await;
    let after = ssh_clone(&node, &relative, tmp.path(), "after.git").await;
    assert_fsck_and_refs(&after, &source);
    assert_eq!(lookups(&node).await, Lookups { miss: 2.0, hit: 0.0 });
    assert_eq!(cache_files(&node).len(), 2);
    assert_no_leftovers(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_expire_after_max_age() {
    let node =
        cached_node(|c| c.pack_objects_cache.max_age = Some(cairn_node::config::GoDuration(Duration::from_secs(2))))
            .await;
    let source = copy_repo(&node.storage, Format::Sha1, "long");
    let relative = rel(Format::Sha1, "long");
    let tmp = tempfile::tempdir().expect("tempdir");
    ssh_clone(&node, &relative, tmp.path(), "a.git").await;
    // (The file itself may already be gone on a slow machine: the janitor
    // runs every max_age/2.)
    assert_eq!(lookups(&node).await, Lookups { miss: 1.0, hit: 0.0 });
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let b = ssh_clone(&node, &relative, tmp.path(), "b.git").await;
    assert_fsck_and_refs(&b, &source);
    assert_eq!(lookups(&node).await, Lookups { miss: 2.0, hit: 0.0 }, "the expired entry was not served");
    // The janitor removes the expired entries' files.
    for _ in 0..100 {
        if cache_files(&node).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cache_files(&node), Vec::<PathBuf>::new());
    assert_eq!(
        metric(&node, &format!(r#"gitaly_streamcache_index_entries{{dir="{}"}}"#, cache_dir(&node).display())).await,
        0.0
    );
    assert_no_leftovers(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_bound_evicts_least_recently_used() {
    // First find the size of one entry, then bound a node to a bit more.
    let size = {
        let node = cached_node(|_| {}).await;
        copy_repo(&node.storage, Format::Sha1, "long");
        let tmp = tempfile::tempdir().expect("tempdir");
        ssh_clone(&node, &rel(Format::Sha1, "long"), tmp.path(), "probe.git").await;
        metric(&node, "gitaly_pack_objects_generated_bytes_total").await as u64
    };
    let node = cached_node(|c| c.pack_objects_cache.max_size = Some(size + size / 2)).await;
    copy_repo(&node.storage, Format::Sha1, "long");
    let long = rel(Format::Sha1, "long");
    // A second repository with the same content under another path: its
    // entry has the same size but a different key.
    let other_path = node.storage.join("other.git");
    let status = Command::new("cp").arg("-a").arg(node.storage.join(&long)).arg(&other_path).status().expect("cp");
    assert!(status.success());
    let tmp = tempfile::tempdir().expect("tempdir");
    ssh_clone(&node, &long, tmp.path(), "1.git").await;
    ssh_clone(&node, "other.git", tmp.path(), "2.git").await;
    // Only one entry fits: the older one went.
    for _ in 0..50 {
        if cache_files(&node).len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cache_files(&node).len(), 1);
    ssh_clone(&node, "other.git", tmp.path(), "3.git").await;
    assert_eq!(lookups(&node).await, Lookups { miss: 2.0, hit: 1.0 }, "the newer entry is still served");
    let again = ssh_clone(&node, &long, tmp.path(), "4.git").await;
    assert_fsck_and_refs(&again, &node.storage.join(&long));
    assert_eq!(lookups(&node).await, Lookups { miss: 3.0, hit: 1.0 }, "the evicted entry is generated again");
    assert_no_leftovers(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_min_occurrences_caches_from_the_second_request() {
    let node = cached_node(|c| c.pack_objects_cache.min_occurrences = None).await;
    copy_repo(&node.storage, Format::Sha1, "long");
    let relative = rel(Format::Sha1, "long");
    let tmp = tempfile::tempdir().expect("tempdir");
    ssh_clone(&node, &relative, tmp.path(), "1.git").await;
    assert!(cache_files(&node).is_empty(), "a key seen once is not stored");
    ssh_clone(&node, &relative, tmp.path(), "2.git").await;
    assert_eq!(cache_files(&node).len(), 1);
    ssh_clone(&node, &relative, tmp.path(), "3.git").await;
    assert_eq!(lookups(&node).await, Lookups { miss: 2.0, hit: 1.0 });
    assert_no_leftovers(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_disabled_still_clones_and_requests_cannot_set_the_hook() {
    let node = Node::start_with(|c| c.prometheus_listen_addr = Some("127.0.0.1:0".into())).await;
    let source = copy_repo(&node.storage, Format::Sha1, "long");
    let relative = rel(Format::Sha1, "long");
    let tmp = tempfile::tempdir().expect("tempdir");
    // A request naming its own hook is ignored: the clone still works.
    let extra = r#","gitConfigOptions":["uploadpack.packObjectsHook=/nonexistent/hook"]"#;
    let m = tmp.path().join("m.git");
    git_ok(
        None,
        &["clone", "--mirror", "--quiet", "ssh://gitaly/r.git", m.to_str().expect("utf-8")],
        ssh_env(&node, &relative, extra),
    )
    .await;
    assert_fsck_and_refs(&m, &source);
    assert_eq!(lookups(&node).await, Lookups { miss: 0.0, hit: 0.0 }, "no hook ran");
    assert!(!cache_dir(&node).exists(), "no cache directory without the cache");
    assert_no_leftovers(&node).await;

    // With the cache on, the same request still goes through the node's hook.
    let node = cached_node(|_| {}).await;
    copy_repo(&node.storage, Format::Sha1, "long");
    let m = tmp.path().join("n.git");
    git_ok(
        None,
        &["clone", "--mirror", "--quiet", "ssh://gitaly/r.git", m.to_str().expect("utf-8")],
        ssh_env(&node, &relative, extra),
    )
    .await;
    assert_eq!(lookups(&node).await, Lookups { miss: 1.0, hit: 0.0 });
    assert_no_leftovers(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_entries_are_wiped_at_start_up() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("cache");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("pack-1-1"), b"stale").expect("write");
    std::fs::write(dir.join("keep.txt"), b"not ours").expect("write");
    let d = dir.clone();
    let _node = cached_node(move |c| c.pack_objects_cache.dir = Some(d)).await;
    assert!(!dir.join("pack-1-1").exists());
    assert!(dir.join("keep.txt").exists());
}

/// A listening sidechannel socket as gitaly-hooks makes one.
fn sidechannel(tmp: &Path) -> (PathBuf, tokio::net::UnixListener) {
    let path = tmp.join("sidechannel");
    let l = tokio::net::UnixListener::bind(&path).expect("bind");
    (path, l)
}

fn request(
    repository: Repository,
    args: &[&str],
    socket: Option<&Path>,
) -> tonic::Request<PackObjectsHookWithSidechannelRequest> {
    let mut req = tonic::Request::new(PackObjectsHookWithSidechannelRequest {
        repository: Some(repository),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        ..Default::default()
    });
    if let Some(s) = socket {
        req.metadata_mut().insert("gitaly-sidechannel-socket", s.display().to_string().parse().expect("ascii"));
    }
    req
}

const ARGS: &[&str] = &["pack-objects", "--revs", "--thin", "--stdout", "--delta-base-offset"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_call_streams_a_pack_and_bad_input_gets_upstream_codes() {
    let node = cached_node(|_| {}).await;
    copy_repo(&node.storage, Format::Sha1, "long");
    let relative = rel(Format::Sha1, "long");
    let repo = node.repo(&relative);
    let mut client = HookServiceClient::new(node.channel().await);
    let tmp = tempfile::tempdir().expect("tempdir");

    // Missing or wrongly named sidechannel.
    let e = client.pack_objects_hook_with_sidechannel(request(repo.clone(), ARGS, None)).await.expect_err("no socket");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert_eq!(e.message(), r#"invalid side channel address: """#);
    let e = client
        .pack_objects_hook_with_sidechannel(request(repo.clone(), ARGS, Some(&tmp.path().join("other"))))
        .await
        .expect_err("bad name");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    // Named right but nobody listens.
    let e = client
        .pack_objects_hook_with_sidechannel(request(repo.clone(), ARGS, Some(&tmp.path().join("sidechannel"))))
        .await
        .expect_err("nobody listens");
    assert_eq!(e.code(), tonic::Code::Internal, "{e:?}");

    // Arguments: upstream's checks and the allow-list.
    for args in [
        &[][..],
        &["rev-list", "--stdout"][..],
        &["pack-objects", "--revs"][..],
        &["pack-objects", "--stdout", "HEAD"][..],
        &["pack-objects", "--stdout", "--index-version=1"][..],
        &["--shallow-file", "/tmp/x", "pack-objects", "--stdout"][..],
    ] {
        let e =
            client.pack_objects_hook_with_sidechannel(request(repo.clone(), args, None)).await.expect_err("bad args");
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{args:?}: {e:?}");
        assert!(e.message().starts_with("invalid pack-objects command: "), "{}", e.message());
    }

    // Repository problems come first.
    let missing = Repository { relative_path: "missing.git".into(), ..repo.clone() };
    let e = client.pack_objects_hook_with_sidechannel(request(missing, ARGS, None)).await.expect_err("missing repo");
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    let bad_storage = Repository { storage_name: "nope".into(), ..repo.clone() };
    let e = client.pack_objects_hook_with_sidechannel(request(bad_storage, ARGS, None)).await.expect_err("storage");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    let e = client
        .pack_objects_hook_with_sidechannel(tonic::Request::new(PackObjectsHookWithSidechannelRequest::default()))
        .await
        .expect_err("empty");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");

    // A real call: stdin names the wanted commit, the answer is sideband
    // packets carrying a pack, twice (the second from the cache).
    let head = git_ok(Some(node.storage.join(&relative)), &["rev-parse", "refs/heads/main"], vec![]).await;
    for round in 0..2 {
        let dir = tmp.path().join(format!("r{round}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let (socket, listener) = sidechannel(&dir);
        let peer = async {
            let (mut conn, _) = listener.accept().await.expect("node dials");
            conn.write_all(format!("{head}\n").as_bytes()).await.expect("stdin");
            conn.shutdown().await.expect("half-close");
            let mut answer = Vec::new();
            conn.read_to_end(&mut answer).await.expect("answer");
            answer
        };
        let call = client.pack_objects_hook_with_sidechannel(request(repo.clone(), ARGS, Some(&socket)));
        let (answer, reply) = tokio::join!(peer, call);
        reply.expect("call succeeds");
        let mut pack = Vec::new();
        let mut rest = &answer[..];
        while !rest.is_empty() {
            let len = usize::from_str_radix(std::str::from_utf8(&rest[..4]).expect("hex"), 16).expect("length");
            assert!(len > 4, "no flush packets");
            if rest[4] == 1 {
                pack.extend_from_slice(&rest[5..len]);
            }
            rest = &rest[len..];
        }
        assert_eq!(&pack[..4], b"PACK", "round {round}");
    }
    assert_eq!(lookups(&node).await, Lookups { miss: 1.0, hit: 1.0 });
    assert_no_leftovers(&node).await;
}

/// Shallow and partial clones make upload-pack pass `--shallow-file ""`,
/// `--shallow` and `--filter=...`: all allowed, and cached like the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shallow_and_partial_clones_go_through_the_cache() {
    let node = cached_node(|_| {}).await;
    let source = copy_repo(&node.storage, Format::Sha1, "long");
    let relative = rel(Format::Sha1, "long");
    let tmp = tempfile::tempdir().expect("tempdir");
    let main = git_ok(Some(source.clone()), &["rev-parse", "refs/heads/main"], vec![]).await;
    for round in 0..2 {
        let shallow = tmp.path().join(format!("shallow{round}.git"));
        let s = shallow.to_str().expect("utf-8");
        let env = ssh_env(&node, &relative, "");
        git_ok(None, &["clone", "--bare", "--quiet", "--depth=1", "ssh://gitaly/r.git", s], env.clone()).await;
        assert_eq!(git_ok(Some(shallow.clone()), &["rev-list", "--count", "HEAD"], vec![]).await, "1");
        assert_eq!(git_ok(Some(shallow.clone()), &["rev-parse", "HEAD"], vec![]).await, main);
        let partial = tmp.path().join(format!("partial{round}.git"));
        let p = partial.to_str().expect("utf-8");
        let args =
            ["-c", "protocol.version=2", "clone", "--bare", "--quiet", "--filter=blob:none", "ssh://gitaly/r.git", p];
        git_ok(None, &args, env).await;
        let fsck = git(Some(partial.clone()), &["fsck", "--connectivity-only"], vec![]).await;
        assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stderr));
    }
    assert_eq!(lookups(&node).await, Lookups { miss: 2.0, hit: 2.0 });
    assert_no_leftovers(&node).await;
}

/// Runs gitaly-hooks as upload-pack would, with a payload for `node`.
fn run_hook(node: &Node, relative: &str, args: &[&str], stdin: &[u8]) -> Output {
    use cairn_node::hooks::payload::{HooksPayload, UserDetails, hook};
    use std::io::Write as _;
    let runtime = node.dir.path().join("run").join(format!("gitaly-{}", std::process::id()));
    let payload = HooksPayload {
        requested_hooks: hook::PACK_OBJECTS,
        repository: node.repo(relative),
        object_format: "sha1".into(),
        runtime_dir: runtime.display().to_string(),
        internal_socket: cairn_node::hooks::internal_socket(&runtime).display().to_string(),
        user_details: Some(UserDetails { protocol: "ssh".into(), ..Default::default() }),
        ..Default::default()
    };
    let bin = Path::new(env!("CARGO_BIN_EXE_gitaly-hooks"));
    let mut child = Command::new(bin)
        .arg("git")
        .args(args)
        .env_clear()
        .env("GITALY_HOOKS_PAYLOAD", payload.encode())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gitaly-hooks starts");
    let mut input = child.stdin.take().expect("piped");
    input.write_all(stdin).expect("stdin");
    drop(input);
    child.wait_with_output().expect("gitaly-hooks ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitaly_hooks_relays_the_pack_and_exits_like_upstream() {
    let node = cached_node(|_| {}).await;
    let source = copy_repo(&node.storage, Format::Sha1, "long");
    let relative = rel(Format::Sha1, "long");
    let main = git_ok(Some(source.clone()), &["rev-parse", "refs/heads/main"], vec![]).await;
    let stdin = format!("{main}\n");
    let hook = |args: &'static [&'static str]| {
        let (node, relative, stdin) = (&node, relative.clone(), stdin.clone());
        tokio::task::block_in_place(move || run_hook(node, &relative, args, stdin.as_bytes()))
    };

    let ok = hook(&["pack-objects", "--revs", "--stdout", "--progress"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(&ok.stdout[..4], b"PACK");
    // Progress (band 2) goes to stderr.
    assert!(String::from_utf8_lossy(&ok.stderr).contains("objects"), "{}", String::from_utf8_lossy(&ok.stderr));
    // The pack is what git itself would send: index it and check it.
    let dir = tempfile::tempdir().expect("tempdir");
    let pack = dir.path().join("x.pack");
    std::fs::write(&pack, &ok.stdout).expect("write pack");
    let verify = Command::new("git").arg("index-pack").arg(&pack).output().expect("index-pack");
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));

    let again = hook(&["pack-objects", "--revs", "--stdout", "--progress"]);
    assert_eq!(again.stdout, ok.stdout, "the cached pack is the same bytes");
    assert_eq!(lookups(&node).await, Lookups { miss: 1.0, hit: 1.0 });

    // A rejected call: upstream's message on stderr and exit status 1.
    let bad = hook(&["pack-objects", "--stdout", "--index-version=1"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(bad.stdout.is_empty());
    assert_eq!(String::from_utf8_lossy(&bad.stderr), "error executing git hook\n");
    assert_no_leftovers(&node).await;
}
