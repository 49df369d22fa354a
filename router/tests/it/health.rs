//! Health checks shared through `node_status`: the consensus rule, the
//! checker against real nodes, and proactive failover.

use crate::support::bg::{Cluster, VS};
use crate::support::pg::TestDb;
use cairn_router::db::health::Check;
use cairn_router::db::{Db, migrate};
use cairn_router::health::HealthView;
use cairn_router::health::checker::Checker;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn check(storage: &str, healthy: bool) -> Check {
    Check { virtual_storage: VS.to_owned(), storage: storage.to_owned(), healthy }
}

fn set(storages: &[&str]) -> BTreeSet<String> {
    storages.iter().map(|s| (*s).to_owned()).collect()
}

async fn migrated() -> (TestDb, Db) {
    let test_db = TestDb::new();
    let db = Db::new(&test_db.config()).expect("pool");
    migrate::migrate(&db, true, |_, _| {}).await.expect("migrate");
    (test_db, db)
}

#[tokio::test]
async fn consensus_needs_a_majority_of_live_routers() {
    let (_t, db) = migrated().await;
    let window = Duration::from_secs(5);
    // Two routers: one sighting is enough (ceil(2/2) = 1).
    db.record_checks("r1", &[check("s1", true), check("s2", true), check("s3", false)]).await.expect("r1");
    db.record_checks("r2", &[check("s1", true), check("s2", false), check("s3", false)]).await.expect("r2");
    let rows: i64 = db
        .client()
        .await
        .expect("c")
        .query_one("SELECT count(*) FROM node_status WHERE router IN ('r1', 'r2')", &[])
        .await
        .expect("q")
        .get(0);
    assert_eq!(rows, 6);
    assert_eq!(db.consensus(window).await.expect("consensus").get(VS), Some(&set(&["s1", "s2"])));

    // Three routers: two are needed; s2 is seen only by r1.
    db.record_checks("r3", &[check("s1", true), check("s2", false), check("s3", true)]).await.expect("r3");
    assert_eq!(db.consensus(window).await.expect("consensus").get(VS), Some(&set(&["s1"])));
    db.record_checks("r2", &[check("s1", true), check("s2", false), check("s3", true)]).await.expect("r2");
    assert_eq!(db.consensus(window).await.expect("consensus").get(VS), Some(&set(&["s1", "s3"])));

    // A failed check keeps the last sighting: s1 stays healthy within the window...
    db.record_checks("r1", &[check("s1", false), check("s2", true), check("s3", true)]).await.expect("r1");
    assert!(db.consensus(window).await.expect("consensus")[VS].contains("s1"));
    // ...and leaves it once the sightings are older than the window.
    let c = db.client().await.expect("c");
    c.execute("UPDATE node_status SET last_seen_active_at = now() - interval '6 seconds' WHERE storage = 's1'", &[])
        .await
        .expect("age");
    assert!(!db.consensus(window).await.expect("consensus")[VS].contains("s1"));

    // A router that stopped checking a minute ago no longer votes: with r3
    // gone, r1 and r2 remain and one sighting suffices again (r1 sees s2).
    c.execute(
        "UPDATE node_status SET last_contact_attempt_at = now() - interval '2 minutes',
             last_seen_active_at = now() - interval '2 minutes' WHERE router = 'r3'",
        &[],
    )
    .await
    .expect("age");
    let consensus = db.consensus(window).await.expect("consensus");
    assert_eq!(consensus[VS], set(&["s2", "s3"]));

    // Rows of routers silent for an hour are deleted; others stay.
    c.execute(
        "UPDATE node_status SET last_contact_attempt_at = now() - interval '61 minutes', last_seen_active_at = NULL
         WHERE router = 'r3'",
        &[],
    )
    .await
    .expect("age");
    assert_eq!(db.forget_stale_checks().await.expect("forget"), 3);
    let left: Vec<String> = c
        .query("SELECT DISTINCT router FROM node_status ORDER BY 1", &[])
        .await
        .expect("q")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, ["r1", "r2"]);
}

fn checker(c: &Cluster, router: &str, health: &HealthView) -> Checker {
    Checker {
        config: c.config.clone(),
        db: c.db.clone(),
        nodes: c.router_nodes.clone(),
        health: health.clone(),
        router_name: router.to_owned(),
        metrics: None,
    }
}

