//! UserCherryPick and UserRevert: apply a commit's change (or its inverse)
//! on top of a branch as one new commit, with a three-way merge against
//! the commit's parent (or the commit itself for a revert) as merge base,
//! then move the branch through the receive hooks.

use super::common::{expected_old, signature, signing_key};
use super::start::{quarantined, start_commit};
use super::update::{Call, Change, UpdateError};
use crate::error::{Error, Result};
use crate::git::merge::{self, MergeOptions, MergeOutcome, NewCommit};
use crate::git::repo::Quarantine;
use crate::git::write::{Identity, format_offset};
use crate::git::{ObjectFormat, commit, repo};
use crate::storage::RepoPath;
use cairn_proto::gitaly::*;

/// The fields cherry-pick and revert requests share.
struct Pick<'a> {
    repository: Option<&'a Repository>,
    user: Option<&'a User>,
    commit: Option<&'a GitCommit>,
    branch_name: &'a [u8],
    message: &'a [u8],
    start_branch_name: &'a [u8],
    start_repository: Option<&'a Repository>,
    dry_run: bool,
    timestamp: Option<&'a prost_types::Timestamp>,
    expected_old_oid: &'a str,
    sign: bool,
}

/// The [`Pick`] of a cherry-pick or revert request (same field names).
macro_rules! pick_of {
    ($req:ident) => {
        Pick {
            repository: $req.repository.as_ref(),
            user: $req.user.as_ref(),
            commit: $req.commit.as_ref(),
            branch_name: &$req.branch_name,
            message: &$req.message,
            start_branch_name: &$req.start_branch_name,
            start_repository: $req.start_repository.as_ref(),
            dry_run: $req.dry_run,
            timestamp: $req.timestamp.as_ref(),
            expected_old_oid: &$req.expected_old_oid,
            sign: $req.sign,
        }
    };
}

/// What the shared part found, for the RPC-specific steps.
struct Prepared {
    start: String,
    start_tree: String,
    had_branches: bool,
    picked: Picked,
    format: ObjectFormat,
}

/// The commit being picked or reverted.
struct Picked {
    id: String,
    first_parent: Option<String>,
    author: Option<crate::git::objects::Signature>,
}

/// Upstream's checks of a request, in its order; the repository's path
/// and the user.
fn validate<'a>(call: &Call<'_>, req: &Pick<'a>) -> Result<(RepoPath, &'a User)> {
    let path = call.deps.storages.repo(req.repository)?;
    let Some(user) = req.user else { return Err(Error::invalid_argument("empty User")) };
    if req.commit.is_none() {
        return Err(Error::invalid_argument("empty Commit"));
    }
    if req.branch_name.is_empty() {
        return Err(Error::invalid_argument("empty BranchName"));
    }
    if req.message.is_empty() {
        return Err(Error::invalid_argument("empty Message"));
    }
    Ok((path, user))
}

/// Resolves the start revision (fetching it into `objects` from another
/// repository if need be) and the picked commit.
async fn prepare(
    call: &Call<'_>,
    req: &Pick<'_>,
    path: &RepoPath,
    objects: &Quarantine,
    not_found: fn(&str) -> Error,
) -> Result<Prepared> {
    let picked = req.commit.expect("validated");
    let start_name = if req.start_branch_name.is_empty() { req.branch_name } else { req.start_branch_name };
    let repository = req.repository.cloned().unwrap_or_default();
    let start = start_commit(call, (&repository, path), objects, req.start_repository, start_name)
        .await?
        .ok_or_else(|| Error::invalid_argument("resolve start ref: reference not found"))?;
    let picked_id = picked.id.clone();
    let start_id = start.clone();
    call.deps
        .read_at(quarantined(path, objects), move |r, _| {
            let start = commit::find(r, start_id.as_bytes())?
                .ok_or_else(|| Error::internal_msg("fetch start: the start commit is not in the repository"))?;
            let had_branches = repo::has_branches(r)?;
            let found = commit::find(r, picked_id.as_bytes())?.ok_or_else(|| not_found(&picked_id))?;
            Ok(Prepared {
                start: start.id,
                start_tree: start.tree,
                had_branches,
                picked: Picked { id: found.id, first_parent: found.parents.first().cloned(), author: found.author },
                format: r.object_format(),
            })
        })
        .await
}

