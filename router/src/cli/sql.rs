//! `sql-ping`, `sql-migrate`, `sql-migrate-status`, `sql-migrate-down`.

use super::flags::Parsed;
use super::{Ctx, Failure, OrFail};
use crate::db::migrate;
use std::time::Instant;

/// `praefect sql-ping`: connects and checks the server version.
pub(super) async fn ping(ctx: &Ctx) -> Result<(), Failure> {
    let db = ctx.db()?;
    db.ping().await.or_fail("praefect sql-ping: fail")?;
    println!("praefect sql-ping: OK");
    Ok(())
}

fn now() -> String {
    // Upstream's "2006-01-02T15:04:05", in UTC.
    let s = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    s.trim_end_matches('Z').to_owned()
}

/// `praefect sql-migrate [-ignore-unknown=false] [-verbose]`.
pub(super) async fn migrate(ctx: &Ctx, f: &Parsed) -> Result<(), Failure> {
    let db = ctx.db()?;
    let pending = migrate::pending(&db).await.or_fail("sql-migrate")?;
    if pending.is_empty() {
        println!("praefect sql-migrate: all migrations are up");
        return Ok(());
    }
    println!("praefect sql-migrate: migrations to apply: {}\n", pending.len());
    let verbose = f.bool("verbose");
    let mut started = Instant::now();
    if let Some(first) = pending.first() {
        println!("=  {} {}: migrating", now(), first.id);
        if verbose {
            println!("\t{}", first.up);
        }
    }
    let mut remaining = pending.iter().skip(1);
    let applied = migrate::migrate(&db, f.bool("ignore-unknown"), |id, _| {
        println!("== {} {id}: applied ({:?})", now(), started.elapsed());
        if let Some(next) = remaining.next() {
            println!("=  {} {}: migrating", now(), next.id);
            if verbose {
                println!("\t{}", next.up);
            }
            started = Instant::now();
        }
    })
    .await
    .map_err(|e| Failure::new(format!("{}: fail: {}", now(), cairn_node::error::error_chain(&e))))?;
    println!("\npraefect sql-migrate: OK (applied {applied} migrations)");
    Ok(())
}

/// `praefect sql-migrate-status`: a table of every migration and when it
/// was applied.
pub(super) async fn migrate_status(ctx: &Ctx) -> Result<(), Failure> {
    let db = ctx.db()?;
    let mut rows = migrate::status(&db).await.or_fail("sql-migrate-status")?;
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|s| {
            let applied = match (s.unknown, s.applied_at) {
                (true, _) => "unknown migration".to_owned(),
                (false, Some(at)) => at,
                (false, None) => "no".to_owned(),
            };
            vec![s.id, applied]
        })
        .collect();
    print!("{}", boxed_table(&["MIGRATION", "APPLIED"], &rows));
    Ok(())
}

/// `praefect sql-migrate-down [-f] N`: lists (or with -f reverts) the N
/// most recent migrations.
pub(super) async fn migrate_down(ctx: &Ctx, f: &Parsed) -> Result<(), Failure> {
    let n = match f.positional.as_slice() {
        [] => return Err(Failure::new("sql-migrate-down requires a single positional argument")),
        [n] => n,
        _ => return Err(Failure::new("sql-migrate-down accepts only single positional argument")),
    };
    let n: i64 = n.parse().map_err(|_| Failure::new(format!("strconv.Atoi: parsing {n:?}: invalid syntax")))?;
    if n < 1 {
        return Err(Failure::new("number of migrations to roll back must be 1 or more"));
    }
    let db = ctx.db()?;
    let apply = f.bool("f");
    let ids = migrate::down(&db, n as usize, apply).await.or_fail("sql-migrate-down")?;
    if apply {
        println!("OK (applied {} \"down\" migrations)", ids.len());
        return Ok(());
    }
    println!("DRY RUN -- would roll back:\n");
    for id in &ids {
        println!("- {id}");
    }
    println!("\nTo apply these migrations run with -f");
    Ok(())
}

/// A bordered table in the style upstream's table writer draws: centred
/// headers, left-aligned cells.
pub(super) fn boxed_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let rule: String = widths.iter().map(|w| format!("+{}", "-".repeat(w + 2))).collect::<String>() + "+\n";
    let mut out = rule.clone();
    for (h, w) in header.iter().zip(&widths) {
        out.push_str(&format!("| {h:^w$} "));
    }
    out.push_str("|\n");
    out.push_str(&rule);
    for row in rows {
        for (cell, w) in row.iter().zip(&widths) {
            out.push_str(&format!("| {cell:<w$} "));
        }
        out.push_str("|\n");
    }
    out.push_str(&rule);
    out
}
