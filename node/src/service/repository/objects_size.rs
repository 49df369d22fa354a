//! ObjectsSize: the on-disk size of the objects reachable from revisions
//! streamed in by the client (pseudo-revisions such as `--not` and `--all`
//! allowed), summed by `git rev-list --disk-usage`.

use crate::error::{Error, Result};
use crate::git::objects_size::{self, Size};
use crate::service::Deps;
use cairn_proto::gitaly::{ObjectsSizeRequest, ObjectsSizeResponse};
use futures::{Stream, StreamExt as _};

/// Pseudo-revisions upstream lets through (`AllowPseudoRevision`).
fn is_pseudo_revision(r: &[u8]) -> bool {
    matches!(r, b"--all" | b"--not" | b"--branches" | b"--tags" | b"--alternate-refs")
        || r.starts_with(b"--branches=")
        || r.starts_with(b"--tags=")
        || r.starts_with(b"--glob=")
}

/// Upstream's revision rules with pseudo-revisions allowed.
fn validate(r: &[u8]) -> std::result::Result<(), &'static str> {
    if is_pseudo_revision(r) {
        // Each revision is one stdin line.
        return if r.contains(&b'\n') || r.contains(&0) { Err("revision can't contain whitespace") } else { Ok(()) };
    }
    crate::git::refs::validate_revision(r)
}

pub(super) async fn handle(
    deps: &Deps,
    mut requests: impl Stream<Item = std::result::Result<ObjectsSizeRequest, tonic::Status>> + Unpin,
    correlation_id: Option<&str>,
) -> Result<ObjectsSizeResponse> {
    let first = match requests.next().await {
        Some(Ok(m)) => m,
        Some(Err(status)) => {
            return Err(Error::new(status.code(), format!("receiving initial request: {}", status.message())));
        }
        None => return Err(Error::invalid_argument("receiving initial request: empty stream")),
    };
    let path = deps.storages.repo(first.repository.as_ref())?;
    let mut revisions = Vec::new();
    let mut message = Some(first);
    let mut index = 0usize;
    while let Some(m) = message.take() {
        if index > 0 && m.repository.is_some() {
            return Err(Error::invalid_argument("subsequent requests must not contain repository"));
        }
        if m.revisions.is_empty() {
            return Err(Error::invalid_argument("no revisions specified"));
        }
        for r in m.revisions {
            validate(&r).map_err(|e| Error::invalid_argument(format!("validating revision: {e}")))?;
            revisions.push(r);
        }
        index += 1;
        message = match requests.next().await {
            Some(Ok(m)) => Some(m),
            Some(Err(status)) => {
                return Err(Error::new(status.code(), format!("receiving next request: {}", status.message())));
            }
            None => None,
        };
    }
    match objects_size::objects_size(
        &deps.git,
        &path.path,
        &crate::service::quarantine(&path),
        &revisions,
        correlation_id,
    )
    .await?
    {
        Size::Bytes(size) => Ok(ObjectsSizeResponse { size }),
        Size::RevisionNotFound(r) => Err(Error::not_found("revision not found").with_metadata("revision", r)),
    }
}