/// The branch's current value (`None`: the branch is created) and whether
/// `new` (possibly still in the quarantine `objects`) descends from it.
async fn old_value(call: &Call<'_>, req: &Pick<'_>, objects: &Quarantine, new: &str) -> Result<(Option<String>, bool)> {
    let path = quarantined(&call.deps.storages.repo(req.repository)?, objects);
    let expected = req.expected_old_oid.to_owned();
    let reference = [b"refs/heads/".as_slice(), req.branch_name, b"^{commit}"].concat();
    let new = new.to_owned();
    call.deps
        .read_at(path, move |r, _| {
            let old = if !expected.is_empty() {
                Some(expected_old(r, &expected)?.to_string())
            } else {
                repo::resolve_revision(r, &reference).map(|id| id.to_string())
            };
            let Some(old) = old else { return Ok((None, true)) };
            let base = repo::merge_base(r, &[old.clone().into_bytes(), new.into_bytes()])?;
            let descends = base.is_some() && base == repo::resolve_revision(r, old.as_bytes());
            Ok((Some(old), descends))
        })
        .await
}

/// The branch update a successful pick answers with.
fn branch_update(id: String, created: bool, had_branches: bool) -> OperationBranchUpdate {
    OperationBranchUpdate { commit_id: id, branch_created: created, repo_created: !had_branches }
}

pub(super) async fn cherry_pick(call: Call<'_>, req: UserCherryPickRequest) -> Result<UserCherryPickResponse> {
    let pick = pick_of!(req);
    let not_found = |id: &str| Error::not_found(format!("cherry-pick: commit lookup: commit not found: {id:?}"));
    let (path, user) = validate(&call, &pick)?;
    let repository = pick.repository.cloned().unwrap_or_default();
    let change = call.change(&repository, &path, user);
    let quarantine = change.quarantine()?;
    let objects = quarantine.objects();
    let prepared = prepare(&call, &pick, &path, &objects, not_found).await?;
    let committer = signature(user, pick.timestamp)?;
    let mut author = Identity::recorded(&prepared.picked.author.clone().unwrap_or_default());
    if !req.commit_author_name.is_empty() {
        author.name = req.commit_author_name.clone();
    }
    if !req.commit_author_email.is_empty() {
        author.email = req.commit_author_email.clone();
    }
    let detail = |error| UserCherryPickError { error: Some(error) };
    let picked = &prepared.picked.id;
    let options = MergeOptions { merge_base: Some(format!("{picked}^")), ..Default::default() };
    let outcome =
        merge::merge_tree(&call.deps.git, &path.path, &objects, &prepared.start, picked, &options, call.correlation_id)
            .await
            .map_err(|e| Error::internal("cherry-pick command", e))?;
    let tree = match outcome {
        MergeOutcome::Clean(tree) => tree,
        conflict => {
            return Err(Error::failed_precondition("cherry pick: merge: there are conflicting files").with_detail(
                &detail(user_cherry_pick_error::Error::CherryPickConflict(MergeConflictError {
                    conflicting_files: conflict.conflicting_paths(),
                    conflicting_commit_ids: vec![],
                })),
            ));
        }
    };
    if tree == prepared.start_tree {
        return Err(Error::failed_precondition("cherry-pick: could not apply because the result was empty")
            .with_detail(&detail(user_cherry_pick_error::Error::ChangesAlreadyApplied(
                ChangesAlreadyAppliedError {},
            ))));
    }
    let written = commit_and_update(&call, &pick, &prepared, &change, quarantine, &tree, &author, &committer).await;
    let (new_id, created) = written.map_err(|e| match e {
        Tail::Diverged(diverged) => Error::failed_precondition("cherry-pick: branch diverged")
            .with_detail(&detail(user_cherry_pick_error::Error::TargetBranchDiverged(diverged))),
        Tail::Update(UpdateError::CustomHook(ref hook)) => {
            let text = if !hook.stderr.trim_ascii().is_empty() { &hook.stderr } else { &hook.stdout };
            let message = String::from_utf8_lossy(text).trim_end_matches('\n').to_owned();
            Error::failed_precondition("access check failed").with_detail(&detail(
                user_cherry_pick_error::Error::AccessCheck(AccessCheckError {
                    error_message: message,
                    ..Default::default()
                }),
            ))
        }
        Tail::Update(other) => Error::internal_msg(format!("update reference with hooks: {}", other.message())),
        Tail::Other(e) => e,
    })?;
    Ok(UserCherryPickResponse { branch_update: Some(branch_update(new_id, created, prepared.had_branches)) })
}

