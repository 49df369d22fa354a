//! The on-disk size of the objects reachable from a set of revisions, as
//! `git rev-list --disk-usage --objects --stdin` computes it. The CLI is
//! used because gix has no object walk taking rev-list's revision syntax
//! (`--all`, `--not`, `^rev`, `--branches=…`) and no on-disk object sizes.

use super::{CommandFactory, GitCommand, GitError, Subcommand};
use std::path::Path;

/// What the walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Size {
    Bytes(u64),
    /// A revision named nothing (git's `bad revision`).
    RevisionNotFound(String),
}

/// Sums the disk usage of every object reachable from `revisions` (one per
/// line on rev-list's stdin, where pseudo-options such as `--not` work).
pub async fn objects_size(
    factory: &CommandFactory,
    repo: &Path,
    quarantine: &super::repo::Quarantine,
    revisions: &[Vec<u8>],
    correlation_id: Option<&str>,
) -> Result<Size, GitError> {
    let mut input = Vec::new();
    for r in revisions {
        input.extend_from_slice(r);
        input.push(b'\n');
    }
    let cmd = quarantine
        .apply(GitCommand::new(Subcommand::RevList))
        .git_dir(repo)
        .flag("--disk-usage")
        .flag("--objects")
        .flag("--stdin")
        .stdin(input);
    match factory.run(cmd, correlation_id).await {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let size =
                text.trim().parse::<u64>().map_err(|_| GitError::Invalid(format!("rev-list printed {text:?}")))?;
            Ok(Size::Bytes(size))
        }
        Err(e) => {
            if let Some(rest) = e.stderr().strip_prefix("fatal: bad revision '") {
                let revision = rest.split('\'').next().unwrap_or_default().to_owned();
                return Ok(Size::RevisionNotFound(revision));
            }
            Err(e.into())
        }
    }
}
