//! GetConfig: the repository's `config` file, streamed as is.

use crate::error::{Error, Result};
use crate::service::{Deps, blocking, chunked};
use cairn_proto::gitaly::{GetConfigRequest, GetConfigResponse};
use tonic::codegen::BoxStream;

pub(super) async fn get_config(deps: &Deps, req: GetConfigRequest) -> Result<BoxStream<GetConfigResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?.path.join("config");
    let data = blocking(move || {
        std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::not_found("opening gitconfig: no such file"),
            _ => Error::internal("opening gitconfig", e),
        })
    })
    .await?;
    Ok(chunked(data, |data| GetConfigResponse { data }))
}
