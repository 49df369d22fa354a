//! CalculateChecksum: the XOR of the SHA-1s of the repository's reference
//! lines (see `git::checksum`), which replicas compare to detect drift.

use crate::error::{Error, Result};
use crate::git::checksum::{self, Checksum};
use crate::git::repo;
use crate::service::{Deps, blocking};
use cairn_proto::gitaly::{CalculateChecksumRequest, CalculateChecksumResponse};

pub(super) async fn handle(deps: &Deps, req: CalculateChecksumRequest) -> Result<CalculateChecksumResponse> {
    let resolved = deps.storages.repo(req.repository.as_ref())?;
    let repos = deps.repos.clone();
    let path = resolved.path.clone();
    let sum = blocking(move || {
        // A directory that passed the cheap layout check but is not a
        // repository git can read is data loss, which GitLab checks for.
        let r = repos.open(&path).map_err(|_| not_a_repository(&path))?;
        let refs = repo::resolved_references(&r).map_err(|_| not_a_repository(&path))?;
        let mut sum = Checksum::default();
        for (name, id) in refs {
            sum.add(&id.to_string(), &name);
        }
        // Nothing counted: fine for an empty repository, but a HEAD git
        // cannot parse means this is not a repository at all.
        if sum.is_zero() && !repo::head_is_valid(&r) {
            return Err(not_a_repository(&path));
        }
        Ok(sum)
    })
    .await?;
    let checksum = if sum.is_zero() { checksum::ZERO.to_owned() } else { sum.to_hex() };
    Ok(CalculateChecksumResponse { checksum })
}

fn not_a_repository(path: &std::path::Path) -> Error {
    Error::data_loss(format!("not a git repository '{}'", path.display()))
}
