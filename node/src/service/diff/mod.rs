//! DiffService: diffs between commits, trees and blobs, and patch output.
//!
//! CommitDelta and FindChangedPaths are answered in-process (gitoxide tree
//! diffs with git's rename detection). Everything whose answer is git's
//! text (CommitDiff, RawDiff, RawPatch, DiffStats, GetPatchID, DiffBlobs,
//! RangeDiff, RawRangeDiff) reads one streamed git process per request, as
//! upstream does, because hunk placement, diff drivers and word diffs are
//! git's own; GetPatchID computes the id in-process over that stream.

mod commit_delta;
mod commit_diff;
mod diff_blobs;
mod diff_stats;
mod find_changed_paths;
mod get_patch_id;
mod range_diff;
mod raw;

use super::{Deps, correlation_id, respond};
use crate::error::{Error, Result};
use crate::git::GitError;
use crate::git::diff::cli::Target;
use crate::storage::RepoPath;
use cairn_proto::gitaly::diff_service_server;
use cairn_proto::gitaly::*;
use tonic::codegen::BoxStream;
use tonic::{Code, Request, Response, Status};

/// Patch bytes per message of CommitDiff, DiffBlobs and RangeDiff
/// (upstream's `MsgSizeThreshold`); the metadata travels in the first.
const PATCH_CHUNK: usize = 5 * 1024;

/// Handlers of DiffService.
#[derive(Debug, Clone)]
pub(super) struct DiffService {
    deps: Deps,
}

impl DiffService {
    pub(super) fn new(deps: &Deps) -> Self {
        Self { deps: deps.clone() }
    }
}

/// Where git runs for a resolved repository, with its quarantine.
fn target(path: &RepoPath) -> Target {
    Target {
        git_dir: path.path.clone(),
        object_dir: path.object_dir.clone(),
        alternate_object_dirs: path.alternate_object_dirs.clone(),
    }
}

/// Upstream's checks of the two commits of CommitDiff, CommitDelta,
/// RawDiff, RawPatch and DiffStats: both must be set.
fn check_commit_ids(left: &str, right: &str) -> Result<()> {
    if left.is_empty() {
        return Err(Error::invalid_argument("empty LeftCommitId"));
    }
    if right.is_empty() {
        return Err(Error::invalid_argument("empty RightCommitId"));
    }
    Ok(())
}

/// Upstream hands revisions to git as arguments, and its command builder
/// refuses one that would read as an option (or cannot be an argument at
/// all) before git runs, which surfaces as INTERNAL.
fn reject_option_like(revision: &[u8]) -> Result<()> {
    if revision.starts_with(b"-") {
        return Err(Error::internal_msg(format!(
            "positional arg {:?} cannot start with dash '-'",
            String::from_utf8_lossy(revision)
        )));
    }
    if revision.contains(&0) {
        return Err(Error::internal_msg("argument contains NUL"));
    }
    Ok(())
}

/// A failed git command as upstream reports it: `code` with git's exit
/// status (stderr is logged, not sent); other failures are internal.
fn git_failed(code: Code, err: GitError) -> Error {
    git_failed_in(code, "", err)
}

/// [`git_failed`] with upstream's `context` in front of the message.
fn git_failed_in(code: Code, context: &str, err: GitError) -> Error {
    match err {
        GitError::Command(crate::git::CommandError::Failed { code: status, stderr, .. }) => Error::new(
            code,
            match status {
                Some(s) => format!("{context}exit status {s}"),
                None => format!("{context}git was killed"),
            },
        )
        .with_metadata("stderr", stderr),
        other => Error::from(other),
    }
}

/// Splits a patch into message-sized parts: the first part (possibly
/// empty), then the rest.
fn patch_parts(patch: &[u8]) -> impl Iterator<Item = &[u8]> {
    let first = &patch[..patch.len().min(PATCH_CHUNK)];
    std::iter::once(first).chain(patch[first.len()..].chunks(PATCH_CHUNK))
}

#[tonic::async_trait]
impl diff_service_server::DiffService for DiffService {
    async fn commit_diff(
        &self,
        req: Request<CommitDiffRequest>,
    ) -> Result<Response<BoxStream<CommitDiffResponse>>, Status> {
        let cid = correlation_id(&req);
        respond(commit_diff::handle(&self.deps, req.into_inner(), cid).await)
    }

    async fn commit_delta(
        &self,
        req: Request<CommitDeltaRequest>,
    ) -> Result<Response<BoxStream<CommitDeltaResponse>>, Status> {
        respond(commit_delta::handle(&self.deps, req.into_inner()))
    }

    async fn raw_diff(&self, req: Request<RawDiffRequest>) -> Result<Response<BoxStream<RawDiffResponse>>, Status> {
        let cid = correlation_id(&req);
        respond(raw::raw_diff(&self.deps, req.into_inner(), cid))
    }

    async fn raw_patch(&self, req: Request<RawPatchRequest>) -> Result<Response<BoxStream<RawPatchResponse>>, Status> {
        let cid = correlation_id(&req);
        respond(raw::raw_patch(&self.deps, req.into_inner(), cid))
    }

    async fn diff_stats(
        &self,
        req: Request<DiffStatsRequest>,
    ) -> Result<Response<BoxStream<DiffStatsResponse>>, Status> {
        let cid = correlation_id(&req);
        respond(diff_stats::handle(&self.deps, req.into_inner(), cid))
    }

    async fn find_changed_paths(
        &self,
        req: Request<FindChangedPathsRequest>,
    ) -> Result<Response<BoxStream<FindChangedPathsResponse>>, Status> {
        respond(find_changed_paths::handle(&self.deps, req.into_inner()).await)
    }

    async fn get_patch_id(&self, req: Request<GetPatchIdRequest>) -> Result<Response<GetPatchIdResponse>, Status> {
        let cid = correlation_id(&req);
        respond(get_patch_id::handle(&self.deps, req.into_inner(), cid).await)
    }

    async fn raw_range_diff(
        &self,
        req: Request<RawRangeDiffRequest>,
    ) -> Result<Response<BoxStream<RawRangeDiffResponse>>, Status> {
        let cid = correlation_id(&req);
        respond(range_diff::raw_range_diff(&self.deps, req.into_inner(), cid))
    }

    async fn range_diff(
        &self,
        req: Request<RangeDiffRequest>,
    ) -> Result<Response<BoxStream<RangeDiffResponse>>, Status> {
        let cid = correlation_id(&req);
        respond(range_diff::range_diff(&self.deps, req.into_inner(), cid))
    }

    async fn diff_blobs(
        &self,
        req: Request<DiffBlobsRequest>,
    ) -> Result<Response<BoxStream<DiffBlobsResponse>>, Status> {
        let cid = correlation_id(&req);
        respond(diff_blobs::handle(&self.deps, req.into_inner(), cid).await)
    }
}
