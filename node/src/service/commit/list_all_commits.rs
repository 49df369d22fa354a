//! ListAllCommits: every commit in the object database, reachable or not,
//! in object id order (stable across requests, so the page token — the
//! last returned id — keeps working), with an optional limit.

use crate::error::{Error, Result};
use crate::git::commit;
use crate::git::objects::ObjectId;
use crate::service::stream::Chunker;
use crate::service::{Deps, convert};
use cairn_proto::gitaly::{ListAllCommitsRequest, ListAllCommitsResponse};
use tonic::codegen::BoxStream;

pub(super) fn handle(deps: &Deps, req: ListAllCommitsRequest) -> Result<BoxStream<ListAllCommitsResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let token = req.pagination_params.as_ref().map(|p| p.page_token.clone()).unwrap_or_default();
        let limit = req.pagination_params.as_ref().map_or(0, |p| p.limit);
        let mut waiting_for_token = !token.is_empty();
        // Upstream compares the full id; anything else never matches.
        let token_id =
            ObjectId::from_hex(token.as_bytes()).ok().filter(|_| !token.bytes().any(|b| b.is_ascii_uppercase()));
        let mut chunker = Chunker::new(sink, |commits| ListAllCommitsResponse { commits });
        let mut sent = 0i32;
        for id in commit::all_ids(repo)? {
            if waiting_for_token {
                waiting_for_token = Some(id) != token_id;
                continue;
            }
            if limit > 0 && limit <= sent {
                break;
            }
            let c = commit::read(repo, id)?.ok_or_else(|| Error::internal_msg(format!("parsing commit {id}")))?;
            chunker.push(convert::git_commit(&c))?;
            sent += 1;
        }
        chunker.flush()
    }))
}
