//! UserMergeBranch: the two-phase merge of a commit into a branch. The
//! first message computes the merge commit (in a quarantine) and answers
//! its id; only when the client confirms with `apply` does the branch move,
//! through the receive hooks.

use super::common::{expected_old, refusal_text, signature, signing_key};
use super::update::{Call, UpdateError};
use super::{Responder, receive};
use crate::error::{Error, Result};
use crate::git::merge::{self, MergeOptions, MergeOutcome, NewCommit};
use crate::git::references;
use cairn_proto::gitaly::{
    MergeConflictError, OperationBranchUpdate, UserMergeBranchError, UserMergeBranchRequest, UserMergeBranchResponse,
    user_merge_branch_error,
};
use tonic::Streaming;

pub(super) async fn handle(
    call: Call<'_>,
    mut requests: Streaming<UserMergeBranchRequest>,
    out: &Responder<UserMergeBranchResponse>,
) -> Result<()> {
    let first = receive(&mut requests).await?.ok_or_else(|| Error::invalid_argument("empty request"))?;
    let path = call.deps.storages.repo(first.repository.as_ref())?;
    let invalid = |m: &'static str| Err(Error::invalid_argument(m));
    let Some(user) = &first.user else { return invalid("empty user") };
    if user.email.is_empty() {
        return invalid("empty user email");
    }
    if user.name.is_empty() {
        return invalid("empty user name");
    }
    if first.branch.is_empty() {
        return invalid("empty branch name");
    }
    if first.commit_id.is_empty() {
        return invalid("empty commit ID");
    }
    if first.message.is_empty() {
        return invalid("empty message");
    }
    let reference = [b"refs/heads/".as_slice(), &first.branch].concat();
    let expected = first.expected_old_oid.clone();
    let lookup = reference.clone();
    let ours = call
        .deps
        .read_at(path.clone(), move |repo, _| {
            if !expected.is_empty() {
                return expected_old(repo, &expected).map(|id| id.to_string());
            }
            references::resolve_name(repo, &lookup)
                .map(|id| id.to_string())
                .ok_or_else(|| Error::not_found("reference not found"))
        })
        .await?;
    let sig = signature(user, first.timestamp.as_ref())?;

    let repository = first.repository.clone().unwrap_or_default();
    let change = call.change(&repository, &path, user);
    let quarantine = change.quarantine()?;
    let objects = quarantine.objects();
    let theirs = &first.commit_id;
    let options = MergeOptions { allow_unrelated_histories: true, ..Default::default() };
    let outcome = merge::merge_tree(&call.deps.git, &path.path, &objects, &ours, theirs, &options, call.correlation_id)
        .await
        .map_err(|e| Error::internal("merge", e))?;
    let tree = match outcome {
        MergeOutcome::Clean(tree) => tree,
        conflict @ MergeOutcome::Conflict { .. } => {
            return Err(Error::failed_precondition("merging commits: merge: there are conflicting files").with_detail(
                &UserMergeBranchError {
                    error: Some(user_merge_branch_error::Error::MergeConflict(MergeConflictError {
                        conflicting_files: conflict.conflicting_paths(),
                        conflicting_commit_ids: vec![ours.clone(), theirs.clone()],
                    })),
                },
            ));
        }
        MergeOutcome::Unrelated => return Err(Error::internal_msg("merge: unrelated histories")),
    };
    // A squash merge keeps only the branch's side as parent.
    let parents = if first.squash { vec![ours.clone()] } else { vec![ours.clone(), theirs.clone()] };
    let new = NewCommit {
        tree: &tree,
        parents: &parents,
        author: &sig,
        committer: &sig,
        message: &first.message,
        signing_key: signing_key(call.deps, first.sign),
    };
    let merge_id = merge::write_commit(&call.deps.git, &path.path, &objects, &new, call.correlation_id)
        .await
        .map_err(|e| Error::internal("merge: create commit from tree", e))?;
    out.send(UserMergeBranchResponse { commit_id: merge_id.clone(), branch_update: None }).await?;

    let second = receive(&mut requests).await?.ok_or_else(|| Error::canceled("client went away"))?;
    if !second.apply {
        return Err(Error::failed_precondition("merge aborted by client"));
    }
    change.update_reference(Some(quarantine), &reference, &merge_id, &ours).await.map_err(|e| {
        let detail = |error| UserMergeBranchError { error: Some(error) };
        match e {
            UpdateError::AccessCheck(ref check) => Error::permission_denied(refusal_text(&e))
                .with_detail(&detail(user_merge_branch_error::Error::AccessCheck(check.clone()))),
            UpdateError::CustomHook(ref hook) => Error::permission_denied(refusal_text(&e))
                .with_detail(&detail(user_merge_branch_error::Error::CustomHook(hook.clone()))),
            UpdateError::Reference(ref update, _) => Error::failed_precondition(refusal_text(&e))
                .with_detail(&detail(user_merge_branch_error::Error::ReferenceUpdate(update.clone()))),
            UpdateError::Other(e) => Error::internal("target update", e),
        }
    })?;
    out.send(UserMergeBranchResponse {
        commit_id: String::new(),
        branch_update: Some(OperationBranchUpdate { commit_id: merge_id, repo_created: false, branch_created: false }),
    })
    .await
}
