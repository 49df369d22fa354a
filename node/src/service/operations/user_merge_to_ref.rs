//! UserMergeToRef: merges `source_sha` into a branch (or `first_parent_ref`)
//! and points a `refs/merge-requests/...` reference at the merge commit,
//! without hooks as upstream; GitLab uses it to test-merge merge requests.

use super::common::{signature, signing_key, target_old_value};
use super::update::Call;
use crate::error::{Error, Result};
use crate::git::commit;
use crate::git::merge::{self, MergeOptions, MergeOutcome, NewCommit};
use cairn_proto::gitaly::{UserMergeToRefRequest, UserMergeToRefResponse};

pub(super) async fn handle(call: Call<'_>, req: UserMergeToRefRequest) -> Result<UserMergeToRefResponse> {
    let path = call.deps.storages.repo(req.repository.as_ref())?;
    #[allow(deprecated)]
    let branch = req.branch.clone();
    let invalid = |m: &'static str| Err(Error::invalid_argument(m));
    if req.first_parent_ref.is_empty() && branch.is_empty() {
        return invalid("empty first parent ref and branch name");
    }
    let Some(user) = &req.user else { return invalid("empty user") };
    if req.source_sha.is_empty() {
        return invalid("empty source SHA");
    }
    if req.target_ref.is_empty() {
        return invalid("empty target ref");
    }
    if !req.target_ref.starts_with(b"refs/merge-requests") {
        return invalid("invalid target ref");
    }
    let first_parent = if req.first_parent_ref.is_empty() { branch } else { req.first_parent_ref.clone() };
    let source = req.source_sha.clone().into_bytes();
    let target = req.target_ref.clone();
    let expected = req.expected_old_oid.clone();
    let (ours, theirs, old) = call
        .deps
        .read_at(path.clone(), move |repo, _| {
            let source_error = || Error::invalid_argument("Invalid merge source");
            let ours = commit::find(repo, &first_parent)?.ok_or_else(source_error)?;
            let theirs = commit::find(repo, &source)?.ok_or_else(source_error)?;
            let old = target_old_value(repo, &target, &expected)?;
            Ok((ours.id, theirs.id, old))
        })
        .await?;
    let sig = signature(user, req.timestamp.as_ref())?;

    let repository = req.repository.clone().unwrap_or_default();
    let change = call.change(&repository, &path, user);
    let quarantine = change.quarantine()?;
    let objects = quarantine.objects();
    let failed = || {
        Error::failed_precondition(format!(
            "Failed to create merge commit for source_sha {theirs} and target_sha {ours} at {}",
            String::from_utf8_lossy(&req.target_ref)
        ))
    };
    let options = MergeOptions { allow_unrelated_histories: true, ..Default::default() };
    let outcome =
        merge::merge_tree(&call.deps.git, &path.path, &objects, &ours, &theirs, &options, call.correlation_id)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "unable to create merge commit");
                failed()
            })?;
    let MergeOutcome::Clean(tree) = outcome else { return Err(failed()) };
    let parents = [ours.clone(), theirs.clone()];
    let new = NewCommit {
        tree: &tree,
        parents: &parents,
        author: &sig,
        committer: &sig,
        message: &req.message,
        signing_key: signing_key(call.deps, req.sign),
    };
    let merge_id = merge::write_commit(&call.deps.git, &path.path, &objects, &new, call.correlation_id)
        .await
        .map_err(|e| Error::internal("create commit from tree", e))?;
    change.update_reference_without_hooks(Some(quarantine), &req.target_ref, &merge_id, &old).await.map_err(|_| {
        Error::failed_precondition(format!(
            "Could not update {}. Please refresh and try again",
            String::from_utf8_lossy(&req.target_ref)
        ))
    })?;
    Ok(UserMergeToRefResponse { commit_id: merge_id })
}
