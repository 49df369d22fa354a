//! DiffBlobs: patches between pairs of blobs, as upstream produces them.
//!
//! Blob pairs (ids or path-scoped revisions, the null id for a missing
//! side) are diffed one `git diff` each, attributes from HEAD applying to
//! path-scoped revisions; the null id stands for the empty blob, which is
//! staged in a throw-away object directory because git does not know it.
//! Raw entries (paths, modes and ids of changed files) are what upstream
//! feeds `git diff-pairs`; git 2.47 has no diff-pairs, so the pairs are
//! placed side by side in two throw-away trees and diffed in one
//! `git diff-tree -p`, which prints the same hunks (type changes as a
//! deletion and an addition, submodules as commit lines); the file names
//! in `Binary files ... differ` are put back to the requested paths.

use super::{PATCH_CHUNK, git_failed, patch_parts, target};
use crate::error::{Error, Result};
use crate::git::diff::cli::{Output, Target};
use crate::git::diff::patch::{FilePatch, Sections, WithoutTreePairLines};
use crate::git::diff::quarantine::Quarantine;
use crate::git::diff::quote::quote_c_style;
use crate::git::objects::{self, Kind, ObjectId};
use crate::git::{GitCommand, ObjectFormat, Repo, Subcommand, refs};
use crate::service::Deps;
use crate::service::stream::Sink;
use cairn_proto::gitaly::changed_paths::Status as PathStatus;
use cairn_proto::gitaly::diff_blobs_request::{DiffMode, WhitespaceChanges};
use cairn_proto::gitaly::diff_blobs_response::Status;
use cairn_proto::gitaly::{ChangedPaths, DiffBlobsRequest, DiffBlobsResponse};
use std::io::BufReader;
use std::path::PathBuf;
use tonic::Code;
use tonic::codegen::BoxStream;

/// One requested blob pair, resolved.
#[derive(Debug, Clone)]
struct BlobPair {
    left_id: Option<ObjectId>,
    right_id: Option<ObjectId>,
    left_revision: Vec<u8>,
    right_revision: Vec<u8>,
}

/// One diff to answer with.
#[derive(Debug, Default)]
struct BlobDiff {
    left_id: String,
    right_id: String,
    patch: FilePatch,
    patch_size: usize,
    too_large: bool,
}

fn send(sink: &Sink<DiffBlobsResponse>, d: BlobDiff) -> Result<()> {
    let mut first = DiffBlobsResponse {
        left_blob_id: d.left_id,
        right_blob_id: d.right_id,
        binary: d.patch.binary,
        over_patch_bytes_limit: d.too_large,
        patch_size: d.patch_size as i32,
        lines_added: d.patch.lines_added,
        lines_removed: d.patch.lines_removed,
        ..Default::default()
    };
    let last = d.patch.patch.len().saturating_sub(1) / PATCH_CHUNK;
    for (i, part) in patch_parts(&d.patch.patch).enumerate() {
        let mut msg = if i == 0 { std::mem::take(&mut first) } else { DiffBlobsResponse::default() };
        msg.patch = part.to_vec();
        if i == last {
            msg.set_status(Status::EndOfPatch);
        }
        sink.send(msg)?;
    }
    Ok(())
}

/// Upstream's check of one side of a blob pair: a path-scoped revision
/// (`rev:path`) or a full object id, naming an existing blob.
fn blob_info(repo: &Repo, side: &str, revision: &[u8]) -> Result<ObjectId> {
    let bad = |why: String| Error::invalid_argument(format!("getting {side} blob info: {why}"));
    if revision.contains(&b':') {
        let rev = revision.split(|b| *b == b':').next().unwrap_or_default();
        if revision.starts_with(b"-") || revision.contains(&0) {
            return Err(bad("validating path-scoped revision: invalid revision".into()));
        }
        refs::validate_revision(rev).map_err(|e| bad(format!("validating path-scoped revision: {e}")))?;
    } else if objects::parse_oid(repo, revision).is_none() || !revision.iter().all(u8::is_ascii_hexdigit) {
        return Err(bad(format!("validating blob ID: invalid object ID: {:?}", String::from_utf8_lossy(revision))));
    }
    let id = objects::resolve(repo, revision).ok_or_else(|| bad("getting revision info: object not found".into()))?;
    match objects::header(repo, id)? {
        Some((Kind::Blob, _)) => Ok(id),
        Some(_) => Err(bad("revision is not blob".into())),
        None => Err(bad("getting revision info: object not found".into())),
    }
}

