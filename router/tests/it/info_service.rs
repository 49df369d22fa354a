//! PraefectInfoService and the router's ServerService, called directly
//! against a real PostgreSQL (and real nodes where answers come from them).

use crate::cli::{dead_node, git_init, health, migrated_db};
use crate::support::cluster::NodeProc;
use crate::support::pg::TestDb;
use cairn_proto::gitaly::praefect_info_service_server::PraefectInfoService;
use cairn_proto::gitaly::server_service_server::ServerService;
use cairn_proto::gitaly::*;
use cairn_router::config::Config;
use cairn_router::db::Db;
use cairn_router::db::repositories::Outcome;
use cairn_router::health::HealthView;
use cairn_router::nodes::Nodes;
use cairn_router::service::info::InfoService;
use cairn_router::service::server::RouterServerService;
use futures::StreamExt as _;
use std::sync::Arc;
use tonic::{Code, Request};

fn config(test_db: &TestDb, nodes: &str) -> Arc<Config> {
    let text = format!(
        "socket_path = \"/tmp/unused.sock\"\n{}\n[[virtual_storage]]\nname = \"default\"\n{nodes}",
        test_db.toml()
    );
    Arc::new(Config::from_toml(&text).expect("config").config)
}

fn three_nodes() -> String {
    format!("{}{}{}", dead_node("s1"), dead_node("s2"), dead_node("s3"))
}

fn info(db: &Db, config: &Arc<Config>, health: &HealthView) -> InfoService {
    InfoService::new(db.clone(), Nodes::new(config, None), health.clone(), config.clone())
}

async fn write(db: &Db, id: i64, updated: &[&str], outdated: &[&str]) {
    let state = db.repository_by_id(id).await.expect("load").expect("exists");
    let primary = state.primary.clone().expect("primary");
    let intent = db
        .begin_write(
            id,
            &primary,
            state.term,
            cairn_router::db::repositories::WriteBy { router: "r", method: "WriteRef", correlation_id: "" },
        )
        .await
        .expect("begin")
        .expect("term");
    let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
    let outcome = Outcome::Changed { updated: owned(updated), outdated: owned(outdated), source: primary };
    db.settle(intent, &outcome, "").await.expect("settle");
}

/// A repository on s1, s2, s3 (primary s1) at generation 2: s2 one
/// write behind, s3 two.
pub async fn behind_repository(db: &Db, path: &str) -> i64 {
    let id = db
        .track_repository("default", path, &format!("@cluster/test/{path}"), "s1", &[], &[])
        .await
        .expect("track")
        .expect("new");
    db.set_replica_generation(id, "s2", 0).await.expect("s2");
    db.set_replica_generation(id, "s3", 0).await.expect("s3");
    write(db, id, &["s1", "s2"], &["s3"]).await;
    write(db, id, &["s1"], &["s2"]).await;
    id
}

#[tokio::test]
async fn set_replication_factor_checks_bounds_and_keeps_the_primary() {
    let (test_db, db) = migrated_db().await;
    let config = config(&test_db, &three_nodes());
    let svc = info(&db, &config, &health(&["s1", "s2", "s3"]));
    behind_repository(&db, "r.git").await;
    let set = |vs: &str, path: &str, rf: i32| {
        svc.set_replication_factor(Request::new(SetReplicationFactorRequest {
            virtual_storage: vs.into(),
            relative_path: path.into(),
            replication_factor: rf,
        }))
    };
    for (vs, path, rf, message) in [
        ("default", "r.git", 0, "attempted to set replication factor 0 but minimum is 1"),
        ("default", "r.git", 4, "attempted to set replication factor 4 but virtual storage only contains 3 storages"),
        ("other", "r.git", 1, "virtual storage \"other\" not found"),
        ("default", "nope.git", 1, "repository \"default\"/\"nope.git\" not found"),
    ] {
        let err = set(vs, path, rf).await.expect_err("invalid");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(err.message(), format!("set replication factor: {message}"));
    }
    for _ in 0..5 {
        assert_eq!(set("default", "r.git", 1).await.expect("rf 1").into_inner().storages, vec!["s1"]);
        let two = set("default", "r.git", 2).await.expect("rf 2").into_inner().storages;
        assert!(two == ["s1", "s2"] || two == ["s1", "s3"], "{two:?}");
        assert_eq!(set("default", "r.git", 2).await.expect("same").into_inner().storages, two, "unchanged");
    }
    assert_eq!(set("default", "r.git", 3).await.expect("rf 3").into_inner().storages, vec!["s1", "s2", "s3"]);
    let state = db.repository("default", "r.git").await.expect("load").expect("exists");
    assert_eq!(state.assignments, vec!["s1", "s2", "s3"]);
}

