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