fn resolve_pairs(repo: &Repo, pairs: &[cairn_proto::gitaly::diff_blobs_request::BlobPair]) -> Result<Vec<BlobPair>> {
    let format = repo.object_format();
    let mut out = Vec::with_capacity(pairs.len());
    for p in pairs {
        let side = |name: &str, rev: &[u8]| -> Result<Option<ObjectId>> {
            if format.is_zero_oid(rev) { Ok(None) } else { blob_info(repo, name, rev).map(Some) }
        };
        let (left_id, right_id) = (side("left", &p.left_blob)?, side("right", &p.right_blob)?);
        if left_id == right_id {
            return Err(Error::invalid_argument("left and right blob revisions resolve to same OID"));
        }
        out.push(BlobPair {
            left_id,
            right_id,
            left_revision: p.left_blob.clone(),
            right_revision: p.right_blob.clone(),
        });
    }
    Ok(out)
}

/// Upstream's checks of raw entries.
fn validate_raw_info(raw: &[ChangedPaths]) -> Result<()> {
    for entry in raw {
        if entry.old_blob_id.is_empty() || entry.new_blob_id.is_empty() {
            return Err(Error::invalid_argument("raw info entry missing blob IDs"));
        }
        if entry.path.is_empty() {
            return Err(Error::invalid_argument("raw info entry missing path"));
        }
        if matches!(entry.status(), PathStatus::Renamed | PathStatus::Copied) && entry.old_path.is_empty() {
            return Err(Error::invalid_argument("rename/copy raw info entry missing old path"));
        }
    }
    Ok(())
}

/// The flags both modes add for the request's options.
fn with_options(mut cmd: GitCommand, req_whitespace: WhitespaceChanges, word: bool) -> GitCommand {
    cmd = match req_whitespace {
        WhitespaceChanges::IgnoreAll => cmd.flag("--ignore-all-space"),
        WhitespaceChanges::Ignore => cmd.flag("--ignore-space-change"),
        WhitespaceChanges::Unspecified => cmd,
    };
    if word { cmd.flag("--word-diff=porcelain") } else { cmd }
}

/// Where throw-away object directories go.
fn scratch_dir(deps: &Deps) -> PathBuf {
    deps.config.runtime_dir.clone().unwrap_or_else(std::env::temp_dir).join("diff-objects")
}

struct Context {
    factory: crate::git::CommandFactory,
    target: Target,
    scratch: PathBuf,
    cid: Option<String>,
    whitespace: WhitespaceChanges,
    word: bool,
    limit: i32,
}

/// The name git gives a side of `git diff <a> <b>`: the path of a
/// path-scoped revision, else the revision itself.
fn display_name(revision: &[u8]) -> &[u8] {
    match revision.iter().position(|b| *b == b':') {
        Some(i) => &revision[i + 1..],
        None => revision,
    }
}

/// Whether `path` can be written as nested tree entries.
fn usable_path(path: &[u8]) -> bool {
    !path.is_empty()
        && !path.contains(&0)
        && path.split(|b| *b == b'/').all(|c| !c.is_empty() && c != b"." && c != b"..")
}

/// A tree holding `blob` at `path` (nested trees for its directories).
fn tree_with(q: &Quarantine, path: &[u8], blob: ObjectId) -> Result<ObjectId> {
    let mut parts = path.split(|b| *b == b'/').rev();
    let leaf = parts.next().expect("split yields a part");
    let mut id = q.write_tree(vec![(0o100644, leaf.to_vec(), blob)])?;
    for dir in parts {
        id = q.write_tree(vec![(0o040000, dir.to_vec(), id)])?;
    }
    Ok(id)
}

