//! Bundles: written by `git bundle create` (gix cannot write bundles or
//! packs of arbitrary object sets) and streamed from its stdout; read by
//! `git clone` / `git fetch` from a spooled file (git needs to seek in a
//! bundle, so it cannot come from stdin).

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
    Ok(factory.spawn(create_command(repo, quarantine).flag("--all"), correlation_id)?)
}

/// `git bundle create -` reading objects as the request asks.
fn create_command(repo: &Path, quarantine: &super::repo::Quarantine) -> GitCommand {
    quarantine.apply(GitCommand::new(Subcommand::Bundle)).git_dir(repo).flag("create").flag("--quiet").flag("-")
}

/// Whether git refused because the repository has no references.
pub fn is_empty_bundle(err: &CommandError) -> bool {
    err.stderr().starts_with("fatal: Refusing to create empty bundle.")
}

/// Starts `git bundle create - --ignore-missing --stdin` with the given
/// revisions and patterns (one a line) on stdin; streamed like
/// [`create_all`].
pub fn create_from_patterns(
    factory: &CommandFactory,
    repo: &Path,
    quarantine: &super::repo::Quarantine,
    patterns: Vec<u8>,
    correlation_id: Option<&str>,
) -> Result<Running, GitError> {
    let cmd = create_command(repo, quarantine).flag("--ignore-missing").flag("--stdin").stdin(patterns);
    Ok(factory.spawn(cmd, correlation_id)?)
}

/// Clones the bundle at `bundle` into `dest` (which must not exist) as a
/// mirror, so every reference in it (branches, tags and internal
/// references alike) arrives under its own name, then forgets where it
/// came from.
pub async fn clone_bundle(
    factory: &CommandFactory,
    bundle: &Path,
    dest: &Path,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    let cmd = GitCommand::new(Subcommand::Clone)
        .flag("--quiet")
        .flag("--mirror")
        .config("core.hooksPath", "/dev/null")
        .arg(bundle)
        .arg(dest);
    factory.run(cmd, correlation_id).await?;
    super::remote::remove_origin(factory, dest, correlation_id).await
}

/// Fetches every reference of the bundle at `bundle` into `repo` under its
/// own name, atomically (`+refs/*:refs/*`, nothing pruned). With `hooks`
/// the reference-transaction hook votes on the update.
pub async fn fetch_bundle(
    factory: &CommandFactory,
    repo: &Path,
    bundle: &Path,
    hooks: Option<&super::wire::Hooks>,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    let mut cmd = GitCommand::new(Subcommand::Fetch)
        .git_dir(repo)
        .flag("--no-write-fetch-head")
        .flag("--quiet")
        .flag("--atomic")
        .config("advice.fetchShowForcedUpdates", "false")
        .config("remote.inmemory.url", &bundle.to_string_lossy())
        .config("remote.inmemory.fetch", "+refs/*:refs/*")
        .arg("inmemory");
    cmd = match hooks {
        Some(h) => h.apply(cmd),
        None => cmd.config("core.hooksPath", "/dev/null"),
    };
    factory.run(cmd, correlation_id).await?;
    Ok(())
}

/// The object the bundle's HEAD points at, if it has one (bundles record
/// no symbolic references, only the object).
pub async fn bundle_head(
    factory: &CommandFactory,
    repo: &Path,
    bundle: &Path,
    correlation_id: Option<&str>,
) -> Result<Option<String>, GitError> {
    let cmd = GitCommand::new(Subcommand::Bundle).git_dir(repo).flag("list-heads").arg(bundle).arg("HEAD");
    let out = factory.run(cmd, correlation_id).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().find_map(|l| l.split_once(' ').filter(|(_, name)| *name == "HEAD").map(|(oid, _)| oid.to_owned())))
}

/// The branch HEAD should point to for a bundle whose HEAD is `head`, as
/// upstream guesses it: `main` or `master` when at that object, otherwise
/// the first branch (by name) at it; `None` when no branch is.
pub async fn guess_head_branch(
    factory: &CommandFactory,
    repo: &Path,
    head: &str,
    correlation_id: Option<&str>,
) -> Result<Option<String>, GitError> {
    let cmd = GitCommand::new(Subcommand::ForEachRef)
        .git_dir(repo)
        .flag("--format=%(objectname) %(refname)")
        .arg("refs/heads/");
    let out = factory.run(cmd, correlation_id).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    let at_head: Vec<&str> =
        text.lines().filter_map(|l| l.split_once(' ')).filter(|(oid, _)| *oid == head).map(|(_, name)| name).collect();
    for preferred in ["refs/heads/main", "refs/heads/master"] {
        if at_head.contains(&preferred) {
            return Ok(Some(preferred.to_owned()));
        }
    }
    Ok(at_head.first().map(|n| (*n).to_owned()))
}
