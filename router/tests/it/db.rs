//! Migrations and the metadata store against a real PostgreSQL.

use crate::support::pg::{PgServer, TestDb};
use cairn_router::db::repositories::Outcome;
use cairn_router::db::{Db, DbError, migrate};

async fn migrated() -> (TestDb, Db) {
    let test_db = TestDb::new();
    let db = Db::new(&test_db.config()).expect("pool");
    migrate::migrate(&db, true, |_, _| {}).await.expect("migrate");
    (test_db, db)
}

#[tokio::test]
async fn migrations_apply_once_report_status_and_revert() {
    let test_db = TestDb::new();
    let db = Db::new(&test_db.config()).expect("pool");
    db.ping().await.expect("ping");
    let err = migrate::ensure_current(&db).await.expect_err("fresh database is behind");
    assert!(matches!(err, DbError::SchemaBehind { .. }));
    assert!(err.to_string().contains("sql-migrate"), "{err}");

    let mut applied = Vec::new();
    let n = migrate::migrate(&db, true, |id, _| applied.push(id.to_owned())).await.expect("migrate");
    assert_eq!(n, migrate::MIGRATIONS.len());
    assert_eq!(applied[0], migrate::MIGRATIONS[0].id);
    migrate::ensure_current(&db).await.expect("current");
    assert_eq!(migrate::migrate(&db, true, |_, _| {}).await.expect("again"), 0);

    let status = migrate::status(&db).await.expect("status");
    assert!(status.iter().all(|s| s.applied_at.is_some() && !s.unknown), "{status:?}");

    // An id this binary does not know (a newer binary ran first).
    db.client()
        .await
        .expect("client")
        .batch_execute("INSERT INTO schema_migrations (id) VALUES ('99990101000000_future')")
        .await
        .expect("insert");
    let status = migrate::status(&db).await.expect("status");
    assert!(status.iter().any(|s| s.unknown && s.id == "99990101000000_future"));
    migrate::migrate(&db, true, |_, _| {}).await.expect("unknown ids tolerated by default");
    migrate::migrate(&db, false, |_, _| {}).await.expect_err("unknown ids refused when asked");
    db.client()
        .await
        .expect("client")
        .batch_execute("DELETE FROM schema_migrations WHERE id LIKE '9999%'")
        .await
        .expect("delete");

    let dry = migrate::down(&db, 1, false).await.expect("dry run");
    assert_eq!(dry.len(), 1);
    migrate::ensure_current(&db).await.expect("dry run changed nothing");
    migrate::down(&db, 1, true).await.expect("down");
    assert!(matches!(migrate::ensure_current(&db).await, Err(DbError::SchemaBehind { .. })));
    migrate::migrate(&db, true, |_, _| {}).await.expect("up again");
}

#[tokio::test]
async fn creation_is_recorded_before_it_reaches_a_node_and_settled_after() {
    let (_t, db) = migrated().await;
    let (state, intent) = db
        .begin_create(
            "default",
            "a.git",
            "s1",
            &[],
            cairn_router::db::repositories::WriteBy {
                router: "router-1",
                method: "CreateRepository",
                correlation_id: "cid",
            },
        )
        .await
        .expect("begin")
        .expect("new path");
    assert!(state.replica_path.starts_with("@cluster/repositories/"), "{}", state.replica_path);
    assert!(state.replicas.is_empty());
    // A concurrent creation of the same path is refused before any node sees it.
    assert!(
        db.begin_create(
            "default",
            "a.git",
            "s2",
            &[],
            cairn_router::db::repositories::WriteBy {
                router: "router-2",
                method: "CreateRepository",
                correlation_id: ""
            }
        )
        .await
        .expect("begin")
        .is_none()
    );

    let outcome =
        Outcome::Created { created: vec!["s1".into()], outdated: vec!["s2".into(), "s3".into()], source: "s1".into() };
    db.settle(intent, &outcome, "cid").await.expect("settle");
    let state = db.repository("default", "a.git").await.expect("load").expect("recorded");
    assert_eq!(state.generation_of("s1"), 0);
    assert_eq!(state.generation_of("s2"), -1);
    let jobs: i64 =
        db.client().await.expect("c").query_one("SELECT count(*) FROM replication_jobs", &[]).await.expect("q").get(0);
    assert_eq!(jobs, 2);
    let intents: i64 =
        db.client().await.expect("c").query_one("SELECT count(*) FROM write_intents", &[]).await.expect("q").get(0);
    assert_eq!(intents, 0);

    // A failed creation leaves no record.
    let (_, intent) = db
        .begin_create(
            "default",
            "b.git",
            "s1",
            &[],
            cairn_router::db::repositories::WriteBy { router: "r", method: "CreateRepository", correlation_id: "" },
        )
        .await
        .expect("b")
        .expect("new");
    db.settle(intent, &Outcome::Created { created: vec![], outdated: vec![], source: "s1".into() }, "")
        .await
        .expect("settle");
    assert!(db.repository("default", "b.git").await.expect("load").is_none());
}

