//! CommitDiff: every changed file between two commits with its patch, as
//! upstream reads `git diff --patch --raw --find-renames=30%` (git runs
//! here too: the patches are git's text). Limits follow upstream's parser
//! exactly: `enforce_limits` stops after `max_files`/`max_lines`/
//! `max_bytes` with an overflow marker (or, with `collect_all_paths`,
//! keeps listing files without patches), empties patches of at least
//! `max_patch_bytes` (per file extension when mapped) as too large, and
//! `collapse_diffs` empties patches once `safe_max_*` are passed. Patches
//! are sent in 5 KiB parts, the file's metadata with the first.
//!
//! When whitespace changes are ignored, files whose only changes are
//! whitespace have no patch; as in upstream 18.x they come after all other
//! files, with empty patches and the line counts of a plain numstat.

use super::{PATCH_CHUNK, check_commit_ids, git_failed, patch_parts, reject_option_like, target};
use crate::error::Result;
use crate::git::diff::cli::{Output, Target};
use crate::git::diff::numstat;
use crate::git::diff::patch::{FilePatch, Files, RawEntry};
use crate::git::{CommandFactory, Subcommand};
use crate::service::Deps;
use crate::service::stream::Sink;
use cairn_proto::gitaly::commit_diff_request::{DiffMode, WhitespaceChanges};
use cairn_proto::gitaly::{CommitDiffRequest, CommitDiffResponse};
use std::collections::HashMap;
use std::io::BufReader;
use std::os::unix::ffi::OsStringExt as _;
use tonic::Code;
use tonic::codegen::BoxStream;

/// Upstream's ceilings on the limits a client may ask for.
const MAX_FILES_UPPER_BOUND: i64 = 5000;
const MAX_LINES_UPPER_BOUND: i64 = 250_000;
const MAX_BYTES_UPPER_BOUND: i64 = 5000 * 5120;
const SAFE_MAX_FILES_UPPER_BOUND: i64 = 500;
const SAFE_MAX_LINES_UPPER_BOUND: i64 = 25_000;
const SAFE_MAX_BYTES_UPPER_BOUND: i64 = 500 * 5120;
const MAX_PATCH_BYTES_UPPER_BOUND: i64 = 512_000;

/// The limits of a request.
#[derive(Debug, Default, Clone)]
pub(super) struct Limits {
    pub enforce: bool,
    pub collapse: bool,
    pub collect_all_paths: bool,
    pub max_files: i64,
    pub max_lines: i64,
    pub max_bytes: i64,
    pub safe_max_files: i64,
    pub safe_max_lines: i64,
    pub safe_max_bytes: i64,
    pub max_patch_bytes: i64,
    pub per_extension: HashMap<String, i64>,
    /// Only the per-file patch limit applies (DiffBlobs).
    pub patch_limits_only: bool,
}

impl Limits {
    fn from_request(req: &CommitDiffRequest) -> Self {
        let mut l = Limits {
            collapse: req.collapse_diffs,
            collect_all_paths: req.collect_all_paths,
            safe_max_files: req.safe_max_files.into(),
            safe_max_lines: req.safe_max_lines.into(),
            safe_max_bytes: req.safe_max_bytes.into(),
            ..Default::default()
        };
        if req.enforce_limits {
            l.enforce = true;
            l.max_files = req.max_files.into();
            l.max_lines = req.max_lines.into();
            l.max_bytes = req.max_bytes.into();
            l.max_patch_bytes = req.max_patch_bytes.into();
            l.per_extension =
                req.max_patch_bytes_for_file_extension.iter().map(|(k, v)| (k.clone(), i64::from(*v))).collect();
        }
        l.bound()
    }

