//! UserCreateTag: creates `refs/tags/<name>` as the user, lightweight or
//! (with a message) annotated through `git mktag` in the quarantine,
//! running the receive hooks; the tag must not exist yet.

use super::common::signature;
use super::update::{Call, UpdateError};
use crate::error::{Error, Result};
use crate::git::objects::{self, Kind};
use crate::git::write::{self, TagError};
use crate::git::{commit, references, refs, repo};
use crate::service::{blocking, convert};
use cairn_proto::gitaly::{
    ReferenceExistsError, Tag, UserCreateTagError, UserCreateTagRequest, UserCreateTagResponse, user_create_tag_error,
};

pub(super) async fn handle(call: Call<'_>, req: UserCreateTagRequest) -> Result<UserCreateTagResponse> {
    validate(&req)?;
    let path = call.deps.storages.repo(req.repository.as_ref())?;
    let Some(user) = &req.user else { return Err(Error::invalid_argument("empty user")) };
    let reference = [b"refs/tags/".as_slice(), &req.tag_name].concat();
    if !refs::valid_ref_name(&reference) {
        return Err(Error::invalid_argument(format!("invalid tag name: {:?}", String::from_utf8_lossy(&req.tag_name))));
    }
    let tagger = signature(user, req.timestamp.as_ref())?;
    let repository = req.repository.clone().unwrap_or_default();
    let change = call.change(&repository, &path, user);
    let quarantine = std::sync::Arc::new(change.quarantine()?);

    let (q, repos, repo_path, revision) =
        (quarantine.clone(), call.deps.repos.clone(), path.path.clone(), req.target_revision.clone());
    let (target, kind, peeled, peeled_kind, format) = blocking(move || {
        let r = q.open(&repos, &repo_path)?;
        let not_found =
            || Error::failed_precondition(format!("revspec '{}' not found", String::from_utf8_lossy(&revision)));
        let target = repo::resolve_revision(&r, &revision).ok_or_else(not_found)?;
        let (kind, _) = objects::header(&r, target)?.ok_or_else(not_found)?;
        let (peeled, peeled_kind) = match kind {
            Kind::Tag => references::peel(&r, target)?
                .ok_or_else(|| Error::internal_msg("reading object info: tag target missing"))?,
            _ => (target, kind),
        };
        Ok((target, kind, peeled, peeled_kind, r.object_format()))
    })
    .await?;

    // Upstream's rule: a message with any non-space character makes an
    // annotated tag.
    let annotated = req.message.iter().any(|b| !b" \t\n\r\x0c".contains(b));
    let new = if annotated {
        write::mktag(
            &call.deps.git,
            &path.path,
            &quarantine,
            target,
            kind,
            &req.tag_name,
            &tagger,
            &req.message,
            call.correlation_id,
        )
        .await
        .map_err(|e| match e {
            TagError::Format(m) => Error::invalid_argument(format!("formatting tag: {m}")),
            TagError::Rejected(_) => Error::not_found(format!(
                "Gitlab::Git::CommitError: Could not update refs/tags/{}. Please refresh and try again.",
                String::from_utf8_lossy(&req.tag_name)
            )),
            TagError::Git(e) => Error::internal_msg(format!("writing tag: {e}")),
        })?
    } else {
        peeled
    };

    let (q, repos, repo_path, name, lookup) =
        (quarantine.clone(), call.deps.repos.clone(), path.path.clone(), req.tag_name.clone(), reference.clone());
    let (tag, existing) = blocking(move || {
        let r = q.open(&repos, &repo_path)?;
        let mut tag = Tag { name: name.clone(), id: new.to_string(), ..Default::default() };
        if annotated {
            let created = references::annotated_tag(&r, new)?.ok_or_else(|| Error::internal_msg("getting tag"))?;
            let mut message = created.message.unwrap_or_default();
            while message.last() == Some(&b'\n') {
                message.pop();
            }
            tag.message_size = message.len() as i64;
            message.truncate(convert::MAX_MESSAGE_SIZE);
            tag.message = message;
        }
        if peeled_kind == Kind::Commit {
            let c = commit::read(&r, peeled)?.ok_or_else(|| Error::internal_msg("getting commit"))?;
            tag.target_commit = Some(convert::git_commit(&c));
        }
        Ok((tag, repo::resolve_revision(&r, &lookup)))
    })
    .await?;
    if let Some(oid) = existing {
        return Err(Error::already_exists("tag reference exists already").with_detail(&UserCreateTagError {
            error: Some(user_create_tag_error::Error::ReferenceExists(ReferenceExistsError {
                reference_name: reference,
                oid: oid.to_string(),
            })),
        }));
    }

    let quarantine =
        std::sync::Arc::try_unwrap(quarantine).map_err(|_| Error::internal_msg("quarantine still in use"))?;
    change.update_reference(Some(quarantine), &reference, &new.to_string(), &format.zero_oid()).await.map_err(|e| {
        let detail = |error| UserCreateTagError { error: Some(error) };
        match e {
            UpdateError::AccessCheck(ref check) => {
                Error::permission_denied(format!("reference update denied by access checks: {}", e.message()))
                    .with_detail(&detail(user_create_tag_error::Error::AccessCheck(check.clone())))
            }
            UpdateError::CustomHook(hook) => Error::permission_denied("reference update denied by custom hooks")
                .with_detail(&detail(user_create_tag_error::Error::CustomHook(hook))),
            UpdateError::Reference(ref update, _) => {
                Error::failed_precondition(format!("reference update failed: {}", e.message()))
                    .with_detail(&detail(user_create_tag_error::Error::ReferenceUpdate(update.clone())))
            }
            UpdateError::Other(e) => Error::internal_msg(format!("updating reference: {e}")),
        }
    })?;
    Ok(UserCreateTagResponse { tag: Some(tag) })
}

fn validate(req: &UserCreateTagRequest) -> Result<()> {
    if req.tag_name.is_empty() {
        return Err(Error::invalid_argument("empty tag name"));
    }
    refs::validate_revision(&req.tag_name).map_err(|e| Error::invalid_argument(format!("invalid tag name: {e}")))?;
    if req.user.is_none() {
        return Err(Error::invalid_argument("empty user"));
    }
    if req.target_revision.is_empty() {
        return Err(Error::invalid_argument("empty target revision"));
    }
    if req.message.contains(&0) {
        return Err(Error::invalid_argument("tag message contains NUL byte"));
    }
    Ok(())
}
