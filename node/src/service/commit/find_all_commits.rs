//! FindAllCommits (`git log` of one revision or every branch) and
//! CommitsByMessage (`git log --grep=<query> --regexp-ignore-case`).
//! Upstream ignores git log failures: a revision that names nothing
//! answers no commits.

use super::{RevisionRules, literal, valid_revision};
use crate::error::{Error, Result};
use crate::git::tree::Pathspec;
use crate::git::{Repo, commit, walk};
use crate::service::stream::{Chunker, Sink};
use crate::service::{Deps, convert};
use cairn_proto::gitaly::find_all_commits_request::Order;
use cairn_proto::gitaly::{
    CommitsByMessageRequest, CommitsByMessageResponse, FindAllCommitsRequest, FindAllCommitsResponse, GitCommit,
};
use tonic::codegen::BoxStream;

pub(super) fn handle(deps: &Deps, req: FindAllCommitsRequest) -> Result<BoxStream<FindAllCommitsResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    valid_revision(&req.revision, RevisionRules { allow_empty: true, ..Default::default() })?;
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let revisions: Vec<Vec<u8>> = if req.revision.is_empty() {
            crate::git::repo::resolved_references(repo)?
                .into_iter()
                .filter(|(name, _)| name.starts_with("refs/heads/"))
                .map(|(name, _)| name.into_bytes())
                .collect()
        } else {
            vec![req.revision.clone()]
        };
        let options = walk::Options {
            order: match req.order() {
                Order::None => walk::Order::Default,
                Order::Date => walk::Order::Date,
                Order::Topo => walk::Order::Topo,
            },
            max_count: usize::try_from(req.max_count).ok().filter(|n| *n > 0),
            skip: usize::try_from(req.skip).unwrap_or(0),
            ..Default::default()
        };
        let mut chunker = Chunker::new(sink, |commits| FindAllCommitsResponse { commits });
        log(repo, &revisions, options, &mut |c| chunker.push(c))?;
        chunker.flush()
    }))
}

pub(super) fn commits_by_message(
    deps: &Deps,
    req: CommitsByMessageRequest,
) -> Result<BoxStream<CommitsByMessageResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    valid_revision(&req.revision, RevisionRules { allow_empty: true, ..Default::default() })?;
    if req.query.is_empty() {
        return Err(Error::invalid_argument("empty Query"));
    }
    Ok(deps.stream_at(path, move |repo, _, sink: &Sink<CommitsByMessageResponse>| {
        let revision = if req.revision.is_empty() {
            commit::default_branch(repo)?.unwrap_or_default()
        } else {
            req.revision.clone()
        };
        let paths = if req.path.is_empty() {
            None
        } else {
            match Pathspec::parse(&[req.path.as_slice()], literal(req.global_options.as_ref()), true) {
                Ok(p) => Some(p),
                // git log would fail, which upstream ignores.
                Err(_) => return Ok(()),
            }
        };
        let grep = match walk::Grep::new(&[], &[req.query.as_bytes()], true) {
            Ok(g) => g,
            Err(_) => return Ok(()),
        };
        let options = walk::Options {
            grep: Some(grep),
            paths,
            skip: usize::try_from(req.offset).unwrap_or(0),
            max_count: usize::try_from(req.limit).ok().filter(|n| *n > 0),
            ..Default::default()
        };
        let mut chunker = Chunker::new(sink, |commits| CommitsByMessageResponse { commits });
        log(repo, &[revision], options, &mut |c| chunker.push(c))?;
        chunker.flush()
    }))
}

/// Walks and hands each commit to `send`; failures to resolve or walk end
/// the listing quietly, as upstream's `sendCommits` ignores git log's exit.
fn log(
    repo: &Repo,
    revisions: &[Vec<u8>],
    options: walk::Options,
    send: &mut dyn FnMut(GitCommit) -> Result<()>,
) -> Result<()> {
    if revisions.is_empty() || revisions.iter().any(|r| r.is_empty()) {
        return Ok(());
    }
    let Ok(tips) = walk::resolve_args(repo, revisions) else { return Ok(()) };
    let mut walk = walk::Walk::new(repo, tips, options);
    loop {
        match walk.next_id() {
            Ok(Some(id)) => {
                if let Some(c) = commit::read(repo, id)? {
                    send(convert::git_commit(&c))?;
                }
            }
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::info!(error = %crate::error::error_chain(&e), "ignoring git-log error");
                return Ok(());
            }
        }
    }
}
