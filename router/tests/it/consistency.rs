//! Strong consistency under faults: transactional writes through a real
//! `praefect` process to three real nodes while a node is killed, paused or
//! cut off, or the router itself is killed. Every acknowledged write must
//! survive, replicas must converge to the same state, hold only values some
//! client wrote, and pass `git fsck`. Each test prints its counts.

#![allow(clippy::disallowed_methods, reason = "tests inspect replicas with git")]

use crate::support::cluster::{NodeProc, RouterProc};
use crate::support::pg::TestDb;
use crate::support::router::{NODE_TOKEN, VS, converged, git, git_via, migrated_db, repo, try_converged, work_tree};
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::{CreateRepositoryRequest, WriteRefRequest};
use cairn_router::db::Db;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const RELATIVE: &str = "project.git";
/// A client's pause after a failed write, as a retrying client would.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
const ZERO: &str = "0000000000000000000000000000000000000000";

struct Fixture {
    _test_db: TestDb,
    db: Db,
    nodes: Vec<NodeProc>,
    router: RouterProc,
    tmp: tempfile::TempDir,
    /// A work tree holding the repository's first commits (on main).
    base: PathBuf,
}

impl Fixture {
    /// Three nodes, a `praefect` process, and `project.git` created and
    /// pushed through it, converged everywhere.
    async fn start() -> Self {
        let (test_db, db) = migrated_db().await;
        let nodes: Vec<NodeProc> = ["s1", "s2", "s3"].iter().map(|s| NodeProc::start(s, NODE_TOKEN)).collect();
        let mut config = format!(
            "name = \"consistency-router\"\n{}\n[logging]\nlevel = \"info\"\n[[virtual_storage]]\nname = \"{VS}\"\n",
            test_db.toml()
        );
        for n in &nodes {
            config.push_str(&n.router_entry());
        }
        let router = RouterProc::start(&config);
        let channel = crate::support::unix_channel(&router.socket).await;
        RepositoryServiceClient::new(channel)
            .create_repository(CreateRepositoryRequest { repository: Some(repo(RELATIVE)), ..Default::default() })
            .await
            .expect("create through the router");
        let tmp = tempfile::tempdir().expect("tmp");
        let base = work_tree(tmp.path(), 3);
        let out = git_via(&router.address(), RELATIVE, Some(&base), &["push", "host:project.git", "main"], false).await;
        assert!(out.status.success(), "first push: {}", String::from_utf8_lossy(&out.stderr));
        let fixture = Self { _test_db: test_db, db, nodes, router, tmp, base };
        converged(&fixture.db, &fixture.nodes, RELATIVE).await;
        fixture
    }

    async fn primary(&self) -> String {
        self.db.repository(VS, RELATIVE).await.expect("db").expect("recorded").primary.expect("a primary")
    }

    async fn replica_path(&self) -> String {
        self.db.repository(VS, RELATIVE).await.expect("db").expect("recorded").replica_path
    }

    fn node(&self, storage: &str) -> &NodeProc {
        self.nodes.iter().find(|n| n.storage_name == storage).expect("known storage")
    }

    fn node_mut(&mut self, storage: &str) -> &mut NodeProc {
        self.nodes.iter_mut().find(|n| n.storage_name == storage).expect("known storage")
    }

