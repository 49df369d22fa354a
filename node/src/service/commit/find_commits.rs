//! FindCommits: `git log` over one revision (or `--all`), walked
//! in-process, with paths (and `--follow`), author and message filters,
//! dates, offset/limit, topological order, trailers, short stats and
//! referencing refs. A revision git cannot resolve is NOT_FOUND with the
//! 18.x `FindCommitsError` detail.

use super::{RevisionRules, internal, literal, seconds, valid_revision};
use crate::error::{Error, Result};
use crate::git::objects::ObjectId;
use crate::git::tree::Pathspec;
use crate::git::{GitError, Repo, commit, walk};
use crate::service::stream::Chunker;
use crate::service::{Deps, convert};
use cairn_proto::gitaly::find_commits_request::Order;
use cairn_proto::gitaly::{
    AmbiguousReferenceError, BadObjectError, CommitStatInfo, FindCommitsError, FindCommitsRequest, FindCommitsResponse,
    InvalidRevisionRange, find_commits_error,
};
use std::collections::HashMap;
use tonic::codegen::BoxStream;

pub(super) fn handle(deps: &Deps, req: FindCommitsRequest) -> Result<BoxStream<FindCommitsResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    valid_revision(&req.revision, RevisionRules { allow_empty: true, ..Default::default() })?;
    if req.paths.iter().any(Vec::is_empty) {
        return Err(Error::invalid_argument("path is empty string"));
    }
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let mut chunker = Chunker::new(sink, |commits| FindCommitsResponse { commits });
        if req.limit <= 0 {
            // `--max-count=0` shows nothing.
            return Ok(());
        }
        let mut revision = req.revision.clone();
        if revision.is_empty() && !req.all {
            revision = commit::default_branch(repo)?.unwrap_or_default();
        }
        let mut args: Vec<Vec<u8>> = Vec::new();
        if req.all {
            args.push(b"--all".to_vec());
        }
        if !revision.is_empty() {
            args.push(revision.clone());
        } else if !req.all {
            // git log without a revision walks HEAD, which is unborn here.
            return Err(not_found(None));
        }
        let tips = walk::resolve_args(repo, &args).map_err(|e| revision_error(e, &revision))?;
        let options = options(&req)?;
        let decorations = if req.include_referenced_by.is_empty() {
            HashMap::new()
        } else {
            let patterns: Vec<&[u8]> = req.include_referenced_by.iter().map(Vec::as_slice).collect();
            commit::decorations(repo, &patterns)?
        };
        let mut walk = walk::Walk::new(repo, tips, options);
        while let Some(id) = walk.next_id().map_err(internal)? {
            let c = commit::read(repo, id)?.ok_or_else(|| Error::internal_msg(format!("parsing commit {id}")))?;
            let mut g = if req.trailers { convert::git_commit_with_trailers(&c) } else { convert::git_commit(&c) };
            if req.include_shortstat {
                g.short_stats = short_stats(repo, &c).map_err(internal)?;
            }
            if let Some(names) = decorations.get(&id) {
                g.referenced_by = names.clone();
            }
            chunker.push(g)?;
        }
        chunker.flush()
    }))
}

fn options(req: &FindCommitsRequest) -> Result<walk::Options> {
    let author: Vec<&[u8]> = if req.author.is_empty() { Vec::new() } else { vec![req.author.as_slice()] };
    let messages: Vec<&[u8]> =
        if req.message_regex.is_empty() { Vec::new() } else { vec![req.message_regex.as_bytes()] };
    let grep = if author.is_empty() && messages.is_empty() {
        None
    } else {
        // `--regexp-ignore-case` comes with `message_regex` and applies to
        // every pattern.
        Some(walk::Grep::new(&author, &messages, !messages.is_empty()).map_err(internal)?)
    };
    let literal = literal(req.global_options.as_ref());
    let (paths, follow) = if req.paths.is_empty() {
        (None, None)
    } else if req.follow {
        if req.paths.len() != 1 {
            return Err(not_found(None).with_metadata("stderr", "--follow requires exactly one pathspec"));
        }
        let spec =
            Pathspec::parse(&[req.paths[0].as_slice()], literal, true).map_err(|e| not_found(None).with_source(e))?;
        (Some(spec), Some(walk::FollowPath { path: req.paths[0].clone(), literal }))
    } else {
        let args: Vec<&[u8]> = req.paths.iter().map(Vec::as_slice).collect();
        (Some(Pathspec::parse(&args, literal, true).map_err(|e| not_found(None).with_source(e))?), None)
    };
    Ok(walk::Options {
        order: if req.order() == Order::Topo { walk::Order::Topo } else { walk::Order::Default },
        reverse: req.all,
        first_parent: req.first_parent,
        max_parents: req.skip_merges.then_some(1),
        after: seconds(req.after.as_ref()),
        before: seconds(req.before.as_ref()),
        grep,
        paths,
        follow,
        skip: usize::try_from(req.offset).unwrap_or(0),
        max_count: usize::try_from(req.limit).ok(),
        ..Default::default()
    })
}

/// `git log --shortstat` for one commit: merges and commits without
/// changes have none.
fn short_stats(repo: &Repo, c: &crate::git::objects::Commit) -> std::result::Result<Option<CommitStatInfo>, GitError> {
    if c.parents.len() > 1 {
        return Ok(None);
    }
    let tree = ObjectId::from_hex(c.tree.as_bytes()).ok();
    let parent_tree = match c.parents.first() {
        Some(p) => {
            commit::read(repo, ObjectId::from_hex(p.as_bytes()).map_err(|e| GitError::gix("parse parent id", e))?)?
                .and_then(|p| ObjectId::from_hex(p.tree.as_bytes()).ok())
        }
        None => None,
    };
    let stat = commit::diff_stat(repo, parent_tree, tree)?;
    if stat.files == 0 {
        return Ok(None);
    }
    let n = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
    Ok(Some(CommitStatInfo {
        additions: n(stat.additions),
        deletions: n(stat.deletions),
        changed_files: n(stat.files),
    }))
}

fn not_found(detail: Option<find_commits_error::Error>) -> Error {
    let e = Error::not_found("commits not found");
    match detail {
        Some(d) => e.with_detail(&FindCommitsError { error: Some(d) }),
        None => e,
    }
}

/// Upstream classifies git log's failure by its stderr; the same cases
/// arise here from resolving the revision.
fn revision_error(e: walk::RevError, revision: &[u8]) -> Error {
    use find_commits_error::Error as E;
    match e {
        walk::RevError::Unknown(_) => {
            not_found(Some(E::AmbiguousRef(AmbiguousReferenceError { reference: revision.to_vec() })))
        }
        walk::RevError::BadObject(oid) => not_found(Some(E::BadObject(BadObjectError { bad_oid: oid }))),
        walk::RevError::InvalidRange(range) => not_found(Some(E::InvalidRange(InvalidRevisionRange { range }))),
        walk::RevError::Git(g) => internal(g),
    }
}
