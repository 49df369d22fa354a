//! Line blame in git's porcelain format. The porcelain output (commit
//! headers on first appearance, `previous`/`boundary` lines, git's diff
//! heuristics for attribution) is produced by `git blame` itself: gitoxide
//! has no porcelain writer matching git byte for byte. Inputs are checked
//! in-process first, and the ignore-revs blob is resolved in-process.

use super::objects::{self, Kind};
use super::{CommandError, CommandFactory, GitCommand, GitError, Repo, Subcommand};
use std::path::Path;

/// Why a blame failed, in the cases upstream reports with details.
#[derive(Debug, thiserror::Error)]
pub enum BlameError {
    /// `fatal: no such path <path> in <rev>`.
    #[error("path not found in revision")]
    PathNotFound,
    /// `-L` past the end of the file, which has this many lines.
    #[error("range is outside of the file length")]
    OutOfRange(u64),
    /// A line of the ignore-revs file names no object.
    #[error("invalid object name")]
    InvalidIgnoreRevs(Vec<u8>),
    #[error("blaming file")]
    Failed(#[source] CommandError),
}

/// The ignore-revs blob a revision names: `Ok(None)` when it names
/// nothing, `Err` kind when it names something else than a blob.
pub fn ignore_revs_blob(repo: &Repo, revision: &[u8]) -> Result<Option<Result<Vec<u8>, Kind>>, GitError> {
    let Some(id) = objects::resolve(repo, revision) else { return Ok(None) };
    match objects::read(repo, id)? {
        None => Ok(None),
        Some(o) if o.kind == Kind::Blob => Ok(Some(Ok(o.data))),
        Some(o) => Ok(Some(Err(o.kind))),
    }
}

/// Where `git blame` runs: the repository and the request's quarantine.
#[derive(Debug, Clone, Copy)]
pub struct BlameRepo<'a> {
    pub path: &'a Path,
    pub quarantine: &'a super::repo::Quarantine,
}

/// `git blame -p [-L <range>] [--ignore-revs-file=<file>] <rev> <path>`.
pub async fn porcelain(
    factory: &CommandFactory,
    repo: BlameRepo<'_>,
    revision: &[u8],
    path: &[u8],
    range: Option<&[u8]>,
    ignore_revs_file: Option<&Path>,
    correlation_id: Option<&str>,
) -> Result<Vec<u8>, BlameError> {
    use std::os::unix::ffi::OsStrExt as _;
    let mut cmd = repo.quarantine.apply(GitCommand::new(Subcommand::Blame)).git_dir(repo.path).flag("-p");
    if let Some(file) = ignore_revs_file {
        cmd = cmd.flag_value("--ignore-revs-file", file);
    }
    if let Some(range) = range {
        // The range is validated as `<digits>,<digits>` by the caller.
        cmd = cmd.arg("-L").arg(std::ffi::OsStr::from_bytes(range));
    }
    // git blame reads `--` after `--end-of-options` as a revision, so the
    // path follows the revision directly; both are past option parsing.
    cmd = cmd.arg("--end-of-options").arg(std::ffi::OsStr::from_bytes(revision)).arg(std::ffi::OsStr::from_bytes(path));
    match factory.run(cmd, correlation_id).await {
        Ok(out) => Ok(out.stdout),
        Err(e) => Err(classify(e)),
    }
}

fn classify(e: CommandError) -> BlameError {
    let stderr = e.stderr().to_owned();
    if stderr.starts_with("fatal: no such path ") {
        return BlameError::PathNotFound;
    }
    if let Some(name) = stderr.strip_prefix("fatal: invalid object name: ") {
        return BlameError::InvalidIgnoreRevs(name.as_bytes().to_vec());
    }
    if let Some(rest) = stderr.strip_prefix("fatal: file ")
        && let Some(at) = rest.rfind(" has only ")
    {
        let count = rest[at + 10..].trim_end_matches(" lines").trim_end_matches(" line");
        if let Ok(n) = count.parse() {
            return BlameError::OutOfRange(n);
        }
    }
    BlameError::Failed(e)
}
