//! RefService reads: branches, tags, default branch, reference listings
//! and containment queries; UpdateReferences and DeleteRefs write references
//! in one transaction each.

mod branches;
mod containing;
mod delete_refs;
mod find_default_branch_name;
mod find_refs_by_oid;
mod list_refs;
mod ref_exists;
mod tags;
mod update_references;

use super::{Deps, correlation_id, respond, transaction};
use crate::error::{Error, Result};
use crate::git::objects;
use crate::git::references::Reference;
use crate::git::{Repo, commit};
use crate::service::convert;
use cairn_proto::gitaly::ref_service_server;
use cairn_proto::gitaly::*;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

/// Handlers of RefService.
#[derive(Debug, Clone)]
pub(super) struct RefService {
    deps: Deps,
}

impl RefService {
    pub(super) fn new(deps: &Deps) -> Self {
        Self { deps: deps.clone() }
    }
}

/// References per message where upstream batches lines of
/// git-for-each-ref output.
const REFS_PER_MESSAGE: usize = 20;

/// Upstream's pagination of reference listings: results start after the
/// reference named by the page token (which must be found) and stop after
/// `limit` of them (negative: no limit; no parameters: no limit).
#[derive(Debug, Clone)]
struct Page {
    limit: usize,
    token: Option<Vec<u8>>,
}

impl Page {
    fn from(p: Option<&PaginationParameter>) -> Self {
        let Some(p) = p else { return Self { limit: i32::MAX as usize, token: None } };
        let limit = if p.limit >= 0 { p.limit as usize } else { i32::MAX as usize };
        let token = (!p.page_token.is_empty()).then(|| p.page_token.as_bytes().to_vec());
        Self { limit, token }
    }

    /// The page of `refs`, and whether references remain after it. `None`
    /// when the page token was not found.
    fn apply(&self, refs: Vec<Reference>) -> Option<(Vec<Reference>, bool)> {
        let mut past = self.token.is_none();
        let mut out = Vec::new();
        let mut iter = refs.into_iter();
        while out.len() < self.limit {
            let Some(r) = iter.next() else { break };
            if !past {
                past = Some(&r.name) == self.token.as_ref();
                continue;
            }
            out.push(r);
        }
        let more = iter.next().is_some();
        past.then_some((out, more))
    }
}

/// Rejects patterns that would read as options to git-for-each-ref, as
/// upstream's argument validation does (an internal error there).
fn check_patterns<'a>(patterns: impl IntoIterator<Item = &'a [u8]>) -> Result<()> {
    for p in patterns {
        if p.starts_with(b"-") {
            return Err(Error::internal_msg(format!(
                "positional arg {:?} cannot start with dash '-': invalid argument",
                String::from_utf8_lossy(p)
            )));
        }
    }
    Ok(())
}

/// The commit a reference target names (tags peeled), as a message.
fn target_commit(repo: &Repo, target: objects::ObjectId) -> Result<GitCommit> {
    commit::read_peeled(repo, target)?
        .map(|c| convert::git_commit(&c))
        .ok_or_else(|| Error::internal_msg(format!("object {target} does not name a commit")))
}

#[tonic::async_trait]
impl ref_service_server::RefService for RefService {
    async fn find_default_branch_name(
        &self,
        req: Request<FindDefaultBranchNameRequest>,
    ) -> Result<Response<FindDefaultBranchNameResponse>, Status> {
        respond(find_default_branch_name::handle(&self.deps, req.into_inner()).await)
    }

    async fn find_local_branches(
        &self,
        req: Request<FindLocalBranchesRequest>,
    ) -> Result<Response<BoxStream<FindLocalBranchesResponse>>, Status> {
        respond(branches::find_local_branches(&self.deps, req.into_inner()))
    }

    async fn find_all_branches(
        &self,
        req: Request<FindAllBranchesRequest>,
    ) -> Result<Response<BoxStream<FindAllBranchesResponse>>, Status> {
        respond(branches::find_all_branches(&self.deps, req.into_inner()))
    }

    async fn find_all_tags(
        &self,
        req: Request<FindAllTagsRequest>,
    ) -> Result<Response<BoxStream<FindAllTagsResponse>>, Status> {
        respond(tags::find_all_tags(&self.deps, req.into_inner()))
    }

    async fn find_tag(&self, req: Request<FindTagRequest>) -> Result<Response<FindTagResponse>, Status> {
        respond(tags::find_tag(&self.deps, req.into_inner()).await)
    }

    async fn find_all_remote_branches(
        &self,
        req: Request<FindAllRemoteBranchesRequest>,
    ) -> Result<Response<BoxStream<FindAllRemoteBranchesResponse>>, Status> {
        respond(branches::find_all_remote_branches(&self.deps, req.into_inner()))
    }

    async fn ref_exists(&self, req: Request<RefExistsRequest>) -> Result<Response<RefExistsResponse>, Status> {
        respond(ref_exists::handle(&self.deps, req.into_inner()).await)
    }

    async fn find_branch(&self, req: Request<FindBranchRequest>) -> Result<Response<FindBranchResponse>, Status> {
        respond(branches::find_branch(&self.deps, req.into_inner()).await)
    }

    async fn list_branch_names_containing_commit(
        &self,
        req: Request<ListBranchNamesContainingCommitRequest>,
    ) -> Result<Response<BoxStream<ListBranchNamesContainingCommitResponse>>, Status> {
        respond(containing::branches(&self.deps, req.into_inner()))
    }

    async fn list_tag_names_containing_commit(
        &self,
        req: Request<ListTagNamesContainingCommitRequest>,
    ) -> Result<Response<BoxStream<ListTagNamesContainingCommitResponse>>, Status> {
        respond(containing::tags(&self.deps, req.into_inner()))
    }

    async fn get_tag_signatures(
        &self,
        req: Request<GetTagSignaturesRequest>,
    ) -> Result<Response<BoxStream<GetTagSignaturesResponse>>, Status> {
        respond(tags::get_tag_signatures(&self.deps, req.into_inner()))
    }

    async fn get_tag_messages(
        &self,
        req: Request<GetTagMessagesRequest>,
    ) -> Result<Response<BoxStream<GetTagMessagesResponse>>, Status> {
        respond(tags::get_tag_messages(&self.deps, req.into_inner()))
    }

    async fn list_refs(&self, req: Request<ListRefsRequest>) -> Result<Response<BoxStream<ListRefsResponse>>, Status> {
        respond(list_refs::handle(&self.deps, req.into_inner()))
    }

    async fn find_refs_by_oid(
        &self,
        req: Request<FindRefsByOidRequest>,
    ) -> Result<Response<FindRefsByOidResponse>, Status> {
        respond(find_refs_by_oid::handle(&self.deps, req.into_inner()).await)
    }

    async fn update_references(
        &self,
        req: Request<Streaming<UpdateReferencesRequest>>,
    ) -> Result<Response<UpdateReferencesResponse>, Status> {
        let cid = correlation_id(&req);
        let tx = transaction(&req)?;
        let (metadata, _, stream) = req.into_parts();
        respond(update_references::handle(&self.deps, &metadata, stream, tx, cid.as_deref()).await)
    }

    async fn delete_refs(&self, req: Request<DeleteRefsRequest>) -> Result<Response<DeleteRefsResponse>, Status> {
        let cid = correlation_id(&req);
        let tx = transaction(&req)?;
        let (metadata, _, req) = req.into_parts();
        respond(delete_refs::handle(&self.deps, &metadata, req, tx, cid.as_deref()).await)
    }
}
