//! RangeDiff and RawRangeDiff: `git range-diff` between two commit ranges
//! (git's own comparison of patches, so git runs), raw or parsed into
//! commit pairs with their diff-of-diffs as upstream parses it.

use super::{PATCH_CHUNK, git_failed, patch_parts, reject_option_like, target};
use crate::error::{Error, Result};
use crate::git::diff::cli::{Output, Target};
use crate::git::diff::range_diff::{Comparison, Pairs};
use crate::git::{GitCommand, ObjectFormat, Subcommand};
use crate::service::{Deps, stream};
use cairn_proto::gitaly::range_diff_response::Comparator;
use cairn_proto::gitaly::{
    BaseWithRevisions, RangeDiffRequest, RangeDiffResponse, RangePair, RawRangeDiffRequest, RawRangeDiffResponse,
    RevisionRange, range_diff_request, raw_range_diff_request,
};
use std::io::BufReader;
use tonic::Code;
use tonic::codegen::BoxStream;

/// The three ways to name the ranges, shared by both requests.
enum Spec<'a> {
    Pair(&'a RangePair),
    Range(&'a RevisionRange),
    Base(&'a BaseWithRevisions),
}

/// Upstream's checks and the revisions git is given.
fn revisions(spec: Option<Spec<'_>>) -> Result<Vec<String>> {
    let revs = match spec {
        Some(Spec::Pair(p)) => {
            if p.range1.is_empty() {
                return Err(Error::invalid_argument("empty Range1"));
            }
            if p.range2.is_empty() {
                return Err(Error::invalid_argument("empty Range2"));
            }
            vec![p.range1.clone(), p.range2.clone()]
        }
        Some(Spec::Range(r)) => {
            if r.rev1.is_empty() {
                return Err(Error::invalid_argument("empty Rev1"));
            }
            if r.rev2.is_empty() {
                return Err(Error::invalid_argument("empty Rev2"));
            }
            vec![format!("{}...{}", r.rev1, r.rev2)]
        }
        Some(Spec::Base(b)) => {
            if b.rev1.is_empty() {
                return Err(Error::invalid_argument("empty Rev1"));
            }
            if b.rev2.is_empty() {
                return Err(Error::invalid_argument("empty Rev2"));
            }
            if b.base.is_empty() {
                return Err(Error::invalid_argument("empty Base"));
            }
            vec![b.base.clone(), b.rev1.clone(), b.rev2.clone()]
        }
        // Upstream hands git no revisions at all, which git refuses.
        None => Vec::new(),
    };
    for rev in &revs {
        reject_option_like(rev.as_bytes())?;
    }
    Ok(revs)
}

fn command(target: &Target, format: ObjectFormat, revs: Vec<String>, no_color: bool) -> GitCommand {
    let mut cmd = target.command(Subcommand::RangeDiff).config("attr.tree", format.empty_tree());
    if no_color {
        cmd = cmd.flag("--no-color");
    }
    cmd = cmd.flag_value("--abbrev", format.hex_len().to_string());
    for rev in revs {
        cmd = cmd.arg(rev);
    }
    cmd
}

/// The repository's object format (call on the blocking pool).
fn format_of(deps: &Deps, path: &std::path::Path) -> Result<ObjectFormat> {
    Ok(deps.repos.open(path)?.object_format())
}

pub(super) fn raw_range_diff(
    deps: &Deps,
    req: RawRangeDiffRequest,
    cid: Option<String>,
) -> Result<BoxStream<RawRangeDiffResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    let spec = req.range_spec.as_ref().map(|s| match s {
        raw_range_diff_request::RangeSpec::RangePair(p) => Spec::Pair(p),
        raw_range_diff_request::RangeSpec::RevisionRange(r) => Spec::Range(r),
        raw_range_diff_request::RangeSpec::BaseWithRevisions(b) => Spec::Base(b),
    });
    let revs = revisions(spec)?;
    let d = deps.clone();
    // Upstream leaves colours to git, which prints none into a pipe.
    let cmd = move || Ok(command(&target(&path), format_of(&d, &path.path)?, revs, false));
    Ok(super::raw::stream_output(&deps.git, cmd, cid, Code::Internal, |data| RawRangeDiffResponse { data }))
}

pub(super) fn range_diff(
    deps: &Deps,
    req: RangeDiffRequest,
    cid: Option<String>,
) -> Result<BoxStream<RangeDiffResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    let spec = req.range_spec.as_ref().map(|s| match s {
        range_diff_request::RangeSpec::RangePair(p) => Spec::Pair(p),
        range_diff_request::RangeSpec::RevisionRange(r) => Spec::Range(r),
        range_diff_request::RangeSpec::BaseWithRevisions(b) => Spec::Base(b),
    });
    let revs = revisions(spec)?;
    let d = deps.clone();
    Ok(stream::blocking_stream(move |sink| {
        let cmd = command(&target(&path), format_of(&d, &path.path)?, revs, true);
        let output = Output::start(&d.git, cmd, cid.as_deref())?;
        let mut pairs = Pairs::new(BufReader::new(output));
        while let Some(pair) = pairs.next_pair().map_err(|e| Error::internal("RangeDiff: parse failure", e))? {
            let comparison = match pair.comparison {
                Comparison::Equal => Comparator::EqualUnspecified,
                Comparison::GreaterThan => Comparator::GreaterThan,
                Comparison::LessThan => Comparator::LessThan,
                Comparison::NotEqual => Comparator::NotEqual,
            };
            let mut first = RangeDiffResponse {
                from_commit_id: pair.from_commit,
                to_commit_id: pair.to_commit,
                comparison: comparison.into(),
                commit_message_title: String::from_utf8_lossy(&pair.title).into_owned(),
                ..Default::default()
            };
            let last = pair.patch.len().saturating_sub(1) / PATCH_CHUNK;
            for (i, part) in patch_parts(&pair.patch).enumerate() {
                let mut msg = if i == 0 { std::mem::take(&mut first) } else { RangeDiffResponse::default() };
                msg.patch_data = part.to_vec();
                msg.end_of_patch = i == last;
                sink.send(msg)?;
            }
        }
        pairs.into_inner().into_inner().finish().map_err(|e| git_failed(Code::FailedPrecondition, e))
    }))
}
