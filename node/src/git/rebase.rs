//! Rebasing without a work tree. The commits of a branch that upstream
//! lacks are planned as `git rebase` plans a pick-only todo list (rev-list
//! `--cherry-pick --right-only --no-merges --topo-order --reverse`) and
//! replayed one at a time with `git merge-tree`, each against its own first
//! parent as merge base. Replayed commits keep author and message; the
//! committer is whoever asked for the rebase. Objects go to a quarantine.

use super::command::{CommandFactory, GitCommand, Subcommand};
use super::merge::{self, MergeOptions, MergeOutcome, NewCommit};
use super::repo::Quarantine;
use super::write::Identity;
use super::{GitError, ObjectFormat, Repo, commit};
use std::path::Path;

/// One commit of the todo list, with what replaying it needs.
#[derive(Debug, Clone)]
pub struct Pick {
    pub id: String,
    pub tree: String,
    /// First parent and its tree; `None` for a root commit.
    pub parent: Option<(String, String)>,
    pub author: Identity,
    pub message: Vec<u8>,
}

/// How a replay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// The rebased branch's new tip.
    Tip(String),
    /// `commit` of the todo list did not apply on the commits before it.
    Conflict { commit: String, paths: Vec<Vec<u8>> },
}

/// The commits of `branch` to replay onto `upstream`, oldest first.
pub async fn todo_list(
    factory: &CommandFactory,
    repo: &Path,
    objects: &Quarantine,
    upstream: &str,
    branch: &str,
    correlation_id: Option<&str>,
) -> Result<Vec<String>, GitError> {
    let cmd = GitCommand::new(Subcommand::RevList)
        .git_dir(repo)
        .flag("--cherry-pick")
        .flag("--right-only")
        .flag("--no-merges")
        .flag("--topo-order")
        .flag("--reverse")
        .arg(format!("{upstream}...{branch}"));
    let out = factory.run(objects.apply(cmd), correlation_id).await?;
    Ok(String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect())
}

/// Reads the commits of a todo list (call on the blocking pool).
pub fn read_picks(repo: &Repo, ids: &[String]) -> Result<Vec<Pick>, GitError> {
    let read = |id: &str| commit::find(repo, id.as_bytes())?.ok_or_else(|| GitError::RevisionNotFound(id.to_owned()));
    ids.iter()
        .map(|id| {
            let c = read(id)?;
            let parent = match c.parents.first() {
                Some(p) => Some((p.clone(), read(p)?.tree)),
                None => None,
            };
            let author = Identity::recorded(&c.author.unwrap_or_default());
            Ok(Pick { id: c.id, tree: c.tree, parent, author, message: c.message })
        })
        .collect()
}

/// Replays `picks` onto the commit `onto` (whose tree is `onto_tree`).
/// A pick that changed something but changes nothing any more (upstream
/// has it already) is dropped; one that was empty to begin with is kept,
/// as `git rebase` does.
#[allow(clippy::too_many_arguments, reason = "a git invocation's inputs; a struct would only rename them")]
pub async fn replay(
    factory: &CommandFactory,
    repo: &Path,
    objects: &Quarantine,
    format: ObjectFormat,
    onto: &str,
    onto_tree: &str,
    picks: &[Pick],
    committer: &Identity,
    correlation_id: Option<&str>,
) -> Result<Replayed, GitError> {
    let mut tip = onto.to_owned();
    let mut tip_tree = onto_tree.to_owned();
    for pick in picks {
        let options = MergeOptions {
            merge_base: pick.parent.as_ref().map(|(id, _)| id.clone()),
            allow_unrelated_histories: true,
        };
        let tree = match merge::merge_tree(factory, repo, objects, &tip, &pick.id, &options, correlation_id).await? {
            MergeOutcome::Clean(tree) => tree,
            conflict @ MergeOutcome::Conflict { .. } => {
                return Ok(Replayed::Conflict { commit: pick.id.clone(), paths: conflict.conflicting_paths() });
            }
            MergeOutcome::Unrelated => {
                return Err(GitError::Invalid(format!("merge-tree refused to replay {}", pick.id)));
            }
        };
        let was_empty = match &pick.parent {
            Some((_, parent_tree)) => *parent_tree == pick.tree,
            None => pick.tree == format.empty_tree(),
        };
        if tree == tip_tree && !was_empty {
            continue;
        }
        let parents = [tip.clone()];
        let new = NewCommit {
            tree: &tree,
            parents: &parents,
            author: &pick.author,
            committer,
            message: &pick.message,
            signing_key: None,
        };
        tip = merge::write_commit(factory, repo, objects, &new, correlation_id).await?;
        tip_tree = tree;
    }
    Ok(Replayed::Tip(tip))
}

/// The rebased tip when nothing needs replaying: `branch` when it is on
/// top of `upstream` already, `upstream` when it contains all of `branch`
/// (call on the blocking pool).
pub fn fast_forward(repo: &Repo, upstream: &str, branch: &str) -> Result<Option<String>, GitError> {
    let base = super::repo::merge_base(repo, &[upstream.as_bytes().to_vec(), branch.as_bytes().to_vec()])?
        .map(|id| id.to_string());
    Ok(match base.as_deref() {
        Some(b) if b == upstream => Some(branch.to_owned()),
        Some(b) if b == branch => Some(upstream.to_owned()),
        _ => None,
    })
}