    /// Applies upstream's ceilings.
    pub(super) fn bound(mut self) -> Self {
        self.max_files = self.max_files.min(MAX_FILES_UPPER_BOUND);
        self.max_lines = self.max_lines.min(MAX_LINES_UPPER_BOUND);
        self.max_bytes = self.max_bytes.min(MAX_BYTES_UPPER_BOUND);
        self.safe_max_files = self.safe_max_files.min(SAFE_MAX_FILES_UPPER_BOUND);
        self.safe_max_lines = self.safe_max_lines.min(SAFE_MAX_LINES_UPPER_BOUND);
        self.safe_max_bytes = self.safe_max_bytes.min(SAFE_MAX_BYTES_UPPER_BOUND);
        self.max_patch_bytes = self.max_patch_bytes.min(MAX_PATCH_BYTES_UPPER_BOUND);
        self
    }

    /// The patch limit of a file: by its extension (or its whole name when
    /// it has none) when mapped, else `max_patch_bytes`.
    fn max_patch_bytes_for(&self, path: &[u8]) -> i64 {
        if !self.per_extension.is_empty() {
            let name = path.rsplit(|b| *b == b'/').find(|c| !c.is_empty()).unwrap_or(b".");
            let ext = name.iter().rposition(|b| *b == b'.').map_or(&b""[..], |i| &name[i..]);
            let key = if ext.is_empty() { name } else { ext };
            if let Some(limit) = self.per_extension.get(String::from_utf8_lossy(key).as_ref()) {
                return *limit;
            }
        }
        self.max_patch_bytes
    }

    /// Patch bytes worth keeping for a file: beyond its patch limit the
    /// patch is dropped anyway.
    fn keep_for(&self, path: &[u8]) -> usize {
        if self.enforce { usize::try_from(self.max_patch_bytes_for(path)).unwrap_or(0) } else { usize::MAX }
    }
}

/// One file as upstream's parser reports it.
#[derive(Debug, Default, Clone)]
pub(super) struct Diff {
    pub entry: Option<RawEntry>,
    pub patch: FilePatch,
    /// Bytes of the patch before any limit emptied it.
    pub patch_size: usize,
    pub overflow_marker: bool,
    pub collapsed: bool,
    pub too_large: bool,
}

/// Upstream's running totals over the files of one diff.
#[derive(Debug, Default)]
pub(super) struct Accounting {
    limits: Limits,
    files: i64,
    lines: i64,
    bytes: i64,
    /// Parsing stopped at the overflow.
    pub finished: bool,
    /// Past the overflow with `collect_all_paths`: files without patches.
    pub stop_patches: bool,
}

impl Accounting {
    pub(super) fn new(limits: Limits) -> Self {
        Self { limits, ..Default::default() }
    }

    fn over_safe_limits(&self) -> bool {
        self.files > self.limits.safe_max_files
            || self.lines > self.limits.safe_max_lines
            || self.bytes > self.limits.safe_max_bytes
    }

    /// Empties a patch and takes its lines and bytes off the totals (the
    /// bytes as collected, hunk headers included, as upstream does).
    fn prune(&mut self, diff: &mut Diff) {
        self.lines -= diff.patch.line_count as i64;
        self.bytes -= diff.patch.patch_len as i64;
        diff.patch.patch.clear();
        diff.patch.patch_len = 0;
    }

