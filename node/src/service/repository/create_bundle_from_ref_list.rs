//! CreateBundleFromRefList: a bundle of the revisions and patterns the
//! client streams (`git bundle create --stdin`; names that resolve to
//! nothing are ignored), streamed back as git writes it. Nothing to bundle
//! is FAILED_PRECONDITION, as upstream.

use super::create_bundle::stream_bundle;
use crate::error::{Error, Result};
use crate::git::bundle;
use crate::service::Deps;
use cairn_proto::gitaly::{CreateBundleFromRefListRequest, CreateBundleFromRefListResponse};
use futures::StreamExt as _;
use tonic::Streaming;
use tonic::codegen::BoxStream;

pub(super) async fn handle(
    deps: &Deps,
    mut stream: Streaming<CreateBundleFromRefListRequest>,
    correlation_id: Option<&str>,
) -> Result<BoxStream<CreateBundleFromRefListResponse>> {
    let first = match stream.next().await {
        Some(Ok(m)) => m,
        Some(Err(e)) => return Err(Error::internal_msg(format!("receive first request: {}", e.message()))),
        None => return Err(Error::invalid_argument("empty request stream")),
    };
    let path = deps.storages.repo(first.repository.as_ref())?;
    let mut patterns = Vec::new();
    let mut append = |list: Vec<Vec<u8>>| {
        for p in list {
            patterns.extend_from_slice(&p);
            patterns.push(b'\n');
        }
    };
    append(first.patterns);
    while let Some(msg) = stream.next().await {
        let msg = msg.map_err(|e| Error::internal_msg(format!("receive patterns: {}", e.message())))?;
        append(msg.patterns);
    }
    let running = bundle::create_from_patterns(
        &deps.git,
        &path.path,
        &crate::service::quarantine(&path),
        patterns,
        correlation_id,
    )?;
    Ok(stream_bundle(running, |data| CreateBundleFromRefListResponse { data }))
}
