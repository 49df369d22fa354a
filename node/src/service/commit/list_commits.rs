//! ListCommits: `git rev-list` over the requested revisions (pseudo
//! revisions allowed), with upstream's options, pagination by the last
//! returned commit id, and the 18.x `skip` and `paths` fields.

use super::{RevisionRules, check_revision, internal, seconds};
use crate::error::{Error, Result};
use crate::git::objects::ObjectId;
use crate::git::tree::Pathspec;
use crate::git::{commit, walk};
use crate::service::stream::Chunker;
use crate::service::{Deps, convert};
use cairn_proto::gitaly::list_commits_request::Order;
use cairn_proto::gitaly::{GitCommit, ListCommitsRequest, ListCommitsResponse, PaginationCursor};
use std::cell::RefCell;
use tonic::codegen::BoxStream;

pub(super) fn handle(deps: &Deps, req: ListCommitsRequest) -> Result<BoxStream<ListCommitsResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    if req.revisions.is_empty() {
        return Err(Error::invalid_argument("missing revisions"));
    }
    for revision in &req.revisions {
        check_revision(revision.as_bytes(), RevisionRules { pseudo: true, ..Default::default() }).map_err(|e| {
            Error::invalid_argument(format!("invalid revision: {e}")).with_metadata("revision", revision.clone())
        })?;
    }
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let options = options(&req)?;
        let tips = walk::resolve_args(repo, &req.revisions).map_err(internal)?;
        let mut walk = walk::Walk::new(repo, tips, options);
        let token = req.pagination_params.as_ref().map(|p| p.page_token.clone()).unwrap_or_default();
        let limit = req.pagination_params.as_ref().map_or(0, |p| p.limit);
        let mut waiting_for_token = !token.is_empty();
        // Upstream compares the full id; anything else never matches.
        let token_id =
            ObjectId::from_hex(token.as_bytes()).ok().filter(|_| !token.bytes().any(|b| b.is_ascii_uppercase()));
        // Upstream sends the id of the last commit handed to its batcher
        // when the first message goes out as the cursor (only in that
        // message).
        let last_id = RefCell::new(String::new());
        let mut sent_cursor = false;
        let mut batch = Chunker::new(sink, |commits: Vec<GitCommit>| {
            let mut response = ListCommitsResponse { commits, pagination_cursor: None };
            let last = last_id.borrow();
            if !sent_cursor && !last.is_empty() {
                response.pagination_cursor = Some(PaginationCursor { next_cursor: last.clone() });
                sent_cursor = true;
            }
            response
        });
        let mut sent = 0i32;
        while let Some(id) = walk.next_id().map_err(internal)? {
            if waiting_for_token {
                waiting_for_token = Some(id) != token_id;
                continue;
            }
            if limit > 0 && limit <= sent {
                break;
            }
            let c = commit::read(repo, id)?.ok_or_else(|| Error::internal_msg(format!("parsing commit {id}")))?;
            *last_id.borrow_mut() = c.id.clone();
            batch.push(convert::git_commit(&c))?;
            sent += 1;
        }
        batch.flush()
    }))
}

fn options(req: &ListCommitsRequest) -> Result<walk::Options> {
    let grep = if req.author.is_empty() && req.commit_message_patterns.is_empty() {
        None
    } else {
        let author: Vec<&[u8]> = if req.author.is_empty() { Vec::new() } else { vec![req.author.as_slice()] };
        let messages: Vec<&[u8]> = req.commit_message_patterns.iter().map(Vec::as_slice).collect();
        Some(walk::Grep::new(&author, &messages, req.ignore_case).map_err(internal)?)
    };
    let paths = if req.paths.is_empty() {
        None
    } else {
        let args: Vec<&[u8]> = req.paths.iter().map(Vec::as_slice).collect();
        if args.iter().any(|a| a.is_empty()) {
            return Err(Error::internal_msg("empty string is not a valid pathspec"));
        }
        Some(Pathspec::parse(&args, false, true).map_err(|e| Error::internal_msg(e.to_string()))?)
    };
    Ok(walk::Options {
        order: match req.order() {
            Order::None => walk::Order::Default,
            Order::Topo => walk::Order::Topo,
            Order::Date => walk::Order::Date,
        },
        reverse: req.reverse,
        first_parent: req.first_parent,
        no_walk: req.disable_walk,
        max_parents: (req.max_parents > 0).then_some(req.max_parents as usize),
        after: seconds(req.after.as_ref()),
        before: seconds(req.before.as_ref()),
        grep,
        paths,
        skip: req.skip as usize,
        ..Default::default()
    })
}
