//! The replication queue and workers, the reconciler and the recovery of
//! abandoned write intents, against a real PostgreSQL and three real nodes.

use crate::support::bg::{Cluster, VS};
use cairn_router::db::jobs::{Ack, Change};
use cairn_router::db::repositories::Outcome;
use cairn_router::{intents, reconcile};
use std::time::{Duration, Instant, SystemTime};

/// Tracks a repository seeded on s1's disk, with update jobs towards `to`.
async fn tracked(c: &Cluster, relative: &str, assignments: &[&str], to: &[&str]) -> (i64, String) {
    // The id is not known before tracking; seed at a path of our own choosing.
    let replica_path = format!("@cluster/test/{relative}");
    c.seed("s1", &replica_path);
    let assignments: Vec<String> = assignments.iter().map(|s| (*s).to_owned()).collect();
    let to: Vec<String> = to.iter().map(|s| (*s).to_owned()).collect();
    let id =
        c.db.track_repository(VS, relative, &replica_path, "s1", &assignments, &to)
            .await
            .expect("track")
            .expect("new path");
    (id, replica_path)
}

async fn run_until_idle(c: &Cluster, router: &str, targets: &[&str]) {
    let r = c.replicator(router);
    for _ in 0..10 {
        let mut ran = 0;
        for t in targets {
            ran += r.process_batch(VS, t).await.expect("process");
        }
        if ran == 0 {
            return;
        }
    }
    panic!("jobs kept coming");
}

#[tokio::test]
async fn update_jobs_copy_the_repository_and_a_settled_write_converges_again() {
    let c = Cluster::start("").await;
    let (id, path) = tracked(&c, "a.git", &[], &["s2", "s3"]).await;
    assert_eq!(c.count("SELECT count(*) FROM replication_jobs").await, 2);

    run_until_idle(&c, "r1", &["s2", "s3"]).await;
    assert_eq!(c.count("SELECT count(*) FROM replication_jobs").await, 0);
    let source_refs = c.refs("s1", &path);
    assert!(source_refs.contains("refs/tags/v1"), "{source_refs}");
    let source_sum = c.checksum("s1", &path).await;
    for s in ["s2", "s3"] {
        assert_eq!(c.refs(s, &path), source_refs, "{s}");
        assert_eq!(c.checksum(s, &path).await, source_sum, "{s}");
    }
    let state = c.db.repository_by_id(id).await.expect("load").expect("recorded");
    assert_eq!((state.generation_of("s2"), state.generation_of("s3")), (0, 0));

    // A write on the primary, recorded as it would be by routing.
    c.commit("s1", &path, "main", "a write");
    c.commit("s1", &path, "feature", "a branch");
    let intent =
        c.db.begin_write(
            id,
            "s1",
            state.term,
            cairn_router::db::repositories::WriteBy { router: "r1", method: "UserCommitFiles", correlation_id: "cid" },
        )
        .await
        .expect("b")
        .expect("term");
    let outcome =
        Outcome::Changed { updated: vec!["s1".into()], outdated: vec!["s2".into(), "s3".into()], source: "s1".into() };
    c.db.settle(intent, &outcome, "cid").await.expect("settle");
    assert_ne!(c.refs("s2", &path), c.refs("s1", &path));

    run_until_idle(&c, "r1", &["s2", "s3"]).await;
    let source_refs = c.refs("s1", &path);
    let source_sum = c.checksum("s1", &path).await;
    for s in ["s2", "s3"] {
        assert_eq!(c.refs(s, &path), source_refs, "{s}");
        assert_eq!(c.checksum(s, &path).await, source_sum, "{s}");
    }
    let state = c.db.repository_by_id(id).await.expect("load").expect("recorded");
    assert_eq!(state.generation, 1);
    assert_eq!((state.generation_of("s1"), state.generation_of("s2"), state.generation_of("s3")), (1, 1, 1));
}

