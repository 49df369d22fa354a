//! GetRawChanges: the changed paths between two revisions with modes,
//! blob ids and sizes (renames detected as `git diff --raw` does),
//! batched like upstream's list answers.

use crate::error::{Error, Result};
use crate::git::raw_changes::{self, Operation};
use crate::service::Deps;
use crate::service::stream::Chunker;
use cairn_proto::gitaly::get_raw_changes_response::RawChange;
use cairn_proto::gitaly::get_raw_changes_response::raw_change::Operation as ProtoOperation;
use cairn_proto::gitaly::{GetRawChangesRequest, GetRawChangesResponse};
use tonic::codegen::BoxStream;

pub(super) async fn handle(deps: &Deps, req: GetRawChangesRequest) -> Result<BoxStream<GetRawChangesResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    let (from, to) = deps
        .read_at(path.clone(), move |repo, _| {
            let from = raw_changes::resolve_side(repo, &req.from_revision)
                .map_err(|_| Error::invalid_argument(format!("invalid 'from' revision: {:?}", req.from_revision)))?;
            let to = raw_changes::resolve_side(repo, &req.to_revision)
                .map_err(|_| Error::invalid_argument(format!("invalid 'to' revision: {:?}", req.to_revision)))?;
            Ok((from, to))
        })
        .await?;
    Ok(deps.stream_at(path, move |repo, _, sink| {
        // Nothing changes towards "no commit".
        let Some(to) = to else { return Ok(()) };
        let changes = raw_changes::changes(repo, from, to).map_err(|e| Error::internal("diff", e))?;
        let mut chunker = Chunker::new(sink, |raw_changes| GetRawChangesResponse { raw_changes });
        for c in changes {
            let operation = match c.operation {
                Operation::Added => ProtoOperation::Added,
                Operation::Deleted => ProtoOperation::Deleted,
                Operation::Modified => ProtoOperation::Modified,
                Operation::Renamed => ProtoOperation::Renamed,
                Operation::TypeChanged => ProtoOperation::TypeChanged,
            };
            let (blob_id, size) = c.blob.map_or((String::new(), 0), |(id, size)| (id.to_string(), size as i64));
            chunker.push(RawChange {
                blob_id,
                size,
                operation: operation.into(),
                old_mode: c.old_mode as i32,
                new_mode: c.new_mode as i32,
                new_path_bytes: c.new_path,
                old_path_bytes: c.old_path,
            })?;
        }
        chunker.flush()
    }))
}
