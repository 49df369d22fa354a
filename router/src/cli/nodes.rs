//! Subcommands about the configured nodes: `dial-nodes`, `check`,
//! `list-storages`, `list-untracked-repositories`.

use super::flags::Parsed;
use super::{Ctx, DIAL_TIMEOUT, Failure, OrFail, dial_with_timeout};
use crate::service::checks::{self, Check, NodeReport};
use crate::service::ntp;
use cairn_proto::gitaly::WalkReposRequest;
use cairn_proto::gitaly::internal_gitaly_client::InternalGitalyClient;
use std::io::Write as _;
use std::time::{Duration, SystemTime};

/// Repositories checked against the database per query.
const UNTRACKED_BATCH: usize = 16;

/// How long each `check` may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

fn print_reports(reports: &[NodeReport]) {
    for r in reports {
        for line in &r.lines {
            println!("[{}]: {line}", r.address);
        }
    }
}

/// `praefect dial-nodes [-timeout d]`.
pub(super) async fn dial_nodes(ctx: &Ctx, f: &Parsed) -> Result<(), Failure> {
    let timeout = f.duration("timeout")?.filter(|d| !d.is_zero()).unwrap_or(DIAL_TIMEOUT);
    let reports = checks::ping_all(&ctx.config, timeout).await;
    print_reports(&reports);
    checks::unhealthy_error(&reports).map_err(Failure::new)
}

/// `praefect list-storages [-virtual-storage name]`: from the config only.
pub(super) fn list_storages(ctx: &Ctx, f: &Parsed) -> Result<(), Failure> {
    let picked = f.string("virtual-storage");
    let rows: Vec<[&str; 3]> = ctx
        .config
        .virtual_storages
        .iter()
        .filter(|vs| picked.is_empty() || vs.name == picked)
        .flat_map(|vs| vs.nodes.iter().map(move |n| [vs.name.as_str(), n.storage.as_str(), n.address.as_str()]))
        .collect();
    if !picked.is_empty() && ctx.config.virtual_storage(&picked).is_none() {
        println!("No virtual storages named {picked}.");
        return Ok(());
    }
    print!("{}", tab_table(["VIRTUAL_STORAGE", "NODE", "ADDRESS"], &rows));
    Ok(())
}

/// Columns padded to their width, each followed by a tab (upstream's
/// borderless table).
fn tab_table(header: [&str; 3], rows: &[[&str; 3]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        for (cell, w) in row.iter().zip(widths) {
            out.push_str(&format!("{cell:<w$}\t"));
        }
        out.push('\n');
    }
    out
}

fn print_check_header(check: &Check, quiet: bool) {
    if quiet {
        print!("Checking {}...", check.name);
        let _ = std::io::stdout().flush();
    } else {
        println!("Checking {} - {} [{}]", check.name, check.description, check.severity);
    }
}

/// `praefect check [-q]`: upstream's startup checks, each with 5 s.
pub(super) async fn check(ctx: &Ctx, f: &Parsed) -> Result<(), Failure> {
    let quiet = f.bool("q");
    let db = ctx.db()?;
    let mut failed = 0;
    let mut fatal = false;
    let mut record = |check: &Check, result: Result<(), String>| match result {
        Ok(()) => println!("Passed"),
        Err(e) => {
            failed += 1;
            fatal |= check.severity == checks::Severity::Fatal;
            println!("Failed ({}) error: {e}", check.severity);
        }
    };
    let say = |line: String| {
        if !quiet {
            println!("{line}");
        }
    };

    print_check_header(&checks::MIGRATIONS, quiet);
    record(&checks::MIGRATIONS, timed(checks::migrations(&db)).await);

    print_check_header(&checks::NODE_CONNECTIVITY, quiet);
    let reports = checks::ping_all(&ctx.config, CHECK_TIMEOUT).await;
    if !quiet {
        print_reports(&reports);
    }
    record(&checks::NODE_CONNECTIVITY, checks::unhealthy_error(&reports));

    print_check_header(&checks::DATABASE_READ_WRITE, quiet);
    let rw = timed(async {
        db.probe_read_write().await.map_err(|e| e.to_string())?;
        say("successfully read from database".to_owned());
        say("successfully wrote to database".to_owned());
        Ok(())
    })
    .await;
    record(&checks::DATABASE_READ_WRITE, rw);

    // Outside a serving router, "healthy" is what this command just reached.
    print_check_header(&checks::UNAVAILABLE_REPOSITORIES, quiet);
    let health = checks::health_from_reports(&ctx.config, &reports);
    let unavailable = timed(async {
        let counts = checks::unavailable_repositories(&db, &ctx.config, &health).await?;
        if counts.is_empty() {
            say("All repositories are available.".to_owned());
            return Ok(());
        }
        for (vs, n) in &counts {
            say(checks::unavailable_message(vs, *n));
        }
        Err("repositories unavailable".to_owned())
    })
    .await;
    record(&checks::UNAVAILABLE_REPOSITORIES, unavailable);

    match std::env::var("NTP_HOST").ok().filter(|h| !h.is_empty()) {
        None => println!("Skipping {}: NTP_HOST is not set", checks::CLOCK_SYNC.name),
        Some(host) => {
            print_check_header(&checks::CLOCK_SYNC, quiet);
            let result = clock_check(&host, &say).await;
            record(&checks::CLOCK_SYNC, result);
        }
    }

    println!();
    if fatal {
        println!("{failed} check(s) failed, at least one was fatal.");
        return Err(Failure::new("checks failed"));
    }
    if failed > 0 {
        println!("{failed} check(s) failed, but none are fatal.");
    } else {
        println!("All checks passed.");
    }
    Ok(())
}

