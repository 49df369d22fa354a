//! RepositoryInfo: size and the state of references, objects, commit-graph,
//! bitmaps, multi-pack-index and alternates.

use crate::error::Result;
use crate::git::stats::{self, RefBackend};
use crate::service::{Deps, blocking};
use cairn_proto::gitaly::repository_info_response::{
    AlternatesInfo, BitmapInfo, CommitGraphInfo, MultiPackIndexInfo, ObjectsInfo, ReferencesInfo,
    references_info::ReferenceBackend,
};
use cairn_proto::gitaly::{RepositoryInfoRequest, RepositoryInfoResponse};
use std::time::SystemTime;

pub(super) async fn handle(deps: &Deps, req: RepositoryInfoRequest) -> Result<RepositoryInfoResponse> {
    let repo = deps.storages.repo(req.repository.as_ref())?;
    let info =
        blocking(move || Ok(stats::repository_info(&repo.path, &repo.relative_path, SystemTime::now())?)).await?;
    Ok(convert(info))
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

fn bitmap(b: stats::BitmapInfo) -> BitmapInfo {
    BitmapInfo { has_hash_cache: b.has_hash_cache, has_lookup_table: b.has_lookup_table, version: b.version }
}

fn convert(i: stats::RepositoryInfo) -> RepositoryInfoResponse {
    let o = i.objects;
    RepositoryInfoResponse {
        size: i.size,
        references: Some(ReferencesInfo {
            loose_count: i.references.loose_count,
            packed_size: i.references.packed_size,
            reference_backend: match i.references.backend {
                RefBackend::Files => ReferenceBackend::Files,
                RefBackend::Reftable => ReferenceBackend::Reftable,
            }
            .into(),
        }),
        objects: Some(ObjectsInfo {
            size: o.size,
            recent_size: o.recent_size,
            stale_size: o.stale_size,
            keep_size: o.keep_size,
            packfile_count: o.packfile_count,
            reverse_index_count: o.reverse_index_count,
            cruft_count: o.cruft_count,
            keep_count: o.keep_count,
            loose_objects_count: o.loose_objects_count,
            stale_loose_objects_count: o.stale_loose_objects_count,
            loose_objects_garbage_count: o.loose_objects_garbage_count,
        }),
        commit_graph: Some(CommitGraphInfo {
            commit_graph_chain_length: i.commit_graph.chain_length,
            has_bloom_filters: i.commit_graph.has_bloom_filters,
            has_generation_data: i.commit_graph.has_generation_data,
            has_generation_data_overflow: i.commit_graph.has_generation_data_overflow,
        }),
        bitmap: i.bitmap.map(bitmap),
        multi_pack_index: i.multi_pack_index.map(|m| MultiPackIndexInfo {
            packfile_count: m.packfile_count,
            version: m.version,
            has_large_offsets: m.has_large_offsets,
            has_bitmapped_packs: m.has_bitmapped_packs,
            has_reverse_index: m.has_reverse_index,
        }),
        multi_pack_index_bitmap: i.multi_pack_index_bitmap.map(bitmap),
        alternates: i.alternates.map(|a| AlternatesInfo {
            object_directories: a.object_directories,
            last_modified: a.last_modified.map(timestamp),
        }),
        is_object_pool: i.is_object_pool,
        last_full_repack: i.last_full_repack.map(timestamp),
    }
}
