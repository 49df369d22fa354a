//! BlobService: blobs by id or by revision and path, blob listings by
//! revision walk or over the whole object database, and LFS pointers.

mod get_blob;
mod get_blobs;
mod lfs_pointers;
mod list_blobs;

use super::{CHUNK_SIZE, Deps, respond};
use crate::error::{Error, Result};
use crate::git::blob::ObjectReader;
use cairn_proto::gitaly::blob_service_server;
use cairn_proto::gitaly::*;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

/// Handlers of BlobService.
#[derive(Debug, Clone)]
pub(super) struct BlobService {
    deps: Deps,
}

impl BlobService {
    pub(super) fn new(deps: &Deps) -> Self {
        Self { deps: deps.clone() }
    }
}

/// Reads up to `limit` bytes of an object and hands them to `send` in
/// chunks of [`CHUNK_SIZE`] (the last one shorter), never holding more
/// than one chunk.
fn send_chunks(reader: &mut ObjectReader, limit: u64, mut send: impl FnMut(Vec<u8>) -> Result<()>) -> Result<()> {
    let mut left = limit;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(CHUNK_SIZE);
        let mut chunk = vec![0u8; want];
        let n = reader.read_full(&mut chunk).map_err(|e| Error::internal("read blob", e))?;
        if n == 0 {
            break;
        }
        chunk.truncate(n);
        left -= n as u64;
        send(chunk)?;
    }
    Ok(())
}

/// Validates rev-list arguments as upstream does (pseudo-revisions and
/// path-scoped revisions allowed).
fn validate_revisions(revisions: &[String]) -> Result<()> {
    if revisions.is_empty() {
        return Err(Error::invalid_argument("missing revisions"));
    }
    for revision in revisions {
        crate::git::blob::walk::validate_argument(revision.as_bytes(), true).map_err(|e| {
            Error::invalid_argument(format!("invalid revision: {e}")).with_metadata("revision", revision.clone())
        })?;
    }
    Ok(())
}

#[tonic::async_trait]
impl blob_service_server::BlobService for BlobService {
    async fn get_blob(&self, req: Request<GetBlobRequest>) -> Result<Response<BoxStream<GetBlobResponse>>, Status> {
        respond(get_blob::handle(&self.deps, req.into_inner()))
    }

    async fn get_blobs(&self, req: Request<GetBlobsRequest>) -> Result<Response<BoxStream<GetBlobsResponse>>, Status> {
        respond(get_blobs::handle(&self.deps, req.into_inner()))
    }

    async fn list_blobs(
        &self,
        req: Request<ListBlobsRequest>,
    ) -> Result<Response<BoxStream<ListBlobsResponse>>, Status> {
        respond(list_blobs::list_blobs(&self.deps, req.into_inner()))
    }

    async fn list_all_blobs(
        &self,
        req: Request<ListAllBlobsRequest>,
    ) -> Result<Response<BoxStream<ListAllBlobsResponse>>, Status> {
        respond(list_blobs::list_all_blobs(&self.deps, req.into_inner()))
    }

    async fn get_lfs_pointers(
        &self,
        req: Request<GetLfsPointersRequest>,
    ) -> Result<Response<BoxStream<GetLfsPointersResponse>>, Status> {
        respond(lfs_pointers::get(&self.deps, req.into_inner()))
    }

    async fn list_lfs_pointers(
        &self,
        req: Request<ListLfsPointersRequest>,
    ) -> Result<Response<BoxStream<ListLfsPointersResponse>>, Status> {
        respond(lfs_pointers::list(&self.deps, req.into_inner()))
    }

    async fn list_all_lfs_pointers(
        &self,
        req: Request<ListAllLfsPointersRequest>,
    ) -> Result<Response<BoxStream<ListAllLfsPointersResponse>>, Status> {
        respond(lfs_pointers::list_all(&self.deps, req.into_inner()))
    }
}
