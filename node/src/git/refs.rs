//! Reference names, revisions and atomic reference updates.

use super::wire::Hooks;
use super::{CommandError, CommandFactory, GitCommand, GitError, Subcommand};
use std::path::Path;

/// Whether `name` is a valid reference name by git's rules
/// (`git check-ref-format`): no `..`, no `@{`, no control characters or
/// ` ~^:?*[\`, no component starting with `.` or ending with `.lock`, not
/// ending with `/` or `.`, not `@`, no empty components.
pub fn valid_ref_name(name: &[u8]) -> bool {
    if name.is_empty() || name == b"@" || name.ends_with(b"/") || name.ends_with(b".") {
        return false;
    }
    if name.windows(2).any(|w| w == b".." || w == b"@{" || w == b"//") {
        return false;
    }
    if name.iter().any(|&b| b < 0x20 || b == 0x7f || b" ~^:?*[\\".contains(&b)) {
        return false;
    }
    name.split(|b| *b == b'/').all(|c| !c.is_empty() && !c.starts_with(b".") && !c.ends_with(b".lock"))
}

/// Upstream's checks on a revision argument: not empty, no leading `-`
/// (it would read as an option), no NUL, whitespace, `:` or `\`.
pub fn validate_revision(revision: &[u8]) -> Result<(), &'static str> {
    if revision.is_empty() {
        return Err("empty revision");
    }
    if revision.starts_with(b"-") {
        return Err("revision can't start with '-'");
    }
    if revision.contains(&0) {
        return Err("revision can't contain NUL");
    }
    if revision.iter().any(|b| b" \t\n\r".contains(b)) {
        return Err("revision can't contain whitespace");
    }
    if revision.contains(&b':') {
        return Err("revision can't contain ':'");
    }
    if revision.contains(&b'\\') {
        return Err("revision can't contain '\\'");
    }
    Ok(())
}

/// One reference change for [`update`].
#[derive(Debug, Clone)]
pub struct RefUpdate {
    pub name: Vec<u8>,
    /// New object id (hex); the zero id deletes the reference.
    pub new: String,
    /// Expected current value (hex; zero id = must not exist); `None` = any.
    pub old: Option<String>,
}

/// Applies all updates in one `git update-ref --stdin` transaction: either
/// every reference changes or none does. With `hooks` (a router's
/// transaction) git's reference-transaction hook votes on the change and
/// can stop it before it is committed.
pub async fn update(
    factory: &CommandFactory,
    repo: &Path,
    updates: &[RefUpdate],
    hooks: Option<&Hooks>,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    let mut input = Vec::new();
    input.extend_from_slice(b"start\0");
    for u in updates {
        input.extend_from_slice(b"update ");
        input.extend_from_slice(&u.name);
        input.push(0);
        input.extend_from_slice(u.new.as_bytes());
        input.push(0);
        if let Some(old) = &u.old {
            input.extend_from_slice(old.as_bytes());
        }
        input.push(0);
    }
    input.extend_from_slice(b"prepare\0commit\0");
    let cmd = GitCommand::new(Subcommand::UpdateRef).git_dir(repo).flag("-z").flag("--stdin").stdin(input);
    run_update(factory, repo, cmd, hooks, correlation_id).await
}

/// Deletes `names` (whatever they point at; symbolic references
/// themselves, not their targets) in one `git update-ref --stdin`
/// transaction, voting through `hooks` as [`update`] does.
pub async fn delete(
    factory: &CommandFactory,
    repo: &Path,
    names: &[Vec<u8>],
    hooks: Option<&Hooks>,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    let mut input = b"start\0".to_vec();
    for name in names {
        input.extend_from_slice(b"delete ");
        input.extend_from_slice(name);
        input.extend_from_slice(b"\0\0");
    }
    input.extend_from_slice(b"prepare\0commit\0");
    let cmd =
        GitCommand::new(Subcommand::UpdateRef).git_dir(repo).flag("--no-deref").flag("-z").flag("--stdin").stdin(input);
    run_update(factory, repo, cmd, hooks, correlation_id).await
}

