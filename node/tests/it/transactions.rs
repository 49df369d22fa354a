//! Reference transactions as a router drives them: the test dials the node
//! with a backchannel and serves its own RefTransaction on it, which
//! records every vote and stop and answers COMMIT, or ABORT in a chosen
//! phase. Writes carry `gitaly-reference-transaction` metadata; the node's
//! hooks and handlers must vote over that same connection.

use crate::gitlab_api::{FakeGitlab, allowing, configure};
use crate::hooks::{quarantines, refs, script};
use crate::support::git::{Format, TestRepo, pack_of};
use crate::support::wire::HttpFrontDoor;
use crate::support::{Node, STORAGE};
use cairn_node::client::{AuthChannel, Connection, DialOptions};
use cairn_node::transaction::encode_metadata;
use cairn_proto::gitaly::ref_transaction_server::{RefTransaction, RefTransactionServer};
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::ssh_service_client::SshServiceClient;
use cairn_proto::gitaly::vote_transaction_request::Phase;
use cairn_proto::gitaly::vote_transaction_response::TransactionState;
use cairn_proto::gitaly::*;
use sha1::Digest as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tonic::Code;

/// The router's side of the transaction: records, and answers as told.
#[derive(Clone, Default)]
struct FakeRouter {
    votes: Arc<Mutex<Vec<VoteTransactionRequest>>>,
    stops: Arc<Mutex<Vec<StopTransactionRequest>>>,
    /// The phase whose votes are answered ABORT (everything else COMMIT).
    abort_in: Arc<Mutex<Option<Phase>>>,
}

#[tonic::async_trait]
impl RefTransaction for FakeRouter {
    async fn vote_transaction(
        &self,
        req: tonic::Request<VoteTransactionRequest>,
    ) -> Result<tonic::Response<VoteTransactionResponse>, tonic::Status> {
        let req = req.into_inner();
        let abort = *self.abort_in.lock().expect("lock") == Some(req.phase());
        self.votes.lock().expect("lock").push(req);
        let state = if abort { TransactionState::Abort } else { TransactionState::Commit };
        Ok(tonic::Response::new(VoteTransactionResponse { state: state as i32 }))
    }

    async fn stop_transaction(
        &self,
        req: tonic::Request<StopTransactionRequest>,
    ) -> Result<tonic::Response<StopTransactionResponse>, tonic::Status> {
        self.stops.lock().expect("lock").push(req.into_inner());
        Ok(tonic::Response::new(StopTransactionResponse {}))
    }
}

impl FakeRouter {
    /// (phase, hash) of every vote so far, checking that each named `node`
    /// and transaction 7.
    fn votes(&self, node: &str) -> Vec<(Phase, Vec<u8>)> {
        let votes = self.votes.lock().expect("lock").clone();
        for v in &votes {
            assert_eq!((v.transaction_id, v.node.as_str()), (7, node), "{v:?}");
            assert_eq!(v.repository.as_ref().map(|r| r.storage_name.as_str()), Some(STORAGE), "{v:?}");
        }
        votes.into_iter().map(|v| (v.phase(), v.reference_updates_hash)).collect()
    }

    fn abort_in(&self, phase: Phase) {
        *self.abort_in.lock().expect("lock") = Some(phase);
    }

    /// Dials `node` with a backchannel serving this router.
    async fn dial(&self, node: &Node) -> Connection {
        let routes = tonic::service::Routes::new(RefTransactionServer::new(self.clone()));
        let opts = DialOptions { backchannel: true, backchannel_server: Some(routes), ..Default::default() };
        cairn_node::client::dial(&format!("unix:{}", node.socket.display()), opts).await.expect("dial with backchannel")
    }
}

fn sha1(data: &[u8]) -> Vec<u8> {
    sha1::Sha1::digest(data).to_vec()
}

fn sync_vote(hook: &str) -> (Phase, Vec<u8>) {
    (Phase::SynchronizedPhase, sha1(format!("synchronize {hook} hook").as_bytes()))
}

