//! Per-repository primaries.
//!
//! A replica may be primary when it is healthy by consensus, holds the
//! latest generation and is assigned (an unassigned one only when no
//! assigned replica qualifies). Every change of primary bumps the
//! repository's term through a compare-and-set on the old primary, so two
//! routers electing at once agree on one winner, and writes started under
//! the old term are refused (see `Db::begin_write`).

use crate::db::repositories::RepoState;
use crate::db::{Db, DbError};
use crate::health::HealthView;

/// Replicas that may be primary, in storage order.
pub fn candidates(state: &RepoState, configured: &[String], health: &HealthView) -> Vec<String> {
    let healthy = health.consensus(&state.virtual_storage);
    let eligible = |s: &&str| configured.iter().any(|c| c == s) && healthy.contains(*s);
    let current: Vec<&str> = state.up_to_date().filter(eligible).collect();
    let assigned: Vec<String> = current.iter().filter(|s| state.is_assigned(s)).map(|s| (*s).to_owned()).collect();
    if assigned.is_empty() { current.into_iter().map(str::to_owned).collect() } else { assigned }
}

/// The repository's primary and term, electing a new primary first when
/// the recorded one is no longer valid. When nobody qualifies the recorded
/// primary is returned unchanged (writes then fail on it, reads may not).
pub async fn ensure_primary(
    db: &Db,
    health: &HealthView,
    configured: &[String],
    mut state: RepoState,
) -> Result<(Option<String>, i64), DbError> {
    for _ in 0..3 {
        let candidates = candidates(&state, configured, health);
        if let Some(p) = &state.primary
            && candidates.contains(p)
        {
            return Ok((Some(p.clone()), state.term));
        }
        let Some(pick) = pick(&candidates) else { return Ok((state.primary.clone(), state.term)) };
        match db.change_primary(state.id, state.primary.as_deref(), &pick).await? {
            Some(term) => {
                tracing::info!(
                    virtual_storage = %state.virtual_storage,
                    relative_path = %state.relative_path,
                    previous = state.primary.as_deref().unwrap_or(""),
                    primary = %pick,
                    term,
                    "elected a new primary"
                );
                return Ok((Some(pick), term));
            }
            // Another router elected first: read what it chose.
            None => match db.repository_by_id(state.id).await? {
                Some(s) => state = s,
                None => return Ok((None, 0)),
            },
        }
    }
    Ok((state.primary.clone(), state.term))
}

fn pick(candidates: &[String]) -> Option<String> {
    if candidates.is_empty() { None } else { Some(candidates[fastrand::usize(..candidates.len())].clone()) }
}