#[tokio::test]
async fn writes_move_only_current_replicas_and_fence_stale_terms() {
    let (_t, db) = migrated().await;
    let (state, intent) = db
        .begin_create(
            "vs",
            "r.git",
            "s1",
            &[],
            cairn_router::db::repositories::WriteBy { router: "r", method: "CreateRepository", correlation_id: "" },
        )
        .await
        .expect("b")
        .expect("new");
    db.settle(
        intent,
        &Outcome::Created { created: vec!["s1".into(), "s2".into()], outdated: vec![], source: "s1".into() },
        "",
    )
    .await
    .expect("settle");

    let intent = db
        .begin_write(
            state.id,
            "s1",
            state.term,
            cairn_router::db::repositories::WriteBy { router: "r", method: "UserCreateBranch", correlation_id: "" },
        )
        .await
        .expect("begin")
        .expect("term holds");
    let changed = Outcome::Changed { updated: vec!["s1".into()], outdated: vec!["s2".into()], source: "s1".into() };
    db.settle(intent, &changed, "").await.expect("settle");
    let state = db.repository("vs", "r.git").await.expect("load").expect("recorded");
    assert_eq!((state.generation, state.generation_of("s1"), state.generation_of("s2")), (1, 1, 0));

    // s2 is behind: naming it as updated must not mark it current.
    let intent = db
        .begin_write(
            state.id,
            "s1",
            state.term,
            cairn_router::db::repositories::WriteBy { router: "r", method: "WriteRef", correlation_id: "" },
        )
        .await
        .expect("begin")
        .expect("term holds");
    let both = Outcome::Changed { updated: vec!["s1".into(), "s2".into()], outdated: vec![], source: "s1".into() };
    db.settle(intent, &both, "").await.expect("settle");
    let state = db.repository("vs", "r.git").await.expect("load").expect("recorded");
    assert_eq!((state.generation, state.generation_of("s1"), state.generation_of("s2")), (2, 2, 0));

    // Failover bumps the term; a router still holding the old term cannot start a write.
    let term = db.change_primary(state.id, Some("s1"), "s2").await.expect("elect").expect("changed");
    assert_eq!(term, state.term + 1);
    assert!(
        db.change_primary(state.id, Some("s1"), "s3").await.expect("elect").is_none(),
        "compare-and-set on the old primary"
    );
    assert!(
        db.begin_write(
            state.id,
            "s1",
            state.term,
            cairn_router::db::repositories::WriteBy { router: "r", method: "WriteRef", correlation_id: "" }
        )
        .await
        .expect("begin")
        .is_none()
    );
}

#[tokio::test]
async fn database_outage_is_unavailable_and_recovers() {
    let mut server = PgServer::start();
    let test_db = server.database();
    let db = Db::new(&test_db.config()).expect("pool");
    migrate::migrate(&db, true, |_, _| {}).await.expect("migrate");
    server.stop();
    let err = db.repository("vs", "x.git").await.expect_err("server is down");
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(tonic::Status::from(err).code(), tonic::Code::Unavailable);
    server.resume();
    assert!(db.repository("vs", "x.git").await.expect("back").is_none());
    drop(test_db);
}