#[tokio::test]
async fn a_job_to_a_dead_node_backs_off_and_succeeds_after_restart() {
    let mut c = Cluster::start("").await;
    let (id, path) = tracked(&c, "b.git", &[], &["s2"]).await;
    c.node_mut("s2").kill9();
    // This router has not noticed yet: it still sees s2 healthy.
    let r = c.replicator("r1");
    assert_eq!(r.process_batch(VS, "s2").await.expect("process"), 1);
    let row = c
        .db
        .client()
        .await
        .expect("c")
        .query_one(
            "SELECT state, attempts, last_error, EXTRACT(EPOCH FROM not_before - now())::float8 FROM replication_jobs",
            &[],
        )
        .await
        .expect("job");
    let (state, attempts, error, wait): (String, i32, Option<String>, f64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((state.as_str(), attempts), ("failed", 1));
    assert!(error.is_some_and(|e| !e.is_empty()));
    assert!(wait > 0.5 && wait <= 1.0, "first backoff is 1 s: {wait}");
    // Not due yet.
    assert_eq!(r.process_batch(VS, "s2").await.expect("process"), 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(r.process_batch(VS, "s2").await.expect("process"), 1);
    let wait: f64 =
        c.db.client()
            .await
            .expect("c")
            .query_one("SELECT EXTRACT(EPOCH FROM not_before - now())::float8 FROM replication_jobs", &[])
            .await
            .expect("job")
            .get(0);
    assert!(wait > 1.5 && wait <= 2.0, "second backoff is 2 s: {wait}");

    c.node_mut("s2").restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.count("SELECT count(*) FROM replication_jobs").await > 0 {
        assert!(Instant::now() < deadline, "job did not succeed after the node came back");
        r.process_batch(VS, "s2").await.expect("process");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(c.refs("s2", &path), c.refs("s1", &path));
    let state = c.db.repository_by_id(id).await.expect("load").expect("recorded");
    assert_eq!(state.generation_of("s2"), 0);
}

#[tokio::test]
async fn two_routers_share_the_queue_without_running_a_job_twice() {
    let c = Cluster::start("[replication]\nbatch_size = 2\nparallel_storage_processing_workers = 2\n").await;
    // Every lease and every release, to check that leases of a job never overlap.
    c.exec(
        "CREATE TABLE lease_log (seq bigserial, job bigint, event text, owner text);
         CREATE FUNCTION log_lease() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF TG_OP = 'DELETE' THEN
             INSERT INTO lease_log (job, event, owner) VALUES (OLD.id, 'release', OLD.lease_owner);
             RETURN OLD;
           END IF;
           IF NEW.state = 'in_progress' AND (OLD.state <> 'in_progress' OR OLD.attempts <> NEW.attempts) THEN
             INSERT INTO lease_log (job, event, owner) VALUES (NEW.id, 'lease', NEW.lease_owner);
           ELSIF OLD.state = 'in_progress' AND NEW.state <> 'in_progress' THEN
             INSERT INTO lease_log (job, event, owner) VALUES (NEW.id, 'release', OLD.lease_owner);
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER log_lease AFTER UPDATE OR DELETE ON replication_jobs FOR EACH ROW EXECUTE FUNCTION log_lease();",
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(tracked(&c, &format!("r{i}.git"), &[], &["s2", "s3"]).await);
    }
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let mut handles = c.replicator("router-a").spawn_workers(shutdown.clone());
    handles.extend(c.replicator("router-b").spawn_workers(shutdown));
    let deadline = Instant::now() + Duration::from_secs(120);
    while c.count("SELECT count(*) FROM replication_jobs").await > 0 {
        assert!(Instant::now() < deadline, "workers did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.send(true).expect("stop");
    for h in handles {
        tokio::time::timeout(Duration::from_secs(30), h).await.expect("worker stops").expect("worker");
    }

    let rows =
        c.db.client()
            .await
            .expect("c")
            .query("SELECT job, event, owner FROM lease_log ORDER BY job, seq", &[])
            .await
            .expect("log");
    let mut owners = std::collections::BTreeSet::new();
    let mut last: Option<(i64, String)> = None;
    for row in &rows {
        let (job, event, owner): (i64, String, Option<String>) = (row.get(0), row.get(1), row.get(2));
        if event == "lease" {
            owners.insert(owner.clone().unwrap_or_default());
            if let Some((j, e)) = &last {
                assert!(!(*j == job && e == "lease"), "job {job} leased twice without a release");
            }
        }
        last = Some((job, event));
    }
    assert_eq!(rows.len(), 80, "40 jobs, each leased and released once");
    assert_eq!(owners.len(), 2, "both routers took jobs: {owners:?}");
    for (id, path) in &ids {
        let state = c.db.repository_by_id(*id).await.expect("load").expect("recorded");
        assert_eq!((state.generation_of("s2"), state.generation_of("s3")), (0, 0));
        assert_eq!(c.refs("s3", path), c.refs("s1", path));
    }
}

#[tokio::test]
async fn a_stale_lease_is_taken_over() {
    let c = Cluster::start("").await;
    let (id, path) = tracked(&c, "c.git", &[], &["s2"]).await;
    let jobs = c.db.dequeue("dead-router", VS, "s2", 10).await.expect("dequeue");
    assert_eq!(jobs.len(), 1);
    // Leased and not expired: nobody else gets it.
    assert!(c.db.dequeue("r2", VS, "s2", 10).await.expect("dequeue").is_empty());
    c.exec("UPDATE replication_jobs SET lease_until = now() - interval '1 second'").await;
    assert_eq!(c.replicator("r2").process_batch(VS, "s2").await.expect("process"), 1);
    assert_eq!(c.count("SELECT count(*) FROM replication_jobs").await, 0);
    assert_eq!(c.db.repository_by_id(id).await.expect("l").expect("r").generation_of("s2"), 0);
    assert_eq!(c.refs("s2", &path), c.refs("s1", &path));
    // The old owner's late acknowledgement changes nothing.
    assert!(!c.db.acknowledge("dead-router", &jobs[0], &Ack::Failed("late".into())).await.expect("ack"));
}

#[tokio::test]
async fn a_write_during_a_job_reruns_it() {
    let c = Cluster::start("").await;
    let (id, _path) = tracked(&c, "d.git", &[], &["s2"]).await;
    let job = c.db.dequeue("r1", VS, "s2", 10).await.expect("dequeue").remove(0);
    assert!(c.db.heartbeat("r1", &job).await.expect("heartbeat"));
    // A write settles while the job runs: the job is flagged, not duplicated.
    let state = c.db.repository_by_id(id).await.expect("l").expect("r");
    let intent =
        c.db.begin_write(
            id,
            "s1",
            state.term,
            cairn_router::db::repositories::WriteBy { router: "r1", method: "WriteRef", correlation_id: "" },
        )
        .await
        .expect("b")
        .expect("term");
    let changed = Outcome::Changed { updated: vec!["s1".into()], outdated: vec!["s2".into()], source: "s1".into() };
    c.db.settle(intent, &changed, "").await.expect("settle");
    assert_eq!(c.count("SELECT count(*) FROM replication_jobs WHERE rerun AND state = 'in_progress'").await, 1);

    assert!(c.db.acknowledge("r1", &job, &Ack::Done { behind: false }).await.expect("ack"));
    assert_eq!(c.count("SELECT count(*) FROM replication_jobs WHERE state = 'ready' AND NOT rerun").await, 1);

    // Success with the target still behind re-arms too; without either, the job goes.
    let job = c.db.dequeue("r1", VS, "s2", 10).await.expect("dequeue").remove(0);
    assert!(c.db.acknowledge("r1", &job, &Ack::Done { behind: true }).await.expect("ack"));
    assert_eq!(c.count("SELECT count(*) FROM replication_jobs WHERE state = 'ready'").await, 1);
    let job = c.db.dequeue("r1", VS, "s2", 10).await.expect("dequeue").remove(0);
    assert!(c.db.acknowledge("r1", &job, &Ack::Done { behind: false }).await.expect("ack"));
    assert_eq!(c.count("SELECT count(*) FROM replication_jobs").await, 0);

    // End to end: the worker leaves s2 at the repository's generation.
    let intent =
        c.db.begin_write(
            id,
            "s1",
            state.term,
            cairn_router::db::repositories::WriteBy { router: "r1", method: "WriteRef", correlation_id: "" },
        )
        .await
        .expect("b")
        .expect("term");
    c.db.settle(intent, &changed, "").await.expect("settle");
    run_until_idle(&c, "r1", &["s2"]).await;
    let state = c.db.repository_by_id(id).await.expect("l").expect("r");
    assert_eq!(state.generation_of("s2"), state.generation);
}

#[tokio::test]
async fn delete_replica_removes_the_replica_from_disk_and_records() {
    let c = Cluster::start("").await;
    let (id, path) = tracked(&c, "e.git", &["s1", "s2"], &["s2", "s3"]).await;
    run_until_idle(&c, "r1", &["s2", "s3"]).await;
    assert!(c.node("s3").path_of(&path).exists());
    c.exec(&format!(
        "INSERT INTO replication_jobs (repository_id, virtual_storage, target_storage, change) VALUES ({id}, '{VS}', 's3', 'delete_replica')"
    ))
    .await;
    run_until_idle(&c, "r1", &["s3"]).await;
    assert!(!c.node("s3").path_of(&path).exists());
    let state = c.db.repository_by_id(id).await.expect("l").expect("r");
    assert_eq!(state.generation_of("s3"), -1);
    assert_eq!(c.count("SELECT count(*) FROM replication_jobs").await, 0);

    // An assigned replica is never deleted, even if a job says so.
    c.exec(&format!(
        "INSERT INTO replication_jobs (repository_id, virtual_storage, target_storage, change) VALUES ({id}, '{VS}', 's2', 'delete_replica')"
    ))
    .await;
    run_until_idle(&c, "r1", &["s2"]).await;
    assert!(c.node("s2").path_of(&path).exists());
    assert_eq!(c.db.repository_by_id(id).await.expect("l").expect("r").generation_of("s2"), 0);
}

#[tokio::test]
async fn reconciler_schedules_missing_and_unneeded_replicas_once() {
    let c = Cluster::start("").await;
    // Missing on s2 and s3, no jobs.
    let (missing, _) = tracked(&c, "missing.git", &[], &[]).await;
    // Assigned to s1 and s2 but also on s3, all current.
    let (extra, _) = tracked(&c, "extra.git", &["s1", "s2"], &[]).await;
    c.db.set_replica_generation(extra, "s2", 0).await.expect("s2");
    c.db.set_replica_generation(extra, "s3", 0).await.expect("s3");
    // An unassigned replica that is newer than an assigned one is kept.
    let (newer, newer_path) = tracked(&c, "newer.git", &["s1", "s2"], &[]).await;
    c.seed("s3", &newer_path);
    c.db.set_authoritative(VS, "newer.git", "s3").await.expect("authoritative");

    let (a, b) = tokio::join!(
        reconcile::reconcile_once(&c.db, &c.router_nodes, &c.health),
        reconcile::reconcile_once(&c.db, &c.router_nodes, &c.health)
    );
    let mut scheduled = a.expect("round a");
    scheduled.extend(b.expect("round b"));
    let mut got: Vec<(i64, String, Change, Option<String>)> =
        scheduled.into_iter().map(|s| (s.repository_id, s.target, s.change, s.source)).collect();
    got.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
    let s1 = Some("s1".to_owned());
    let s3 = Some("s3".to_owned());
    let mut want = vec![
        (missing, "s2".to_owned(), Change::Update, s1.clone()),
        (missing, "s3".to_owned(), Change::Update, s1.clone()),
        (extra, "s3".to_owned(), Change::DeleteReplica, None),
        // newer.git: s3 is the only current replica, so s1 and s2 are updated from it.
        (newer, "s1".to_owned(), Change::Update, s3.clone()),
        (newer, "s2".to_owned(), Change::Update, s3.clone()),
    ];
    want.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
    assert_eq!(got, want);
    assert!(reconcile::reconcile_once(&c.db, &c.router_nodes, &c.health).await.expect("again").is_empty());

    // Unhealthy storages are neither sources nor targets, and a running job is not re-armed.
    c.exec("DELETE FROM replication_jobs").await;
    c.set_health(&["s1", "s2"]);
    let again = reconcile::reconcile_once(&c.db, &c.router_nodes, &c.health).await.expect("round");
    let again: Vec<(i64, String)> = again.into_iter().map(|s| (s.repository_id, s.target)).collect();
    assert_eq!(again, vec![(missing, "s2".to_owned())]);
    let running = c.db.dequeue("r1", VS, "s2", 10).await.expect("dequeue");
    assert_eq!(running.len(), 1);
    assert!(reconcile::reconcile_once(&c.db, &c.router_nodes, &c.health).await.expect("round").is_empty());
    assert_eq!(c.count("SELECT count(*) FROM replication_jobs WHERE rerun").await, 0);

    // The workers then carry it out; once newer.git's assigned replicas
    // caught up, its unassigned one on s3 goes too.
    c.all_healthy();
    c.exec("DELETE FROM replication_jobs").await;
    let mut rounds = 0;
    while !reconcile::reconcile_once(&c.db, &c.router_nodes, &c.health).await.expect("round").is_empty() {
        rounds += 1;
        assert!(rounds <= 3, "reconciliation does not converge");
        run_until_idle(&c, "r1", &["s1", "s2", "s3"]).await;
        assert_eq!(c.count("SELECT count(*) FROM replication_jobs").await, 0, "every job succeeded");
    }
    assert_eq!(rounds, 2);
    let state = c.db.repository_by_id(newer).await.expect("l").expect("r");
    assert_eq!((state.generation_of("s1"), state.generation_of("s2"), state.generation_of("s3")), (1, 1, -1));
    let state = c.db.repository_by_id(extra).await.expect("l").expect("r");
    assert_eq!(state.generation_of("s3"), -1);
    let state = c.db.repository_by_id(missing).await.expect("l").expect("r");
    assert_eq!((state.generation_of("s2"), state.generation_of("s3")), (0, 0));
}

#[tokio::test]
async fn abandoned_intents_of_a_dead_router_are_settled() {
    let mut c = Cluster::start("").await;
    let (present, _) =
        c.db.begin_create(
            VS,
            "present.git",
            "s1",
            &[],
            cairn_router::db::repositories::WriteBy {
                router: "dead-router",
                method: "CreateRepository",
                correlation_id: "c1",
            },
        )
        .await
        .expect("b")
        .expect("new");
    c.seed("s1", &present.replica_path);
    c.db.begin_create(
        VS,
        "absent.git",
        "s1",
        &[],
        cairn_router::db::repositories::WriteBy {
            router: "dead-router",
            method: "CreateRepository",
            correlation_id: "c2",
        },
    )
    .await
    .expect("b")
    .expect("new");
    let (written, _) = tracked(&c, "written.git", &[], &[]).await;
    c.db.begin_write(
        written,
        "s1",
        1,
        cairn_router::db::repositories::WriteBy { router: "dead-router", method: "WriteRef", correlation_id: "c3" },
    )
    .await
    .expect("b")
    .expect("term");
    // Young intents of a router that may still be alive are left alone.
    let me = SystemTime::now();
    assert_eq!(intents::recover_once(&c.db, &c.router_nodes, "me", me).await.expect("recover"), 0);

    c.exec("UPDATE write_intents SET created_at = now() - interval '1 minute'").await;
    c.node_mut("s1").kill9();
    // An unreachable primary leaves creations for the next pass.
    let settled = intents::recover_once(&c.db, &c.router_nodes, "me", me).await.expect("recover");
    c.node_mut("s1").restart();
    assert_eq!(settled, 1, "only the write");
    assert_eq!(intents::recover_once(&c.db, &c.router_nodes, "me", me).await.expect("recover"), 2);
    assert_eq!(c.count("SELECT count(*) FROM write_intents").await, 0);

    let state = c.db.repository_by_id(present.id).await.expect("l").expect("present is recorded");
    assert_eq!(state.generation_of("s1"), 0);
    assert!(c.db.repository(VS, "absent.git").await.expect("l").is_none(), "absent is forgotten");
    let state = c.db.repository_by_id(written).await.expect("l").expect("r");
    assert_eq!((state.generation, state.generation_of("s1")), (1, 1));
    let jobs: Vec<(i64, String)> =
        c.db.client()
            .await
            .expect("c")
            .query("SELECT repository_id, target_storage FROM replication_jobs ORDER BY 1, 2", &[])
            .await
            .expect("jobs")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    assert_eq!(
        jobs,
        vec![
            (present.id, "s2".to_owned()),
            (present.id, "s3".to_owned()),
            (written, "s2".to_owned()),
            (written, "s3".to_owned())
        ]
    );
}

#[tokio::test]
async fn background_loops_replicate_report_metrics_and_stop() {
    let c = Cluster::start("[failover]\nhealth_check_interval = \"100ms\"\n").await;
    let (id, path) = tracked(&c, "bg.git", &[], &["s2", "s3"]).await;
    // A repository whose only replica is on a storage nobody sees: unavailable.
    c.db.track_repository(VS, "lost.git", "@cluster/test/lost", "gone", &[], &[]).await.expect("track").expect("new");
    let text = cairn_router::metrics::db_metrics(&c.db, &c.config).await.expect("db metrics");
    assert!(
        text.contains(
            "gitaly_praefect_replication_queue_depth{virtual_storage=\"default\",target_node=\"s2\",state=\"ready\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("gitaly_praefect_unavailable_repositories{virtual_storage=\"default\"} 2"), "{text}");

    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = std::sync::Arc::new(cairn_router::metrics::RouterMetrics::new(&mut registry, &[]));
    let ctx = cairn_router::background::BackgroundCtx {
        config: c.config.clone(),
        db: c.db.clone(),
        nodes: c.router_nodes.clone(),
        health: cairn_router::health::HealthView::default(),
        router_name: "bg-router".to_owned(),
        metrics,
        started: SystemTime::now(),
    };
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let handles = cairn_router::background::spawn(ctx, shutdown);
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.count("SELECT count(*) FROM replication_jobs").await > 0 {
        assert!(Instant::now() < deadline, "background replication did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let state = c.db.repository_by_id(id).await.expect("l").expect("r");
    assert_eq!((state.generation_of("s2"), state.generation_of("s3")), (0, 0));
    assert_eq!(c.refs("s3", &path), c.refs("s1", &path));
    let text = cairn_node::server::metrics::render(&registry);
    assert!(text.contains("gitaly_praefect_node_healthy{virtual_storage=\"default\",storage=\"s2\"} 1"), "{text}");
    assert!(text.contains("gitaly_praefect_replication_latency_count{type=\"update\"} 2"), "{text}");
    // With the health checker writing node_status, bg.git counts as available now.
    let text = cairn_router::metrics::db_metrics(&c.db, &c.config).await.expect("db metrics");
    assert!(text.contains("gitaly_praefect_unavailable_repositories{virtual_storage=\"default\"} 1"), "{text}");

    stop.send(true).expect("stop");
    for h in handles {
        tokio::time::timeout(Duration::from_secs(10), h).await.expect("loop stops").expect("loop");
    }
}

#[tokio::test]
async fn the_verifier_drops_records_of_replicas_missing_on_disk() {
    let c = Cluster::start("").await;
    let (id, path) = tracked(&c, "v.git", &[], &["s2", "s3"]).await;
    run_until_idle(&c, "r1", &["s2", "s3"]).await;
    // s3's volume is wiped behind the router's back.
    std::fs::remove_dir_all(c.node("s3").path_of(&path)).expect("wipe");

    let pass = cairn_router::verifier::verify_once(&c.config, &c.db, &c.router_nodes, &c.health).await.expect("pass");
    assert_eq!((pass.valid, pass.invalid, pass.errors), (2, 1, 0));
    let state = c.db.repository_by_id(id).await.expect("l").expect("r");
    assert_eq!(state.generation_of("s3"), -1, "the missing replica's record is gone");
    assert_eq!(c.count("SELECT count(*) FROM storage_repositories WHERE verified_at IS NOT NULL").await, 2);
    // Verified replicas are not checked again within the interval...
    let pass = cairn_router::verifier::verify_once(&c.config, &c.db, &c.router_nodes, &c.health).await.expect("pass");
    assert_eq!(pass, cairn_router::verifier::Pass::default());
    // ...unless an admin asks (`praefect verify` clears verified_at).
    c.exec("UPDATE storage_repositories SET verified_at = NULL").await;
    let pass = cairn_router::verifier::verify_once(&c.config, &c.db, &c.router_nodes, &c.health).await.expect("pass");
    assert_eq!(pass.valid, 2);

    // The reconciler then copies it again.
    cairn_router::reconcile::reconcile_once(&c.db, &c.router_nodes, &c.health).await.expect("reconcile");
    run_until_idle(&c, "r1", &["s3"]).await;
    assert!(c.node("s3").path_of(&path).join("HEAD").exists());
    assert_eq!(c.db.repository_by_id(id).await.expect("l").expect("r").generation_of("s3"), 0);
}
