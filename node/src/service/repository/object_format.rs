//! ObjectFormat: SHA-1 or SHA-256.

use crate::error::Result;
use crate::git::ObjectFormat;
use crate::service::Deps;
use cairn_proto::gitaly::{ObjectFormat as ProtoFormat, ObjectFormatRequest, ObjectFormatResponse};

pub(super) async fn handle(deps: &Deps, req: ObjectFormatRequest) -> Result<ObjectFormatResponse> {
    let format = deps.read(req.repository.as_ref(), |repo, _| Ok(repo.object_format())).await?;
    let format = match format {
        ObjectFormat::Sha1 => ProtoFormat::Sha1,
        ObjectFormat::Sha256 => ProtoFormat::Sha256,
    };
    Ok(ObjectFormatResponse { format: format.into() })
}
