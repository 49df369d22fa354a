//! LFS pointers: GetLFSPointers filters given blob ids, ListLFSPointers
//! walks revisions, ListAllLFSPointers scans the whole object database.
//! Only small blobs are read (see `git::lfs`), so pointers are read whole.

use super::list_blobs::object_source;
use super::validate_revisions;
use crate::error::{Error, Result};
use crate::git::Repo;
use crate::git::blob::walk::{self, Filter};
use crate::git::blob::{self, Resolved};
use crate::git::lfs::{self, MAX_POINTER_SIZE};
use crate::git::objects::{self, Kind, ObjectId};
use crate::service::Deps;
use crate::service::stream::{Chunker, Sink};
use cairn_proto::gitaly::{
    GetLfsPointersRequest, GetLfsPointersResponse, LfsPointer, ListAllLfsPointersRequest, ListAllLfsPointersResponse,
    ListLfsPointersRequest, ListLfsPointersResponse,
};
use tonic::codegen::BoxStream;

/// The pointer message for a blob's contents, if they are a pointer.
fn pointer(id: ObjectId, data: Vec<u8>) -> Option<LfsPointer> {
    let parsed = lfs::parse(&data)?;
    Some(LfsPointer {
        size: data.len() as i64,
        oid: id.to_string(),
        file_size: parsed.size,
        file_oid: parsed.oid,
        data,
    })
}

fn read_small(repo: &Repo, id: ObjectId) -> Result<Vec<u8>> {
    match objects::read(repo, id)? {
        Some(o) => Ok(o.data),
        None => Err(Error::internal_msg(format!("reading LFS pointer data: object not found: {id}"))),
    }
}

pub(super) fn get(deps: &Deps, req: GetLfsPointersRequest) -> Result<BoxStream<GetLfsPointersResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    if req.blob_ids.is_empty() {
        return Err(Error::invalid_argument("empty BlobIds"));
    }
    Ok(deps.stream_at(path, move |repo, _, sink: &Sink<GetLfsPointersResponse>| {
        let mut chunker = Chunker::new(sink, |lfs_pointers| GetLfsPointersResponse { lfs_pointers });
        for blob_id in &req.blob_ids {
            // Ids that name nothing fail the request, as upstream's object
            // reader does.
            let id = match blob::resolve(repo, blob_id.as_bytes()) {
                Resolved::Found(id) => id,
                Resolved::Missing | Resolved::Ambiguous => {
                    return Err(Error::internal_msg(format!("object not found: {blob_id}")));
                }
            };
            let Some((kind, size)) = objects::header(repo, id)? else {
                return Err(Error::internal_msg(format!("object not found: {blob_id}")));
            };
            if kind != Kind::Blob || size > MAX_POINTER_SIZE {
                continue;
            }
            if let Some(p) = pointer(id, read_small(repo, id)?) {
                chunker.push(p)?;
            }
        }
        chunker.flush()
    }))
}

pub(super) fn list(deps: &Deps, req: ListLfsPointersRequest) -> Result<BoxStream<ListLfsPointersResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    validate_revisions(&req.revisions)?;
    Ok(deps.stream_at(path, move |repo, _, sink: &Sink<ListLfsPointersResponse>| {
        let mut chunker = Chunker::new(sink, |lfs_pointers| ListLfsPointersResponse { lfs_pointers });
        let mut count = 0i32;
        let mut failure = None;
        walk::walk(repo, &req.revisions, Filter::Blobs { below: Some(MAX_POINTER_SIZE) }, |id, _| {
            let found = read_small(repo, id).map(|data| pointer(id, data));
            match found.and_then(|p| p.map_or(Ok(false), |p| chunker.push(p).map(|()| true))) {
                Ok(true) => count += 1,
                Ok(false) => {}
                Err(e) => {
                    failure = Some(e);
                    return Ok(false);
                }
            }
            Ok(req.limit <= 0 || count < req.limit)
        })
        .map_err(|e| Error::internal("revision walk", e))?;
        if let Some(e) = failure {
            return Err(e);
        }
        chunker.flush()
    }))
}

pub(super) fn list_all(deps: &Deps, req: ListAllLfsPointersRequest) -> Result<BoxStream<ListAllLfsPointersResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    let source = object_source(&path);
    Ok(deps.stream_at(path, move |repo, _, sink: &Sink<ListAllLfsPointersResponse>| {
        let mut chunker = Chunker::new(sink, |lfs_pointers| ListAllLfsPointersResponse { lfs_pointers });
        let mut count = 0i32;
        let mut failure = None;
        blob::each_object(repo, &source, |store, info| {
            if info.kind != Kind::Blob || info.size > MAX_POINTER_SIZE {
                return Ok(true);
            }
            let mut data = Vec::new();
            if let Some(mut r) = store.open(info.id)? {
                std::io::Read::read_to_end(&mut r, &mut data).map_err(crate::git::GitError::io("read blob"))?;
            } else {
                return Ok(true);
            }
            let Some(p) = pointer(info.id, data) else { return Ok(true) };
            if let Err(e) = chunker.push(p) {
                failure = Some(e);
                return Ok(false);
            }
            count += 1;
            Ok(req.limit <= 0 || count < req.limit)
        })
        .map_err(|e| Error::internal("listing objects", e))?;
        if let Some(e) = failure {
            return Err(e);
        }
        chunker.flush()
    }))
}
