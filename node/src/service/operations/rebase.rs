//! UserRebaseConfirmable and UserRebaseToRef: a branch's own commits
//! replayed on top of another revision (see [`crate::git::rebase`]) in the
//! change's quarantine. Confirmable answers the rebased tip first and moves
//! the branch through the receive hooks only once the client confirms;
//! ToRef points a `refs/merge-requests/...` reference at it without hooks.

use super::common::{signature, target_old_value};
use super::start::{quarantined, start_commit};
use super::update::{Call, UpdateError};
use super::{Responder, receive};
use crate::error::{Error, Result};
use crate::git::rebase::{self, Replayed};
use crate::git::repo::Quarantine;
use crate::git::write::Identity;
use crate::git::{commit, refs, repo};
use crate::storage::RepoPath;
use cairn_proto::gitaly::user_rebase_confirmable_request::{
    Header, UserRebaseConfirmableRequestPayload as RequestPayload,
};
use cairn_proto::gitaly::user_rebase_confirmable_response::UserRebaseConfirmableResponsePayload as Payload;
use cairn_proto::gitaly::*;
use tonic::Streaming;

/// Rebases `branch` onto `upstream` (both commits readable through
/// `objects`) with `committer` as committer of every replayed commit.
async fn rebase_onto(
    call: &Call<'_>,
    path: &RepoPath,
    objects: &Quarantine,
    upstream: &str,
    branch: &str,
    committer: &Identity,
) -> Result<Replayed> {
    let view = quarantined(path, objects);
    let (up, br) = (upstream.to_owned(), branch.to_owned());
    let (onto_tree, done, format) = call
        .deps
        .read_at(view.clone(), move |r, _| {
            let onto = commit::find(r, up.as_bytes())?
                .ok_or_else(|| Error::invalid_argument("resolving upstream commit: reference not found"))?;
            if commit::find(r, br.as_bytes())?.is_none() {
                return Err(Error::invalid_argument("resolving branch commit: reference not found"));
            }
            Ok((onto.tree, rebase::fast_forward(r, &up, &br)?, r.object_format()))
        })
        .await?;
    if let Some(tip) = done {
        return Ok(Replayed::Tip(tip));
    }
    let cid = call.correlation_id;
    let git = &call.deps.git;
    let rebase_error = |e| Error::internal("rebase using merge-tree", e);
    let todo = rebase::todo_list(git, &path.path, objects, upstream, branch, cid).await.map_err(rebase_error)?;
    let picks = call.deps.read_at(view, move |r, _| Ok(rebase::read_picks(r, &todo)?)).await?;
    rebase::replay(git, &path.path, objects, format, upstream, &onto_tree, &picks, committer, cid)
        .await
        .map_err(rebase_error)
}

pub(super) async fn confirmable(
    call: Call<'_>,
    mut requests: Streaming<UserRebaseConfirmableRequest>,
    out: &Responder<UserRebaseConfirmableResponse>,
) -> Result<()> {
    let first = receive(&mut requests).await?.ok_or_else(|| Error::invalid_argument("empty request"))?;
    let Some(RequestPayload::Header(header)) = first.user_rebase_confirmable_request_payload else {
        return Err(Error::invalid_argument("empty UserRebaseConfirmableRequest.Header"));
    };
    let path = validate_header(&call, &header)?;
    let user = header.user.as_ref().expect("validated");
    let repository = header.repository.clone().unwrap_or_default();
    let change = call.change(&repository, &path, user).with_push_options(&header.git_push_options);
    let quarantine = change.quarantine()?;
    let objects = quarantine.objects();

    let format = call.deps.read_at(path.clone(), |r, _| Ok(r.object_format())).await?;
    let old = header.branch_sha.to_ascii_lowercase();
    if !format.is_oid(&old) {
        return Err(Error::not_found(format!("invalid object ID: {:?}", header.branch_sha)));
    }
    let start =
        start_commit(&call, (&repository, &path), &objects, header.remote_repository.as_ref(), &header.remote_branch)
            .await?
            .ok_or_else(|| Error::invalid_argument("resolve start ref: reference not found"))?;
    let committer = signature(user, header.timestamp.as_ref())?;

    let tip = match rebase_onto(&call, &path, &objects, &start, &old, &committer).await? {
        Replayed::Tip(tip) => tip,
        Replayed::Conflict { commit, paths } => {
            return Err(Error::failed_precondition(format!(
                "rebasing commits: rebase: commit {commit:?}: there are conflicting files"
            ))
            .with_detail(&UserRebaseConfirmableError {
                error: Some(user_rebase_confirmable_error::Error::RebaseConflict(MergeConflictError {
                    conflicting_files: paths,
                    conflicting_commit_ids: vec![start, old],
                })),
            }));
        }
    };
    out.send(UserRebaseConfirmableResponse {
        user_rebase_confirmable_response_payload: Some(Payload::RebaseSha(tip.clone())),
    })
    .await?;

    let second = receive(&mut requests).await?.ok_or_else(|| Error::internal_msg("recv: EOF"))?;
    if !matches!(second.user_rebase_confirmable_request_payload, Some(RequestPayload::Apply(true))) {
        return Err(Error::failed_precondition("rebase aborted by client"));
    }
    let reference = [b"refs/heads/".as_slice(), &header.branch].concat();
    change.update_reference(Some(quarantine), &reference, &tip, &old).await.map_err(|e| {
        let access_check = |message: String| {
            Error::permission_denied(format!("access check: {:?}", e.message())).with_detail(
                &UserRebaseConfirmableError {
                    error: Some(user_rebase_confirmable_error::Error::AccessCheck(AccessCheckError {
                        error_message: message,
                        ..Default::default()
                    })),
                },
            )
        };
        match &e {
            UpdateError::CustomHook(hook) => access_check(super::common::custom_hook_text(hook)),
            UpdateError::AccessCheck(check) => access_check(check.error_message.clone()),
            other => Error::internal_msg(format!("updating ref with hooks: {}", other.message())),
        }
    })?;
    out.send(UserRebaseConfirmableResponse {
        user_rebase_confirmable_response_payload: Some(Payload::RebaseApplied(true)),
    })
    .await
}