async fn dataloss(svc: &InfoService, partially: bool) -> Vec<dataloss_response::Repository> {
    let stream = svc
        .dataloss(Request::new(DatalossRequest {
            virtual_storage: "default".into(),
            include_partially_replicated: partially,
        }))
        .await
        .expect("dataloss")
        .into_inner();
    stream.map(|m| m.expect("message").repositories).concat().await
}

#[tokio::test]
async fn dataloss_reports_outdated_and_unavailable_repositories() {
    let (test_db, db) = migrated_db().await;
    let config = config(&test_db, &three_nodes());
    behind_repository(&db, "behind.git").await;
    let current = db.track_repository("default", "current.git", "@cluster/c", "s1", &[], &[]).await.expect("track");
    for s in ["s2", "s3"] {
        db.set_replica_generation(current.expect("new"), s, 0).await.expect("replica");
    }

    let all_up = info(&db, &config, &health(&["s1", "s2", "s3"]));
    assert!(dataloss(&all_up, false).await.is_empty(), "available repositories are not listed by default");
    let listed = dataloss(&all_up, true).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let repo = &listed[0];
    assert_eq!((repo.relative_path.as_str(), repo.primary.as_str(), repo.unavailable), ("behind.git", "s1", false));
    let behind: Vec<(&str, i64, bool, bool)> =
        repo.storages.iter().map(|s| (s.name.as_str(), s.behind_by, s.valid_primary, s.healthy)).collect();
    assert_eq!(behind, vec![("s1", 0, true, true), ("s2", 1, false, true), ("s3", 2, false, true)]);

    // The only up-to-date replica is down: unavailable, listed by default.
    let s1_down = info(&db, &config, &health(&["s2", "s3"]));
    let listed = dataloss(&s1_down, false).await;
    let paths: Vec<&str> = listed.iter().map(|r| r.relative_path.as_str()).collect();
    assert_eq!(paths, vec!["behind.git"]);
    assert!(listed[0].unavailable);
    assert!(!listed[0].storages[0].healthy);
    let partially = dataloss(&s1_down, true).await;
    let paths: Vec<&str> = partially.iter().map(|r| r.relative_path.as_str()).collect();
    assert_eq!(paths, vec!["behind.git", "current.git"], "current.git has an unhealthy assigned replica");
    assert!(!partially[1].unavailable);

    let err = all_up
        .dataloss(Request::new(DatalossRequest { virtual_storage: "nope".into(), include_partially_replicated: false }))
        .await
        .map(|_| ())
        .expect_err("unknown virtual storage");
    assert_eq!(err.message(), "unknown virtual storage: \"nope\"");
}

