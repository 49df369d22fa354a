//! FindDefaultBranchName: HEAD's branch, or (unless `head_only`) upstream's
//! guess when HEAD's branch does not exist: `main`, `master`, then the first
//! branch by name; empty when there are no branches.

use crate::error::{Error, Result};
use crate::git::references::{self, Head};
use crate::service::Deps;
use cairn_proto::gitaly::{FindDefaultBranchNameRequest, FindDefaultBranchNameResponse};

pub(super) async fn handle(deps: &Deps, req: FindDefaultBranchNameRequest) -> Result<FindDefaultBranchNameResponse> {
    deps.read(req.repository.as_ref(), move |repo, _| {
        let name = if req.head_only {
            match references::head(repo)? {
                Head::Symbolic(name) => name,
                Head::Detached => return Err(Error::internal_msg("head reference: HEAD is not a symbolic ref")),
            }
        } else {
            references::default_branch(repo).map_err(|e| Error::internal("get default branch", e))?.unwrap_or_default()
        };
        Ok(FindDefaultBranchNameResponse { name })
    })
    .await
}