/// The votes of a push that makes `change`, primary and secondary alike.
fn push_votes(change: &str) -> Vec<(Phase, Vec<u8>)> {
    let hash = sha1(change.as_bytes());
    vec![
        sync_vote("pre-receive"),
        sync_vote("update"),
        (Phase::PreparedPhase, hash.clone()),
        (Phase::CommittedPhase, hash),
        sync_vote("post-receive"),
        // The closing vote every voter casts.
        (Phase::CommittedPhase, vec![0; 20]),
    ]
}

/// A node asking a fake GitLab (kept alive with its secret's directory).
async fn node_with_gitlab() -> (FakeGitlab, tempfile::TempDir, Node) {
    let (gitlab, url) = FakeGitlab::tcp(allowing()).await;
    let secrets = tempfile::tempdir().expect("tempdir");
    let node = Node::start_with(|c| configure(c, &url, secrets.path())).await;
    (gitlab, secrets, node)
}

/// Makes the repository's own pre-receive hook refuse every push.
fn refuse_pushes(server: &TestRepo) {
    script(&server.path.join("custom_hooks/pre-receive"), "cat >/dev/null\necho refused >&2\nexit 1");
}

/// `msg` tagged with transaction 7 for voter `node`.
fn in_transaction<T>(msg: T, node: &str, primary: bool) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    let value = encode_metadata(7, node, primary);
    req.metadata_mut().insert("gitaly-reference-transaction", value.parse().expect("ascii"));
    req
}

/// The server repository (one commit on main) as a request names it.
fn repository(node: &Node) -> Repository {
    Repository { gl_repository: "project-7".into(), ..node.repo("tx.git") }
}

/// A server repository and a client commit (on `topic`) to push to it,
/// with the pack of that commit and the change line it makes.
fn setup(node: &Node, tmp: &Path) -> (TestRepo, String, Vec<u8>, String) {
    let server = node.create_repo("tx.git", Format::Sha1);
    server.commit_on("main", &[("README", "server\n")], "server root");
    let client = TestRepo::create(tmp, "client.git", Format::Sha1);
    let pushed = client.commit_on("topic", &[("file", "client side\n")], "client commit");
    let pack = pack_of(&client.path, &pushed);
    let change = format!("{} {pushed} refs/heads/topic\n", "0".repeat(40));
    (server, pushed, pack, change)
}

