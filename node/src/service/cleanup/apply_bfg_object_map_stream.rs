//! ApplyBfgObjectMapStream: reads a BFG / git-filter-repo object map from
//! the request stream, deletes the internal references that keep
//! rewritten objects alive (one reference transaction, voted on in a
//! router's transaction) and streams back every entry of the map with the
//! type of its new object (COMMIT for entries that hit internal
//! references, as upstream reports them).

use crate::error::{Error, Result};
use crate::git::cleanup::{self, ObjectKind};
use crate::service::Deps;
use crate::service::hook::transaction_hooks;
use crate::transaction::Transaction;
use cairn_proto::gitaly::apply_bfg_object_map_stream_response::Entry;
use cairn_proto::gitaly::{ApplyBfgObjectMapStreamRequest, ApplyBfgObjectMapStreamResponse, ObjectType};
use futures::StreamExt as _;
use prost::Message as _;
use tonic::Streaming;
use tonic::codegen::BoxStream;
use tonic::metadata::MetadataMap;

/// Entries per response are capped by size, as upstream's chunker does.
const MAX_MESSAGE: usize = 1024 * 1024;

pub(super) async fn handle(
    deps: &Deps,
    metadata: &MetadataMap,
    mut stream: Streaming<ApplyBfgObjectMapStreamRequest>,
    transaction: Option<Transaction>,
    correlation_id: Option<&str>,
) -> Result<BoxStream<ApplyBfgObjectMapStreamResponse>> {
    let first = match stream.next().await {
        Some(Ok(m)) => m,
        Some(Err(e)) => return Err(Error::internal_msg(e.message().to_owned())),
        None => return Err(Error::internal_msg("EOF")),
    };
    let repo = deps.storages.repo(first.repository.as_ref())?;
    let repository = first.repository.clone().unwrap_or_default();
    let mut map = first.object_map;
    while let Some(msg) = stream.next().await {
        map.extend(msg.map_err(|e| Error::internal_msg(e.message().to_owned()))?.object_map);
    }
    let format = deps.read_at(repo.clone(), |r, _| Ok(r.object_format())).await?;
    let pairs = cleanup::parse_object_map(&map, format).map_err(|e| Error::invalid_argument(e.to_string()))?;
    drop(map);
    let hooks = transaction_hooks(deps, &repository, &repo, transaction.as_ref(), metadata).await?;
    let result = cleanup::apply_object_map(&deps.git, &repo.path, format, &pairs, hooks.as_ref(), correlation_id).await;
    deps.repos.forget(&repo.path);
    let entries = result.map_err(|e| Error::internal_msg(crate::error::error_chain(&e)))?;
    let entries = deps
        .read_at(repo, move |r, _| {
            Ok(entries
                .into_iter()
                .map(|e| {
                    let kind = if e.internal { Some(ObjectKind::Commit) } else { cleanup::object_kind(r, &e.new) };
                    Entry { r#type: object_type(kind).into(), old_oid: e.old, new_oid: e.new }
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(Box::pin(futures::stream::iter(chunk(entries).into_iter().map(Ok))))
}

fn object_type(kind: Option<ObjectKind>) -> ObjectType {
    match kind {
        Some(ObjectKind::Commit) => ObjectType::Commit,
        Some(ObjectKind::Tree) => ObjectType::Tree,
        Some(ObjectKind::Blob) => ObjectType::Blob,
        Some(ObjectKind::Tag) => ObjectType::Tag,
        None => ObjectType::Unknown,
    }
}

/// Groups entries into responses of less than [`MAX_MESSAGE`] bytes.
fn chunk(entries: Vec<Entry>) -> Vec<ApplyBfgObjectMapStreamResponse> {
    let mut out = Vec::new();
    let mut current = ApplyBfgObjectMapStreamResponse::default();
    let mut size = 0;
    for entry in entries {
        let len = entry.encoded_len() + 4;
        if size + len >= MAX_MESSAGE && !current.entries.is_empty() {
            out.push(std::mem::take(&mut current));
            size = 0;
        }
        size += len;
        current.entries.push(entry);
    }
    if !current.entries.is_empty() {
        out.push(current);
    }
    out
}
