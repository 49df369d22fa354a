//! Bundles of a whole repository, written by `git bundle create` (gix
//! cannot write bundles or packs of arbitrary object sets) and streamed
//! from its stdout.

use super::command::Running;
use super::{CommandError, CommandFactory, GitCommand, GitError, Subcommand};
use std::path::Path;

/// Starts `git bundle create - --all`; the caller streams its stdout and
/// then waits for it ([`is_empty_bundle`] tells the "nothing to bundle"
/// failure apart).
pub fn create_all(
    factory: &CommandFactory,
    repo: &Path,
    quarantine: &super::repo::Quarantine,
    correlation_id: Option<&str>,
) -> Result<Running, GitError> {
    let cmd = quarantine
        .apply(GitCommand::new(Subcommand::Bundle))
        .git_dir(repo)
        .flag("create")
        .flag("--quiet")
        .flag("-")
        .flag("--all");
    Ok(factory.spawn(cmd, correlation_id)?)
}

/// Whether git refused because the repository has no references.
pub fn is_empty_bundle(err: &CommandError) -> bool {
    err.stderr().starts_with("fatal: Refusing to create empty bundle.")
}
