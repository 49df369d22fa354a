//! The router against a database that is behind, down, or comes back.

use crate::support::cluster::NodeProc;
use crate::support::pg::{PgServer, TestDb};
use crate::support::router::{NODE_TOKEN, Router, repo};
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::*;
use cairn_router::db::{Db, migrate};
use std::time::{Duration, Instant};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refuses_to_start_on_a_schema_that_is_behind() {
    let test_db = TestDb::new();
    let node = NodeProc::start("s1", NODE_TOKEN);
    let err = match Router::try_start(&test_db, &[&node], "").await {
        Ok(_) => panic!("a router started on an unmigrated database"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("sql-migrate"), "the message names the command to run: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_outage_is_unavailable_and_service_resumes() {
    let mut server = PgServer::start();
    let test_db = server.database();
    let db = Db::new(&test_db.config()).expect("pool");
    migrate::migrate(&db, true, |_, _| {}).await.expect("migrate");
    let node = NodeProc::start("s1", NODE_TOKEN);
    let router = Router::start(&test_db, &[&node], "").await;
    let mut client = RepositoryServiceClient::new(router.channel().await);
    client
        .create_repository(CreateRepositoryRequest { repository: Some(repo("a.git")), ..Default::default() })
        .await
        .expect("create");

    server.stop();
    let exists = |mut c: RepositoryServiceClient<tonic::transport::Channel>| async move {
        c.repository_exists(RepositoryExistsRequest { repository: Some(repo("a.git")) }).await
    };
    let err = exists(client.clone()).await.expect_err("database is down");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("database"), "{err:?}");
    let err = client
        .create_repository(CreateRepositoryRequest { repository: Some(repo("b.git")), ..Default::default() })
        .await
        .expect_err("writes need the database");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(replicas_on_disk(&node.storage), 1, "the refused creation reached no disk");

    server.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match exists(client.clone()).await {
            Ok(answer) => {
                assert!(answer.into_inner().exists);
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "service did not resume: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(router);
    drop(test_db);
}

/// Replica directories under `@cluster/repositories/xx/yy/`.
fn replicas_on_disk(storage: &std::path::Path) -> usize {
    let dirs = |p: std::path::PathBuf| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(p).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
    };
    dirs(storage.join("@cluster/repositories")).into_iter().flat_map(dirs).flat_map(dirs).count()
}