#[tokio::test]
async fn set_authoritative_storage_makes_the_others_outdated() {
    let (test_db, db) = migrated_db().await;
    let config = config(&test_db, &three_nodes());
    let svc = info(&db, &config, &health(&["s1", "s2", "s3"]));
    let id = behind_repository(&db, "r.git").await;
    let set = |vs: &str, path: &str, storage: &str| {
        svc.set_authoritative_storage(Request::new(SetAuthoritativeStorageRequest {
            virtual_storage: vs.into(),
            relative_path: path.into(),
            authoritative_storage: storage.into(),
        }))
    };
    set("default", "r.git", "s3").await.expect("accept data loss");
    let state = db.repository_by_id(id).await.expect("load").expect("exists");
    assert_eq!(state.generation, 3);
    assert_eq!(state.up_to_date().collect::<Vec<_>>(), vec!["s3"]);
    assert_eq!((state.generation_of("s1"), state.generation_of("s2")), (2, 1));

    for (vs, path, storage, message) in [
        ("nope", "r.git", "s1", "unknown virtual storage: \"nope\""),
        ("default", "r.git", "s9", "unknown authoritative storage: \"s9\""),
        ("default", "nope.git", "s1", "repository does not exist on virtual storage"),
    ] {
        let err = set(vs, path, storage).await.expect_err("invalid");
        assert_eq!((err.code(), err.message()), (Code::InvalidArgument, message));
    }
}

