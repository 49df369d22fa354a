//! ConflictsService: the conflicts of merging two commits as GitLab's
//! merge-request conflict editor shows them (ListConflictFiles), and the
//! merge commit written from the user's resolutions (ResolveConflicts).
//! It lives with the operations because resolving writes a branch through
//! the same hooked update path.

use super::common::{refusal_text, signature};
use super::receive;
use super::start::{quarantined, start_commit};
use super::update::{Call, UpdateError};
use crate::error::{Error, Result};
use crate::git::merge::{self, ConflictEntry, MergeOptions, MergeOutcome};
use crate::git::quarantine::QuarantineDir;
use crate::git::repo;
use crate::service::Deps;
use crate::storage::RepoPath;
use cairn_proto::gitaly::*;
use tonic::Streaming;

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

/// The merged tree (with conflict markers) and its conflicts, none for a
/// clean merge.
async fn merged(
    deps: &Deps,
    path: &RepoPath,
    quarantine: &QuarantineDir,
    ours: &str,
    theirs: &str,
    correlation_id: Option<&str>,
) -> Result<(String, Vec<ConflictEntry>)> {
    let options = MergeOptions { allow_unrelated_histories: true, ..Default::default() };
    let outcome =
        merge::merge_tree(&deps.git, &path.path, &quarantine.objects(), ours, theirs, &options, correlation_id)
            .await
            .map_err(|e| Error::internal("couldn't find conflict", e))?;
    match outcome {
        MergeOutcome::Clean(tree) => Ok((tree, Vec::new())),
        MergeOutcome::Conflict { tree, entries } => Ok((tree, entries)),
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
    let (tree, entries) = merged(deps, &path, &quarantine, &ours, &theirs, correlation_id).await?;
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let conflicts = group(&entries);
    let view = quarantined(&path, &quarantine.objects());
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

/// A user's resolution of one file, as GitLab sends it in `files_json`.
#[derive(Debug, Default, serde::Deserialize)]
struct Resolution {
    #[serde(default)]
    old_path: String,
    #[serde(default)]
    new_path: String,
    /// Section id → `head` (ours) or `origin` (theirs).
    #[serde(default)]
    sections: Option<std::collections::HashMap<String, String>>,
    /// The whole file, when edited by hand.
    #[serde(default)]
    content: String,
}

/// Why a resolution could not be applied.
#[derive(Debug, PartialEq, Eq)]
enum Unresolved {
    /// The user's resolution is incomplete: answered in `resolution_error`.
    Resolution(String),
    /// The conflicted file cannot be parsed.
    Parse(String),
}

/// Files larger than this are not resolved line by line (upstream's limit).
const RESOLVE_LIMIT: usize = 200 * 1024;

/// Which side of a conflict a line is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    None,
    /// Between `<<<<<<<` and `=======`: ours ("head").
    Ours,
    /// Between `=======` and `>>>>>>>`: theirs ("origin").
    Theirs,
    NoNewline,
}

/// Applies `resolution` to `conflicted` (merge-tree's file, markers labelled
/// with the commit ids): each conflict section keeps the side the user
/// chose, or the whole file becomes the user's content.
fn resolve(
    conflicted: &[u8],
    ours: &str,
    theirs: &str,
    path: &str,
    resolution: &Resolution,
    append_newline: bool,
) -> std::result::Result<Vec<u8>, Unresolved> {
    let parse_error = |what: &str| Unresolved::Parse(format!("resolve: parse conflict for {path:?}: {what}"));
    if conflicted.is_empty() || conflicted.len() > RESOLVE_LIMIT {
        return Err(parse_error("merging is not supported for file"));
    }
    let start = format!("<<<<<<< {ours}").into_bytes();
    let end = format!(">>>>>>> {theirs}").into_bytes();
    let body = conflicted.strip_suffix(b"\n").unwrap_or(conflicted);
    let mut lines: Vec<(Side, usize, usize, &[u8])> = Vec::new();
    let (mut side, mut old, mut new) = (Side::None, 1usize, 1usize);
    for line in body.split(|b| *b == b'\n') {
        if line == start.as_slice() {
            if side != Side::None {
                return Err(parse_error("unexpected conflict delimiter"));
            }
            side = Side::Ours;
        } else if line == b"=======" {
            if side != Side::Ours {
                return Err(parse_error("unexpected conflict delimiter"));
            }
            side = Side::Theirs;
        } else if line == end.as_slice() {
            if side != Side::Theirs {
                return Err(parse_error("unexpected conflict delimiter"));
            }
            side = Side::None;
        } else if line.first() == Some(&b'\\') {
            side = Side::NoNewline;
            lines.push((side, old, new, line));
        } else {
            lines.push((side, old, new, line));
            if side != Side::Ours {
                old += 1;
            }
            if side != Side::Theirs {
                new += 1;
            }
        }
    }
    if matches!(side, Side::Ours | Side::Theirs) {
        return Err(parse_error("missing last delimiter"));
    }
    let sections = match &resolution.sections {
        Some(s) if !s.is_empty() => s,
        _ => return Ok(resolution.content.clone().into_bytes()),
    };
    let path_hash = {
        use sha1::Digest as _;
        hex::encode(sha1::Sha1::digest(path.as_bytes()))
    };
    let mut kept: Vec<&[u8]> = Vec::with_capacity(lines.len());
    let mut section: Option<String> = None;
    for (line_side, old, new, payload) in lines {
        if line_side == Side::None {
            section = None;
            kept.push(payload);
            continue;
        }
        let id = section.get_or_insert_with(|| format!("{path_hash}_{old}_{new}")).clone();
        let missing = || Unresolved::Resolution(format!("Missing resolution for section ID: {id}"));
        let keep = match sections.get(&id).map(String::as_str) {
            Some("head") => line_side == Side::Ours,
            Some("origin") => line_side == Side::Theirs,
            _ => return Err(missing()),
        };
        if keep {
            kept.push(payload);
        }
    }
    let mut out = kept.join(&b'\n');
    if append_newline {
        out.push(b'\n');
    }
    Ok(out)
}

/// The header's fields checked in upstream's order.
fn validate_header(deps: &Deps, h: &ResolveConflictsRequestHeader) -> Result<RepoPath> {
    let invalid = |m: &'static str| Err(Error::invalid_argument(m));
    if h.our_commit_oid.is_empty() {
        return invalid("empty OurCommitOid");
    }
    let path = deps.storages.repo(h.repository.as_ref())?;
    if h.target_repository.is_none() {
        return invalid("empty TargetRepository");
    }
    if h.their_commit_oid.is_empty() {
        return invalid("empty TheirCommitOid");
    }
    if h.source_branch.is_empty() {
        return invalid("empty SourceBranch");
    }
    if h.target_branch.is_empty() {
        return invalid("empty TargetBranch");
    }
    if h.commit_message.is_empty() {
        return invalid("empty CommitMessage");
    }
    if h.user.is_none() {
        return invalid("empty User");
    }
    Ok(path)
}

pub(super) async fn resolve_conflicts(
    call: Call<'_>,
    mut requests: Streaming<ResolveConflictsRequest>,
) -> Result<ResolveConflictsResponse> {
    use resolve_conflicts_request::ResolveConflictsRequestPayload as Payload;
    let first = receive(&mut requests).await?.ok_or_else(|| Error::invalid_argument("empty request"))?;
    let Some(Payload::Header(header)) = first.resolve_conflicts_request_payload else {
        return Err(Error::invalid_argument("empty ResolveConflictsRequestHeader"));
    };
    let path = validate_header(call.deps, &header)?;
    let user = header.user.clone().unwrap_or_default();
    let sig = signature(&user, header.timestamp.as_ref())?;
    let mut json = Vec::new();
    while let Some(msg) = receive(&mut requests).await? {
        if let Some(Payload::FilesJson(chunk)) = msg.resolve_conflicts_request_payload {
            json.extend_from_slice(&chunk);
        }
    }
    let bad_json = |e: serde_json::Error| Error::new(tonic::Code::Unknown, e.to_string());
    let raw: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(&json).map_err(bad_json)?;
    if raw.iter().any(|r| !r.contains_key("sections") && !r.contains_key("content")) {
        return Err(Error::invalid_argument("missing sections or content for a resolution"));
    }
    let resolutions: Vec<Resolution> = serde_json::from_slice(&json).map_err(bad_json)?;

    let repository = header.repository.clone().unwrap_or_default();
    let change = call.change(&repository, &path, &user);
    let quarantine = change.quarantine()?;
    let objects = quarantine.objects();
    // The target branch must exist; from another repository its commit is
    // fetched into the quarantine.
    let target_branch = [b"refs/heads/".as_slice(), &header.target_branch].concat();
    start_commit(&call, (&repository, &path), &objects, header.target_repository.as_ref(), &target_branch)
        .await?
        .ok_or_else(|| Error::new(tonic::Code::Unknown, "could not resolve target revision: reference not found"))?;
    let (ours, theirs) = (header.our_commit_oid.clone(), header.their_commit_oid.clone());
    let format = call.deps.read_at(path.clone(), move |r, _| Ok(r.object_format())).await?;
    if !format.is_oid(&ours) || !format.is_oid(&theirs) {
        return Err(Error::new(
            tonic::Code::Unknown,
            "Rugged::InvalidError: unable to parse OID - contains invalid characters",
        ));
    }

    let (mut tree, entries) = merged(call.deps, &path, &quarantine, &ours, &theirs, call.correlation_id).await?;
    if !entries.is_empty() {
        let merged = tree.clone();
        let conflicted: Vec<Vec<u8>> = MergeOutcome::Conflict { tree: merged.clone(), entries }.conflicting_paths();
        let view = quarantined(&path, &quarantine.objects());
        let (o, t, m) = (ours.clone(), theirs.clone(), merged.clone());
        let outcome = call
            .deps
            .read_at(view, move |r, _| {
                let mut checked: Vec<bool> = vec![false; conflicted.len()];
                let mut replacements = Vec::new();
                for res in &resolutions {
                    let Some(i) = conflicted.iter().position(|p| p == res.old_path.as_bytes()) else {
                        return Err(Error::new(
                            tonic::Code::Unknown,
                            "NoMethodError: undefined method `resolve_lines' for nil:NilClass",
                        ));
                    };
                    checked[i] = true;
                    let (mode, content) = merge::blob_at(r, &m, res.old_path.as_bytes())?.ok_or_else(|| {
                        Error::internal_msg("path not found in merged-tree: entry should be of type blob")
                    })?;
                    if !res.content.is_empty()
                        && relabel(&content, &o, res.old_path.as_bytes(), &t, res.new_path.as_bytes())
                            == res.content.as_bytes()
                    {
                        return Ok(Err(format!("Resolved content has no changes for file {}", res.old_path)));
                    }
                    let ours_content = merge::blob_at(r, &o_tree(r, &o)?, res.old_path.as_bytes())?
                        .map(|(_, c)| c)
                        .unwrap_or_default();
                    let newline = ours_content.last() == Some(&b'\n');
                    match resolve(&content, &o, &t, &res.old_path, res, newline) {
                        Ok(resolved) => replacements.push(merge::Replacement {
                            path: res.old_path.clone().into_bytes(),
                            mode,
                            content: resolved,
                        }),
                        Err(Unresolved::Resolution(m)) => return Ok(Err(m)),
                        Err(Unresolved::Parse(m)) => return Err(Error::internal_msg(m)),
                    }
                }
                if let Some(i) = checked.iter().position(|c| !c) {
                    return Ok(Err(format!(
                        "Missing resolutions for the following files: {}",
                        String::from_utf8_lossy(&conflicted[i])
                    )));
                }
                Ok(Ok(replacements))
            })
            .await?;
        let replacements = match outcome {
            Ok(r) => r,
            Err(resolution_error) => return Ok(ResolveConflictsResponse { resolution_error }),
        };
        let resolved =
            merge::replace_blobs(&call.deps.git, &path.path, &objects, &merged, &replacements, call.correlation_id)
                .await
                .map_err(|e| Error::internal("write tree", e))?;
        tree = resolved;
    }
    let parents = [ours.clone(), theirs.clone()];
    let new = merge::NewCommit {
        tree: &tree,
        parents: &parents,
        author: &sig,
        committer: &sig,
        message: &header.commit_message,
        // ResolveConflicts has no `sign` field.
        signing_key: None,
    };
    let id = merge::write_commit(&call.deps.git, &path.path, &objects, &new, call.correlation_id)
        .await
        .map_err(|e| Error::internal("writing commit", e))?;
    let reference = [b"refs/heads/".as_slice(), &header.source_branch].concat();
    change.update_reference(Some(quarantine), &reference, &id, &ours).await.map_err(|e| match e {
        UpdateError::Other(e) => e,
        other => Error::new(tonic::Code::Unknown, refusal_text(&other)),
    })?;
    Ok(ResolveConflictsResponse { resolution_error: String::new() })
}

/// The tree of commit `id`.
fn o_tree(r: &crate::git::Repo, id: &str) -> Result<String> {
    crate::git::commit::find(r, id.as_bytes())?
        .map(|c| c.tree)
        .ok_or_else(|| Error::internal_msg("retrieving object: commit not found"))
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