fn diff_blob_pairs(repo: &Repo, ctx: &Context, pairs: Vec<BlobPair>, sink: &Sink<DiffBlobsResponse>) -> Result<()> {
    let format = repo.object_format();
    let zero = format.zero_oid();
    let empty_blob = ObjectId::empty_blob(repo_hash(format));
    let quarantine = Quarantine::new(&ctx.scratch, repo_hash(format))?;
    if pairs.iter().any(|p| p.left_id.is_none() || p.right_id.is_none()) {
        quarantine.write_blob(b"")?;
    }
    let limit = i64::from(ctx.limit).min(512_000);
    let id_text = |id: Option<ObjectId>| id.map_or_else(|| zero.clone(), |i| i.to_string());
    // Upstream runs one `git diff` per pair; here every pair becomes a pair
    // of throw-away trees holding its two blobs at the same path, and one
    // `git diff-tree --stdin` diffs them all (git's text, so git runs). The
    // path is the one git would name the file by, so attributes from HEAD
    // apply to it as they would to the pair.
    struct Planned {
        pair: BlobPair,
        path: Vec<u8>,
        left_name: Vec<u8>,
        right_name: Vec<u8>,
        identical: bool,
    }
    let mut stdin = Vec::new();
    let mut planned = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let (left, right) = (pair.left_id.unwrap_or(empty_blob), pair.right_id.unwrap_or(empty_blob));
        let name = |id: Option<ObjectId>, rev: &[u8]| -> Vec<u8> {
            if id.is_none() { empty_blob.to_string().into_bytes() } else { display_name(rev).to_vec() }
        };
        let left_name = name(pair.left_id, &pair.left_revision);
        let right_name = name(pair.right_id, &pair.right_revision);
        let path = [&right_name, &left_name]
            .into_iter()
            .find(|n| usable_path(n))
            .cloned()
            .unwrap_or_else(|| right.to_string().into_bytes());
        // git prints nothing for identical blobs (an added empty file).
        let identical = left == right;
        if !identical {
            let (l, r) = (tree_with(&quarantine, &path, left)?, tree_with(&quarantine, &path, right)?);
            stdin.extend_from_slice(format!("{l} {r}\n").as_bytes());
        }
        planned.push(Planned { pair, path, left_name, right_name, identical });
    }
    let cmd = quarantine
        .over(&ctx.target)
        .diff_command(Subcommand::DiffTree)
        .config("diff.noprefix", "false")
        .config("diff.mnemonicPrefix", "false")
        .config("core.quotePath", "true")
        .flag("--stdin")
        .flag("-p")
        .flag("-r")
        .flag("--no-renames")
        .flag_value("--abbrev", format.hex_len().to_string());
    let cmd = with_options(cmd, ctx.whitespace, ctx.word).stdin(stdin);
    let output = Output::start(&ctx.factory, cmd, ctx.cid.as_deref())?;
    let mut sections = Sections::new(WithoutTreePairLines::new(BufReader::new(output)));
    for p in planned {
        let mut d =
            BlobDiff { left_id: id_text(p.pair.left_id), right_id: id_text(p.pair.right_id), ..Default::default() };
        if !p.identical && sections.next_is_for(&p.path)? {
            let keep = if limit > 0 { usize::try_from(limit).unwrap_or(0) } else { usize::MAX };
            sections.read_patch(false, keep, &mut d.patch)?;
            if d.patch.binary {
                let mut line = b"Binary files ".to_vec();
                line.extend(quote_c_style(&[b"a/", p.left_name.as_slice()].concat()));
                line.extend_from_slice(b" and ");
                line.extend(quote_c_style(&[b"b/", p.right_name.as_slice()].concat()));
                line.extend_from_slice(b" differ\n");
                d.patch.patch_len = line.len();
                d.patch.patch = line;
            }
            d.patch_size = d.patch.patch_len;
            if limit > 0 && d.patch_size as i64 >= limit {
                d.too_large = true;
                d.patch.patch.clear();
            }
        }
        send(sink, d)?;
    }
    sections.into_inner().into_inner().into_inner().finish().map_err(|e| git_failed(Code::Internal, e))
}

fn repo_hash(format: ObjectFormat) -> gix::hash::Kind {
    match format {
        ObjectFormat::Sha1 => gix::hash::Kind::Sha1,
        ObjectFormat::Sha256 => gix::hash::Kind::Sha256,
    }
}

/// One side of a raw entry, `None` when the file is missing there.
fn raw_side(repo: &Repo, mode: i32, id: &str) -> Result<Option<(u32, ObjectId)>> {
    if mode == 0 {
        return Ok(None);
    }
    let mode = u32::try_from(mode).map_err(|_| Error::invalid_argument("invalid file mode"))?;
    if mode & 0o170000 == 0o040000 {
        return Err(Error::invalid_argument("raw info entry names a tree"));
    }
    let oid = objects::parse_oid(repo, id.as_bytes())
        .ok_or_else(|| Error::invalid_argument(format!("invalid object ID {id:?}")))?;
    Ok(Some((mode, oid)))
}

/// `Binary files A and B differ` with the requested names instead of the
/// placeholders git saw.
fn binary_line(entry: &ChangedPaths, old: bool, new: bool) -> Vec<u8> {
    let src = if entry.old_path.is_empty() { &entry.path } else { &entry.old_path };
    let mut line = b"Binary files ".to_vec();
    line.extend(if old { quote_c_style(&[b"a/", src.as_slice()].concat()) } else { b"/dev/null".to_vec() });
    line.extend_from_slice(b" and ");
    line.extend(if new { quote_c_style(&[b"b/", entry.path.as_slice()].concat()) } else { b"/dev/null".to_vec() });
    line.extend_from_slice(b" differ\n");
    line
}

