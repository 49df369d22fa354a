//! UserUpdateSubmodule: points a submodule (a gitlink in the branch's
//! tree) at another commit in a new commit on the branch, as the user,
//! running the receive hooks.

use super::common::signature;
use super::update::{Call, UpdateError};
use super::user_create_branch::branch_reference;
use crate::error::{Error, Result};
use crate::git::objects::ObjectId;
use crate::git::write::{Entry, ObjectWriter, TreeEditor};
use crate::git::{repo, tree};
use crate::service::blocking;
use cairn_proto::gitaly::path_error::ErrorType;
use cairn_proto::gitaly::{
    OperationBranchUpdate, PathError, UserUpdateSubmoduleError, UserUpdateSubmoduleRequest,
    UserUpdateSubmoduleResponse, user_update_submodule_error,
};
use std::sync::Arc;

const GITLINK: u32 = 0o160000;

/// Why the tree could not be changed.
enum Refusal {
    InvalidPath,
    AlreadyAt,
}

pub(super) async fn handle(call: Call<'_>, req: UserUpdateSubmoduleRequest) -> Result<UserUpdateSubmoduleResponse> {
    let path = call.deps.storages.repo(req.repository.as_ref())?;
    let format = call.deps.read_at(path.clone(), |r, _| Ok(r.object_format())).await?;
    let Some(user) = &req.user else { return Err(Error::invalid_argument("empty User")) };
    if req.commit_sha.is_empty() {
        return Err(Error::invalid_argument("empty CommitSha"));
    }
    let Some(new_commit) = (req.commit_sha.len() == format.hex_len())
        .then(|| ObjectId::from_hex(req.commit_sha.as_bytes()).ok())
        .flatten()
    else {
        return Err(Error::invalid_argument("invalid CommitSha"));
    };
    for (value, what) in
        [(&req.branch, "Branch"), (&req.submodule, "Submodule"), (&req.commit_message, "CommitMessage")]
    {
        if value.is_empty() {
            return Err(Error::invalid_argument(format!("empty {what}")));
        }
    }
    let committer = signature(user, req.timestamp.as_ref())?;
    let reference = branch_reference(&req.branch)?;
    let repository = req.repository.clone().unwrap_or_default();
    let change = call.change(&repository, &path, user);
    let quarantine = Arc::new(change.quarantine()?);

    let (expected, lookup) = (req.expected_old_oid.clone(), reference.clone());
    let old = call
        .deps
        .read_at(path.clone(), move |r, _| {
            if !repo::has_branches(r)? {
                return Ok(None);
            }
            if expected.is_empty() {
                return repo::resolve_revision(r, &lookup)
                    .map(Some)
                    .ok_or_else(|| Error::invalid_argument("Cannot find branch"));
            }
            super::common::expected_old(r, &expected).map(Some)
        })
        .await?;
    let Some(old) = old else {
        return Ok(UserUpdateSubmoduleResponse { commit_error: "Repository is empty".into(), ..Default::default() });
    };

    let (q, repos, repo_path) = (quarantine.clone(), call.deps.repos.clone(), path.path.clone());
    let (submodule, message, branch) = (req.submodule.clone(), req.commit_message.clone(), reference.clone());
    let outcome = blocking(move || {
        let r = q.open(&repos, &repo_path)?;
        let writer = ObjectWriter::new(&q, format);
        let Some(current) = repo::resolve_revision(&r, &[branch.as_slice(), b"^{commit}"].concat()) else {
            return Ok(Err(Refusal::InvalidPath));
        };
        let base = tree::root_of(&r, current)?;
        let mut editor = TreeEditor::new(&r, base)?;
        let components: Vec<&[u8]> = submodule.split(|b| *b == b'/').filter(|c| !c.is_empty()).collect();
        match editor.get(&components)? {
            Some(Entry::Leaf { mode: GITLINK, id }) if id == new_commit => return Ok(Err(Refusal::AlreadyAt)),
            Some(Entry::Leaf { mode: GITLINK, .. }) => {}
            _ => return Ok(Err(Refusal::InvalidPath)),
        }
        if editor.modify(&components, |mode, _| (mode, new_commit))?.is_err() {
            return Ok(Err(Refusal::InvalidPath));
        }
        let tree = editor.write(&writer)?;
        Ok(Ok(writer.commit(tree, &[current], &committer, &committer, &message)?))
    })
    .await?;
    let commit = match outcome {
        Ok(c) => c,
        Err(Refusal::AlreadyAt) => {
            return Ok(UserUpdateSubmoduleResponse {
                commit_error: format!(
                    "The submodule {} is already at {}",
                    String::from_utf8_lossy(&req.submodule),
                    req.commit_sha
                ),
                ..Default::default()
            });
        }
        Err(Refusal::InvalidPath) => {
            return Err(Error::invalid_argument("Invalid submodule path").with_detail(&UserUpdateSubmoduleError {
                error: Some(user_update_submodule_error::Error::PathError(PathError {
                    path: req.submodule.clone(),
                    error_type: ErrorType::InvalidPath as i32,
                })),
            }));
        }
    };
    let quarantine = Arc::try_unwrap(quarantine).map_err(|_| Error::internal_msg("quarantine still in use"))?;
    change.update_reference(Some(quarantine), &reference, &commit.to_string(), &old.to_string()).await.map_err(
        |e| {
            let detail = |error| UserUpdateSubmoduleError { error: Some(error) };
            match e {
                UpdateError::CustomHook(hook) => Error::permission_denied("denied by custom hooks")
                    .with_detail(&detail(user_update_submodule_error::Error::CustomHook(hook))),
                UpdateError::Reference(ref update, _) => {
                    Error::failed_precondition(format!("updating ref with hooks: {}", e.message()))
                        .with_detail(&detail(user_update_submodule_error::Error::ReferenceUpdate(update.clone())))
                }
                other => Error::internal_msg(format!("updating ref with hooks: {}", other.message())),
            }
        },
    )?;
    Ok(UserUpdateSubmoduleResponse {
        branch_update: Some(OperationBranchUpdate { commit_id: commit.to_string(), ..Default::default() }),
        ..Default::default()
    })
}
