//! Pieces the commit-writing operations (merges, cherry-picks, reverts,
//! squashes, rebases) share: signatures from a request, the expected old
//! value of a reference, and upstream's wording of refused updates.

use super::update::UpdateError;
use crate::error::{Error, Result};
use crate::git::merge::Signature;
use crate::git::{Repo, repo};
use cairn_proto::gitaly::User;

/// The signature of `user` at the request's `timestamp` (now without one),
/// in the user's time zone (UTC when unset), as upstream stamps commits.
pub(super) fn signature(user: &User, timestamp: Option<&prost_types::Timestamp>) -> Result<Signature> {
    let seconds = match timestamp {
        Some(t) => t.seconds,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default(),
    };
    let offset = offset_at(&user.timezone, seconds)?;
    Ok(Signature { name: user.name.clone(), email: user.email.clone(), seconds, offset })
}

/// The UTC offset (seconds) of time zone `name` at `seconds`.
fn offset_at(name: &str, seconds: i64) -> Result<i32> {
    if name.is_empty() || name == "UTC" {
        return Ok(0);
    }
    let tz = jiff::tz::TimeZone::get(name).map_err(|_| Error::invalid_argument(format!("unknown time zone {name}")))?;
    let at = jiff::Timestamp::from_second(seconds)
        .map_err(|e| Error::invalid_argument(format!("invalid timestamp: {e}")))?;
    Ok(tz.to_offset(at).seconds())
}

/// The object `expected` (a request's `expected_old_oid`) names in `repo`,
/// checked as upstream does; errors carry the `old_object_id` metadata.
pub(super) fn expected_old_oid(repo: &Repo, expected: &str) -> Result<String> {
    let format = repo.object_format();
    if expected.len() != format.hex_len() || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid_argument(format!(
            "invalid expected old object ID: invalid object ID: {expected:?}"
        ))
        .with_metadata("old_object_id", expected));
    }
    let id = repo::resolve_revision(repo, format!("{expected}^{{object}}").as_bytes()).ok_or_else(|| {
        Error::invalid_argument("cannot resolve expected old object ID: reference not found")
            .with_metadata("old_object_id", expected)
    })?;
    Ok(id.to_string())
}

/// Upstream's text of a refused update as the merge-like RPCs wrap it:
/// the access check's `GitLab: <message>`, a custom hook's output, or the
/// reference update's cause.
pub(super) fn refusal_text(e: &UpdateError) -> String {
    match e {
        UpdateError::AccessCheck(check) => format!("GitLab: {}", check.error_message),
        UpdateError::CustomHook(hook) => {
            let text = if !hook.stderr.trim_ascii().is_empty() { &hook.stderr } else { &hook.stdout };
            String::from_utf8_lossy(text).into_owned()
        }
        other => other.message(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_the_users_time_zone() {
        // 2023-11-14T22:13:20Z: Berlin is on winter time, New York too.
        assert_eq!(offset_at("", 1_700_000_000).expect("utc"), 0);
        assert_eq!(offset_at("Europe/Berlin", 1_700_000_000).expect("berlin"), 3600);
        assert_eq!(offset_at("America/New_York", 1_700_000_000).expect("ny"), -5 * 3600);
        assert!(offset_at("Mars/Olympus", 0).is_err());
    }
}