    /// Reads the next file; `None` at the end of the list or after the
    /// overflow. `defer_patchless` holds back files without a patch.
    pub(super) fn next<R: std::io::BufRead>(
        &mut self,
        files: &mut Files<R>,
        deferred: Option<&mut Vec<RawEntry>>,
    ) -> Result<Option<Diff>> {
        if self.finished {
            return Ok(None);
        }
        let mut deferred = deferred;
        let (entry, has_patch) = loop {
            let Some((entry, has_patch)) = files.next_file()? else { return Ok(None) };
            match deferred.as_deref_mut() {
                Some(held) if !has_patch => held.push(entry),
                _ => break (entry, has_patch),
            }
        };
        self.files += 1;
        let mut diff = Diff { entry: Some(entry), ..Default::default() };
        if !has_patch {
            return Ok(Some(diff));
        }
        let keep = self.limits.keep_for(&diff.entry.as_ref().expect("set above").new_path);
        files.sections.read_patch(self.stop_patches, keep, &mut diff.patch)?;
        diff.patch_size = diff.patch.patch_len;
        self.lines += diff.patch.line_count as i64;
        self.bytes += diff.patch.byte_count as i64;
        if self.limits.collapse && self.over_safe_limits() && diff.patch.line_count > 0 {
            self.prune(&mut diff);
            diff.collapsed = true;
        }
        if self.limits.enforce {
            let to_path = &diff.entry.as_ref().expect("set above").new_path;
            if diff.patch.patch_len as i64 >= self.limits.max_patch_bytes_for(to_path) {
                self.prune(&mut diff);
                diff.too_large = true;
            }
            let exceeded = self.files - self.limits.max_files > 0
                || self.lines - self.limits.max_lines >= 0
                || self.bytes - self.limits.max_bytes >= 0;
            if exceeded && !self.limits.patch_limits_only {
                if self.limits.collect_all_paths {
                    diff.patch.patch.clear();
                    diff.patch.patch_len = 0;
                    self.stop_patches = true;
                } else {
                    self.finished = true;
                    diff = Diff::default();
                }
                diff.overflow_marker = true;
            }
        }
        Ok(Some(diff))
    }
}

fn send_diff(sink: &Sink<CommitDiffResponse>, diff: Diff) -> Result<()> {
    let entry = diff.entry.unwrap_or_else(|| RawEntry {
        old_mode: 0,
        new_mode: 0,
        old_id: String::new(),
        new_id: String::new(),
        status: 0,
        score: 0,
        old_path: Vec::new(),
        new_path: Vec::new(),
    });
    let mut first = CommitDiffResponse {
        from_path: entry.old_path,
        to_path: entry.new_path,
        from_id: entry.old_id,
        to_id: entry.new_id,
        old_mode: entry.old_mode as i32,
        new_mode: entry.new_mode as i32,
        binary: diff.patch.binary,
        overflow_marker: diff.overflow_marker,
        collapsed: diff.collapsed,
        too_large: diff.too_large,
        lines_added: diff.patch.lines_added,
        lines_removed: diff.patch.lines_removed,
        ..Default::default()
    };
    let patch = &diff.patch.patch;
    let last = patch.len().saturating_sub(1) / PATCH_CHUNK;
    for (i, part) in patch_parts(patch).enumerate() {
        let mut msg = if i == 0 { std::mem::take(&mut first) } else { CommitDiffResponse::default() };
        msg.raw_patch_data = part.to_vec();
        msg.end_of_patch = i == last;
        sink.send(msg)?;
    }
    Ok(())
}

/// Line counts of `paths` between two commits from a plain numstat.
fn numstat_counts(
    factory: &CommandFactory,
    target: &Target,
    left: &str,
    right: &str,
    paths: &[Vec<u8>],
    cid: Option<&str>,
) -> Result<HashMap<Vec<u8>, (i32, i32)>> {
    let mut cmd = target.diff_command(Subcommand::Diff).flag("--numstat").flag("-z").arg(left).arg(right).arg("--");
    for p in paths {
        cmd = cmd.arg(std::ffi::OsString::from_vec([b":(literal)", p.as_slice()].concat()));
    }
    let mut reader = BufReader::new(Output::start(factory, cmd, cid)?);
    let mut counts = HashMap::new();
    while let Some(stat) = numstat::next(&mut reader)? {
        counts.insert(stat.path, (stat.additions, stat.deletions));
    }
    reader.into_inner().finish().map_err(|e| git_failed(Code::Internal, e))?;
    Ok(counts)
}

