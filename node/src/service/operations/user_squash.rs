//! UserSquash: one commit with the changes of `start_sha..end_sha` on top
//! of `start_sha` (a merge of the two keeping only the start as parent),
//! authored by the request's author. No reference moves: the commit joins
//! the repository after the replicas agreed on its id.

use super::common::{signature, signing_key};
use super::update::Call;
use crate::error::{Error, Result};
use crate::git::merge::{self, MergeOptions, MergeOutcome, NewCommit};
use crate::git::repo;
use crate::service::blocking;
use crate::transaction::{Phase, vote_of};
use cairn_proto::gitaly::*;

pub(super) async fn handle(call: Call<'_>, req: UserSquashRequest) -> Result<UserSquashResponse> {
    let path = call.deps.storages.repo(req.repository.as_ref())?;
    let invalid = |m: &'static str| Err(Error::invalid_argument(m));
    let Some(user) = &req.user else { return invalid("empty User") };
    if user.name.is_empty() {
        return invalid("empty user name");
    }
    if user.email.is_empty() {
        return invalid("empty user email");
    }
    if req.start_sha.is_empty() {
        return invalid("empty StartSha");
    }
    if req.end_sha.is_empty() {
        return invalid("empty EndSha");
    }
    if req.commit_message.is_empty() {
        return invalid("empty CommitMessage");
    }
    let Some(author) = &req.author else { return invalid("empty Author") };
    if author.name.is_empty() {
        return invalid("empty author name");
    }
    if author.email.is_empty() {
        return invalid("empty author email");
    }
    let (start_rev, end_rev) = (req.start_sha.clone(), req.end_sha.clone());
    let (start, end) =
        call.deps
            .read_at(path.clone(), move |r, _| {
                let lookup = |rev: &str, which: &str| {
                    repo::resolve_revision(r, format!("{rev}^{{commit}}").as_bytes())
                        .map(|id| id.to_string())
                        .ok_or_else(|| {
                            Error::invalid_argument(format!("resolving {which} revision: reference not found"))
                                .with_detail(&UserSquashError {
                                    error: Some(user_squash_error::Error::ResolveRevision(ResolveRevisionError {
                                        revision: rev.as_bytes().to_vec(),
                                    })),
                                })
                        })
                };
                Ok((lookup(&start_rev, "start")?, lookup(&end_rev, "end")?))
            })
            .await?;
    let committer = signature(user, req.timestamp.as_ref())?;
    // The author's own time zone, at the committer's time.
    let author_sig = signature(author, req.timestamp.as_ref()).map(|mut s| {
        s.seconds = committer.seconds;
        s
    })?;
    let mut message = req.commit_message.clone();
    if !message.ends_with(b"\n") {
        message.push(b'\n');
    }

    let quarantine = crate::git::quarantine::QuarantineDir::new(&path.path).map_err(Error::from)?;
    let objects = quarantine.objects();
    let options = MergeOptions { allow_unrelated_histories: true, ..Default::default() };
    let outcome = merge::merge_tree(&call.deps.git, &path.path, &objects, &start, &end, &options, call.correlation_id)
        .await
        .map_err(|e| Error::internal("merge", e))?;
    let tree = match outcome {
        MergeOutcome::Clean(tree) => tree,
        conflict => {
            return Err(Error::failed_precondition("squashing commits: merge: there are conflicting files")
                .with_detail(&UserSquashError {
                    error: Some(user_squash_error::Error::RebaseConflict(MergeConflictError {
                        conflicting_files: conflict.conflicting_paths(),
                        conflicting_commit_ids: vec![start.clone(), end.clone()],
                    })),
                }));
        }
    };
    let parents = [start.clone()];
    let new = NewCommit {
        tree: &tree,
        parents: &parents,
        author: &author_sig,
        committer: &committer,
        message: &message,
        signing_key: signing_key(call.deps, req.sign),
    };
    let id = merge::write_commit(&call.deps.git, &path.path, &objects, &new, call.correlation_id)
        .await
        .map_err(|e| Error::internal("create commit from tree", e))?;

    // Replicas agree on the commit before it joins the repository.
    let repository = req.repository.clone().unwrap_or_default();
    let voting = call.transaction.clone().map(|tx| call.deps.transactions.voting(tx, &repository));
    if let Some(v) = &voting {
        v.vote(vote_of(id.as_bytes()), Phase::Prepared)
            .await
            .map_err(|e| Error::aborted(format!("preparatory vote on squashed commit: {e}")))?;
    }
    blocking(move || quarantine.migrate().map_err(|e| Error::internal("migrating quarantine directory", e))).await?;
    call.deps.repos.forget(&path.path);
    if let Some(v) = &voting {
        v.vote(vote_of(id.as_bytes()), Phase::Committed)
            .await
            .map_err(|e| Error::aborted(format!("committing vote on squashed commit: {e}")))?;
    }
    Ok(UserSquashResponse { squash_sha: id })
}
