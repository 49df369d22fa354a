//! Helpers the operations share for upstream's older error shapes and
//! request signatures.

use crate::error::Error;
use crate::git::write::Identity;
use cairn_proto::gitaly::{CustomHookError, User};

/// What upstream's custom hook error says: the hook's stderr, else its
/// stdout, untouched (GitLab shows "GitLab:"-prefixed output as is).
pub(super) fn custom_hook_text(hook: &CustomHookError) -> String {
    let text = if !hook.stderr.trim_ascii().is_empty() { &hook.stderr } else { &hook.stdout };
    String::from_utf8_lossy(text).into_owned()
}

/// The signature of `user` at the request's `timestamp` (now when unset)
/// in the user's time zone, as upstream signs commits and tags.
pub(super) fn signature(user: &User, timestamp: Option<&prost_types::Timestamp>) -> Result<Identity, Error> {
    Identity::new(&user.name, &user.email, timestamp.map(|t| t.seconds), &user.timezone)
        .map_err(|e| Error::invalid_argument(e.to_string()))
}

/// A request's `expected_old_oid` resolved to the object it names, with
/// upstream's errors for a malformed or unknown id.
pub(super) fn expected_old(r: &crate::git::Repo, expected: &str) -> Result<crate::git::objects::ObjectId, Error> {
    let format = r.object_format();
    if expected.len() != format.hex_len() || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid_argument(format!(
            "invalid expected old object ID: invalid object ID: {expected:?}"
        ))
        .with_metadata("old_object_id", expected.to_owned()));
    }
    crate::git::repo::resolve_revision(r, format!("{expected}^{{object}}").as_bytes()).ok_or_else(|| {
        Error::invalid_argument("cannot resolve expected old object ID: reference not found")
            .with_metadata("old_object_id", expected.to_owned())
    })
}