async fn timed(check: impl Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::time::timeout(CHECK_TIMEOUT, check).await.unwrap_or_else(|_| Err("context deadline exceeded".to_owned()))
}

async fn clock_check(host: &str, say: &dyn Fn(String)) -> Result<(), String> {
    let threshold = match std::env::var("DRIFT_THRESHOLD").ok().filter(|v| !v.is_empty()) {
        None => Duration::from_secs(60),
        Some(v) => match super::flags::go_duration(&v) {
            Ok(d) if d.is_zero() || d.as_millis() > 0 => d,
            Ok(_) => return Err("env var DRIFT_THRESHOLD expected to be 0 or at least 1ms".to_owned()),
            Err(_) => {
                return Err("env var DRIFT_THRESHOLD expected to be an duration (5s, 100ms, etc.)".to_owned());
            }
        },
    };
    say(format!("checking with NTP service at {host} and allowed clock drift {} ms", threshold.as_millis()));
    match ntp::synced(host, threshold).await {
        Ok(true) => Ok(()),
        Ok(false) => Err("praefect: clock is not synced".to_owned()),
        Err(e) => Err(format!("praefect: {e}")),
    }
}

/// `praefect list-untracked-repositories [-older-than d] [-delimiter s]`:
/// every repository on a node's disk that the database has no replica
/// record of, as JSON lines.
pub(super) async fn list_untracked(ctx: &Ctx, f: &Parsed) -> Result<(), Failure> {
    let older_than = f.duration("older-than")?.unwrap_or(Duration::from_secs(6 * 3600));
    let delimiter = f.string("delimiter");
    let cutoff = SystemTime::now().checked_sub(older_than).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut conns = Vec::new();
    for vs in &ctx.config.virtual_storages {
        for node in &vs.nodes {
            let conn = dial_with_timeout(&node.address, &node.token, DIAL_TIMEOUT).await.map_err(|_| {
                Failure::new(format!("dial nodes: dial with {:?} gitaly at {:?}", node.storage, node.address))
            })?;
            conns.push((vs.name.clone(), node.storage.clone(), conn));
        }
    }
    let db = ctx.db()?;
    let mut header = true;
    for (vs, storage, conn) in conns {
        let what = format!("exec on {vs:?}/{storage:?}");
        let mut stream = InternalGitalyClient::new(conn.channel())
            .walk_repos(WalkReposRequest { storage_name: storage.clone() })
            .await
            .or_fail(&what)?
            .into_inner();
        let mut batch = Vec::new();
        loop {
            let next = stream.message().await.or_fail(&what)?;
            if let Some(repo) = &next {
                let modified = repo.modification_time.and_then(|t| SystemTime::try_from(t).ok());
                if modified.is_none_or(|m| m < cutoff) {
                    batch.push(repo.relative_path.clone());
                }
            }
            if batch.len() >= UNTRACKED_BATCH || (next.is_none() && !batch.is_empty()) {
                let missing = db.untracked_replica_paths(&vs, &storage, &batch).await.or_fail("existence check")?;
                batch.clear();
                for path in missing {
                    if header {
                        println!(
                            "The following repositories were found on disk, but missing from the tracking database:"
                        );
                        header = false;
                    }
                    let entry = serde_json::json!({ "relative_path": path, "storage": storage, "virtual_storage": vs });
                    print!("{entry}{delimiter}");
                }
            }
            if next.is_none() {
                break;
            }
        }
    }
    Ok(())
}
