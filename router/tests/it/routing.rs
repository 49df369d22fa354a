//! Requests through the router against three real nodes: creation,
//! push and clone with stock git through gitaly-ssh, reads, rewriting,
//! bad input.

use crate::support::cluster::NodeProc;
use crate::support::router::{NODE_TOKEN, Router, VS, git, git_via, migrated_db, repo, work_tree};
use cairn_proto::gitaly::commit_service_client::CommitServiceClient;
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::*;
use tonic::Code;

fn three_nodes() -> [NodeProc; 3] {
    [NodeProc::start("s1", NODE_TOKEN), NodeProc::start("s2", NODE_TOKEN), NodeProc::start("s3", NODE_TOKEN)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_push_clone_and_read_through_the_router() {
    let (test_db, db) = migrated_db().await;
    let nodes = three_nodes();
    let router = Router::start(&test_db, &nodes.iter().collect::<Vec<_>>(), "").await;
    let mut repos = RepositoryServiceClient::new(router.channel().await);

    repos
        .create_repository(CreateRepositoryRequest { repository: Some(repo("project.git")), ..Default::default() })
        .await
        .expect("create through the router");
    let exists = repos
        .repository_exists(RepositoryExistsRequest { repository: Some(repo("project.git")) })
        .await
        .expect("exists");
    assert!(exists.into_inner().exists);
    let state = db.repository(VS, "project.git").await.expect("db").expect("recorded");
    let primary = state.primary.clone().expect("primary");
    let primary_node = nodes.iter().find(|n| n.storage_name == primary).expect("primary is a node");
    assert!(primary_node.path_of(&state.replica_path).join("HEAD").exists(), "replica on the primary's disk");
    assert_eq!(state.generation_of(&primary), 0);
    // Creating it again is refused before any node is asked.
    let again = repos
        .create_repository(CreateRepositoryRequest { repository: Some(repo("project.git")), ..Default::default() })
        .await
        .expect_err("exists");
    assert_eq!(again.code(), Code::AlreadyExists);

    let tmp = tempfile::tempdir().expect("tmp");
    let wt = work_tree(tmp.path(), 3);
    let out = git_via(&router.address(), "project.git", Some(&wt), &["push", "host:project.git", "main"], false).await;
    assert!(out.status.success(), "push: {}", String::from_utf8_lossy(&out.stderr));
    let head = git(&wt, &["rev-parse", "main"]);
    let state = db.repository(VS, "project.git").await.expect("db").expect("recorded");
    assert_eq!(state.generation, 1, "the push is recorded as one write");
    assert_eq!(state.generation_of(&primary), 1);

    for sidechannel in [false, true] {
        let clone = tmp.path().join(format!("clone-{sidechannel}"));
        let out = git_via(
            &router.address(),
            "project.git",
            None,
            &["clone", "--bare", "host:project.git", clone.to_str().expect("utf-8")],
            sidechannel,
        )
        .await;
        assert!(out.status.success(), "clone (sidechannel {sidechannel}): {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(git(&clone, &["rev-parse", "main"]), head);
        git(&clone, &["fsck", "--strict"]);
    }

    let mut commits = CommitServiceClient::new(router.channel().await);
    let found = commits
        .find_commit(FindCommitRequest {
            repository: Some(repo("project.git")),
            revision: b"main".to_vec(),
            ..Default::default()
        })
        .await
        .expect("find commit")
        .into_inner();
    assert_eq!(found.commit.expect("commit").id, head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_repositories_and_storages_get_clear_errors() {
    let (test_db, _db) = migrated_db().await;
    let nodes = three_nodes();
    let router = Router::start(&test_db, &nodes.iter().collect::<Vec<_>>(), "").await;
    let mut commits = CommitServiceClient::new(router.channel().await);
    let request =
        |r: Repository| FindCommitRequest { repository: Some(r), revision: b"main".to_vec(), ..Default::default() };

    let err = commits.find_commit(request(repo("missing.git"))).await.expect_err("unknown repository");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let mut other = repo("x.git");
    other.storage_name = "nope".into();
    let err = commits.find_commit(request(other)).await.expect_err("unknown virtual storage");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("nope"), "{err:?}");
    let err = commits
        .find_commit(FindCommitRequest { repository: None, revision: b"main".to_vec(), ..Default::default() })
        .await
        .expect_err("no repository");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let mut repos = RepositoryServiceClient::new(router.channel().await);
    let err = repos
        .remove_repository(RemoveRepositoryRequest { repository: Some(repo("missing.git")) })
        .await
        .expect_err("remove unknown");
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_scoped_calls_go_to_a_healthy_node_with_the_storage_rewritten() {
    use cairn_proto::gitaly::internal_gitaly_client::InternalGitalyClient;
    use futures::StreamExt as _;
    let (test_db, db) = migrated_db().await;
    let nodes = three_nodes();
    let router = Router::start(&test_db, &nodes.iter().collect::<Vec<_>>(), "").await;
    RepositoryServiceClient::new(router.channel().await)
        .create_repository(CreateRepositoryRequest { repository: Some(repo("walked.git")), ..Default::default() })
        .await
        .expect("create");
    let state = db.repository(VS, "walked.git").await.expect("db").expect("recorded");
    // Wait until every node holds a replica, whichever node answers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !nodes.iter().all(|n| n.path_of(&state.replica_path).join("HEAD").exists()) {
        assert!(std::time::Instant::now() < deadline, "replicas were not created");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut internal = InternalGitalyClient::new(router.channel().await);
    let mut stream = internal
        .walk_repos(WalkReposRequest { storage_name: VS.into() })
        .await
        .expect("walk through the router")
        .into_inner();
    let mut paths = Vec::new();
    while let Some(item) = stream.next().await {
        paths.push(item.expect("item").relative_path);
    }
    assert_eq!(paths, vec![state.replica_path.clone()]);
    let err = internal.walk_repos(WalkReposRequest { storage_name: "nope".into() }).await.expect_err("unknown");
    assert_eq!(err.code(), Code::InvalidArgument);
}
