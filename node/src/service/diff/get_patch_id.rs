//! GetPatchID: the patch id of the diff between two revisions, as upstream
//! computes it (`git diff --full-index | git patch-id --verbatim`): git
//! produces the diff, the id is computed in-process over the stream.
//! Upstream 18.x hashes verbatim (whitespace kept); binary files enter the
//! id through their full blob ids.

use super::{git_failed_in, reject_option_like, target};
use crate::error::{Error, Result};
use crate::git::Subcommand;
use crate::git::diff::cli::Output;
use crate::git::diff::patch_id::PatchId;
use crate::service::{Deps, blocking};
use cairn_proto::gitaly::{GetPatchIdRequest, GetPatchIdResponse};
use std::io::{BufRead as _, BufReader};
use std::os::unix::ffi::OsStringExt as _;
use tonic::Code;

pub(super) async fn handle(deps: &Deps, req: GetPatchIdRequest, cid: Option<String>) -> Result<GetPatchIdResponse> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    if req.old_revision.is_empty() {
        return Err(Error::invalid_argument("empty OldRevision"));
    }
    if req.new_revision.is_empty() {
        return Err(Error::invalid_argument("empty NewRevision"));
    }
    reject_option_like(&req.old_revision)?;
    reject_option_like(&req.new_revision)?;
    let cmd = target(&path)
        .diff_command(Subcommand::Diff)
        .flag("--full-index")
        .arg(std::ffi::OsString::from_vec(req.old_revision))
        .arg(std::ffi::OsString::from_vec(req.new_revision));
    let factory = deps.git.clone();
    let patch_id = blocking(move || {
        let mut reader = BufReader::new(Output::start(&factory, cmd, cid.as_deref())?);
        let mut current = PatchId::new(true);
        let mut found = None;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(|e| Error::internal("read git diff output", e))?;
            if n == 0 {
                break;
            }
            // git patch-id prints one id per patch; upstream takes the first.
            if found.is_none() && !current.push(&line) {
                found = std::mem::replace(&mut current, PatchId::new(true)).finish();
            }
        }
        reader.into_inner().finish().map_err(|e| git_failed_in(Code::Internal, "waiting for git-diff: ", e))?;
        Ok(found.or_else(|| current.finish()))
    })
    .await?;
    match patch_id {
        Some(patch_id) => Ok(GetPatchIdResponse { patch_id }),
        None => Err(Error::failed_precondition("no difference between old and new revision")),
    }
}