/// A repository created on s1 with s2 and s3 up to date at generation 0.
async fn three_replicas(db: &Db, relative: &str) -> cairn_router::db::repositories::RepoState {
    let by = cairn_router::db::repositories::WriteBy { router: "r", method: "CreateRepository", correlation_id: "" };
    let (_, intent) = db.begin_create("default", relative, "s1", &[], by).await.expect("begin").expect("new");
    let created = Outcome::Created {
        created: vec!["s1".into(), "s2".into(), "s3".into()],
        outdated: vec![],
        source: "s1".into(),
    };
    db.settle(intent, &created, "").await.expect("settle");
    db.repository("default", relative).await.expect("load").expect("recorded")
}

#[tokio::test]
async fn a_primary_replaced_during_a_write_cannot_commit_it() {
    use cairn_proto::gitaly::ref_transaction_server::RefTransaction as _;
    use cairn_proto::gitaly::vote_transaction_response::TransactionState;
    use cairn_proto::gitaly::{VoteTransactionRequest, vote_transaction_request::Phase};
    use cairn_router::transactions::{Manager, Registration, voters};

    let (_t, db) = migrated().await;
    let state = three_replicas(&db, "fenced.git").await;
    let term = db.change_primary(state.id, state.primary.as_deref(), "s1").await.expect("elect").unwrap_or(state.term);
    let manager = Manager::default();
    let service = cairn_router::service::ref_transaction::RefTransactionService::new(manager.clone(), db.clone());
    let vote = |node: &str, id: u64| {
        tonic::Request::new(VoteTransactionRequest {
            transaction_id: id,
            node: node.into(),
            reference_updates_hash: vec![7; 20],
            phase: Phase::PreparedPhase.into(),
            ..Default::default()
        })
    };
    let (v, t) = voters("s1", &["s2".into(), "s3".into()]);

    // Same term: primary and one secondary agree, both commit.
    let id = manager
        .register(v.clone(), t, Registration { repository_id: state.id, primary: "s1".into(), term })
        .expect("register");
    let (p, s) = tokio::join!(service.vote_transaction(vote("s1", id)), service.vote_transaction(vote("s2", id)));
    assert_eq!(p.expect("primary vote").into_inner().state(), TransactionState::Commit);
    assert_eq!(s.expect("secondary vote").into_inner().state(), TransactionState::Commit);

    // Another router elects s2 while a write started under s1 is in flight.
    let id =
        manager.register(v, t, Registration { repository_id: state.id, primary: "s1".into(), term }).expect("register");
    assert!(db.change_primary(state.id, Some("s1"), "s2").await.expect("failover").is_some());
    let secondary = {
        let service = service.clone();
        tokio::spawn(async move { service.vote_transaction(vote("s3", id)).await })
    };
    let primary = service.vote_transaction(vote("s1", id)).await.expect("primary vote");
    assert_eq!(primary.into_inner().state(), TransactionState::Abort, "the fenced primary must not commit");
    let secondary = secondary.await.expect("join").expect("secondary vote");
    assert_eq!(secondary.into_inner().state(), TransactionState::Stop, "its secondaries stop too");
}

#[tokio::test]
async fn concurrent_settles_leave_the_replicas_that_hold_every_write_up_to_date() {
    let (_t, db) = migrated().await;
    let state = three_replicas(&db, "busy.git").await;
    let by = cairn_router::db::repositories::WriteBy { router: "r", method: "WriteRef", correlation_id: "" };
    // Many writes at once: half reach every replica, half only s1.
    let mut settles = Vec::new();
    for i in 0..40 {
        let intent = db.begin_write(state.id, "s1", state.term, by).await.expect("begin").expect("intent");
        let updated: Vec<String> =
            if i % 2 == 0 { vec!["s1".into(), "s2".into(), "s3".into()] } else { vec!["s1".into()] };
        let outdated = if i % 2 == 0 { vec![] } else { vec!["s2".into(), "s3".into()] };
        let db = db.clone();
        settles.push(tokio::spawn(async move {
            db.settle(intent, &Outcome::Changed { updated, outdated, source: "s1".into() }, "").await
        }));
    }
    for s in settles {
        s.await.expect("join").expect("settle");
    }
    let state = db.repository("default", "busy.git").await.expect("load").expect("recorded");
    assert!(state.is_up_to_date("s1"), "s1 holds every write: {state:?}");
    assert!(!state.is_up_to_date("s2") && !state.is_up_to_date("s3"), "{state:?}");
}
