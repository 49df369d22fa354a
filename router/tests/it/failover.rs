//! Node loss through the router: replicas converge, a killed primary's
//! reads move at once and writes resume after failover, the restarted node
//! catches up, and two routers on one database agree.

use crate::support::cluster::NodeProc;
use crate::support::router::{NODE_TOKEN, Router, VS, converged, git, git_via, migrated_db, repo, work_tree};
use cairn_proto::gitaly::commit_service_client::CommitServiceClient;
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn three_nodes() -> Vec<NodeProc> {
    vec![NodeProc::start("s1", NODE_TOKEN), NodeProc::start("s2", NODE_TOKEN), NodeProc::start("s3", NODE_TOKEN)]
}

async fn push_commit(router: &Router, wt: &Path, n: usize) -> std::process::Output {
    std::fs::write(wt.join(format!("f{n}.txt")), format!("{n}\n")).expect("write");
    git(wt, &["add", "."]);
    git(wt, &["commit", "-q", "-m", &format!("change {n}")]);
    git_via(&router.address(), "project.git", Some(wt), &["push", "host:project.git", "main"], false).await
}

async fn find_main(router: &Router) -> Result<String, tonic::Status> {
    let mut client = CommitServiceClient::new(router.channel().await);
    let answer = client
        .find_commit(FindCommitRequest {
            repository: Some(repo("project.git")),
            revision: b"main".to_vec(),
            ..Default::default()
        })
        .await?;
    Ok(answer.into_inner().commit.map(|c| c.id).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_converge_and_a_killed_primary_fails_over() {
    let (test_db, db) = migrated_db().await;
    let mut nodes = three_nodes();
    let router = Router::start(&test_db, &nodes.iter().collect::<Vec<_>>(), "").await;
    RepositoryServiceClient::new(router.channel().await)
        .create_repository(CreateRepositoryRequest { repository: Some(repo("project.git")), ..Default::default() })
        .await
        .expect("create");
    let tmp = tempfile::tempdir().expect("tmp");
    let wt = work_tree(tmp.path(), 3);
    let out = git_via(&router.address(), "project.git", Some(&wt), &["push", "host:project.git", "main"], false).await;
    assert!(out.status.success(), "push: {}", String::from_utf8_lossy(&out.stderr));
    converged(&db, &nodes, "project.git").await;

    let before = db.repository(VS, "project.git").await.expect("db").expect("recorded");
    let old_primary = before.primary.clone().expect("primary");
    let head = git(&wt, &["rev-parse", "main"]);
    nodes.iter_mut().find(|n| n.storage_name == old_primary).expect("primary node").kill9();
    let killed = Instant::now();

    // Reads: at once, every time.
    for _ in 0..10 {
        assert_eq!(find_main(&router).await.expect("read right after the kill"), head);
    }
    let reads_ok = killed.elapsed();

    // Writes: retried until the router fails over.
    let mut n = 100;
    let resumed = loop {
        n += 1;
        let out = push_commit(&router, &wt, n).await;
        if out.status.success() {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "writes did not resume: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The failed attempt's commit stays local; the next push carries it.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("failover: reads served {:?} after kill -9 of the primary; writes resumed after {:?}", reads_ok, resumed);
    assert!(resumed < Duration::from_secs(10), "writes resumed after {resumed:?}");
    let after = db.repository(VS, "project.git").await.expect("db").expect("recorded");
    let new_primary = after.primary.clone().expect("primary");
    assert_ne!(new_primary, old_primary);
    assert!(after.term > before.term, "the failover bumped the term");
    assert_eq!(find_main(&router).await.expect("read"), git(&wt, &["rev-parse", "main"]));

    // The old primary comes back and catches up.
    nodes.iter_mut().find(|n| n.storage_name == old_primary).expect("node").restart();
    converged(&db, &nodes, "project.git").await;
    let state = db.repository(VS, "project.git").await.expect("db").expect("recorded");
    assert!(state.is_up_to_date(&old_primary), "restarted node caught up: {state:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_routers_on_one_database_agree() {
    let (test_db, db) = migrated_db().await;
    let mut nodes = three_nodes();
    let refs: Vec<&NodeProc> = nodes.iter().collect();
    let a = Router::start(&test_db, &refs, "").await;
    let b = Router::start(&test_db, &refs, "").await;
    RepositoryServiceClient::new(a.channel().await)
        .create_repository(CreateRepositoryRequest { repository: Some(repo("project.git")), ..Default::default() })
        .await
        .expect("create through router A");
    let exists = RepositoryServiceClient::new(b.channel().await)
        .repository_exists(RepositoryExistsRequest { repository: Some(repo("project.git")) })
        .await
        .expect("exists through router B");
    assert!(exists.into_inner().exists);
    let tmp = tempfile::tempdir().expect("tmp");
    let wt = work_tree(tmp.path(), 2);
    let out = git_via(&b.address(), "project.git", Some(&wt), &["push", "host:project.git", "main"], false).await;
    assert!(out.status.success(), "push through B: {}", String::from_utf8_lossy(&out.stderr));
    let head = git(&wt, &["rev-parse", "main"]);
    assert_eq!(find_main(&a).await.expect("read through A"), head);
    converged(&db, &nodes, "project.git").await;

    // Both routers check every node; the health quorum counts both.
    let routers: i64 = db
        .client()
        .await
        .expect("client")
        .query_one("SELECT count(DISTINCT router) FROM node_status", &[])
        .await
        .expect("query")
        .get(0);
    assert_eq!(routers, 2);

    let old_primary = db.repository(VS, "project.git").await.expect("db").expect("rec").primary.expect("primary");
    nodes.iter_mut().find(|n| n.storage_name == old_primary).expect("node").kill9();
    let started = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let router = if n % 2 == 0 { &a } else { &b };
        if push_commit(router, &wt, n).await.status.success() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "writes did not resume");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One more write through the other router: both agree on the new primary.
    let primary = db.repository(VS, "project.git").await.expect("db").expect("rec").primary.expect("primary");
    n += 1;
    let other = if n % 2 == 0 { &a } else { &b };
    assert!(push_commit(other, &wt, n).await.status.success());
    let state = db.repository(VS, "project.git").await.expect("db").expect("rec");
    assert_eq!(state.primary.as_deref(), Some(primary.as_str()), "no second election");
    let head = git(&wt, &["rev-parse", "main"]);
    assert_eq!(find_main(&a).await.expect("A"), head);
    assert_eq!(find_main(&b).await.expect("B"), head);
}
