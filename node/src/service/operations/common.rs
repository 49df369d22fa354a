//! Pieces the operations share: signatures from a request, the expected
//! old value of a reference, and upstream's wording of refused updates.

use super::update::UpdateError;
use crate::error::{Error, Result};
use crate::git::objects::ObjectId;
use crate::git::write::Identity;
use crate::git::{Repo, references, repo};
use cairn_proto::gitaly::{CustomHookError, User};

/// The signature of `user` at the request's `timestamp` (now when unset)
/// in the user's time zone (UTC when unset), as upstream stamps commits and
/// tags; replicas given the same request sign identically.
pub(super) fn signature(user: &User, timestamp: Option<&prost_types::Timestamp>) -> Result<Identity> {
    Identity::new(&user.name, &user.email, timestamp.map(|t| t.seconds), &user.timezone)
        .map_err(|e| Error::invalid_argument(e.to_string()))
}

/// The object `expected` (a request's `expected_old_oid`) names in `repo`,
/// checked as upstream does; errors carry the `old_object_id` metadata.
pub(super) fn expected_old(repo: &Repo, expected: &str) -> Result<ObjectId> {
    let format = repo.object_format();
    if !format.is_oid(expected) {
        return Err(Error::invalid_argument(format!(
            "invalid expected old object ID: invalid object ID: {expected:?}"
        ))
        .with_metadata("old_object_id", expected));
    }
    repo::resolve_revision(repo, format!("{expected}^{{object}}").as_bytes()).ok_or_else(|| {
        Error::invalid_argument("cannot resolve expected old object ID: reference not found")
            .with_metadata("old_object_id", expected)
    })
}

/// The value a GitLab-owned reference (`refs/merge-requests/...`) must
/// still have when UserMergeToRef or UserRebaseToRef overwrites it: the
/// request's `expected_old_oid`, else its current value (the zero id when
/// it does not exist). Symbolic references are refused.
pub(super) fn target_old_value(repo: &Repo, target: &[u8], expected: &str) -> Result<String> {
    if !expected.is_empty() {
        return expected_old(repo, expected).map(|id| id.to_string());
    }
    if references::is_symbolic(repo, target) {
        return Err(Error::failed_precondition(format!(
            "target reference is symbolic: {:?}",
            String::from_utf8_lossy(target)
        )));
    }
    Ok(references::resolve_name(repo, target).map_or_else(|| repo.object_format().zero_oid(), |id| id.to_string()))
}

/// The key to sign a request's commits with: `[git] signing_key` when the
/// request asks (`sign`) and the key is an OpenSSH key. With an OpenPGP key
/// (not supported yet) commits stay unsigned, with a warning.
pub(super) fn signing_key(deps: &crate::service::Deps, sign: bool) -> Option<&std::path::Path> {
    let key = deps.config.git.signing_key.as_deref().filter(|_| sign)?;
    if crate::signing::read_public_key(key).is_ok_and(|k| k.is_some()) {
        return Some(key);
    }
    tracing::warn!(key = %key.display(), "commit not signed: only OpenSSH signing keys are supported");
    None
}

/// What upstream's custom hook error says: the hook's stderr, else its
/// stdout, untouched (GitLab shows "GitLab:"-prefixed output as is).
pub(super) fn custom_hook_text(hook: &CustomHookError) -> String {
    let text = if !hook.stderr.trim_ascii().is_empty() { &hook.stderr } else { &hook.stdout };
    String::from_utf8_lossy(text).into_owned()
}

/// Upstream's text of a refused update as the merge-like RPCs wrap it:
/// the access check's `GitLab: <message>`, a custom hook's output, or the
/// reference update's cause.
pub(super) fn refusal_text(e: &UpdateError) -> String {
    match e {
        UpdateError::AccessCheck(check) => format!("GitLab: {}", check.error_message),
        UpdateError::CustomHook(hook) => custom_hook_text(hook),
        other => other.message(),
    }
}