fn diff_raw_entries(repo: &Repo, ctx: &Context, raw: Vec<ChangedPaths>, sink: &Sink<DiffBlobsResponse>) -> Result<()> {
    let format = repo.object_format();
    let zero = format.zero_oid();
    // Entry i sits at the same zero-padded name in both trees, so the
    // trees list the entries in request order.
    let name = |i: usize| format!("{i:010}").into_bytes();
    let (mut left, mut right) = (Vec::new(), Vec::new());
    for (i, entry) in raw.iter().enumerate() {
        if let Some((mode, oid)) = raw_side(repo, entry.old_mode, &entry.old_blob_id)? {
            left.push((mode, name(i), oid));
        }
        if let Some((mode, oid)) = raw_side(repo, entry.new_mode, &entry.new_blob_id)? {
            right.push((mode, name(i), oid));
        }
    }
    let quarantine = Quarantine::new(&ctx.scratch, repo_hash(format))?;
    let (left_tree, right_tree) = (quarantine.write_tree(left)?, quarantine.write_tree(right)?);
    // Upstream runs diff-pairs without attributes (an empty attribute tree).
    let empty_tree = ObjectId::empty_tree(repo_hash(format)).to_string();
    let cmd = quarantine
        .over(&ctx.target)
        .command(Subcommand::DiffTree)
        .config("attr.tree", &empty_tree)
        .flag("-p")
        .flag("-r")
        .flag("--no-renames")
        .flag_value("--abbrev", format.hex_len().to_string());
    let cmd = with_options(cmd, ctx.whitespace, ctx.word).arg(left_tree.to_string()).arg(right_tree.to_string());
    let output = Output::start(&ctx.factory, cmd, ctx.cid.as_deref())?;
    let mut sections = Sections::new(BufReader::new(output));
    let limit = usize::try_from(ctx.limit).unwrap_or(0);
    for (i, entry) in raw.iter().enumerate() {
        // A type change is a deletion, then an addition.
        let halves: Vec<(bool, bool)> = if entry.status() == PathStatus::TypeChange {
            vec![(true, false), (false, true)]
        } else {
            vec![(entry.old_mode != 0, entry.new_mode != 0)]
        };
        for (old, new) in halves {
            let mut d = BlobDiff {
                left_id: if old { entry.old_blob_id.clone() } else { zero.clone() },
                right_id: if new { entry.new_blob_id.clone() } else { zero.clone() },
                ..Default::default()
            };
            if sections.next_is_for(&name(i))? {
                let keep = if limit > 0 { limit + 8192 } else { usize::MAX };
                sections.read_patch(false, keep, &mut d.patch)?;
                if d.patch.binary {
                    let line = binary_line(entry, old, new);
                    d.patch.patch_len = line.len();
                    d.patch.patch = line;
                }
                d.patch_size = d.patch.patch_len;
                if limit > 0 && d.patch_size > limit {
                    d.too_large = true;
                    d.patch.patch.clear();
                }
            }
            send(sink, d)?;
        }
    }
    sections.into_inner().into_inner().finish().map_err(|e| git_failed(Code::Internal, e))
}

pub(super) async fn handle(
    deps: &Deps,
    req: DiffBlobsRequest,
    cid: Option<String>,
) -> Result<BoxStream<DiffBlobsResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    if req.blob_pairs.is_empty() && req.raw_info.is_empty() {
        return Err(Error::invalid_argument("request contains no file pairs to diff"));
    }
    if !req.blob_pairs.is_empty() && !req.raw_info.is_empty() {
        return Err(Error::invalid_argument("blob pairs and raw info both used in request"));
    }
    validate_raw_info(&req.raw_info)?;
    let whitespace = req.whitespace_changes();
    if whitespace != WhitespaceChanges::Unspecified && !req.blob_pairs.is_empty() {
        return Err(Error::invalid_argument("whitespace changes cannot be ignored when blob pairs are provided"));
    }
    let ctx = Context {
        factory: deps.git.clone(),
        target: target(&path),
        scratch: scratch_dir(deps),
        cid,
        whitespace,
        word: req.diff_mode() == DiffMode::Word,
        limit: req.patch_bytes_limit,
    };
    if req.blob_pairs.is_empty() {
        let raw = req.raw_info;
        return Ok(deps.stream_at(path, move |repo, _, sink| diff_raw_entries(repo, &ctx, raw, sink)));
    }
    // Every pair is checked before anything is sent.
    let blob_pairs = req.blob_pairs;
    let pairs = deps.read_at(path.clone(), move |repo, _| resolve_pairs(repo, &blob_pairs)).await?;
    Ok(deps.stream_at(path, move |repo, _, sink| diff_blob_pairs(repo, &ctx, pairs, sink)))
}
