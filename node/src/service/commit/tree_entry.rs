//! TreeEntry: the entry at a path of a revision's tree. Blobs are streamed
//! in 128 KiB messages (up to `limit` bytes; FAILED_PRECONDITION above
//! `max_size`), trees and submodules answer their metadata only, and a
//! path that names nothing (including `..`, `.` or empty components) is
//! NOT_FOUND.

use super::{RevisionRules, valid_revision};
use crate::error::{Error, Result};
use crate::git::objects::{self, Kind};
use crate::git::tree::{self, EntryKind};
use crate::service::{CHUNK_SIZE, Deps};
use cairn_proto::gitaly::tree_entry_response::ObjectType;
use cairn_proto::gitaly::{TreeEntryRequest, TreeEntryResponse};
use tonic::codegen::BoxStream;

pub(super) fn handle(deps: &Deps, req: TreeEntryRequest) -> Result<BoxStream<TreeEntryResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    valid_revision(&req.revision, RevisionRules::default())?;
    if req.path.is_empty() {
        return Err(Error::invalid_argument("empty Path"));
    }
    if req.limit < 0 {
        return Err(Error::invalid_argument("negative Limit"));
    }
    if req.max_size < 0 {
        return Err(Error::invalid_argument("negative MaxSize"));
    }
    let mut request_path = req.path.clone();
    if request_path.len() > 1 {
        while request_path.ends_with(b"/") {
            request_path.pop();
        }
    }
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let not_found =
            || Error::not_found("tree entry not found").with_metadata("path", String::from_utf8_lossy(&request_path));
        let root = match objects::resolve(repo, &req.revision) {
            Some(id) => tree::peel_to_tree(repo, id)?,
            None => None,
        };
        let Some(root) = root else { return Err(not_found()) };
        let components = tree::path_components(&request_path).filter(|c| !c.is_empty()).ok_or_else(not_found)?;
        let entry = tree::lookup(repo, root, &components)?.ok_or_else(not_found)?;
        let mode = i32::try_from(entry.mode).unwrap_or_default();
        match entry.kind() {
            EntryKind::Commit => {
                sink.send(TreeEntryResponse {
                    r#type: ObjectType::Commit.into(),
                    oid: entry.id.to_string(),
                    mode,
                    ..Default::default()
                })?;
            }
            EntryKind::Tree => {
                let (_, size) = objects::header(repo, entry.id)?.ok_or_else(not_found)?;
                sink.send(TreeEntryResponse {
                    r#type: ObjectType::Tree.into(),
                    oid: entry.id.to_string(),
                    size: i64::try_from(size).unwrap_or(i64::MAX),
                    mode,
                    data: Vec::new(),
                })?;
            }
            EntryKind::Blob => {
                let (kind, size) = objects::header(repo, entry.id)?
                    .ok_or_else(|| Error::internal_msg(format!("object not found: {}", entry.id)))?;
                if kind != Kind::Blob {
                    return Err(Error::internal_msg(format!(
                        "mismatched object type: tree-oid={} object-oid={} entry-type=BLOB object-type={kind}",
                        entry.id, entry.id
                    )));
                }
                let size = i64::try_from(size).unwrap_or(i64::MAX);
                if req.max_size > 0 && size > req.max_size {
                    return Err(Error::failed_precondition(format!(
                        "object size ({size}) is bigger than the maximum allowed size ({})",
                        req.max_size
                    )));
                }
                let length = if req.limit > 0 { size.min(req.limit) } else { size };
                let mut first = TreeEntryResponse {
                    r#type: ObjectType::Blob.into(),
                    oid: entry.id.to_string(),
                    size,
                    mode,
                    data: Vec::new(),
                };
                if length == 0 {
                    return sink.send(first);
                }
                let blob = objects::read(repo, entry.id)?
                    .ok_or_else(|| Error::internal_msg(format!("object not found: {}", entry.id)))?;
                let data = &blob.data[..usize::try_from(length).unwrap_or(usize::MAX).min(blob.data.len())];
                for (i, chunk) in data.chunks(CHUNK_SIZE).enumerate() {
                    if i == 0 {
                        first.data = chunk.to_vec();
                        sink.send(std::mem::take(&mut first))?;
                    } else {
                        sink.send(TreeEntryResponse { data: chunk.to_vec(), ..Default::default() })?;
                    }
                }
            }
        }
        Ok(())
    }))
}