#[tokio::test]
async fn repository_metadata_and_verification_marks() {
    let (test_db, db) = migrated_db().await;
    let config = config(&test_db, &three_nodes());
    let svc = info(&db, &config, &health(&["s1", "s3"]));
    let id = behind_repository(&db, "r.git").await;
    db.client()
        .await
        .expect("client")
        .execute(
            "UPDATE storage_repositories SET verified_at = now() WHERE repository_id = $1 AND storage = 's2'",
            &[&id],
        )
        .await
        .expect("mark verified");
    db.delete_replica(id, "s3").await.expect("forget s3");

    let by_path = svc
        .get_repository_metadata(Request::new(GetRepositoryMetadataRequest {
            query: Some(get_repository_metadata_request::Query::Path(get_repository_metadata_request::Path {
                virtual_storage: "default".into(),
                relative_path: "r.git".into(),
            })),
        }))
        .await
        .expect("metadata")
        .into_inner();
    assert_eq!(
        (by_path.repository_id, by_path.virtual_storage.as_str(), by_path.relative_path.as_str()),
        (id, "default", "r.git")
    );
    assert_eq!(
        (by_path.replica_path.as_str(), by_path.primary.as_str(), by_path.generation),
        ("@cluster/test/r.git", "s1", 2)
    );
    let replicas: Vec<(&str, i64, bool, bool, bool, bool)> = by_path
        .replicas
        .iter()
        .map(|r| (r.storage.as_str(), r.generation, r.assigned, r.healthy, r.valid_primary, r.verified_at.is_some()))
        .collect();
    assert_eq!(
        replicas,
        vec![
            ("s1", 2, true, true, true, false),
            ("s2", 1, true, false, false, true),
            ("s3", -1, true, true, false, false),
        ]
    );
    let by_id = svc
        .get_repository_metadata(Request::new(GetRepositoryMetadataRequest {
            query: Some(get_repository_metadata_request::Query::RepositoryId(id)),
        }))
        .await
        .expect("metadata")
        .into_inner();
    assert_eq!(by_id, by_path);
    let err = svc
        .get_repository_metadata(Request::new(GetRepositoryMetadataRequest {
            query: Some(get_repository_metadata_request::Query::RepositoryId(id + 100)),
        }))
        .await
        .expect_err("unknown");
    assert_eq!((err.code(), err.message()), (Code::NotFound, "repository not found"));

    use mark_unverified_request::Selector;
    let mark = |selector| svc.mark_unverified(Request::new(MarkUnverifiedRequest { selector: Some(selector) }));
    let storage = |s: &str| {
        Selector::Storage(mark_unverified_request::Storage { virtual_storage: "default".into(), storage: s.into() })
    };
    assert_eq!(mark(storage("s1")).await.expect("mark").into_inner().replicas_marked, 0);
    assert_eq!(mark(storage("s2")).await.expect("mark").into_inner().replicas_marked, 1);
    assert_eq!(mark(Selector::RepositoryId(id)).await.expect("mark").into_inner().replicas_marked, 0);
    assert_eq!(mark(Selector::VirtualStorage("default".into())).await.expect("mark").into_inner().replicas_marked, 0);
    assert!(db.verified_at(id).await.expect("read").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_and_server_service_come_from_the_nodes() {
    let (test_db, db) = migrated_db().await;
    let (n1, n2) = (NodeProc::start("s1", "t1"), NodeProc::start("s2", "t2"));
    let config = config(&test_db, &format!("{}{}", n1.router_entry(), n2.router_entry()));
    let health = health(&["s1", "s2"]);
    let nodes = Nodes::new(&config, None);
    let svc = InfoService::new(db.clone(), nodes.clone(), health.clone(), config.clone());
    git_init(&n1, "@cluster/x/r.git");
    git_init(&n2, "@cluster/x/r.git");
    let id =
        db.track_repository("default", "r.git", "@cluster/x/r.git", "s1", &[], &[]).await.expect("track").expect("new");
    db.set_replica_generation(id, "s2", 0).await.expect("s2");

    let replicas = svc
        .repository_replicas(Request::new(RepositoryReplicasRequest {
            repository: Some(Repository {
                storage_name: "default".into(),
                relative_path: "r.git".into(),
                ..Default::default()
            }),
        }))
        .await
        .expect("replicas")
        .into_inner();
    let primary = replicas.primary.expect("primary");
    let repo = primary.repository.expect("repository");
    assert_eq!((repo.storage_name.as_str(), repo.relative_path.as_str()), ("s1", "r.git"), "virtual relative path");
    assert_eq!(primary.checksum.len(), 40, "{}", primary.checksum);
    let others: Vec<(String, String)> =
        replicas.replicas.into_iter().map(|d| (d.repository.expect("repository").storage_name, d.checksum)).collect();
    assert_eq!(others, vec![("s2".to_owned(), primary.checksum.clone())]);
    let err = svc
        .repository_replicas(Request::new(RepositoryReplicasRequest {
            repository: Some(Repository {
                storage_name: "default".into(),
                relative_path: "nope.git".into(),
                ..Default::default()
            }),
        }))
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);

    let server = RouterServerService::new(db.clone(), nodes.clone(), health.clone(), config.clone());
    let info = server.server_info(Request::new(ServerInfoRequest {})).await.expect("server info").into_inner();
    assert!(!info.server_version.is_empty() && !info.git_version.is_empty(), "{info:?}");
    assert_eq!(info.storage_statuses.len(), 1);
    let status = &info.storage_statuses[0];
    assert_eq!((status.storage_name.as_str(), status.readable, status.writeable), ("default", true, true));
    assert_eq!(status.replication_factor, 2);
    assert_eq!(status.filesystem_id, cairn_router::service::server::filesystem_id("default"));

    let disks = server.disk_statistics(Request::new(DiskStatisticsRequest {})).await.expect("disks").into_inner();
    let names: Vec<&str> = disks.storage_statuses.iter().map(|s| s.storage_name.as_str()).collect();
    assert_eq!(names, vec!["s1", "s2"]);

    use readiness_check_response::Result as Outcome;
    let ready = |server: RouterServerService| async move {
        server
            .readiness_check(Request::new(ReadinessCheckRequest {
                timeout: Some(prost_types::Duration { seconds: 5, nanos: 0 }),
            }))
            .await
            .expect("readiness")
            .into_inner()
            .result
            .expect("result")
    };
    assert!(matches!(ready(server.clone()).await, Outcome::OkResponse(_)));
    drop(n2);
    match ready(server.clone()).await {
        Outcome::FailureResponse(f) => {
            let names: Vec<&str> = f.failed_checks.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, vec!["gitaly node connectivity & disk access"]);
            assert!(f.failed_checks[0].error_message.starts_with("the following nodes are not healthy: "));
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    // An unmigrated database fails the schema check (sorted by name).
    let fresh = TestDb::new();
    let fresh_db = Db::new(&fresh.config()).expect("pool");
    let server = RouterServerService::new(fresh_db, nodes, health, config);
    match ready(server).await {
        Outcome::FailureResponse(f) => {
            let names: Vec<&str> = f.failed_checks.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(
                names,
                vec!["database read/write", "gitaly node connectivity & disk access", "praefect migrations"]
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}
