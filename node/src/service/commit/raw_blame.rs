//! RawBlame: `git blame --porcelain` of a path at a revision, optionally
//! limited to a line range and ignoring the revisions listed in a blob,
//! streamed in 128 KiB messages. Errors carry `RawBlameError` details.

use super::{RevisionRules, valid_revision};
use crate::error::{Error, Result};
use crate::git::blame::{self, BlameError};
use crate::service::{Deps, chunked};
use cairn_proto::gitaly::{PathNotFoundError, RawBlameError, RawBlameRequest, RawBlameResponse, raw_blame_error};
use tonic::Code;
use tonic::codegen::BoxStream;

pub(super) async fn handle(
    deps: &Deps,
    req: RawBlameRequest,
    correlation_id: Option<String>,
) -> Result<BoxStream<RawBlameResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    valid_revision(&req.revision, RevisionRules::default())?;
    if req.path.is_empty() {
        return Err(Error::invalid_argument("empty Path"));
    }
    if !is_local(&req.path) {
        return Err(Error::invalid_argument("path escapes repository root")
            .with_metadata("path", String::from_utf8_lossy(&req.path)));
    }
    if !req.range.is_empty() && !valid_range(&req.range) {
        return Err(Error::invalid_argument("invalid Range"));
    }
    let detail = |e: raw_blame_error::Error| RawBlameError { error: Some(e) };
    let ignore_file = if req.ignore_revisions_blob.is_empty() {
        None
    } else {
        let rev = req.ignore_revisions_blob.clone();
        let blob = deps.read_at(path.clone(), move |repo, _| Ok(blame::ignore_revs_blob(repo, &rev)?)).await?;
        let resolve_error = || {
            detail(raw_blame_error::Error::ResolveIgnoreRevs(raw_blame_error::ResolveIgnoreRevsError {
                ignore_revisions_blob: req.ignore_revisions_blob.clone(),
            }))
        };
        let data = match blob {
            None => return Err(Error::not_found("cannot resolve ignore-revs blob").with_detail(&resolve_error())),
            Some(Err(_)) => {
                return Err(Error::invalid_argument("ignore revision is not a blob").with_detail(&resolve_error()));
            }
            Some(Ok(data)) => data,
        };
        let dir = deps.config.runtime_dir.clone().unwrap_or_else(std::env::temp_dir);
        let mut file = tempfile::Builder::new()
            .prefix("ignore-revs-file-")
            .tempfile_in(&dir)
            .or_else(|_| tempfile::Builder::new().prefix("ignore-revs-file-").tempfile())
            .map_err(|e| Error::internal("creating temp file", e))?;
        std::io::Write::write_all(&mut file, &data).map_err(|e| Error::internal("copying blob", e))?;
        Some(file)
    };
    let range = (!req.range.is_empty()).then_some(req.range.as_slice());
    let out = blame::porcelain(
        &deps.git,
        blame::BlameRepo { path: &path.path, quarantine: &crate::service::quarantine(&path) },
        &req.revision,
        &req.path,
        range,
        ignore_file.as_ref().map(|f| f.path()),
        correlation_id.as_deref(),
    )
    .await;
    drop(ignore_file);
    let revision = String::from_utf8_lossy(&req.revision).into_owned();
    let shown_path = String::from_utf8_lossy(&req.path).into_owned();
    match out {
        Ok(data) => Ok(chunked(data, |data| RawBlameResponse { data })),
        Err(BlameError::PathNotFound) => Err(Error::not_found("path not found in revision")
            .with_metadata("path", shown_path)
            .with_metadata("revision", revision)
            .with_detail(&detail(raw_blame_error::Error::PathNotFound(PathNotFoundError { path: req.path.clone() })))),
        Err(BlameError::InvalidIgnoreRevs(content)) => Err(Error::not_found("invalid object name").with_detail(
            &detail(raw_blame_error::Error::InvalidIgnoreRevsFormat(raw_blame_error::InvalidIgnoreRevsFormatError {
                content,
            })),
        )),
        Err(BlameError::OutOfRange(lines)) => Err(Error::invalid_argument("range is outside of the file length")
            .with_metadata("path", shown_path)
            .with_metadata("revision", revision)
            .with_metadata("lines", lines.to_string())
            .with_detail(&detail(raw_blame_error::Error::OutOfRange(raw_blame_error::OutOfRangeError {
                actual_lines: lines,
            })))),
        Err(e @ BlameError::Failed(_)) => Err(Error::new(Code::Unknown, "blaming file").with_source(e)),
    }
}

/// Go's `filepath.IsLocal`: not empty, not absolute, and not climbing out
/// through `..`.
fn is_local(path: &[u8]) -> bool {
    if path.is_empty() || path.starts_with(b"/") {
        return false;
    }
    let mut depth = 0i32;
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}

/// `<digits>,<digits>`.
fn valid_range(range: &[u8]) -> bool {
    let Some(comma) = range.iter().position(|b| *b == b',') else { return false };
    let (a, b) = (&range[..comma], &range[comma + 1..]);
    !a.is_empty() && !b.is_empty() && a.iter().all(u8::is_ascii_digit) && b.iter().all(u8::is_ascii_digit)
}