/// A loose reference's lock older than this was left by a killed git:
/// git holds one only while an update-ref transaction runs (milliseconds,
/// seconds while a router collects votes).
const STALE_LOCK_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs an `update-ref --stdin` transaction. When it fails on a stale
/// lock of a loose reference (a node killed mid-write leaves one, and
/// every update of that reference would fail until housekeeping removes
/// it an hour later), the lock is removed and the transaction run once
/// more.
async fn run_update(
    factory: &CommandFactory,
    repo: &Path,
    cmd: GitCommand,
    hooks: Option<&Hooks>,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    let stderr = match factory.run(with_hooks(cmd.clone(), hooks), correlation_id).await {
        Ok(_) => return Ok(()),
        Err(CommandError::Failed { stderr, .. }) => stderr,
        Err(e) => return Err(e.into()),
    };
    let Some(lock) = stale_lock(repo, &stderr) else { return Err(classify_update_error(stderr)) };
    if std::fs::remove_file(&lock).is_err() {
        return Err(classify_update_error(stderr));
    }
    tracing::warn!(lock = %lock.display(), "removed a stale reference lock, retrying the update");
    match factory.run(with_hooks(cmd, hooks), correlation_id).await {
        Ok(_) => Ok(()),
        Err(CommandError::Failed { stderr, .. }) => Err(classify_update_error(stderr)),
        Err(e) => Err(e.into()),
    }
}

/// The lock file git could not create, when it is a loose reference's
/// lock (under `refs/`, never `packed-refs.lock`, whose holder may work
/// for long) older than [`STALE_LOCK_AGE`].
fn stale_lock(repo: &Path, stderr: &str) -> Option<std::path::PathBuf> {
    const BEFORE: &str = "Unable to create '";
    let start = stderr.find(BEFORE)? + BEFORE.len();
    let end = start + stderr[start..].find("': File exists")?;
    let path = Path::new(&stderr[start..end]);
    let path = if path.is_absolute() { path.to_owned() } else { repo.join(path) };
    is_stale_lock(repo, &path).then_some(path)
}

fn is_stale_lock(repo: &Path, path: &Path) -> bool {
    let inside = path.starts_with(repo.join("refs"))
        && path.extension().is_some_and(|e| e == "lock")
        && path.components().all(|c| !matches!(c, std::path::Component::ParentDir));
    let age = std::fs::symlink_metadata(path).ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
    inside && age.is_some_and(|a| a >= STALE_LOCK_AGE)
}

/// Removes a stale lock (see [`run_update`]) of each reference a push is
/// about to update, so git's own update after pre-receive does not fail on
/// it. Returns how many were removed.
pub fn remove_stale_locks<'a>(repo: &Path, references: impl IntoIterator<Item = &'a [u8]>) -> usize {
    use std::os::unix::ffi::OsStrExt as _;
    let mut removed = 0;
    for name in references {
        let mut lock = name.to_vec();
        lock.extend_from_slice(b".lock");
        let path = repo.join(std::ffi::OsStr::from_bytes(&lock));
        if is_stale_lock(repo, &path) && std::fs::remove_file(&path).is_ok() {
            tracing::warn!(lock = %path.display(), "removed a stale reference lock before a push");
            removed += 1;
        }
    }
    removed
}

/// What git says when the reference-transaction hook refused (a vote was
/// not committed).
const ABORTED_BY_HOOK: &str = "aborted by hook";

fn classify_update_error(stderr: String) -> GitError {
    let msg = stderr.trim_start_matches("fatal: ").to_owned();
    if msg.contains(".lock': File exists") || msg.contains("reference is already locked") {
        GitError::ReferenceLocked(msg)
    } else if msg.contains("cannot lock ref")
        || msg.contains(ABORTED_BY_HOOK)
        || msg.contains("reference already exists")
        || msg.contains("but expected")
    {
        GitError::ReferenceUpdate(msg)
    } else {
        GitError::Command(CommandError::Failed { subcommand: "update-ref", code: None, stderr })
    }
}