const FAST: &str = "[failover]\nhealth_window = \"1s\"\nhealth_check_interval = \"100ms\"\n";

#[tokio::test]
async fn a_killed_node_leaves_the_local_view_in_one_round_and_the_consensus_within_the_window() {
    let mut c = Cluster::start(FAST).await;
    let health = HealthView::default();
    let checker = checker(&c, "router-a", &health);
    checker.check_round().await;
    assert!(health.checked() && health.database_ok());
    for s in ["s1", "s2", "s3"] {
        assert!(health.locally_healthy(VS, s), "{s}");
    }
    assert_eq!(health.consensus(VS), set(&["s1", "s2", "s3"]));

    c.node_mut("s3").kill9();
    let started = Instant::now();
    checker.check_round().await;
    assert!(started.elapsed() < Duration::from_secs(2), "a round is bounded by the check timeout");
    assert!(!health.locally_healthy(VS, "s3"), "one round suffices locally");
    assert!(health.locally_healthy(VS, "s1"));

    // The run loop keeps checking; s3 leaves the consensus once its last sighting is older than the window.
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(checker.clone().run(shutdown));
    let deadline = started + Duration::from_secs(3);
    while health.healthy_by_consensus(VS, "s3") {
        assert!(Instant::now() < deadline, "s3 still healthy by consensus");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(900), "not before the window passed");
    assert_eq!(health.consensus(VS), set(&["s1", "s2"]));

    // Back again.
    c.node_mut("s3").restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !health.healthy_by_consensus(VS, "s3") {
        assert!(Instant::now() < deadline, "s3 did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("checker stops").expect("checker");
}

#[tokio::test]
async fn checks_of_other_routers_decide_the_consensus() {
    let c = Cluster::start(FAST).await;
    let health = HealthView::default();
    // Two other routers that cannot reach s2.
    for r in ["router-b", "router-c"] {
        c.db.record_checks(r, &[check("s1", true), check("s2", false), check("s3", true)]).await.expect("record");
    }
    checker(&c, "router-a", &health).check_round().await;
    assert!(health.locally_healthy(VS, "s2"), "this router reaches s2");
    assert_eq!(health.consensus(VS), set(&["s1", "s3"]), "but the majority does not");
}

#[tokio::test]
async fn database_failure_falls_back_to_the_local_view() {
    let mut server = crate::support::pg::PgServer::start();
    let test_db = server.database();
    let db = Db::new(&test_db.config()).expect("pool");
    migrate::migrate(&db, true, |_, _| {}).await.expect("migrate");
    let c = Cluster::start(FAST).await;
    let health = HealthView::default();
    let mut checker = checker(&c, "router-a", &health);
    checker.db = db;
    server.stop();
    checker.check_round().await;
    assert!(health.checked() && !health.database_ok());
    assert_eq!(health.consensus(VS), set(&["s1", "s2", "s3"]));
    server.resume();
    checker.check_round().await;
    assert!(health.database_ok());
    drop(test_db);
}

#[tokio::test]
async fn proactive_failover_moves_the_primary_off_a_killed_node() {
    let mut c = Cluster::start(FAST).await;
    let id = c.db.track_repository(VS, "p.git", "@cluster/test/p", "s1", &[], &[]).await.expect("track").expect("new");
    c.db.set_replica_generation(id, "s2", 0).await.expect("s2");
    let before = c.db.repository_by_id(id).await.expect("l").expect("r");
    assert_eq!(before.primary.as_deref(), Some("s1"));

    let health = HealthView::default();
    let checker = checker(&c, "router-a", &health);
    checker.check_round().await;
    assert_eq!(c.db.repository_by_id(id).await.expect("l").expect("r").term, before.term, "healthy primary stays");

    c.node_mut("s1").kill9();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(checker.clone().run(shutdown));
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let state = c.db.repository_by_id(id).await.expect("l").expect("r");
        if state.primary.as_deref() != Some("s1") {
            break state;
        }
        assert!(Instant::now() < deadline, "primary was not moved off s1");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("checker stops").expect("checker");
    // s2 is the only other up-to-date replica; s3 has none.
    assert_eq!(after.primary.as_deref(), Some("s2"));
    assert_eq!(after.term, before.term + 1);
}
