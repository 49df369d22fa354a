//! GetBlobs: entries by revision and path. Each answer echoes the revision
//! and path; found entries add their id, mode and type, blobs their size
//! and data (up to `limit` bytes, -1 for all), trees their size, and
//! submodules only `is_submodule`. Entries that do not exist get the echo
//! alone.

use super::send_chunks;
use crate::error::{Error, Result};
use crate::git::blob::{self, EntryKind};
use crate::git::objects;
use crate::git::refs;
use crate::service::Deps;
use cairn_proto::gitaly::{GetBlobsRequest, GetBlobsResponse, ObjectType};
use tonic::codegen::BoxStream;

pub(super) fn handle(deps: &Deps, req: GetBlobsRequest) -> Result<BoxStream<GetBlobsResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    if req.revision_paths.is_empty() {
        return Err(Error::invalid_argument("empty RevisionPaths"));
    }
    for rp in &req.revision_paths {
        refs::validate_revision(rp.revision.as_bytes()).map_err(Error::invalid_argument)?;
    }
    Ok(deps.stream_at(path, move |repo, _, sink| {
        for rp in req.revision_paths {
            let mut path = rp.path;
            if path.len() > 1 {
                while path.last() == Some(&b'/') {
                    path.pop();
                }
            }
            let entry = blob::tree_entry(repo, rp.revision.as_bytes(), &path)
                .map_err(|e| Error::internal("find by revision and path", e))?;
            let mut resp = GetBlobsResponse { revision: rp.revision, path, ..Default::default() };
            let Some(entry) = entry else {
                sink.send(resp)?;
                continue;
            };
            resp.mode = entry.mode as i32;
            resp.oid = entry.id.to_string();
            match entry.kind {
                EntryKind::Commit => {
                    resp.is_submodule = true;
                    resp.set_type(ObjectType::Commit);
                    sink.send(resp)?;
                }
                EntryKind::Tree => {
                    resp.size = object_size(repo, entry.id)?;
                    resp.set_type(ObjectType::Tree);
                    sink.send(resp)?;
                }
                EntryKind::Blob => {
                    resp.size = object_size(repo, entry.id)?;
                    resp.set_type(ObjectType::Blob);
                    let limit = if req.limit < 0 || req.limit > resp.size { resp.size } else { req.limit };
                    if limit == 0 {
                        sink.send(resp)?;
                        continue;
                    }
                    let mut reader =
                        blob::open(repo, entry.id)?.ok_or_else(|| Error::internal_msg("read object: blob vanished"))?;
                    let mut first = Some(resp);
                    send_chunks(&mut reader, limit as u64, |data| {
                        let mut msg = first.take().unwrap_or_default();
                        msg.data = data;
                        sink.send(msg)
                    })?;
                }
            }
        }
        Ok(())
    }))
}

fn object_size(repo: &crate::git::Repo, id: objects::ObjectId) -> Result<i64> {
    match objects::header(repo, id)? {
        Some((_, size)) => Ok(size as i64),
        None => Err(Error::internal_msg(format!("read object info: object not found: {id}"))),
    }
}
