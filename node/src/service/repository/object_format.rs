//! ObjectFormat: SHA-1 or SHA-256.

use crate::error::{Error, Result};
use crate::git::{ObjectFormat, repo};
use crate::service::{Deps, blocking};
use cairn_proto::gitaly::{ObjectFormat as ProtoFormat, ObjectFormatRequest, ObjectFormatResponse};

pub(super) async fn handle(deps: &Deps, req: ObjectFormatRequest) -> Result<ObjectFormatResponse> {
    let path = deps.storages.repo(req.repository.as_ref())?.path;
    let repos = deps.repos.clone();
    let format = blocking(move || {
        let r = repos.open(&path).map_err(|e| Error::internal("detect object format", e))?;
        Ok(repo::object_format(&r))
    })
    .await?;
    let format = match format {
        ObjectFormat::Sha1 => ProtoFormat::Sha1,
        ObjectFormat::Sha256 => ProtoFormat::Sha256,
    };
    Ok(ObjectFormatResponse { format: format.into() })
}