pub(super) async fn handle(
    deps: &Deps,
    req: CommitDiffRequest,
    cid: Option<String>,
) -> Result<BoxStream<CommitDiffResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    check_commit_ids(&req.left_commit_id, &req.right_commit_id)?;
    reject_option_like(req.left_commit_id.as_bytes())?;
    reject_option_like(req.right_commit_id.as_bytes())?;
    let target = target(&path);
    let factory = deps.git.clone();
    let limits = Limits::from_request(&req);
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let format = repo.object_format();
        // Patch headers are matched to files by their `a/` names, so their
        // prefixes and quoting must be git's defaults.
        let mut cmd = target
            .diff_command(Subcommand::Diff)
            .config("diff.noprefix", "false")
            .config("diff.mnemonicPrefix", "false")
            .config("core.quotePath", "true")
            .config("color.diff", "false")
            .flag("--patch")
            .flag("--raw")
            .flag("-z")
            .flag_value("--abbrev", format.hex_len().to_string())
            .flag("--full-index")
            .flag("--find-renames=30%");
        let whitespace = req.whitespace_changes();
        cmd = match whitespace {
            WhitespaceChanges::IgnoreAll => cmd.flag("--ignore-all-space"),
            WhitespaceChanges::Ignore => cmd.flag("--ignore-space-change"),
            WhitespaceChanges::Unspecified => cmd,
        };
        if req.diff_mode() == DiffMode::Worddiff {
            cmd = cmd.flag("--word-diff=porcelain");
        }
        cmd = cmd.arg(&req.left_commit_id).arg(&req.right_commit_id);
        if !req.paths.is_empty() {
            cmd = cmd.arg("--");
            for p in &req.paths {
                cmd = cmd.arg(std::ffi::OsString::from_vec(p.clone()));
            }
        }
        let output = Output::start(&factory, cmd, cid.as_deref())?;
        let mut files = Files::new(BufReader::with_capacity(64 * 1024, output), format.zero_oid())?;
        let mut accounting = Accounting::new(limits);
        let mut deferred = Vec::new();
        let defer = whitespace != WhitespaceChanges::Unspecified;
        while let Some(diff) = accounting.next(&mut files, defer.then_some(&mut deferred))? {
            send_diff(sink, diff)?;
        }
        let output = files.sections.into_inner().into_inner();
        if accounting.finished {
            // Upstream stops reading here; the rest of the output is moot.
            drop(output);
        } else {
            output.finish().map_err(|e| git_failed(Code::FailedPrecondition, e))?;
        }
        if deferred.is_empty() {
            return Ok(());
        }
        let paths: Vec<Vec<u8>> = deferred.iter().map(|e| e.new_path.clone()).collect();
        let counts =
            numstat_counts(&factory, &target, &req.left_commit_id, &req.right_commit_id, &paths, cid.as_deref())?;
        for entry in deferred {
            let (added, removed) = counts.get(&entry.new_path).copied().unwrap_or_default();
            sink.send(CommitDiffResponse {
                from_path: entry.new_path.clone(),
                to_path: entry.new_path,
                from_id: entry.old_id,
                to_id: entry.new_id,
                old_mode: entry.old_mode as i32,
                new_mode: entry.new_mode as i32,
                end_of_patch: true,
                lines_added: added,
                lines_removed: removed,
                ..Default::default()
            })?;
        }
        Ok(())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_limits_by_extension() {
        let l = Limits {
            max_patch_bytes: 10,
            per_extension: [(".rb".to_owned(), 100), ("Makefile".to_owned(), 50), (".gitignore".to_owned(), 7)]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        assert_eq!(l.max_patch_bytes_for(b"app/models/user.rb"), 100);
        assert_eq!(l.max_patch_bytes_for(b"sub/Makefile"), 50);
        assert_eq!(l.max_patch_bytes_for(b".gitignore"), 7);
        assert_eq!(l.max_patch_bytes_for(b"a.tar.gz"), 10);
        assert_eq!(Limits { max_patch_bytes: 9_000_000, ..Default::default() }.bound().max_patch_bytes, 512_000);
    }
}