/// SSHReceivePack of `pack` creating refs/heads/topic: git's output and
/// the RPC's outcome.
async fn push(
    channel: AuthChannel,
    node: &Node,
    pushed: &str,
    pack: &[u8],
    tx: Option<(&str, bool)>,
) -> (String, Result<(), tonic::Status>) {
    let command = format!("{} {pushed} refs/heads/topic\0report-status\n", "0".repeat(40));
    let mut stdin = format!("{:04x}", command.len() + 4).into_bytes();
    stdin.extend(command.as_bytes());
    stdin.extend(b"0000");
    stdin.extend(pack);
    let messages = vec![
        SshReceivePackRequest {
            repository: Some(repository(node)),
            gl_id: "user-42".into(),
            gl_username: "jane".into(),
            ..Default::default()
        },
        SshReceivePackRequest { stdin, ..Default::default() },
    ];
    let stream = futures::stream::iter(messages);
    let req = match tx {
        Some((name, primary)) => in_transaction(stream, name, primary),
        None => tonic::Request::new(stream),
    };
    let mut output = Vec::new();
    let result = async {
        let mut responses = SshServiceClient::new(channel).ssh_receive_pack(req).await?.into_inner();
        while let Some(m) = responses.message().await? {
            output.extend(m.stdout);
            output.extend(m.stderr);
        }
        Ok(())
    }
    .await;
    (String::from_utf8_lossy(&output).into_owned(), result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_votes_on_its_reference_updates() {
    let node = Node::start().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, pushed, pack, change) = setup(&node, tmp.path());
    let router = FakeRouter::default();
    let conn = router.dial(&node).await;

    let (output, result) = push(conn.channel(), &node, &pushed, &pack, Some(("gitaly-1", true))).await;
    result.unwrap_or_else(|s| panic!("push: {s:?}\n{output}"));
    assert!(output.contains("ok refs/heads/topic"), "{output}");
    assert_eq!(server.git(&["rev-parse", "refs/heads/topic"]), pushed);
    assert_eq!(router.votes("gitaly-1"), push_votes(&change));
    assert!(router.stops.lock().expect("lock").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_vote_leaves_the_reference_unchanged() {
    let node = Node::start().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, pushed, pack, change) = setup(&node, tmp.path());
    let router = FakeRouter::default();
    router.abort_in(Phase::PreparedPhase);
    let conn = router.dial(&node).await;
    let before = refs(&server.path);

    let (output, result) = push(conn.channel(), &node, &pushed, &pack, Some(("gitaly-1", true))).await;
    // git gives up on the push when the hook refuses the prepared update.
    let status = result.expect_err("the push fails");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(output.contains("ref updates aborted by hook"), "{output}");
    assert_eq!(refs(&server.path), before, "no reference changed");
    assert_eq!(quarantines(&server.path), Vec::<String>::new(), "no quarantine left");
    let votes = router.votes("gitaly-1");
    assert!(votes.contains(&(Phase::PreparedPhase, sha1(change.as_bytes()))), "{votes:?}");
    assert!(!votes.contains(&(Phase::CommittedPhase, sha1(change.as_bytes()))), "{votes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secondary_leaves_gitlab_and_custom_hooks_to_the_primary_but_votes() {
    let (gitlab, _secrets, node) = node_with_gitlab().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, pushed, pack, change) = setup(&node, tmp.path());
    // Only the primary runs the repository's hooks.
    refuse_pushes(&server);
    let router = FakeRouter::default();
    let conn = router.dial(&node).await;

    let (output, result) = push(conn.channel(), &node, &pushed, &pack, Some(("gitaly-2", false))).await;
    result.unwrap_or_else(|s| panic!("push: {s:?}\n{output}"));
    assert_eq!(server.git(&["rev-parse", "refs/heads/topic"]), pushed);
    assert_eq!(gitlab.paths(), Vec::<String>::new(), "a secondary does not call GitLab");
    assert_eq!(router.votes("gitaly-2"), push_votes(&change));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_whose_hook_refuses_stops_the_transaction() {
    let (gitlab, _secrets, node) = node_with_gitlab().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, pushed, pack, _) = setup(&node, tmp.path());
    refuse_pushes(&server);
    let router = FakeRouter::default();
    let conn = router.dial(&node).await;
    let before = refs(&server.path);

    let (output, result) = push(conn.channel(), &node, &pushed, &pack, Some(("gitaly-1", true))).await;
    result.unwrap_or_else(|s| panic!("push: {s:?}\n{output}"));
    assert!(output.contains("pre-receive hook declined"), "{output}");
    assert_eq!(refs(&server.path), before);
    assert_eq!(gitlab.paths(), ["/api/v4/internal/allowed"], "the primary asked GitLab");
    let stops = router.stops.lock().expect("lock").clone();
    assert_eq!(stops.len(), 1, "{stops:?}");
    assert_eq!(stops[0].transaction_id, 7);
    // The hook failed before its synchronising vote and git updated nothing,
    // so only the closing vote was cast (a real router answers it STOP,
    // which the node ignores; the fake answers COMMIT).
    assert_eq!(router.votes("gitaly-1"), vec![(Phase::CommittedPhase, vec![0; 20])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_ref_votes_through_the_hook_for_references_and_head() {
    let node = Node::start().await;
    let server = node.create_repo("tx.git", Format::Sha1);
    let main = server.commit_on("main", &[("README", "server\n")], "server root");
    let router = FakeRouter::default();
    let conn = router.dial(&node).await;
    let mut client = RepositoryServiceClient::new(conn.channel());

    let write = |r: &[u8], rev: &[u8]| WriteRefRequest {
        repository: Some(repository(&node)),
        r#ref: r.to_vec(),
        revision: rev.to_vec(),
        ..Default::default()
    };
    client
        .write_ref(in_transaction(write(b"refs/heads/copy", main.as_bytes()), "gitaly-1", true))
        .await
        .expect("WriteRef");
    assert_eq!(server.git(&["rev-parse", "refs/heads/copy"]), main);
    let hash = sha1(format!("{} {main} refs/heads/copy\n", "0".repeat(40)).as_bytes());
    assert_eq!(router.votes("gitaly-1"), vec![(Phase::PreparedPhase, hash.clone()), (Phase::CommittedPhase, hash)]);

    router.votes.lock().expect("lock").clear();
    client
        .write_ref(in_transaction(write(b"HEAD", b"refs/heads/copy"), "gitaly-1", true))
        .await
        .expect("WriteRef HEAD");
    assert_eq!(server.git(&["symbolic-ref", "HEAD"]), "refs/heads/copy");
    let hash = sha1(format!("{} ref:refs/heads/copy HEAD\n", "0".repeat(40)).as_bytes());
    assert_eq!(router.votes("gitaly-1"), vec![(Phase::PreparedPhase, hash.clone()), (Phase::CommittedPhase, hash)]);

    // An aborted vote fails the write and changes nothing.
    router.votes.lock().expect("lock").clear();
    router.abort_in(Phase::PreparedPhase);
    let before = refs(&server.path);
    let status = client
        .write_ref(in_transaction(write(b"refs/heads/other", main.as_bytes()), "gitaly-1", true))
        .await
        .expect_err("aborted");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_eq!(refs(&server.path), before);
    let status = client
        .write_ref(in_transaction(write(b"HEAD", b"refs/heads/main"), "gitaly-1", true))
        .await
        .expect_err("aborted");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_eq!(server.git(&["symbolic-ref", "HEAD"]), "refs/heads/copy");
    assert_eq!(router.votes("gitaly-1").len(), 2, "one prepared vote each, none committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_source_branch_votes() {
    let node = Node::start().await;
    let server = node.create_repo("tx.git", Format::Sha1);
    let feature = server.commit_on("feature", &[("f", "feature\n")], "feature");
    let router = FakeRouter::default();
    let conn = router.dial(&node).await;
    let mut client = RepositoryServiceClient::new(conn.channel());
    let msg = FetchSourceBranchRequest {
        repository: Some(repository(&node)),
        source_repository: Some(repository(&node)),
        source_branch: b"feature".to_vec(),
        target_ref: b"refs/merge-requests/1/head".to_vec(),
        ..Default::default()
    };
    let mut req = in_transaction(msg, "gitaly-1", true);
    let servers = serde_json::json!({ STORAGE: {"address": format!("unix:{}", node.socket.display()), "token": ""} });
    let servers = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, servers.to_string());
    req.metadata_mut().insert("gitaly-servers", servers.parse().expect("ascii"));
    assert!(client.fetch_source_branch(req).await.expect("FetchSourceBranch").into_inner().result);
    assert_eq!(server.git(&["rev-parse", "refs/merge-requests/1/head"]), feature);
    let hash = sha1(format!("{} {feature} refs/merge-requests/1/head\n", "0".repeat(40)).as_bytes());
    assert_eq!(router.votes("gitaly-1"), vec![(Phase::PreparedPhase, hash.clone()), (Phase::CommittedPhase, hash)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_remote_votes_on_the_update_and_on_the_references() {
    let node = Node::start().await;
    let src = node.create_repo("src.git", Format::Sha1);
    let one = src.commit_on("main", &[("a", "a\n")], "one");
    let front = tokio::task::block_in_place(|| HttpFrontDoor::start(&node, STORAGE));
    let dst = node.create_repo("tx.git", Format::Sha1);
    let router = FakeRouter::default();
    let conn = router.dial(&node).await;
    let mut client = RepositoryServiceClient::new(conn.channel());
    let fetch = || {
        let msg = FetchRemoteRequest {
            repository: Some(repository(&node)),
            remote_params: Some(Remote { url: front.url("src.git"), ..Default::default() }),
            force: true,
            timeout: 60,
            ..Default::default()
        };
        in_transaction(msg, "gitaly-1", true)
    };
    // What upstream votes on after the fetch: the default for-each-ref listing.
    let listing = || (Phase::UnknownPhase, sha1(format!("{}\n", dst.git(&["for-each-ref"])).as_bytes()));

    client.fetch_remote(fetch()).await.expect("FetchRemote");
    assert_eq!(dst.git(&["rev-parse", "refs/heads/main"]), one);
    // git also reports HEAD, which points at the branch the fetch created.
    let zero = "0".repeat(40);
    let hash = sha1(format!("{zero} {one} refs/heads/main\n{zero} {one} HEAD\n").as_bytes());
    assert_eq!(
        router.votes("gitaly-1"),
        vec![(Phase::PreparedPhase, hash.clone()), (Phase::CommittedPhase, hash), listing()]
    );

    // Nothing new: git updates nothing, the listing vote is still cast.
    router.votes.lock().expect("lock").clear();
    client.fetch_remote(fetch()).await.expect("FetchRemote again");
    assert_eq!(router.votes("gitaly-1"), vec![listing()]);

    // Refused in prepared: the references stay as they were.
    router.votes.lock().expect("lock").clear();
    router.abort_in(Phase::PreparedPhase);
    let two = src.commit_on("main", &[("b", "b\n")], "two");
    client.fetch_remote(fetch()).await.expect_err("aborted");
    assert_eq!(dst.git(&["rev-parse", "refs/heads/main"]), one);
    assert_ne!(one, two);
}

fn hooks_archive() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o755);
    let body = b"#!/bin/sh\nexit 0\n";
    h.set_size(body.len() as u64);
    b.append_data(&mut h, "custom_hooks/pre-receive", &body[..]).expect("append");
    b.into_inner().expect("tar")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_custom_hooks_votes_before_and_after_the_swap() {
    let node = Node::start().await;
    let server = node.create_repo("tx.git", Format::Sha1);
    let router = FakeRouter::default();
    let conn = router.dial(&node).await;
    let mut client = RepositoryServiceClient::new(conn.channel());
    let set = |data: Vec<u8>| {
        let msg = SetCustomHooksRequest { repository: Some(repository(&node)), data };
        in_transaction(futures::stream::iter(vec![msg]), "gitaly-1", true)
    };

    client.set_custom_hooks(set(hooks_archive())).await.expect("SetCustomHooks");
    assert!(server.path.join("custom_hooks/pre-receive").is_file());
    let votes = router.votes("gitaly-1");
    assert_eq!(votes.iter().map(|v| v.0).collect::<Vec<_>>(), [Phase::PreparedPhase, Phase::CommittedPhase]);
    assert_eq!(votes[0].1, votes[1].1, "the installed hooks are the voted ones");
    assert_eq!(votes[0].1.len(), 20);

    // Aborted: the hooks stay as they were.
    router.votes.lock().expect("lock").clear();
    router.abort_in(Phase::PreparedPhase);
    let status = client.set_custom_hooks(set(Vec::new())).await.expect_err("aborted");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(server.path.join("custom_hooks/pre-receive").is_file(), "hooks unchanged");
    assert!(!server.path.join("custom_hooks.lock").exists());
    let votes = router.votes("gitaly-1");
    assert_eq!(votes.len(), 1);
    assert_ne!(votes[0].1, sha1(b""), "an empty hooks directory still has a vote of its own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_repository_votes_and_an_abort_leaves_nothing() {
    let node = Node::start().await;
    let router = FakeRouter::default();
    let conn = router.dial(&node).await;
    let mut client = RepositoryServiceClient::new(conn.channel());
    let create = |relative: &str| {
        let msg = CreateRepositoryRequest { repository: Some(node.repo(relative)), ..Default::default() };
        in_transaction(msg, "gitaly-1", true)
    };

    client.create_repository(create("created.git")).await.expect("CreateRepository");
    assert!(node.storage.join("created.git/HEAD").is_file());
    let votes = router.votes("gitaly-1");
    assert_eq!(votes.iter().map(|v| v.0).collect::<Vec<_>>(), [Phase::PreparedPhase, Phase::CommittedPhase]);
    assert_eq!(votes[0].1, votes[1].1);

    router.votes.lock().expect("lock").clear();
    router.abort_in(Phase::PreparedPhase);
    let status = client.create_repository(create("refused.git")).await.expect_err("aborted");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("preparatory vote"), "{status:?}");
    assert!(!node.storage.join("refused.git").exists(), "nothing on disk");
    assert!(!node.storage.join("refused.git.lock").exists());
    assert_eq!(router.votes("gitaly-1").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_repository_votes_and_an_abort_keeps_it() {
    let node = Node::start().await;
    node.create_repo("kept.git", Format::Sha1);
    node.create_repo("removed.git", Format::Sha1);
    let router = FakeRouter::default();
    let conn = router.dial(&node).await;
    let mut client = RepositoryServiceClient::new(conn.channel());
    let remove = |relative: &str| {
        in_transaction(RemoveRepositoryRequest { repository: Some(node.repo(relative)) }, "gitaly-1", true)
    };

    client.remove_repository(remove("removed.git")).await.expect("RemoveRepository");
    assert!(!node.storage.join("removed.git").exists());
    assert_eq!(
        router.votes("gitaly-1"),
        vec![
            (Phase::PreparedPhase, sha1(b"pre-remove removed.git")),
            (Phase::CommittedPhase, sha1(b"post-remove removed.git"))
        ]
    );

    router.votes.lock().expect("lock").clear();
    router.abort_in(Phase::PreparedPhase);
    let status = client.remove_repository(remove("kept.git")).await.expect_err("aborted");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(node.storage.join("kept.git/HEAD").is_file(), "the repository stays");
    assert!(!node.storage.join("kept.git.lock").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_metadata_and_missing_backchannel_are_refused() {
    let node = Node::start().await;
    let server = node.create_repo("tx.git", Format::Sha1);
    let main = server.commit_on("main", &[("README", "server\n")], "server root");
    let write = || WriteRefRequest {
        repository: Some(repository(&node)),
        r#ref: b"refs/heads/copy".to_vec(),
        revision: main.as_bytes().to_vec(),
        ..Default::default()
    };
    let router = FakeRouter::default();
    let conn = router.dial(&node).await;
    let mut req = tonic::Request::new(write());
    req.metadata_mut().insert("gitaly-reference-transaction", "not base64!".parse().expect("ascii"));
    let status = RepositoryServiceClient::new(conn.channel()).write_ref(req).await.expect_err("malformed");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("gitaly-reference-transaction"), "{status:?}");

    // Over a plain connection the node could not vote: it says so.
    let mut client = RepositoryServiceClient::new(node.channel().await);
    let status = client.write_ref(in_transaction(write(), "gitaly-1", true)).await.expect_err("no backchannel");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("backchannel"), "{status:?}");
    assert!(router.votes("gitaly-1").is_empty());
    assert!(server.git(&["for-each-ref", "refs/heads/copy"]).is_empty(), "nothing written");

    // Without the metadata nothing votes and nothing needs a backchannel.
    client.write_ref(write()).await.expect("WriteRef outside transactions");
    assert_eq!(server.git(&["rev-parse", "refs/heads/copy"]), main);
}

/// Not a check: how much a transaction adds to a push and to a WriteRef
/// (votes answered at once by the fake router). Run with
/// `cargo test -p cairn-node --test it transaction_overhead -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement"]
async fn transaction_overhead() {
    const ROUNDS: usize = 20;
    let node = Node::start().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, pushed, pack, _) = setup(&node, tmp.path());
    let router = FakeRouter::default();
    let conn = router.dial(&node).await;
    let mut client = RepositoryServiceClient::new(conn.channel());
    for tx in [None, Some(("gitaly-1", true))] {
        let start = std::time::Instant::now();
        for _ in 0..ROUNDS {
            let (output, result) = push(conn.channel(), &node, &pushed, &pack, tx).await;
            result.unwrap_or_else(|s| panic!("push: {s:?}\n{output}"));
            server.git(&["update-ref", "-d", "refs/heads/topic"]);
        }
        let push_ms = start.elapsed().as_secs_f64() * 1000.0 / ROUNDS as f64;
        let start = std::time::Instant::now();
        for i in 0..ROUNDS {
            let msg = WriteRefRequest {
                repository: Some(repository(&node)),
                r#ref: format!("refs/heads/w{i}").into_bytes(),
                revision: pushed.clone().into_bytes(),
                ..Default::default()
            };
            let req = match tx {
                Some((name, primary)) => in_transaction(msg, name, primary),
                None => tonic::Request::new(msg),
            };
            client.write_ref(req).await.expect("WriteRef");
        }
        let write_ms = start.elapsed().as_secs_f64() * 1000.0 / ROUNDS as f64;
        println!("transaction={}: push {push_ms:.1} ms, WriteRef {write_ms:.1} ms", tx.is_some());
        for i in 0..ROUNDS {
            server.git(&["update-ref", "-d", &format!("refs/heads/w{i}")]);
        }
    }
    assert_eq!(router.votes("gitaly-1").len(), ROUNDS * (6 + 2));
}

/// UserCreateBranch of `branch` at main in a transaction for voter gitaly-1.
async fn create_branch(conn: &Connection, node: &Node, branch: &str) -> Result<(), tonic::Status> {
    let req = UserCreateBranchRequest {
        repository: Some(Repository { gl_project_path: "group/project".into(), ..repository(node) }),
        branch_name: branch.into(),
        user: Some(crate::operations::user()),
        start_point: b"main".to_vec(),
    };
    let mut ops = cairn_proto::gitaly::operation_service_client::OperationServiceClient::new(conn.channel());
    ops.user_create_branch(in_transaction(req, "gitaly-1", true)).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_create_branch_votes_like_a_push_and_an_abort_leaves_no_branch() {
    let node = Node::start().await;
    let server = node.create_repo("tx.git", Format::Sha1);
    let main = server.commit_on("main", &[("README", "server\n")], "server root");
    let router = FakeRouter::default();
    let conn = router.dial(&node).await;

    create_branch(&conn, &node, "feature").await.expect("created");
    assert_eq!(server.git(&["rev-parse", "refs/heads/feature"]), main);
    let change = format!("{} {main} refs/heads/feature\n", "0".repeat(40));
    let votes = router.votes("gitaly-1");
    let expected = push_votes(&change);
    // Synchronising pre-receive and update votes, prepared and committed
    // votes on the update line, synchronising post-receive.
    assert_eq!(votes[..5], expected[..5], "{votes:?}");

    let router = FakeRouter::default();
    router.abort_in(Phase::PreparedPhase);
    let conn = router.dial(&node).await;
    let status = create_branch(&conn, &node, "aborted").await.expect_err("aborted");
    assert_ne!(status.code(), Code::Ok);
    assert!(server.git(&["for-each-ref", "--format=%(refname)", "refs/heads/aborted"]).is_empty());
    assert_eq!(quarantines(&server.path), Vec::<String>::new());
    let change = format!("{} {main} refs/heads/aborted\n", "0".repeat(40));
    let votes = router.votes("gitaly-1");
    assert!(votes.contains(&(Phase::PreparedPhase, sha1(change.as_bytes()))), "{votes:?}");
    assert!(!votes.contains(&(Phase::CommittedPhase, sha1(change.as_bytes()))), "{votes:?}");
}