/// Upstream's checks of the header, in its order; the repository's path.
fn validate_header(call: &Call<'_>, header: &Header) -> Result<RepoPath> {
    let path = call.deps.storages.repo(header.repository.as_ref())?;
    let invalid = |m: &str| Err(Error::invalid_argument(m.to_owned()));
    if header.user.is_none() {
        return invalid("empty User");
    }
    if header.branch.is_empty() {
        return invalid("empty Branch");
    }
    if header.branch_sha.is_empty() {
        return invalid("empty BranchSha");
    }
    if header.remote_repository.is_none() {
        return invalid("empty RemoteRepository");
    }
    if header.remote_branch.is_empty() {
        return invalid("empty RemoteBranch");
    }
    if refs::validate_revision(&header.remote_branch).is_err() {
        return invalid("invalid branch name");
    }
    Ok(path)
}

pub(super) async fn to_ref(call: Call<'_>, req: UserRebaseToRefRequest) -> Result<UserRebaseToRefResponse> {
    let path = call.deps.storages.repo(req.repository.as_ref())?;
    let invalid = |m: &'static str| Err(Error::invalid_argument(m));
    if req.first_parent_ref.is_empty() {
        return invalid("empty FirstParentRef");
    }
    let Some(user) = &req.user else { return invalid("empty User") };
    if req.source_sha.is_empty() {
        return invalid("empty SourceSha");
    }
    if req.target_ref.is_empty() {
        return invalid("empty TargetRef");
    }
    if !req.target_ref.starts_with(b"refs/merge-requests") {
        return invalid("invalid TargetRef");
    }
    let (first_parent, source) = (req.first_parent_ref.clone(), req.source_sha.clone().into_bytes());
    let (target, expected) = (req.target_ref.clone(), req.expected_old_oid.clone());
    let (onto, branch, old) = call
        .deps
        .read_at(path.clone(), move |r, _| {
            let onto = repo::resolve_revision(r, &first_parent)
                .ok_or_else(|| Error::invalid_argument("invalid FirstParentRef"))?;
            let branch =
                repo::resolve_revision(r, &source).ok_or_else(|| Error::invalid_argument("invalid SourceSha"))?;
            Ok((onto.to_string(), branch.to_string(), target_old_value(r, &target, &expected)?))
        })
        .await?;
    let committer = signature(user, req.timestamp.as_ref())?;

    let repository = req.repository.clone().unwrap_or_default();
    let change = call.change(&repository, &path, user);
    let quarantine = change.quarantine()?;
    let objects = quarantine.objects();
    let target_name = String::from_utf8_lossy(&req.target_ref).into_owned();
    let tip = match rebase_onto(&call, &path, &objects, &onto, &branch, &committer).await? {
        Replayed::Tip(tip) => tip,
        Replayed::Conflict { .. } => {
            return Err(Error::failed_precondition(format!(
                "failed to rebase {branch} on {onto} while preparing {target_name} due to conflict"
            )));
        }
    };
    change.update_reference_without_hooks(Some(quarantine), &req.target_ref, &tip, &old).await.map_err(|_| {
        Error::failed_precondition(format!("could not update {target_name}. Please refresh and try again"))
    })?;
    Ok(UserRebaseToRefResponse { commit_id: tip })
}