/// Points HEAD at `target` (a full reference name such as `refs/heads/main`).
/// git (2.47 and later) runs the reference-transaction hook for
/// symbolic-ref too, so `hooks` votes on the change as for [`update`].
pub async fn set_head(
    factory: &CommandFactory,
    repo: &Path,
    target: &str,
    hooks: Option<&Hooks>,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    let cmd = GitCommand::new(Subcommand::SymbolicRef).git_dir(repo).arg("HEAD").arg(target);
    match factory.run(with_hooks(cmd, hooks), correlation_id).await {
        Ok(_) => Ok(()),
        Err(CommandError::Failed { stderr, .. }) if stderr.contains(ABORTED_BY_HOOK) => {
            Err(GitError::ReferenceUpdate(stderr.trim_start_matches("fatal: ").to_owned()))
        }
        Err(e) => Err(e.into()),
    }
}

/// `git for-each-ref` in its default format (`<oid> <type>\t<name>` lines),
/// upstream's basis for a vote on all references of a repository.
pub async fn listing(factory: &CommandFactory, repo: &Path, correlation_id: Option<&str>) -> Result<Vec<u8>, GitError> {
    let out = factory.run(GitCommand::new(Subcommand::ForEachRef).git_dir(repo), correlation_id).await?;
    Ok(out.stdout)
}

fn with_hooks(cmd: GitCommand, hooks: Option<&Hooks>) -> GitCommand {
    match hooks {
        Some(h) => h.apply(cmd),
        None => cmd,
    }
}

/// What a failed reference transaction ran into, read from git's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Another writer holds the reference's lock.
    Locked(Vec<u8>),
    /// The reference did not have the expected old value.
    Mismatch(Vec<u8>),
    /// The new value names an object the repository lacks.
    MissingObject(Vec<u8>, String),
    Other,
}

/// Reads git's reason for a failed `update-ref` (the text of
/// [`GitError::ReferenceUpdate`] or [`GitError::ReferenceLocked`]).
pub fn failure(message: &str) -> Failure {
    let quoted = |after: &str| {
        message.find(after).and_then(|i| {
            let rest = &message[i + after.len()..];
            rest.find('\'').map(|end| rest.as_bytes()[..end].to_vec())
        })
    };
    if message.contains("with nonexistent object") {
        let reference = quoted("trying to write ref '").unwrap_or_default();
        let oid = message.trim_end().rsplit(' ').next().unwrap_or_default().to_owned();
        return Failure::MissingObject(reference, oid);
    }
    let Some(name) = quoted("cannot lock ref '") else { return Failure::Other };
    if message.contains(".lock': File exists") || message.contains("reference is already locked") {
        Failure::Locked(name)
    } else if message.contains("but expected")
        || message.contains("reference already exists")
        || message.contains("unable to resolve reference")
    {
        Failure::Mismatch(name)
    } else {
        Failure::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names() {
        for ok in [&b"refs/heads/main"[..], b"refs/heads/feature/x-1", b"HEAD", b"refs/tags/v1.0"] {
            assert!(valid_ref_name(ok), "{ok:?}");
        }
        for bad in [
            &b""[..],
            b"refs/heads/a..b",
            b"refs/heads/a b",
            b"refs/heads/.hidden",
            b"refs/heads/x.lock",
            b"refs/heads/",
            b"refs//heads",
            b"refs/heads/a@{1}",
            b"refs/heads/a~1",
            b"refs/heads/a\x01",
            b"@",
            b"refs/heads/end.",
        ] {
            assert!(!valid_ref_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn revisions() {
        assert!(validate_revision(b"main~1").is_ok());
        assert!(validate_revision(b"-all").is_err());
        assert!(validate_revision(b"a b").is_err());
        assert!(validate_revision(b"a:b").is_err());
        assert!(validate_revision(b"").is_err());
    }

    #[test]
    fn failures() {
        let locked = "cannot lock ref 'refs/heads/a': Unable to create '/r/refs/heads/a.lock': File exists.";
        assert_eq!(failure(locked), Failure::Locked(b"refs/heads/a".to_vec()));
        let stale = "cannot lock ref 'refs/heads/a': is at 1111 but expected 2222";
        assert_eq!(failure(stale), Failure::Mismatch(b"refs/heads/a".to_vec()));
        let missing = "update_ref failed for ref 'refs/heads/a': cannot update ref 'refs/heads/a': trying to write ref 'refs/heads/a' with nonexistent object 3333\n";
        assert_eq!(failure(missing), Failure::MissingObject(b"refs/heads/a".to_vec(), "3333".into()));
        assert_eq!(failure("something else"), Failure::Other);
    }
}
