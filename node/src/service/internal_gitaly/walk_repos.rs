//! WalkRepos: every repository of a storage with the modification time of
//! its directory, one message per repository, in upstream's walk order.

use crate::error::{Error, Result};
use crate::service::Deps;
use crate::service::stream::blocking_stream;
use crate::storage::walk::find_repositories;
use cairn_proto::gitaly::{WalkReposRequest, WalkReposResponse};
use tonic::codegen::BoxStream;

pub(super) fn handle(deps: &Deps, req: WalkReposRequest) -> Result<BoxStream<WalkReposResponse>> {
    // Upstream wraps the storage lookup error, keeping its code.
    let root = deps
        .storages
        .root(&req.storage_name)
        .map_err(|e| {
            Error::new(e.code(), format!("looking up storage: {e}"))
                .with_metadata("storage_name", req.storage_name.clone())
        })?
        .path
        .clone();
    // I/O errors other than vanished directories end the stream INTERNAL, as
    // upstream.
    Ok(blocking_stream(move |sink| {
        find_repositories::<Error>(&root, |repo| {
            sink.send(WalkReposResponse {
                relative_path: repo.relative_path,
                modification_time: Some(prost_types::Timestamp::from(repo.modified)),
            })
        })
    }))
}