pub(super) async fn revert(call: Call<'_>, req: UserRevertRequest) -> Result<UserRevertResponse> {
    let pick = pick_of!(req);
    let not_found =
        |id: &str| Error::not_found("revert commit lookup: commit not found").with_metadata("revision", id.to_owned());
    let (path, user) = validate(&call, &pick)?;
    let repository = pick.repository.cloned().unwrap_or_default();
    let change = call.change(&repository, &path, user);
    let quarantine = change.quarantine()?;
    let objects = quarantine.objects();
    let prepared = prepare(&call, &pick, &path, &objects, not_found).await?;
    let sig = signature(user, pick.timestamp)?;
    let detail = |error| UserRevertError { error: Some(error) };
    let theirs = match &prepared.picked.first_parent {
        Some(parent) => parent.clone(),
        // Reverting a root commit merges towards an empty history, as
        // upstream does with a fixed placeholder commit.
        None => {
            let bot = Identity {
                name: b"GitLab Bot".to_vec(),
                email: b"gitlab-bot@gitlab.com".to_vec(),
                seconds: 694_540_800,
                offset: format_offset(0),
            };
            let empty = prepared.format.empty_tree();
            let placeholder =
                NewCommit { tree: empty, parents: &[], author: &bot, committer: &bot, message: b"", signing_key: None };
            merge::write_commit(&call.deps.git, &path.path, &objects, &placeholder, call.correlation_id)
                .await
                .map_err(|e| Error::internal("write temporary commit", e))?
        }
    };
    let options = MergeOptions { merge_base: Some(prepared.picked.id.clone()), ..Default::default() };
    let outcome = merge::merge_tree(
        &call.deps.git,
        &path.path,
        &objects,
        &prepared.start,
        &theirs,
        &options,
        call.correlation_id,
    )
    .await
    .map_err(|e| Error::internal("merge-tree", e))?;
    let tree = match outcome {
        MergeOutcome::Clean(tree) => tree,
        conflict => {
            return Err(Error::failed_precondition("revert: there are conflicting files").with_detail(&detail(
                user_revert_error::Error::MergeConflict(MergeConflictError {
                    conflicting_files: conflict.conflicting_paths(),
                    conflicting_commit_ids: vec![],
                }),
            )));
        }
    };
    if tree == prepared.start_tree {
        return Err(Error::failed_precondition("revert: could not apply because the result was empty")
            .with_detail(&detail(user_revert_error::Error::ChangesAlreadyApplied(ChangesAlreadyAppliedError {}))));
    }
    let written = commit_and_update(&call, &pick, &prepared, &change, quarantine, &tree, &sig, &sig).await;
    let (new_id, created) = written.map_err(|e| match e {
        Tail::Diverged(diverged) => Error::failed_precondition("revert: branch diverged")
            .with_detail(&detail(user_revert_error::Error::NotAncestor(diverged))),
        Tail::Update(UpdateError::CustomHook(hook)) => Error::permission_denied("revert: custom hook error")
            .with_detail(&detail(user_revert_error::Error::CustomHook(hook))),
        Tail::Update(other) => Error::internal_msg(format!("update reference with hooks: {}", other.message())),
        Tail::Other(e) => e,
    })?;
    Ok(UserRevertResponse {
        branch_update: Some(branch_update(new_id, created, prepared.had_branches)),
        ..Default::default()
    })
}

/// Why [`commit_and_update`] stopped.
enum Tail {
    /// The new commit does not descend from the branch.
    Diverged(NotAncestorError),
    Update(UpdateError),
    Other(Error),
}

/// Writes the picked tree as a commit on the start revision and moves the
/// branch to it (a dry run "moves" it to the start revision, hooks and
/// all, as upstream does); answers the new tip and whether the branch was
/// created.
#[allow(clippy::too_many_arguments, reason = "the shared tail of two RPCs; a struct would only rename them")]
async fn commit_and_update(
    call: &Call<'_>,
    pick: &Pick<'_>,
    prepared: &Prepared,
    change: &Change<'_>,
    quarantine: crate::git::quarantine::QuarantineDir,
    tree: &str,
    author: &Identity,
    committer: &Identity,
) -> std::result::Result<(String, bool), Tail> {
    let objects = quarantine.objects();
    let parents = [prepared.start.clone()];
    let new = NewCommit {
        tree,
        parents: &parents,
        author,
        committer,
        message: pick.message,
        signing_key: signing_key(call.deps, pick.sign),
    };
    let mut new_id = merge::write_commit(&call.deps.git, &change.path.path, &objects, &new, call.correlation_id)
        .await
        .map_err(|e| Tail::Other(Error::internal("write commit", e)))?;
    if pick.dry_run {
        new_id = prepared.start.clone();
    }
    let (old, descends) = old_value(call, pick, &objects, &new_id).await.map_err(Tail::Other)?;
    if !descends {
        return Err(Tail::Diverged(NotAncestorError {
            parent_revision: old.unwrap_or_default().into_bytes(),
            child_revision: new_id.into_bytes(),
        }));
    }
    let created = old.is_none();
    let old = old.unwrap_or_else(|| prepared.format.zero_oid());
    let reference = [b"refs/heads/".as_slice(), pick.branch_name].concat();
    change.update_reference(Some(quarantine), &reference, &new_id, &old).await.map_err(Tail::Update)?;
    Ok((new_id, created))
}