    /// The references of the replica on `storage`, read from its disk.
    async fn refs(&self, storage: &str) -> BTreeMap<String, String> {
        let path = self.node(storage).path_of(&self.replica_path().await);
        git(&path, &["for-each-ref", "--format=%(refname) %(objectname)"])
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(r, o)| (r.to_owned(), o.to_owned())))
            .collect()
    }

    /// `git fsck` of every running replica.
    async fn fsck_everywhere(&self) {
        let replica = self.replica_path().await;
        for n in self.nodes.iter().filter(|n| n.is_running()) {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(n.path_of(&replica))
                .args(["fsck", "--no-dangling", "--no-progress"])
                .output()
                .expect("git fsck runs");
            assert!(
                out.status.success(),
                "git fsck on {}: {}{}",
                n.storage_name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Waits for convergence; on failure shows what the router said about
    /// replication and the jobs left.
    async fn converge(&self) {
        if let Err(state) = try_converged(&self.db, &self.nodes, RELATIVE, Duration::from_secs(90)).await {
            let log = self.router.log();
            let lines: Vec<&str> = log.lines().filter(|l| l.contains("replicat") || l.contains("job")).collect();
            let jobs = self
                .db
                .client()
                .await
                .expect("client")
                .query(
                    "SELECT target_storage, source_storage, state, attempts, not_before::text, coalesce(last_error, '') FROM replication_jobs",
                    &[],
                )
                .await
                .expect("jobs");
            let jobs: Vec<String> = jobs
                .iter()
                .map(|r| {
                    format!(
                        "{:?}",
                        (
                            r.get::<_, String>(0),
                            r.get::<_, String>(1),
                            r.get::<_, String>(2),
                            r.get::<_, i32>(3),
                            r.get::<_, String>(4),
                            r.get::<_, String>(5)
                        )
                    )
                })
                .collect();
            panic!(
                "replicas did not converge: {state:?}\njobs: {jobs:#?}\nrouter log: {:#?}",
                &lines[lines.len().saturating_sub(20)..]
            );
        }
    }

    async fn open_intents(&self) -> i64 {
        self.db
            .client()
            .await
            .expect("client")
            .query_one("SELECT count(*) FROM write_intents", &[])
            .await
            .expect("count intents")
            .get(0)
    }
}

/// What the clients tried and what they were told.
#[derive(Default)]
struct Ledger {
    attempted: AtomicUsize,
    /// Every value any client tried to give each reference.
    tried: Mutex<HashMap<String, HashSet<String>>>,
    acked: Mutex<Vec<(String, String)>>,
    /// Why writes failed, a few of each kind.
    failures: Mutex<Vec<String>>,
}

impl Ledger {
    fn try_write(&self, reference: &str, oid: &str) {
        self.attempted.fetch_add(1, Ordering::SeqCst);
        self.tried.lock().expect("ledger").entry(reference.to_owned()).or_default().insert(oid.to_owned());
    }

    fn ack(&self, reference: &str, oid: &str) {
        self.acked.lock().expect("ledger").push((reference.to_owned(), oid.to_owned()));
    }

    fn fail(&self, why: String) {
        let mut f = self.failures.lock().expect("ledger");
        if f.len() < 10 {
            f.push(why);
        }
    }

    fn acked(&self) -> Vec<(String, String)> {
        self.acked.lock().expect("ledger").clone()
    }

    fn acked_count(&self) -> usize {
        self.acked.lock().expect("ledger").len()
    }

    /// Values on a replica that no client ever wrote.
    fn foreign(&self, refs: &BTreeMap<String, String>, base: &BTreeMap<String, String>) -> Vec<String> {
        let tried = self.tried.lock().expect("ledger");
        refs.iter()
            .filter(|(r, o)| base.get(*r) != Some(o) && !tried.get(*r).is_some_and(|t| t.contains(*o)))
            .map(|(r, o)| format!("{r}={o}"))
            .collect()
    }
}

/// Pushes new branches, each on a new commit, until `total` writes were
/// attempted by all clients together.
async fn pusher(
    router: String,
    base: PathBuf,
    dir: PathBuf,
    id: usize,
    next: Arc<AtomicUsize>,
    total: usize,
    ledger: Arc<Ledger>,
) {
    let wt = dir.join(format!("pusher-{id}"));
    let out = std::process::Command::new("git").args(["clone", "-q"]).arg(&base).arg(&wt).output().expect("git clone");
    assert!(out.status.success(), "clone: {}", String::from_utf8_lossy(&out.stderr));
    while next.fetch_add(1, Ordering::SeqCst) < total {
        let n = ledger.attempted.load(Ordering::SeqCst);
        std::fs::write(wt.join(format!("p{id}.txt")), format!("{n}\n")).expect("write");
        git(&wt, &["add", "."]);
        git(&wt, &["commit", "-q", "-m", &format!("pusher {id} write {n}")]);
        let oid = git(&wt, &["rev-parse", "HEAD"]);
        let reference = format!("refs/heads/p{id}-{n}");
        ledger.try_write(&reference, &oid);
        let spec = format!("HEAD:{reference}");
        let args = ["push", "host:project.git", spec.as_str()];
        let push = git_via(&router, RELATIVE, Some(&wt), &args, false);
        match tokio::time::timeout(Duration::from_secs(120), push).await {
            Ok(out) if out.status.success() => ledger.ack(&reference, &oid),
            Ok(out) => {
                ledger.fail(format!("push {reference}: {}", String::from_utf8_lossy(&out.stderr).trim()));
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(_) => ledger.fail(format!("push {reference}: no answer in 120 s")),
        }
    }
}

/// Creates branches with WriteRef at an existing commit until `total`
/// writes were attempted by all clients together.
async fn brancher(router: PathBuf, oid: String, id: usize, next: Arc<AtomicUsize>, total: usize, ledger: Arc<Ledger>) {
    while next.fetch_add(1, Ordering::SeqCst) < total {
        let n = ledger.attempted.load(Ordering::SeqCst);
        let reference = format!("refs/heads/b{id}-{n}");
        ledger.try_write(&reference, &oid);
        let write = async {
            let channel = crate::support::unix_channel(&router).await;
            RepositoryServiceClient::new(channel)
                .write_ref(WriteRefRequest {
                    repository: Some(repo(RELATIVE)),
                    r#ref: reference.clone().into_bytes(),
                    revision: oid.clone().into_bytes(),
                    old_revision: ZERO.into(),
                })
                .await
        };
        match tokio::time::timeout(Duration::from_secs(120), write).await {
            Ok(Ok(_)) => ledger.ack(&reference, &oid),
            Ok(Err(status)) => {
                ledger.fail(format!("WriteRef {reference}: {:?} {}", status.code(), status.message()));
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(_) => ledger.fail(format!("WriteRef {reference}: no answer in 120 s")),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// `kill -9` of the primary's process group; restarted afterwards.
    Kill,
    /// SIGSTOP of the primary's process group (a partition: it neither
    /// answers nor closes its connections), resumed after `PARTITION`.
    Partition,
}

/// How long a partitioned primary stays cut off: longer than the failover
/// window, so writes move to a new primary while it is away.
const PARTITION: Duration = Duration::from_secs(8);

/// `total` concurrent writes (pushes and branch creations from 8 clients)
/// while the primary suffers `fault` after a random number of
/// acknowledgements; then checks every acknowledged write.
async fn writes_survive(fault: Fault, total: usize) {
    let mut f = Fixture::start().await;
    let base_refs = f.refs(&f.primary().await).await;
    let base_oid = git(&f.base, &["rev-parse", "main"]);
    let ledger = Arc::new(Ledger::default());
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for id in 0..4 {
        clients.push(tokio::spawn(pusher(
            f.router.address(),
            f.base.clone(),
            f.tmp.path().to_owned(),
            id,
            next.clone(),
            total,
            ledger.clone(),
        )));
        clients.push(tokio::spawn(brancher(
            f.router.socket.clone(),
            base_oid.clone(),
            id,
            next.clone(),
            total,
            ledger.clone(),
        )));
    }
    let at = fastrand::usize(total / 10..total / 2);
    while ledger.acked_count() < at && clients.iter().any(|c| !c.is_finished()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let victim = f.primary().await;
    let hit = ledger.acked_count();
    match fault {
        Fault::Kill => f.node_mut(&victim).kill9(),
        Fault::Partition => f.node(&victim).pause(true),
    }
    let faulted = Instant::now();
    if let Fault::Partition = fault {
        tokio::time::sleep(PARTITION).await;
        f.node(&victim).pause(false);
    }
    for c in clients {
        c.await.expect("client task");
    }
    let acked = ledger.acked();
    let new_primary = f.primary().await;
    let on_primary = f.refs(&new_primary).await;
    let lost: Vec<&(String, String)> = acked.iter().filter(|(r, o)| on_primary.get(r) != Some(o)).collect();
    eprintln!(
        "consistency ({fault:?} of primary {victim} after {hit} acknowledgements; new primary {new_primary}; \
         {:?} from the fault to the last write): writes attempted {}, acknowledged {}, found on the new primary {}",
        faulted.elapsed(),
        ledger.attempted.load(Ordering::SeqCst),
        acked.len(),
        acked.len() - lost.len(),
    );
    eprintln!("first failures: {:#?}", ledger.failures.lock().expect("ledger"));
    let log: Vec<String> =
        f.router.log().lines().filter(|l| l.contains("left out")).take(3).map(str::to_owned).collect();
    eprintln!("router warnings: {log:#?}");
    assert_ne!(new_primary, victim, "the router failed over");
    assert!(lost.is_empty(), "acknowledged writes missing on the new primary: {lost:?}");
    assert!(acked.len() > hit, "writes went on after the fault");

    if let Fault::Kill = fault {
        f.node_mut(&victim).restart();
    }
    f.converge().await;
    for n in &f.nodes {
        let refs = f.refs(&n.storage_name).await;
        let missing: Vec<&(String, String)> = acked.iter().filter(|(r, o)| refs.get(r) != Some(o)).collect();
        assert!(missing.is_empty(), "{} lacks acknowledged writes after convergence: {missing:?}", n.storage_name);
        let foreign = ledger.foreign(&refs, &base_refs);
        assert!(foreign.is_empty(), "{} holds values no client wrote: {foreign:?}", n.storage_name);
    }
    f.fsck_everywhere().await;
    eprintln!(
        "consistency ({fault:?}): all {} acknowledged writes found on every replica after convergence",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9_of_the_primary() {
    writes_survive(Fault::Kill, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_a_partitioned_primary() {
    writes_survive(Fault::Partition, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_secondary_is_outvoted_and_repaired() {
    let f = Fixture::start().await;
    let primary = f.primary().await;
    let paused = f.nodes.iter().map(|n| n.storage_name.clone()).find(|s| *s != primary).expect("a secondary");
    let wt = f.tmp.path().join("paused");
    git(f.tmp.path(), &["clone", "-q", &f.base.display().to_string(), "paused"]);
    std::fs::write(wt.join("x.txt"), "while paused\n").expect("write");
    git(&wt, &["add", "."]);
    git(&wt, &["commit", "-q", "-m", "while a secondary is paused"]);
    let oid = git(&wt, &["rev-parse", "HEAD"]);

    f.node(&paused).pause(true);
    let started = Instant::now();
    let out =
        git_via(&f.router.address(), RELATIVE, Some(&wt), &["push", "host:project.git", "HEAD:main"], false).await;
    let took = started.elapsed();
    let state = f.db.repository(VS, RELATIVE).await.expect("db").expect("recorded");
    f.node(&paused).pause(false);
    assert!(out.status.success(), "push with a paused secondary: {}", String::from_utf8_lossy(&out.stderr));
    assert!(state.is_up_to_date(&primary), "{state:?}");
    assert!(!state.is_up_to_date(&paused), "the paused secondary is outdated: {state:?}");
    let voters_up_to_date = f.nodes.iter().filter(|n| state.is_up_to_date(&n.storage_name)).count();
    assert_eq!(voters_up_to_date, 2, "primary and the other secondary hold the write: {state:?}");

    converged(&f.db, &f.nodes, RELATIVE).await;
    for n in &f.nodes {
        assert_eq!(f.refs(&n.storage_name).await.get("refs/heads/main"), Some(&oid), "{}", n.storage_name);
    }
    f.fsck_everywhere().await;
    eprintln!("consistency (paused secondary {paused}): push acknowledged in {took:?}; repaired after resume");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_router_killed_mid_transaction_leaves_a_consistent_state() {
    let mut f = Fixture::start().await;
    let rounds = 4;
    let mut landed = 0;
    for round in 0..rounds {
        let wt = f.tmp.path().join(format!("round-{round}"));
        git(f.tmp.path(), &["clone", "-q", &f.base.display().to_string(), &format!("round-{round}")]);
        for i in 0..40 {
            std::fs::write(wt.join(format!("r{round}.txt")), format!("{i}\n")).expect("write");
            git(&wt, &["add", "."]);
            git(&wt, &["commit", "-q", "-m", &format!("round {round} commit {i}")]);
        }
        let oid = git(&wt, &["rev-parse", "HEAD"]);
        let reference = format!("refs/heads/round-{round}");
        let push = {
            let (router, wt, spec) = (f.router.address(), wt.clone(), format!("HEAD:{reference}"));
            tokio::spawn(async move {
                git_via(&router, RELATIVE, Some(&wt), &["push", "host:project.git", &spec], false).await
            })
        };
        tokio::time::sleep(Duration::from_millis(fastrand::u64(20..400))).await;
        f.router.kill9();
        let out = push.await.expect("push task");
        f.router.restart();
        let deadline = Instant::now() + Duration::from_secs(30);
        while f.open_intents().await > 0 {
            assert!(Instant::now() < deadline, "the restarted router settles what its predecessor left");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        converged(&f.db, &f.nodes, RELATIVE).await;
        let values: Vec<Option<String>> = {
            let mut v = Vec::new();
            for n in &f.nodes {
                v.push(f.refs(&n.storage_name).await.get(&reference).cloned());
            }
            v
        };
        assert!(values.windows(2).all(|w| w[0] == w[1]), "replicas agree on {reference}: {values:?}");
        assert!(values[0].is_none() || values[0].as_deref() == Some(oid.as_str()), "{values:?}");
        if out.status.success() {
            assert_eq!(values[0].as_deref(), Some(oid.as_str()), "an acknowledged push is kept");
        }
        if values[0].is_some() {
            landed += 1;
        }
        f.fsck_everywhere().await;
    }
    eprintln!(
        "consistency (router kill -9 mid-push): {rounds} rounds, {landed} pushes landed everywhere, none half-applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_acknowledged_creation_is_on_every_replica_and_survives_its_primary() {
    let mut f = Fixture::start().await;
    let channel = crate::support::unix_channel(&f.router.socket).await;
    RepositoryServiceClient::new(channel)
        .create_repository(CreateRepositoryRequest { repository: Some(repo("fresh.git")), ..Default::default() })
        .await
        .expect("create through the router");
    // No replication has had time to run: the creation itself reached all.
    let state = f.db.repository(VS, "fresh.git").await.expect("db").expect("recorded");
    for n in &f.nodes {
        assert!(state.is_up_to_date(&n.storage_name), "{} holds the new repository: {state:?}", n.storage_name);
        assert!(n.path_of(&state.replica_path).join("HEAD").exists(), "on {}'s disk", n.storage_name);
    }
    let primary = state.primary.clone().expect("a primary");
    f.node_mut(&primary).kill9();
    let started = Instant::now();
    let pushed = loop {
        let out =
            git_via(&f.router.address(), "fresh.git", Some(&f.base), &["push", "host:fresh.git", "main"], false).await;
        if out.status.success() {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{}", String::from_utf8_lossy(&out.stderr));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "consistency (creation): on all 3 replicas when acknowledged; first push {pushed:?} after its primary was killed"
    );
}

/// A User* operation through the router: every replica votes on it, so it
/// is on every disk when acknowledged (no replication needed), and a
/// primary's custom hook refusing it keeps it off every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn user_operations_are_on_every_replica_when_acknowledged() {
    use cairn_proto::gitaly::operation_service_client::OperationServiceClient;
    use cairn_proto::gitaly::{User, UserCreateBranchRequest, UserDeleteBranchRequest};
    let f = Fixture::start().await;
    let user = User { gl_id: "user-1".into(), gl_username: "jane".into(), ..Default::default() };
    let channel = crate::support::unix_channel(&f.router.socket).await;
    let mut ops = OperationServiceClient::new(channel);
    let main = f.refs(&f.primary().await).await["refs/heads/main"].clone();
    let create = |branch: &str| UserCreateBranchRequest {
        repository: Some(repo(RELATIVE)),
        branch_name: branch.into(),
        user: Some(user.clone()),
        start_point: b"main".to_vec(),
    };
    let before = f.db.repository(VS, RELATIVE).await.expect("db").expect("recorded").generation;
    ops.user_create_branch(create("feature")).await.expect("created through the router");
    // Recorded as one write that every replica holds: they all voted on it.
    let state = f.db.repository(VS, RELATIVE).await.expect("db").expect("recorded");
    assert_eq!(state.generation, before + 1);
    for n in &f.nodes {
        assert_eq!(f.refs(&n.storage_name).await.get("refs/heads/feature"), Some(&main), "on {}", n.storage_name);
        assert!(state.is_up_to_date(&n.storage_name), "{} is up to date: {state:?}", n.storage_name);
    }

    ops.user_delete_branch(UserDeleteBranchRequest {
        repository: Some(repo(RELATIVE)),
        branch_name: b"feature".to_vec(),
        user: Some(user.clone()),
        expected_old_oid: main.clone(),
    })
    .await
    .expect("deleted through the router");
    for n in &f.nodes {
        assert_eq!(f.refs(&n.storage_name).await.get("refs/heads/feature"), None, "gone on {}", n.storage_name);
    }

    // Custom hooks run on the primary only; its refusal stops every replica.
    let primary = f.primary().await;
    let hook = f.node(&primary).path_of(&f.replica_path().await).join("custom_hooks/pre-receive");
    std::fs::create_dir_all(hook.parent().expect("parent")).expect("mkdir");
    std::fs::write(&hook, "#!/bin/sh\necho 'not today' >&2\nexit 1\n").expect("write hook");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let status = ops.user_create_branch(create("refused")).await.expect_err("refused by the primary's hook");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    for n in &f.nodes {
        assert_eq!(f.refs(&n.storage_name).await.get("refs/heads/refused"), None, "not on {}", n.storage_name);
    }
}

/// Rebases and patches through the router: every replica replays the same
/// commits (the request's timestamp fixes the committer date), so all of
/// them vote alike, hold the new branch tip and stay up to date.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebases_and_patches_are_identical_on_every_replica() {
    use cairn_proto::gitaly::operation_service_client::OperationServiceClient;
    use cairn_proto::gitaly::user_commit_files_action::UserCommitFilesActionPayload as Action;
    use cairn_proto::gitaly::user_commit_files_request::UserCommitFilesRequestPayload as Commit;
    use cairn_proto::gitaly::user_rebase_confirmable_request::{Header, UserRebaseConfirmableRequestPayload as Rebase};
    use cairn_proto::gitaly::user_rebase_confirmable_response::UserRebaseConfirmableResponsePayload as Answer;
    use cairn_proto::gitaly::*;
    let f = Fixture::start().await;
    let user = User {
        gl_id: "user-1".into(),
        gl_username: "jane".into(),
        name: b"Jane Doe".to_vec(),
        email: b"jane@example.com".to_vec(),
        timezone: "UTC".into(),
    };
    let when = Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 });
    let mut ops = OperationServiceClient::new(crate::support::unix_channel(&f.router.socket).await);
    // One commit on a new branch `feature` from main, then one on main.
    for (branch, start, file) in [("feature", "main", "feature.txt"), ("main", "", "main.txt")] {
        let header = UserCommitFilesRequestHeader {
            repository: Some(repo(RELATIVE)),
            user: Some(user.clone()),
            branch_name: branch.into(),
            start_branch_name: start.into(),
            commit_message: format!("add {file}").into_bytes(),
            timestamp: when,
            ..Default::default()
        };
        let action = |payload| UserCommitFilesRequest {
            user_commit_files_request_payload: Some(Commit::Action(UserCommitFilesAction {
                user_commit_files_action_payload: Some(payload),
            })),
        };
        let messages = vec![
            UserCommitFilesRequest { user_commit_files_request_payload: Some(Commit::Header(header)) },
            action(Action::Header(UserCommitFilesActionHeader {
                action: user_commit_files_action_header::ActionType::Create as i32,
                file_path: file.into(),
                ..Default::default()
            })),
            action(Action::Content(b"content\n".to_vec())),
        ];
        ops.user_commit_files(tokio_stream::iter(messages)).await.expect("committed through the router");
    }
    let before = f.db.repository(VS, RELATIVE).await.expect("db").expect("recorded").generation;
    let feature = f.refs(&f.primary().await).await["refs/heads/feature"].clone();

    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let header = Header {
        repository: Some(repo(RELATIVE)),
        user: Some(user.clone()),
        branch: b"feature".to_vec(),
        branch_sha: feature.clone(),
        remote_repository: Some(repo(RELATIVE)),
        remote_branch: b"main".to_vec(),
        timestamp: when,
        ..Default::default()
    };
    tx.send(UserRebaseConfirmableRequest { user_rebase_confirmable_request_payload: Some(Rebase::Header(header)) })
        .await
        .expect("send header");
    let mut answers = ops
        .user_rebase_confirmable(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("rebase")
        .into_inner();
    let Some(Answer::RebaseSha(tip)) =
        answers.message().await.expect("answer").and_then(|a| a.user_rebase_confirmable_response_payload)
    else {
        panic!("no rebase sha");
    };
    tx.send(UserRebaseConfirmableRequest { user_rebase_confirmable_request_payload: Some(Rebase::Apply(true)) })
        .await
        .expect("send apply");
    let applied = answers.message().await.expect("applied").and_then(|a| a.user_rebase_confirmable_response_payload);
    assert_eq!(applied, Some(Answer::RebaseApplied(true)));
    // The write is settled before the call's final status.
    assert!(answers.message().await.expect("clean end").is_none());

    let state = f.db.repository(VS, RELATIVE).await.expect("db").expect("recorded");
    assert_eq!(state.generation, before + 1, "one write");
    for n in &f.nodes {
        assert_eq!(f.refs(&n.storage_name).await.get("refs/heads/feature"), Some(&tip), "on {}", n.storage_name);
        assert!(state.is_up_to_date(&n.storage_name), "{} is up to date: {state:?}", n.storage_name);
    }
    println!("rebased {feature} to {tip} on all {} replicas", f.nodes.len());

    // UserRebaseToRef: the same merge-request reference everywhere.
    let train = ops
        .user_rebase_to_ref(UserRebaseToRefRequest {
            repository: Some(repo(RELATIVE)),
            user: Some(user.clone()),
            source_sha: feature,
            first_parent_ref: b"refs/heads/main".to_vec(),
            target_ref: b"refs/merge-requests/1/train".to_vec(),
            timestamp: when,
            ..Default::default()
        })
        .await
        .expect("rebased to ref")
        .into_inner()
        .commit_id;
    assert_eq!(train, tip, "the same replay gives the same commit");
    let state = f.db.repository(VS, RELATIVE).await.expect("db").expect("recorded");
    for n in &f.nodes {
        let refs = f.refs(&n.storage_name).await;
        assert_eq!(refs.get("refs/merge-requests/1/train"), Some(&tip), "on {}", n.storage_name);
        assert!(state.is_up_to_date(&n.storage_name), "{} is up to date: {state:?}", n.storage_name);
    }

    // UserApplyPatch: a mailed patch becomes the same commit everywhere.
    use cairn_proto::gitaly::user_apply_patch_request::{Header as PatchHeader, UserApplyPatchRequestPayload as Patch};
    let patch = "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n\
From: Ann Example <ann@example.com>\nDate: Tue, 14 Nov 2023 22:13:20 +0100\nSubject: [PATCH] Add patched.txt\n\n\
---\n patched.txt | 1 +\n 1 file changed, 1 insertion(+)\n create mode 100644 patched.txt\n\n\
diff --git a/patched.txt b/patched.txt\nnew file mode 100644\n--- /dev/null\n+++ b/patched.txt\n\
@@ -0,0 +1 @@\n+patched\n-- \n2.47.3\n\n";
    let messages = vec![
        UserApplyPatchRequest {
            user_apply_patch_request_payload: Some(Patch::Header(PatchHeader {
                repository: Some(repo(RELATIVE)),
                user: Some(user),
                target_branch: b"feature".to_vec(),
                timestamp: when,
                ..Default::default()
            })),
        },
        UserApplyPatchRequest { user_apply_patch_request_payload: Some(Patch::Patches(patch.as_bytes().to_vec())) },
    ];
    let before = state.generation;
    let patched = ops
        .user_apply_patch(tokio_stream::iter(messages))
        .await
        .expect("patch applied through the router")
        .into_inner()
        .branch_update
        .expect("update")
        .commit_id;
    assert_ne!(patched, tip, "a new commit");
    let state = f.db.repository(VS, RELATIVE).await.expect("db").expect("recorded");
    assert_eq!(state.generation, before + 1, "one write");
    for n in &f.nodes {
        assert_eq!(f.refs(&n.storage_name).await.get("refs/heads/feature"), Some(&patched), "on {}", n.storage_name);
        assert!(state.is_up_to_date(&n.storage_name), "{} is up to date: {state:?}", n.storage_name);
    }
}
