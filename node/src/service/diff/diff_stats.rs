//! DiffStats: added and deleted line counts per file between two commits,
//! from `git diff --numstat -z` (git's counts, renames included; binary
//! files count zero), in batches of 1000 as upstream sends them.

use super::{check_commit_ids, git_failed, reject_option_like, target};
use crate::error::Result;
use crate::git::Subcommand;
use crate::git::diff::cli::Output;
use crate::git::diff::numstat;
use crate::service::{Deps, stream};
use cairn_proto::gitaly::{DiffStats, DiffStatsRequest, DiffStatsResponse};
use std::io::BufReader;
use tonic::Code;
use tonic::codegen::BoxStream;

/// Stats per message.
const BATCH: usize = 1000;

pub(super) fn handle(deps: &Deps, req: DiffStatsRequest, cid: Option<String>) -> Result<BoxStream<DiffStatsResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    check_commit_ids(&req.left_commit_id, &req.right_commit_id)?;
    reject_option_like(req.left_commit_id.as_bytes())?;
    reject_option_like(req.right_commit_id.as_bytes())?;
    let cmd = target(&path)
        .diff_command(Subcommand::Diff)
        .flag("--numstat")
        .flag("-z")
        .arg(&req.left_commit_id)
        .arg(&req.right_commit_id);
    let factory = deps.git.clone();
    Ok(stream::blocking_stream(move |sink| {
        let mut reader = BufReader::new(Output::start(&factory, cmd, cid.as_deref())?);
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(stat) = numstat::next(&mut reader)? {
            batch.push(DiffStats {
                path: stat.path,
                additions: stat.additions,
                deletions: stat.deletions,
                old_path: stat.old_path,
            });
            if batch.len() == BATCH {
                sink.send(DiffStatsResponse { stats: std::mem::take(&mut batch) })?;
            }
        }
        reader.into_inner().finish().map_err(|e| git_failed(Code::FailedPrecondition, e))?;
        if !batch.is_empty() {
            sink.send(DiffStatsResponse { stats: batch })?;
        }
        Ok(())
    }))
}
