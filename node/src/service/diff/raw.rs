//! RawDiff and RawPatch: `git diff --full-index` and `git format-patch
//! --stdout --signature GitLab` byte for byte, as upstream streams them
//! (git's own text, so git runs), in 128 KiB messages.

use super::{check_commit_ids, git_failed, reject_option_like, target};
use crate::error::Result;
use crate::git::diff::cli::{Output, read_full};
use crate::git::{CommandFactory, GitCommand, Subcommand};
use crate::service::{CHUNK_SIZE, Deps, stream};
use cairn_proto::gitaly::{RawDiffRequest, RawDiffResponse, RawPatchRequest, RawPatchResponse};
use tonic::Code;
use tonic::codegen::BoxStream;

/// Upstream returns git's exit error itself, without a gRPC status, which
/// reaches the client as UNKNOWN.
const GIT_FAILED: Code = Code::Unknown;

/// Streams the stdout of the command `cmd` builds as `make(chunk)`
/// messages of [`CHUNK_SIZE`] bytes; a failing git ends the stream with
/// `code`.
pub(super) fn stream_output<T: Send + 'static>(
    factory: &CommandFactory,
    cmd: impl FnOnce() -> Result<GitCommand> + Send + 'static,
    cid: Option<String>,
    code: Code,
    make: fn(Vec<u8>) -> T,
) -> BoxStream<T> {
    let factory = factory.clone();
    stream::blocking_stream(move |sink| {
        let mut out = Output::start(&factory, cmd()?, cid.as_deref())?;
        let mut buf = vec![0; CHUNK_SIZE];
        loop {
            let n = read_full(&mut out, &mut buf)?;
            if n > 0 {
                sink.send(make(buf[..n].to_vec()))?;
            }
            if n < buf.len() {
                break;
            }
        }
        out.finish().map_err(|e| git_failed(code, e))
    })
}

pub(super) fn raw_diff(deps: &Deps, req: RawDiffRequest, cid: Option<String>) -> Result<BoxStream<RawDiffResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    check_commit_ids(&req.left_commit_id, &req.right_commit_id)?;
    reject_option_like(req.left_commit_id.as_bytes())?;
    reject_option_like(req.right_commit_id.as_bytes())?;
    let cmd = target(&path)
        .diff_command(Subcommand::Diff)
        .flag("--full-index")
        .arg(&req.left_commit_id)
        .arg(&req.right_commit_id);
    Ok(stream_output(&deps.git, move || Ok(cmd), cid, GIT_FAILED, |data| RawDiffResponse { data }))
}

pub(super) fn raw_patch(deps: &Deps, req: RawPatchRequest, cid: Option<String>) -> Result<BoxStream<RawPatchResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    check_commit_ids(&req.left_commit_id, &req.right_commit_id)?;
    let range = format!("{}..{}", req.left_commit_id, req.right_commit_id);
    reject_option_like(range.as_bytes())?;
    let cmd =
        target(&path).diff_command(Subcommand::FormatPatch).flag("--stdout").flag("--signature=GitLab").arg(range);
    Ok(stream_output(&deps.git, move || Ok(cmd), cid, GIT_FAILED, |data| RawPatchResponse { data }))
}
