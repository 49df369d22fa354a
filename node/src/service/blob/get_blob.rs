//! GetBlob: one blob by object id (any revision git's object reader takes),
//! its size and id in the first message and its data (up to `limit` bytes,
//! -1 for all) in chunks. A missing object or one that is not a blob gets a
//! single empty message.

use super::send_chunks;
use crate::error::{Error, Result};
use crate::git::blob::{self, Resolved};
use crate::git::objects::{self, Kind};
use crate::service::Deps;
use cairn_proto::gitaly::{GetBlobRequest, GetBlobResponse};
use tonic::codegen::BoxStream;

pub(super) fn handle(deps: &Deps, req: GetBlobRequest) -> Result<BoxStream<GetBlobResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    if req.oid.is_empty() {
        return Err(Error::invalid_argument("empty Oid"));
    }
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let id = match blob::resolve(repo, req.oid.as_bytes()) {
            Resolved::Found(id) => id,
            Resolved::Missing => return sink.send(GetBlobResponse::default()),
            // git's object reader answers a line upstream cannot parse.
            Resolved::Ambiguous => {
                return Err(Error::internal_msg(format!("read object: ambiguous object {}", req.oid)));
            }
        };
        let Some((Kind::Blob, size)) = objects::header(repo, id)? else {
            return sink.send(GetBlobResponse::default());
        };
        let size = size as i64;
        let limit = if req.limit >= 0 && req.limit < size { req.limit } else { size };
        let mut first = Some(GetBlobResponse { size, oid: id.to_string(), data: Vec::new() });
        if limit == 0 {
            return sink.send(first.take().expect("first message"));
        }
        let Some(mut reader) = blob::open(repo, id)? else {
            return Err(Error::internal_msg("read object: blob vanished"));
        };
        send_chunks(&mut reader, limit as u64, |data| {
            let mut msg = first.take().unwrap_or_default();
            msg.data = data;
            sink.send(msg)
        })
    }))
}
