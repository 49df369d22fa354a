//! ListBlobs (blobs reachable from revisions, walked as git-rev-list walks
//! them) and ListAllBlobs (every blob in the object database, reachable or
//! not). Both stop after `limit` blobs (0: no limit) and send `bytes_limit`
//! bytes of each (0: none, -1: all); a blob's data larger than a chunk is
//! split over several entries, only the first carrying id and size.

use super::{send_chunks, validate_revisions};
use crate::error::{Error, Result};
use crate::git::blob::walk::{self, Filter};
use crate::git::blob::{self, ObjectReader, ObjectSource};
use crate::git::objects::{self, Kind};
use crate::service::Deps;
use crate::service::stream::{Chunker, Sink};
use crate::storage::RepoPath;
use cairn_proto::gitaly::{
    ListAllBlobsRequest, ListAllBlobsResponse, ListBlobsRequest, ListBlobsResponse, list_all_blobs_response,
    list_blobs_response,
};
use tonic::codegen::BoxStream;

pub(super) fn list_blobs(deps: &Deps, req: ListBlobsRequest) -> Result<BoxStream<ListBlobsResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    validate_revisions(&req.revisions)?;
    Ok(deps.stream_at(path, move |repo, _, sink: &Sink<ListBlobsResponse>| {
        let mut chunker = Chunker::new(sink, |blobs| ListBlobsResponse { blobs });
        let mut count = 0u32;
        let mut failure = None;
        walk::walk(repo, &req.revisions, Filter::Blobs { below: None }, |id, path| {
            let path = if req.with_paths { path.to_vec() } else { Vec::new() };
            let sent = send_blob(
                req.bytes_limit,
                id.to_string(),
                || open(repo, id, req.bytes_limit),
                |oid, size, data| chunker.push(list_blobs_response::Blob { oid, size, data, path: path.clone() }),
            );
            if let Err(e) = sent {
                failure = Some(e);
                return Ok(false);
            }
            count += 1;
            Ok(req.limit == 0 || count < req.limit)
        })
        .map_err(|e| Error::internal("processing blobs", e))?;
        if let Some(e) = failure {
            return Err(e);
        }
        chunker.flush()
    }))
}

/// A blob's size, and a reader unless no data is wanted.
fn open(repo: &crate::git::Repo, id: objects::ObjectId, bytes_limit: i64) -> Result<(u64, Option<ObjectReader>)> {
    if bytes_limit == 0 {
        return match objects::header(repo, id)? {
            Some((_, size)) => Ok((size, None)),
            None => Err(Error::internal_msg(format!("processing blobs: object not found: {id}"))),
        };
    }
    match blob::open(repo, id)? {
        Some(r) => Ok((r.size, Some(r))),
        None => Err(Error::internal_msg(format!("processing blobs: object not found: {id}"))),
    }
}

/// Sends one blob as upstream does: with a zero bytes limit only its id and
/// size, otherwise its data in chunks, the first carrying id and size.
fn send_blob(
    bytes_limit: i64,
    oid: String,
    open: impl FnOnce() -> Result<(u64, Option<ObjectReader>)>,
    mut push: impl FnMut(String, i64, Vec<u8>) -> Result<()>,
) -> Result<()> {
    let (size, reader) = open()?;
    let size_i = size as i64;
    let mut header = Some((oid, size_i));
    if bytes_limit != 0
        && let Some(mut reader) = reader
    {
        let limit = if bytes_limit < 0 { size } else { (bytes_limit as u64).min(size) };
        send_chunks(&mut reader, limit, |data| {
            let (oid, size) = header.take().unwrap_or_default();
            push(oid, size, data)
        })?;
    }
    if let Some((oid, size)) = header {
        push(oid, size, Vec::new())?;
    }
    Ok(())
}

/// Where ListAll* look: the quarantine directories when the request names
/// them, else the repository with its alternates.
pub(super) fn object_source(path: &RepoPath) -> ObjectSource {
    match &path.object_dir {
        Some(dir) => {
            ObjectSource::Directories(std::iter::once(dir.clone()).chain(path.alternate_object_dirs.clone()).collect())
        }
        None => ObjectSource::Repository,
    }
}

pub(super) fn list_all_blobs(deps: &Deps, req: ListAllBlobsRequest) -> Result<BoxStream<ListAllBlobsResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    let source = object_source(&path);
    Ok(deps.stream_at(path, move |repo, _, sink: &Sink<ListAllBlobsResponse>| {
        let mut chunker = Chunker::new(sink, |blobs| ListAllBlobsResponse { blobs });
        let mut count = 0u32;
        let mut failure = None;
        blob::each_object(repo, &source, |store, info| {
            if info.kind != Kind::Blob {
                return Ok(true);
            }
            let opened = || -> Result<(u64, Option<ObjectReader>)> {
                if req.bytes_limit == 0 {
                    return Ok((info.size, None));
                }
                match store.open(info.id)? {
                    Some(r) => Ok((r.size, Some(r))),
                    None => Err(Error::internal_msg(format!("processing blobs: object vanished: {}", info.id))),
                }
            };
            let sent = send_blob(req.bytes_limit, info.id.to_string(), opened, |oid, size, data| {
                chunker.push(list_all_blobs_response::Blob { oid, size, data })
            });
            if let Err(e) = sent {
                failure = Some(e);
                return Ok(false);
            }
            count += 1;
            Ok(req.limit == 0 || count < req.limit)
        })
        .map_err(|e| Error::internal("processing blobs", e))?;
        if let Some(e) = failure {
            return Err(e);
        }
        chunker.flush()
    }))
}
