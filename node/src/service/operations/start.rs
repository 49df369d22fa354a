//! Where an operation starts when it may start in another repository (a
//! fork's branch, a merge request's source project): the revision is
//! resolved where it lives, and its commit is fetched into the change's
//! quarantine when the target lacks it, so nothing reaches the target
//! unless the change is accepted.

use super::update::Call;
use crate::error::{Error, Result};
use crate::git::remote;
use crate::git::repo::{self as gitrepo, Quarantine};
use crate::service::repository::internal;
use crate::storage::RepoPath;
use cairn_proto::gitaly::commit_service_client::CommitServiceClient;
use cairn_proto::gitaly::{FindCommitRequest, Repository};

/// `path` read through the quarantine `objects` (its own objects as
/// alternates), so reads see what the change wrote or fetched so far.
pub(super) fn quarantined(path: &RepoPath, objects: &Quarantine) -> RepoPath {
    let mut view = path.clone();
    view.object_dir = objects.object_dir.clone();
    view.alternate_object_dirs = objects.alternates.clone();
    view
}

/// The commit `revision` names in `start` (the target itself when `None`
/// or the same repository), readable through `objects` afterwards; `None`
/// when the revision names no commit there.
pub(super) async fn start_commit(
    call: &Call<'_>,
    target: (&Repository, &RepoPath),
    objects: &Quarantine,
    start: Option<&Repository>,
    revision: &[u8],
) -> Result<Option<String>> {
    let (target_repository, target_path) = target;
    let peeled = [revision, b"^{commit}"].concat();
    let resolve = |path: RepoPath| {
        let peeled = peeled.clone();
        call.deps.read_at(path, move |r, _| Ok(gitrepo::resolve_revision(r, &peeled).map(|id| id.to_string())))
    };
    let start = match start {
        Some(s) if !internal::same_repository(call.deps, target_repository, s) => s,
        _ => return resolve(quarantined(target_path, objects)).await,
    };
    let cid = call.correlation_id;
    // A repository on one of this node's storages is read in place;
    // others are asked through the node that `gitaly-servers` names.
    let local = call.deps.storages.repo(Some(start)).ok();
    if let Some(source) = local {
        let Some(oid) = resolve(source.clone()).await? else { return Ok(None) };
        if !present(call, target_path, objects, &oid).await? {
            remote::fetch_object_local(&call.deps.git, &target_path.path, objects, &source.path, &oid, cid)
                .await
                .map_err(|e| Error::internal("fetch start", e))?;
        }
        return Ok(Some(oid));
    }
    let server =
        internal::server_for(call.metadata, &start.storage_name).map_err(|e| Error::internal_msg(e.to_string()))?;
    let conn = internal::connect(&server).await.map_err(|e| Error::internal("dial start repository", e))?;
    let found = CommitServiceClient::new(conn.channel())
        .find_commit(FindCommitRequest {
            repository: Some(start.clone()),
            revision: revision.to_vec(),
            ..Default::default()
        })
        .await
        .map_err(|s| Error::internal_msg(format!("resolve start ref: {}", s.message())))?
        .into_inner()
        .commit;
    let Some(oid) = found.map(|c| c.id).filter(|id| !id.is_empty()) else { return Ok(None) };
    if !present(call, target_path, objects, &oid).await? {
        let source = internal::internal_remote(call.deps, &server, start)?;
        remote::fetch_object_internal(&call.deps.git, &target_path.path, objects, &source, &oid, cid)
            .await
            .map_err(|e| Error::internal("fetch start", e))?;
    }
    Ok(Some(oid))
}

/// Whether the commit `oid` is readable in the target (through `objects`).
async fn present(call: &Call<'_>, target: &RepoPath, objects: &Quarantine, oid: &str) -> Result<bool> {
    let peeled = format!("{oid}^{{commit}}").into_bytes();
    call.deps
        .read_at(quarantined(target, objects), move |r, _| Ok(gitrepo::resolve_revision(r, &peeled).is_some()))
        .await
}
