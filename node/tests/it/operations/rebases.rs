//! UserRebaseConfirmable and UserRebaseToRef, checked against `git rebase`
//! run in a work tree of a clone with the same committer and date: the
//! rebased commits must be the very same objects.

use super::merges::{WHEN, timestamp};
use super::{client, detail, repository, resolve, user};
use crate::hooks::{quarantines, script};
use crate::support::Node;
use crate::support::git::{Format, TestRepo, git, has_object};
use cairn_proto::gitaly::operation_service_client::OperationServiceClient;
use cairn_proto::gitaly::user_rebase_confirmable_request::{Header, UserRebaseConfirmableRequestPayload as Req};
use cairn_proto::gitaly::user_rebase_confirmable_response::UserRebaseConfirmableResponsePayload as Resp;
use cairn_proto::gitaly::*;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

/// `main` with a commit `feature` lacks, and `feature` with three commits
/// of its own: one adding a file, one that main has already (same change,
/// so rebase drops it) and one changing its file again. Returns (repo,
/// main, feature).
fn forked(node: &Node, relative: &str, format: Format) -> (TestRepo, String, String) {
    let repo = node.create_repo(relative, format);
    let base = repo.commit_on("main", &[("README.md", "hello\n")], "base");
    repo.git(&["symbolic-ref", "HEAD", "refs/heads/main"]);
    let main = repo.commit_on("main", &[("README.md", "hello\n"), ("main.txt", "main\n")], "main change");
    let f1 = repo.commit(&[("README.md", "hello\n"), ("f.txt", "one\n")], &[&base], "feature one");
    let dup =
        repo.commit(&[("README.md", "hello\n"), ("f.txt", "one\n"), ("main.txt", "main\n")], &[&f1], "same as main");
    let f3 =
        repo.commit(&[("README.md", "hello\n"), ("f.txt", "two\n"), ("main.txt", "main\n")], &[&dup], "feature two");
    repo.git(&["update-ref", "refs/heads/feature", &f3]);
    (repo, main, f3)
}

/// What `git rebase <onto>` makes of `tip`, committed by the request's
/// user at the request's time, in a work tree of a clone.
fn cli_rebase(repo: &TestRepo, onto: &str, tip: &str) -> String {
    let wt = tempfile::tempdir().expect("tempdir");
    let dir = wt.path().join("wt");
    git(None, &["clone", "--quiet", "--no-checkout", &repo.path.to_string_lossy(), &dir.to_string_lossy()]);
    git(Some(&dir), &["checkout", "--quiet", "--detach", tip]);
    let out = super::git_as_user(&dir, &format!("@{WHEN} +0000"))
        .args(["rebase", "--quiet", onto])
        .output()
        .expect("git rebase runs");
    assert!(out.status.success(), "git rebase: {}", String::from_utf8_lossy(&out.stderr));
    git(Some(&dir), &["rev-parse", "HEAD"])
}

fn header(relative: &str, branch: &str, branch_sha: &str, remote: Repository, remote_branch: &str) -> Header {
    Header {
        repository: Some(repository(relative)),
        user: Some(user()),
        branch: branch.into(),
        branch_sha: branch_sha.into(),
        remote_repository: Some(remote),
        remote_branch: remote_branch.into(),
        timestamp: timestamp(),
        ..Default::default()
    }
}

/// An open UserRebaseConfirmable call: the request sender and the answers.
struct Rebase {
    tx: mpsc::Sender<UserRebaseConfirmableRequest>,
    answers: Streaming<UserRebaseConfirmableResponse>,
}

