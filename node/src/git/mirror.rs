//! Pushing a repository's branches and tags to a remote mirror
//! (UpdateRemoteMirror), with upstream's rules: references missing or
//! different on the mirror are pushed (forced, unless divergent references
//! are kept), mirror references that no longer exist locally are deleted
//! when they are merged into the local default branch, and only branches
//! matching the given patterns are touched (tags always are).

use super::remote::{self, RemoteTarget, UrlRemote};
use super::{CommandError, CommandFactory, GitCommand, GitError, Subcommand};
use std::collections::BTreeMap;
use std::path::Path;

/// References pushed per `git push` (upstream's batch size: a single push
/// of thousands of references can exceed what servers accept).
const PUSH_BATCH: usize = 10;

/// Most divergent references reported.
const MAX_DIVERGENT: usize = 100;

/// What to mirror and how.
#[derive(Debug, Clone, Default)]
pub struct MirrorOptions {
    pub remote: UrlRemote,
    /// Branch name patterns (`*` matches anything); empty means all.
    pub only_branches_matching: Vec<Vec<u8>>,
    /// Leave mirror references that moved elsewhere alone and report them.
    pub keep_divergent_refs: bool,
    pub ssh_command: String,
}

/// Upstream's reference matcher: every tag, and the branches matching one
/// of the patterns (all branches without patterns).
pub fn reference_matcher(patterns: &[Vec<u8>]) -> Result<regex::Regex, GitError> {
    let branches = if patterns.is_empty() {
        ".+".to_owned()
    } else {
        patterns
            .iter()
            .map(|p| String::from_utf8_lossy(p).split('*').map(regex::escape).collect::<Vec<_>>().join(".*"))
            .collect::<Vec<_>>()
            .join("|")
    };
    regex::Regex::new(&format!("^refs/tags/.+$|^refs/heads/({branches})$"))
        .map_err(|e| GitError::Invalid(format!("create reference matcher: {e}")))
}

/// Mirrors `repo` to the remote; returns the divergent references (those
/// kept because the mirror's commit is not an ancestor of ours).
pub async fn update_mirror(
    factory: &CommandFactory,
    repo: &Path,
    opts: &MirrorOptions,
    correlation_id: Option<&str>,
) -> Result<Vec<Vec<u8>>, GitError> {
    let matcher = reference_matcher(&opts.only_branches_matching)?;
    let listed = remote::ls_remote(
        factory,
        Some(repo),
        &opts.remote,
        &["refs/heads/*", "refs/tags/*"],
        true,
        &opts.ssh_command,
        correlation_id,
    )
    .await?;
    let mut remote_refs: BTreeMap<String, String> = listed
        .into_iter()
        .filter_map(|(name, target)| match target {
            RemoteTarget::Object(oid) => Some((name, oid)),
            RemoteTarget::Symbolic(_) => None,
        })
        .collect();
    let local = local_refs(factory, repo, correlation_id).await?;
    let default_branch = remote::head_target(factory, repo, correlation_id).await?;

    let mut default_exists = false;
    let mut divergent = Vec::new();
    let mut to_update: Vec<String> = Vec::new();
    for (name, target) in &local {
        if *name == default_branch {
            default_exists = true;
        }
        let Some(remote_target) = remote_refs.remove(name) else {
            to_update.push(name.clone());
            continue;
        };
        if remote_target == *target {
            continue;
        }
        if opts.keep_divergent_refs && !is_ancestor(factory, repo, &remote_target, target, correlation_id).await? {
            if matcher.is_match(name) && divergent.len() < MAX_DIVERGENT {
                divergent.push(name.clone().into_bytes());
            }
            continue;
        }
        to_update.push(name.clone());
    }

    // Mirror references we do not have are deleted only when their commit
    // is merged into our default branch: anything else may be work that
    // exists only on the mirror.
    let mut to_delete = Vec::new();
    if default_exists && !opts.keep_divergent_refs {
        for (name, oid) in &remote_refs {
            if is_ancestor(factory, repo, oid, &default_branch, correlation_id).await? {
                to_delete.push(name.clone());
            }
        }
    }

    let mut refspecs: Vec<String> = to_update
        .into_iter()
        .chain(to_delete.into_iter().map(|n| format!(":{n}")))
        .filter(|spec| matcher.is_match(spec.trim_start_matches(':')))
        .collect();
    // The default branch goes first so that a mirror created by this push
    // gets it as its HEAD.
    if let Some(i) = refspecs.iter().position(|s| *s == default_branch) {
        let spec = refspecs.remove(i);
        refspecs.insert(0, spec);
    }
    for batch in refspecs.chunks(PUSH_BATCH) {
        remote::push(factory, repo, &opts.remote, batch, !opts.keep_divergent_refs, &opts.ssh_command, correlation_id)
            .await?;
    }
    Ok(divergent)
}

/// Local branches and tags (symbolic references left out), by name.
async fn local_refs(
    factory: &CommandFactory,
    repo: &Path,
    correlation_id: Option<&str>,
) -> Result<Vec<(String, String)>, GitError> {
    let cmd = GitCommand::new(Subcommand::ForEachRef)
        .git_dir(repo)
        .flag("--format=%(objectname)%00%(refname)%00%(symref)")
        .arg("refs/heads/")
        .arg("refs/tags/");
    let out = factory.run(cmd, correlation_id).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut parts = line.split('\0');
            let (oid, name, symref) = (parts.next()?, parts.next()?, parts.next().unwrap_or_default());
            symref.is_empty().then(|| (name.to_owned(), oid.to_owned()))
        })
        .collect())
}

/// Whether `ancestor` is an ancestor of `descendant`; an object we do not
/// have (a mirror commit never fetched) is not.
async fn is_ancestor(
    factory: &CommandFactory,
    repo: &Path,
    ancestor: &str,
    descendant: &str,
    correlation_id: Option<&str>,
) -> Result<bool, GitError> {
    let cmd = GitCommand::new(Subcommand::MergeBase).git_dir(repo).flag("--is-ancestor").arg(ancestor).arg(descendant);
    match factory.run(cmd, correlation_id).await {
        Ok(_) => Ok(true),
        Err(CommandError::Failed { code: Some(1), .. }) => Ok(false),
        Err(CommandError::Failed { code: Some(128), ref stderr, .. })
            if stderr.contains("Not a valid") || stderr.contains("not a valid") || stderr.contains("bad object") =>
        {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matcher_follows_upstream() {
        let all = reference_matcher(&[]).expect("compiles");
        assert!(all.is_match("refs/heads/anything/at/all"));
        assert!(all.is_match("refs/tags/v1"));
        assert!(!all.is_match("refs/merge-requests/1/head"));
        let some = reference_matcher(&[b"feature-*".to_vec(), b"main".to_vec(), b"a.b".to_vec()]).expect("compiles");
        assert!(some.is_match("refs/heads/feature-x/y"));
        assert!(some.is_match("refs/heads/main"));
        assert!(!some.is_match("refs/heads/mainline"));
        assert!(!some.is_match("refs/heads/aXb"), "dots are literal");
        assert!(some.is_match("refs/tags/whatever"));
    }
}
