//! CheckObjectsExist: for every revision of every request message, whether
//! it names an existing object (`<rev>:<path>` allowed), answered in
//! batches once the client has sent everything. An invalid revision fails
//! the stream.

use super::{RevisionRules, check_revision};
use crate::error::{Error, Result};
use crate::git::objects;
use crate::service::Deps;
use crate::service::stream::Chunker;
use cairn_proto::gitaly::check_objects_exist_response::RevisionExistence;
use cairn_proto::gitaly::{CheckObjectsExistRequest, CheckObjectsExistResponse};
use tonic::Streaming;
use tonic::codegen::BoxStream;

pub(super) async fn handle(
    deps: &Deps,
    mut requests: Streaming<CheckObjectsExistRequest>,
) -> Result<BoxStream<CheckObjectsExistResponse>> {
    let Some(first) = requests.message().await.map_err(|s| Error::new(s.code(), s.message().to_owned()))? else {
        return Ok(Box::pin(futures::stream::empty()));
    };
    let path = deps.storages.repo(first.repository.as_ref())?;
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let runtime = tokio::runtime::Handle::current();
        let mut chunker = Chunker::new(sink, |revisions| CheckObjectsExistResponse { revisions });
        let mut request = first;
        loop {
            for revision in &request.revisions {
                check_revision(revision, RevisionRules { path_scoped: true, ..Default::default() }).map_err(|e| {
                    Error::invalid_argument(format!("invalid revision: {e}"))
                        .with_metadata("revision", String::from_utf8_lossy(revision))
                })?;
            }
            for revision in request.revisions {
                let exists = match objects::resolve(repo, &revision) {
                    Some(id) => objects::header(repo, id)?.is_some(),
                    None => false,
                };
                chunker.push(RevisionExistence { name: revision, exists })?;
            }
            match runtime.block_on(requests.message()) {
                Ok(Some(next)) => request = next,
                Ok(None) => break,
                Err(s) => return Err(Error::internal(format!("receiving request: {}", s.message()), s)),
            }
        }
        chunker.flush()
    }))
}