impl Rebase {
    async fn start(ops: &mut OperationServiceClient<Channel>, header: Header) -> Result<Self, Status> {
        let (tx, rx) = mpsc::channel(2);
        tx.send(UserRebaseConfirmableRequest { user_rebase_confirmable_request_payload: Some(Req::Header(header)) })
            .await
            .expect("send header");
        let answers = ops.user_rebase_confirmable(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
        Ok(Self { tx, answers })
    }

    /// The first answer: the rebased tip.
    async fn rebased(&mut self) -> Result<String, Status> {
        match self.answers.message().await?.and_then(|m| m.user_rebase_confirmable_response_payload) {
            Some(Resp::RebaseSha(sha)) => Ok(sha),
            other => panic!("expected the rebase sha, got {other:?}"),
        }
    }

    /// Confirms (or not) and reads the last answer.
    async fn apply(mut self, apply: bool) -> Result<bool, Status> {
        let msg = UserRebaseConfirmableRequest { user_rebase_confirmable_request_payload: Some(Req::Apply(apply)) };
        self.tx.send(msg).await.expect("send apply");
        match self.answers.message().await?.and_then(|m| m.user_rebase_confirmable_response_payload) {
            Some(Resp::RebaseApplied(applied)) => Ok(applied),
            other => panic!("expected rebase_applied, got {other:?}"),
        }
    }
}

async fn rebases_like_git(format: Format) {
    let node = Node::start().await;
    let (repo, main, feature) = forked(&node, "r.git", format);
    let expected = cli_rebase(&repo, &main, &feature);
    let mut ops = client(&node).await;
    let mut call = Rebase::start(&mut ops, header("r.git", "feature", &feature, repository("r.git"), "main"))
        .await
        .expect("started");
    let tip = call.rebased().await.expect("rebased");
    assert_eq!(tip, expected, "the same commits as git rebase");
    // Until confirmed, the branch stays and the commits are quarantined.
    assert_eq!(resolve(&repo, "refs/heads/feature").as_deref(), Some(feature.as_str()));
    assert!(!has_object(&repo.path, &tip));
    assert!(call.apply(true).await.expect("applied"));
    assert_eq!(resolve(&repo, "refs/heads/feature").as_deref(), Some(tip.as_str()));
    // Two commits replayed (the one main has already is dropped), authors kept.
    assert_eq!(
        repo.git(&["log", "--format=%s|%an %ad|%cn %ct", "--date=raw", &format!("{main}..{tip}")]),
        format!(
            "feature two|Scrooge McDuck 1572776879 +0100|Jane Doe {WHEN}\nfeature one|Scrooge McDuck 1572776879 +0100|Jane Doe {WHEN}"
        )
    );
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
    git(Some(&repo.path), &["fsck", "--no-progress"]);

    // Nothing left to replay: the answer is the branch itself.
    let mut again =
        Rebase::start(&mut ops, header("r.git", "feature", &tip, repository("r.git"), "main")).await.expect("started");
    assert_eq!(again.rebased().await.expect("rebased"), tip);
    // A branch main contains entirely fast-forwards to main.
    let base = repo.git(&["rev-parse", "main~1"]);
    repo.git(&["update-ref", "refs/heads/old", &base]);
    let mut behind =
        Rebase::start(&mut ops, header("r.git", "old", &base, repository("r.git"), "main")).await.expect("started");
    assert_eq!(behind.rebased().await.expect("rebased"), main);
    assert!(behind.apply(true).await.expect("applied"));
    assert_eq!(resolve(&repo, "refs/heads/old").as_deref(), Some(main.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebase_confirmable_matches_git_rebase_sha1() {
    rebases_like_git(Format::Sha1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebase_confirmable_matches_git_rebase_sha256() {
    rebases_like_git(Format::Sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebase_conflicts_aborts_and_hook_refusals_write_nothing() {
    let node = Node::start().await;
    let (repo, main, feature) = forked(&node, "r.git", Format::Sha1);
    let mut ops = client(&node).await;

    // A change to main.txt of its own conflicts with main's.
    let conflicting = repo.commit(
        &[("README.md", "hello\n"), ("f.txt", "two\n"), ("main.txt", "feature's\n")],
        &[&repo.git(&["rev-parse", "feature~1~1"])],
        "conflicting",
    );
    repo.git(&["update-ref", "refs/heads/conflicting", &conflicting]);
    let status = match Rebase::start(
        &mut ops,
        header("r.git", "conflicting", &conflicting, repository("r.git"), "main"),
    )
    .await
    {
        Ok(mut call) => call.rebased().await.expect_err("conflict"),
        Err(status) => status,
    };
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(
        status.message(),
        format!("rebasing commits: rebase: commit {conflicting:?}: there are conflicting files")
    );
    let err: UserRebaseConfirmableError = detail(&status);
    let Some(user_rebase_confirmable_error::Error::RebaseConflict(conflict)) = err.error else { panic!("{err:?}") };
    assert_eq!(conflict.conflicting_files, vec![b"main.txt".to_vec()]);
    assert_eq!(conflict.conflicting_commit_ids, vec![main.clone(), conflicting.clone()]);
    assert_eq!(resolve(&repo, "refs/heads/conflicting").as_deref(), Some(conflicting.as_str()));
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());

    // The client declines.
    let mut call = Rebase::start(&mut ops, header("r.git", "feature", &feature, repository("r.git"), "main"))
        .await
        .expect("started");
    let tip = call.rebased().await.expect("rebased");
    let status = call.apply(false).await.expect_err("aborted");
    assert_eq!((status.code(), status.message()), (Code::FailedPrecondition, "rebase aborted by client"));
    assert_eq!(resolve(&repo, "refs/heads/feature").as_deref(), Some(feature.as_str()));
    assert!(!has_object(&repo.path, &tip));

    // A custom pre-receive hook refuses: access check detail, nothing written.
    script(&repo.path.join("custom_hooks/pre-receive"), "echo failure; exit 1");
    let mut call = Rebase::start(&mut ops, header("r.git", "feature", &feature, repository("r.git"), "main"))
        .await
        .expect("started");
    let tip = call.rebased().await.expect("rebased");
    let status = call.apply(true).await.expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(status.message(), r#"access check: "running pre-receive hooks: failure\n""#);
    let err: UserRebaseConfirmableError = detail(&status);
    let Some(user_rebase_confirmable_error::Error::AccessCheck(check)) = err.error else { panic!("{err:?}") };
    assert_eq!(check.error_message, "failure\n");
    assert_eq!(resolve(&repo, "refs/heads/feature").as_deref(), Some(feature.as_str()));
    assert!(!has_object(&repo.path, &tip));
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
    std::fs::remove_file(repo.path.join("custom_hooks/pre-receive")).expect("remove hook");

    // The branch moved meanwhile: the old-value check refuses.
    let mut call = Rebase::start(&mut ops, header("r.git", "feature", &feature, repository("r.git"), "main"))
        .await
        .expect("started");
    call.rebased().await.expect("rebased");
    let moved = repo.commit(&[("x", "x\n")], &[&feature], "moved");
    repo.git(&["update-ref", "refs/heads/feature", &moved]);
    let status = call.apply(true).await.expect_err("raced");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(status.message().starts_with("updating ref with hooks: reference update"), "{status:?}");
    assert_eq!(resolve(&repo, "refs/heads/feature").as_deref(), Some(moved.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebase_confirmable_validates_its_header() {
    let node = Node::start().await;
    let (_, _, feature) = forked(&node, "r.git", Format::Sha1);
    let mut ops = client(&node).await;
    let h = || header("r.git", "feature", &feature, repository("r.git"), "main");
    let cases = [
        (Header { user: None, ..h() }, Code::InvalidArgument, "empty User"),
        (Header { branch: vec![], ..h() }, Code::InvalidArgument, "empty Branch"),
        (Header { branch_sha: String::new(), ..h() }, Code::InvalidArgument, "empty BranchSha"),
        (Header { remote_repository: None, ..h() }, Code::InvalidArgument, "empty RemoteRepository"),
        (Header { remote_branch: vec![], ..h() }, Code::InvalidArgument, "empty RemoteBranch"),
        (Header { remote_branch: b"+dev:branch".to_vec(), ..h() }, Code::InvalidArgument, "invalid branch name"),
        (Header { branch_sha: "xyz".into(), ..h() }, Code::NotFound, "invalid object ID"),
        (Header { remote_branch: b"gone".to_vec(), ..h() }, Code::InvalidArgument, "resolve start ref"),
        (Header { repository: Some(repository("missing.git")), ..h() }, Code::NotFound, "repository not found"),
    ];
    for (header, code, message) in cases {
        let status = match Rebase::start(&mut ops, header).await {
            Ok(mut call) => call.rebased().await.expect_err("refused"),
            Err(status) => status,
        };
        assert_eq!(status.code(), code, "{message}: {status:?}");
        assert!(status.message().contains(message), "{message:?} in {status:?}");
    }
    // A first message without a header.
    let (tx, rx) = mpsc::channel(1);
    tx.send(UserRebaseConfirmableRequest { user_rebase_confirmable_request_payload: Some(Req::Apply(true)) })
        .await
        .expect("send");
    let status = match ops.user_rebase_confirmable(tokio_stream::wrappers::ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner().message().await.expect_err("refused"),
        Err(s) => s,
    };
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "empty UserRebaseConfirmableRequest.Header");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebase_onto_a_fork_fetches_only_what_it_keeps() {
    let node = Node::start().await;
    let (repo, _, feature) = forked(&node, "r.git", Format::Sha1);
    // The source project: a fork whose main moved on.
    let fork_path = node.storage.join("fork.git");
    git(None, &["clone", "--quiet", "--bare", &repo.path.to_string_lossy(), &fork_path.to_string_lossy()]);
    let fork = TestRepo { path: fork_path };
    let upstream = fork.commit_on("main", &[("README.md", "hello\n"), ("main.txt", "main\n"), ("up", "u\n")], "up");
    assert!(!has_object(&repo.path, &upstream));
    let expected = cli_rebase(&fork, &upstream, &feature);
    let mut ops = client(&node).await;

    // Declined: the fork's commit never reaches the repository.
    let mut call = Rebase::start(&mut ops, header("r.git", "feature", &feature, repository("fork.git"), "main"))
        .await
        .expect("started");
    assert_eq!(call.rebased().await.expect("rebased"), expected);
    call.apply(false).await.expect_err("aborted");
    assert!(!has_object(&repo.path, &upstream));

    let mut call = Rebase::start(&mut ops, header("r.git", "feature", &feature, repository("fork.git"), "main"))
        .await
        .expect("started");
    assert_eq!(call.rebased().await.expect("rebased"), expected);
    assert!(call.apply(true).await.expect("applied"));
    assert_eq!(resolve(&repo, "refs/heads/feature").as_deref(), Some(expected.as_str()));
    assert!(has_object(&repo.path, &upstream));
    git(Some(&repo.path), &["fsck", "--no-progress"]);
}

fn to_ref(relative: &str, source: &str, first_parent: &str, target: &str) -> UserRebaseToRefRequest {
    UserRebaseToRefRequest {
        repository: Some(repository(relative)),
        user: Some(user()),
        source_sha: source.into(),
        first_parent_ref: first_parent.into(),
        target_ref: target.into(),
        timestamp: timestamp(),
        ..Default::default()
    }
}

async fn rebase_to_ref(format: Format) {
    let node = Node::start().await;
    let (repo, main, feature) = forked(&node, "r.git", format);
    let expected = cli_rebase(&repo, &main, &feature);
    let mut ops = client(&node).await;
    let target = "refs/merge-requests/1/train";
    let id = ops
        .user_rebase_to_ref(to_ref("r.git", &feature, "refs/heads/main", target))
        .await
        .expect("rebased")
        .into_inner()
        .commit_id;
    assert_eq!(id, expected);
    assert_eq!(resolve(&repo, target).as_deref(), Some(id.as_str()));
    // The branches stay where they were.
    assert_eq!(resolve(&repo, "refs/heads/feature").as_deref(), Some(feature.as_str()));
    assert_eq!(resolve(&repo, "refs/heads/main").as_deref(), Some(main.as_str()));

    // Overwriting needs the value it has; a stale expectation is refused.
    let stale = UserRebaseToRefRequest { expected_old_oid: main.clone(), ..to_ref("r.git", &feature, "main", target) };
    let status = ops.user_rebase_to_ref(stale).await.expect_err("stale");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(status.message(), format!("could not update {target}. Please refresh and try again"));
    assert_eq!(resolve(&repo, target).as_deref(), Some(id.as_str()));
    let current = UserRebaseToRefRequest { expected_old_oid: id.clone(), ..to_ref("r.git", &main, "main", target) };
    let moved = ops.user_rebase_to_ref(current).await.expect("overwritten").into_inner().commit_id;
    assert_eq!(moved, main, "main rebased onto itself is main");
    assert_eq!(resolve(&repo, target).as_deref(), Some(main.as_str()));
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebase_to_ref_matches_git_rebase_sha1() {
    rebase_to_ref(Format::Sha1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebase_to_ref_matches_git_rebase_sha256() {
    rebase_to_ref(Format::Sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebase_to_ref_conflicts_and_bad_input() {
    let node = Node::start().await;
    let (repo, main, _) = forked(&node, "r.git", Format::Sha1);
    let base = repo.git(&["rev-parse", "main~1"]);
    let conflicting = repo.commit(&[("README.md", "hello\n"), ("main.txt", "other\n")], &[&base], "other");
    let mut ops = client(&node).await;
    let target = "refs/merge-requests/2/train";
    let status = ops.user_rebase_to_ref(to_ref("r.git", &conflicting, "main", target)).await.expect_err("conflict");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(
        status.message(),
        format!("failed to rebase {conflicting} on {main} while preparing {target} due to conflict")
    );
    assert_eq!(resolve(&repo, target), None);
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());

    let ok = || to_ref("r.git", &main, "main", target);
    let cases = [
        (UserRebaseToRefRequest { first_parent_ref: vec![], ..ok() }, "empty FirstParentRef"),
        (UserRebaseToRefRequest { user: None, ..ok() }, "empty User"),
        (UserRebaseToRefRequest { source_sha: String::new(), ..ok() }, "empty SourceSha"),
        (UserRebaseToRefRequest { target_ref: vec![], ..ok() }, "empty TargetRef"),
        (UserRebaseToRefRequest { target_ref: b"refs/heads/main".to_vec(), ..ok() }, "invalid TargetRef"),
        (UserRebaseToRefRequest { first_parent_ref: b"gone".to_vec(), ..ok() }, "invalid FirstParentRef"),
        (UserRebaseToRefRequest { source_sha: "3".repeat(40), ..ok() }, "invalid SourceSha"),
        (UserRebaseToRefRequest { expected_old_oid: "xyz".into(), ..ok() }, "invalid expected old object ID"),
    ];
    for (req, message) in cases {
        let status = ops.user_rebase_to_ref(req).await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{message}: {status:?}");
        assert!(status.message().starts_with(message), "{message:?} in {status:?}");
    }
    // A symbolic target is never overwritten.
    repo.git(&["symbolic-ref", "refs/merge-requests/3/train", "refs/heads/main"]);
    let status = ops
        .user_rebase_to_ref(to_ref("r.git", &main, "main", "refs/merge-requests/3/train"))
        .await
        .expect_err("symbolic");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebase_onto_a_branch_on_another_node_fetches_it_through_gitaly_ssh() {
    use crate::replication::{node_named, servers};
    let (alpha, beta) = (node_named("alpha").await, node_named("beta").await);
    let source = TestRepo::create(&alpha.storage, "src.git", Format::Sha1);
    let base = source.commit_on("main", &[("README.md", "hello\n")], "base");
    let upstream = source.commit_on("main", &[("README.md", "hello\n"), ("up", "u\n")], "up");
    let target_path = beta.storage.join("t.git");
    git(None, &["clone", "--quiet", "--bare", &source.path.to_string_lossy(), &target_path.to_string_lossy()]);
    let target = TestRepo { path: target_path };
    target.git(&["update-ref", "refs/heads/main", &base]);
    let feature = target.commit(&[("README.md", "hello\n"), ("f", "f\n")], &[&base], "feature");
    target.git(&["update-ref", "refs/heads/feature", &feature]);
    target.git(&["gc", "--quiet", "--prune=now"]);
    assert!(!has_object(&target.path, &upstream));
    // The CLI's rebase runs where both sides are: the source, given the feature.
    source.git(&["fetch", "--quiet", &target.path.to_string_lossy(), "refs/heads/feature:refs/heads/feature"]);
    let expected = cli_rebase(&source, &upstream, &feature);

    let on = |storage: &str, relative: &str| Repository {
        storage_name: storage.into(),
        relative_path: relative.into(),
        gl_repository: "project-1".into(),
        ..Default::default()
    };
    let header = Header {
        repository: Some(on("beta", "t.git")),
        user: Some(user()),
        branch: b"feature".to_vec(),
        branch_sha: feature.clone(),
        remote_repository: Some(on("alpha", "src.git")),
        remote_branch: b"main".to_vec(),
        timestamp: timestamp(),
        ..Default::default()
    };
    let (tx, rx) = mpsc::channel(2);
    tx.send(UserRebaseConfirmableRequest { user_rebase_confirmable_request_payload: Some(Req::Header(header)) })
        .await
        .expect("send header");
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let servers = servers(&[("alpha", &alpha), ("beta", &beta)]);
    req.metadata_mut().insert("gitaly-servers", servers.parse().expect("ascii"));
    let mut ops = client(&beta).await;
    let answers = ops.user_rebase_confirmable(req).await.expect("started").into_inner();
    let mut call = Rebase { tx, answers };
    assert_eq!(call.rebased().await.expect("rebased"), expected);
    assert!(call.apply(true).await.expect("applied"));
    assert_eq!(resolve(&target, "refs/heads/feature").as_deref(), Some(expected.as_str()));
    git(Some(&target.path), &["fsck", "--no-progress"]);
}
