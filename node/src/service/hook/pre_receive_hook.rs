//! PreReceiveHook: the push's changes (`<old> <new> <ref>` lines) arrive as
//! stdin. With GitLab configured, GitLab's `/allowed` decides first, then
//! the repository's and global custom pre-receive hooks run, then
//! `/pre_receive` counts the push in flight (upstream's order). Objects of
//! the push are still in git's quarantine directory, which the hook's
//! environment names (`GIT_OBJECT_DIRECTORY`,
//! `GIT_ALTERNATE_OBJECT_DIRECTORIES`): custom hooks inherit it, and GitLab
//! gets it relative to the repository so that its checks can read the
//! pushed objects back through the node.

use std::path::{Component, Path, PathBuf};

use tokio::sync::mpsc::Sender;
use tonic::codegen::BoxStream;
use tonic::{Request, Streaming};

use super::receive::{self, Receive};
use super::{Failure, check_receive};
use crate::error::Result;
use crate::gitlab::AllowedParams;
use crate::hooks::custom::Chunk;
use crate::hooks::payload::lookup;
use crate::service::Deps;
use cairn_proto::gitaly::{PreReceiveHookRequest, PreReceiveHookResponse};

pub(super) async fn handle(
    deps: &Deps,
    req: Request<Streaming<PreReceiveHookRequest>>,
) -> Result<BoxStream<PreReceiveHookResponse>> {
    receive::handle(deps, req, "pre-receive", run).await
}

pub(super) async fn run(rx: Receive, out: Sender<Chunk>) -> std::result::Result<(), Failure> {
    let gitlab = rx.deps.gitlab.clone();
    // Only GitLab needs the quarantine spelled out; without it, nothing changes.
    let (object_dir, alternates) = if gitlab.is_some() { quarantine(&rx)? } else { Default::default() };
    check_receive(&rx.payload, &rx.repository.gl_repository, &rx.changes, true)?;
    if let Some(gitlab) = &gitlab {
        let user = rx.payload.user_details.clone().unwrap_or_default();
        let changes = String::from_utf8_lossy(&rx.changes);
        let params = AllowedParams {
            repo_path: &rx.path.path,
            relative_path: &rx.repository.relative_path,
            git_object_directory: &object_dir,
            git_alternate_object_directories: &alternates,
            gl_repository: &rx.repository.gl_repository,
            gl_id: &user.userid,
            gl_protocol: &user.protocol,
            changes: &changes,
            remote_ip: &user.remote_ip,
        };
        match gitlab.allowed(&params).await {
            Ok((true, _)) => {}
            Ok((false, message)) => return Err(Failure::Denied(message)),
            Err(e) => return Err(Failure::Message(format!("GitLab: {e}"))),
        }
    }
    rx.custom("pre-receive", &out).await?;
    if let Some(gitlab) = &gitlab {
        match gitlab.pre_receive(&rx.repository.gl_repository).await {
            Ok(true) => {}
            // GitLab did not count the push: refused without a reason, as upstream.
            Ok(false) => return Err(Failure::Message(String::new())),
            Err(e) => return Err(Failure::Message(format!("calling pre_receive endpoint: {e}"))),
        }
    }
    // Accepted: git locks the references next, and a lock a killed git left
    // would fail the push until housekeeping removed it.
    let references = rx.changes.split(|b| *b == b'\n').filter_map(|line| line.splitn(3, |b| *b == b' ').nth(2));
    crate::git::refs::remove_stale_locks(&rx.path.path, references);
    Ok(())
}

/// The push's quarantine directories relative to the repository, as GitLab
/// passes them back in `Repository` messages; empty when the environment
/// does not name both.
fn quarantine(rx: &Receive) -> std::result::Result<(String, Vec<String>), Failure> {
    let object_dir = lookup(&rx.env, "GIT_OBJECT_DIRECTORY").unwrap_or_default();
    let alternates = lookup(&rx.env, "GIT_ALTERNATE_OBJECT_DIRECTORIES").unwrap_or_default();
    if object_dir.is_empty() || alternates.is_empty() {
        return Ok((String::new(), Vec::new()));
    }
    let fail = |what: &str| Failure::Message(format!("getting relative git object directories: {what}"));
    let real = std::fs::canonicalize(&rx.path.path).map_err(|e| fail(&e.to_string()))?;
    let relative = |dir: &str| {
        relative_path(&real, Path::new(dir)).ok_or_else(|| fail(&format!("{dir:?} is not an absolute path")))
    };
    let object_dir = relative(&object_dir)?;
    let alternates = alternates.split(':').map(relative).collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((object_dir, alternates))
}

/// `target` relative to the directory `base` (both absolute), with `..`
/// where it lies outside; `None` for a relative `target`.
fn relative_path(base: &Path, target: &Path) -> Option<String> {
    if !target.is_absolute() {
        return None;
    }
    let clean = |p: &Path| -> Vec<PathBuf> {
        let mut parts: Vec<PathBuf> = Vec::new();
        for c in p.components() {
            match c {
                Component::Normal(n) => parts.push(n.into()),
                Component::ParentDir => {
                    parts.pop();
                }
                _ => {}
            }
        }
        parts
    };
    let (base, target) = (clean(base), clean(target));
    let common = base.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..base.len() {
        out.push("..");
    }
    for part in &target[common..] {
        out.push(part);
    }
    let out = out.to_string_lossy().into_owned();
    Some(if out.is_empty() { ".".to_owned() } else { out })
}

#[cfg(test)]
mod tests {
    use super::relative_path;
    use std::path::Path;

    #[test]
    fn relative_paths() {
        let repo = Path::new("/srv/storage/group/p.git");
        let rel = |t: &str| relative_path(repo, Path::new(t));
        assert_eq!(rel("/srv/storage/group/p.git/objects/incoming-x").as_deref(), Some("objects/incoming-x"));
        assert_eq!(rel("/srv/storage/group/p.git/objects").as_deref(), Some("objects"));
        assert_eq!(rel("/srv/storage/group/p.git").as_deref(), Some("."));
        assert_eq!(rel("/srv/storage/pool.git/objects").as_deref(), Some("../../pool.git/objects"));
        assert_eq!(rel("objects"), None);
    }
}
