//! ConflictsService: the conflicts of merging two commits as GitLab's
//! merge-request conflict editor shows them (ListConflictFiles), and the
//! merge commit written from the user's resolutions (ResolveConflicts).
//! It lives with the operations because resolving writes a branch through
//! the same hooked update path.

use crate::error::{Error, Result};
use crate::git::merge::{self, ConflictEntry, MergeOptions, MergeOutcome};
use crate::git::quarantine::QuarantineDir;
use crate::git::repo;
use crate::service::Deps;
use crate::storage::RepoPath;
use cairn_proto::gitaly::*;

/// Content bytes gathered before a message is sent (upstream's stream
/// buffer size).
const MESSAGE_CONTENT: usize = 128 * 1024;

/// One conflicting path with its sides.
#[derive(Debug, Default, Clone)]
struct Conflict {
    ancestor_path: Vec<u8>,
    our_path: Vec<u8>,
    their_path: Vec<u8>,
    our_mode: u32,
}

/// Groups merge-tree's conflict stages by path, in git's order.
fn group(entries: &[ConflictEntry]) -> Vec<Conflict> {
    let mut order: Vec<Vec<u8>> = Vec::new();
    let mut by_path: std::collections::HashMap<Vec<u8>, Conflict> = Default::default();
    for e in entries {
        let c = by_path.entry(e.path.clone()).or_insert_with(|| {
            order.push(e.path.clone());
            Conflict::default()
        });
        match e.stage {
            1 => c.ancestor_path = e.path.clone(),
            2 => {
                c.our_path = e.path.clone();
                c.our_mode = e.mode;
            }
            _ => c.their_path = e.path.clone(),
        }
    }
    order.into_iter().filter_map(|p| by_path.remove(&p)).collect()
}

/// `path` reading objects from `quarantine` too.
fn quarantined(path: &RepoPath, quarantine: &QuarantineDir) -> RepoPath {
    let objects = quarantine.objects();
    let mut path = path.clone();
    path.object_dir = objects.object_dir;
    path.alternate_object_dirs = objects.alternates;
    path
}

/// Resolves `<oid>^{commit}` for both sides; `what` names the failures.
async fn sides(deps: &Deps, path: &RepoPath, ours: &str, theirs: &str) -> Result<(String, String)> {
    let revisions = [format!("{ours}^{{commit}}"), format!("{theirs}^{{commit}}")];
    deps.read_at(path.clone(), move |r, _| {
        let lookup = |rev: &str, side: &str| {
            repo::resolve_revision(r, rev.as_bytes()).map(|id| id.to_string()).ok_or_else(|| {
                Error::failed_precondition(format!("could not lookup '{side}' OID: reference not found"))
            })
        };
        Ok((lookup(&revisions[0], "our")?, lookup(&revisions[1], "their")?))
    })
    .await
}

/// The merged tree with conflict markers and the conflicts, or `None` for
/// a clean merge.
async fn conflicted_merge(
    deps: &Deps,
    path: &RepoPath,
    quarantine: &QuarantineDir,
    ours: &str,
    theirs: &str,
    correlation_id: Option<&str>,
) -> Result<Option<(String, Vec<ConflictEntry>)>> {
    let options = MergeOptions { allow_unrelated_histories: true, ..Default::default() };
    let outcome =
        merge::merge_tree(&deps.git, &path.path, &quarantine.objects(), ours, theirs, &options, correlation_id)
            .await
            .map_err(|e| Error::internal("couldn't find conflict", e))?;
    match outcome {
        MergeOutcome::Clean(_) => Ok(None),
        MergeOutcome::Conflict { tree, entries } => Ok(Some((tree, entries))),
        MergeOutcome::Unrelated => Err(Error::internal_msg("couldn't find conflict: unrelated histories")),
    }
}

/// Replaces the commit ids merge-tree labels the conflict markers with
/// by the sides' paths, as GitLab expects them.
fn relabel(content: &[u8], ours: &str, our_path: &[u8], theirs: &str, their_path: &[u8]) -> Vec<u8> {
    let replaced = replace_all(content, ours.as_bytes(), our_path);
    replace_all(&replaced, theirs.as_bytes(), their_path)
}

fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    if needle.is_empty() {
        return haystack.to_vec();
    }
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(i) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(with);
        rest = &rest[i + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

pub(super) async fn list_conflict_files(
    deps: &Deps,
    correlation_id: Option<&str>,
    req: ListConflictFilesRequest,
) -> Result<Vec<ListConflictFilesResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    if req.our_commit_oid.is_empty() {
        return Err(Error::invalid_argument("empty OurCommitOid"));
    }
    if req.their_commit_oid.is_empty() {
        return Err(Error::invalid_argument("empty TheirCommitOid"));
    }
    let (ours, theirs) = sides(deps, &path, &req.our_commit_oid, &req.their_commit_oid).await?;
    // merge-tree writes objects; they are thrown away with the quarantine.
    let quarantine = QuarantineDir::new(&path.path).map_err(Error::from)?;
    let Some((tree, entries)) = conflicted_merge(deps, &path, &quarantine, &ours, &theirs, correlation_id).await?
    else {
        return Ok(Vec::new());
    };
    let conflicts = group(&entries);
    let view = quarantined(&path, &quarantine);
    let messages = deps
        .read_at(view, move |r, _| {
            let mut messages = Vec::new();
            let mut files = Vec::new();
            let mut size = 0;
            for c in &conflicts {
                if !req.allow_tree_conflicts && (c.their_path.is_empty() || c.our_path.is_empty()) {
                    return Err(Error::failed_precondition("conflict side missing"));
                }
                files.push(ConflictFile {
                    conflict_file_payload: Some(conflict_file::ConflictFilePayload::Header(ConflictFileHeader {
                        commit_oid: req.our_commit_oid.clone(),
                        their_path: c.their_path.clone(),
                        our_path: c.our_path.clone(),
                        ancestor_path: c.ancestor_path.clone(),
                        our_mode: c.our_mode as i32,
                    })),
                });
                if req.skip_content {
                    continue;
                }
                let side = if c.our_path.is_empty() { &c.their_path } else { &c.our_path };
                let (_, content) = merge::blob_at(r, &tree, side)?
                    .ok_or_else(|| Error::failed_precondition("getting file revision: reference not found"))?;
                if std::str::from_utf8(&content).is_err() {
                    return Err(Error::failed_precondition("unsupported encoding"));
                }
                let content = relabel(&content, &ours, &c.our_path, &theirs, &c.their_path);
                for chunk in content.chunks(MESSAGE_CONTENT) {
                    files.push(ConflictFile {
                        conflict_file_payload: Some(conflict_file::ConflictFilePayload::Content(chunk.to_vec())),
                    });
                    size += chunk.len();
                    if size >= MESSAGE_CONTENT {
                        messages.push(ListConflictFilesResponse { files: std::mem::take(&mut files) });
                        size = 0;
                    }
                }
            }
            if !files.is_empty() {
                messages.push(ListConflictFilesResponse { files });
            }
            Ok(messages)
        })
        .await?;
    drop(quarantine);
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_relabelled_with_paths() {
        let content = b"<<<<<<< aaa\nx\n=======\ny\n>>>>>>> bbb\n";
        assert_eq!(relabel(content, "aaa", b"f", "bbb", b"g"), b"<<<<<<< f\nx\n=======\ny\n>>>>>>> g\n");
    }

    #[test]
    fn stages_group_by_path_in_order() {
        let e = |stage, path: &str| ConflictEntry { mode: 0o100644, oid: "1".into(), stage, path: path.into() };
        let grouped = group(&[e(1, "b"), e(2, "b"), e(3, "b"), e(2, "a")]);
        assert_eq!(grouped.len(), 2);
        assert_eq!(grouped[0].ancestor_path, b"b");
        assert_eq!(grouped[1].our_path, b"a");
        assert!(grouped[1].their_path.is_empty());
    }
}
