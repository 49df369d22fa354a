//! SearchFilesByName and SearchFilesByContent: file paths below a path of
//! a revision's tree, and git grep-style content matches, in-process.

use super::get_archive::SinkWriter;
use crate::error::{Error, Result};
use crate::git::GitError;
use crate::git::search::{self, ContentEvent};
use crate::service::Deps;
use cairn_proto::gitaly::{
    SearchFilesByContentRequest, SearchFilesByContentResponse, SearchFilesByNameRequest, SearchFilesByNameResponse,
};
use std::io::Write as _;
use tonic::codegen::BoxStream;

/// Longest `filter` accepted (upstream's bound on regexp cost).
const MAX_FILTER_LEN: usize = 1000;

/// Upstream's checks shared by both searches, after the repository's.
fn validate(query: &str, reference: &[u8]) -> Result<()> {
    if query.is_empty() {
        return Err(Error::invalid_argument("no query given"));
    }
    if reference.is_empty() {
        return Err(Error::invalid_argument("no ref given"));
    }
    if reference.starts_with(b"-") {
        return Err(Error::invalid_argument("invalid ref argument"));
    }
    Ok(())
}

pub(super) async fn by_name(
    deps: &Deps,
    req: SearchFilesByNameRequest,
) -> Result<BoxStream<SearchFilesByNameResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    validate(&req.query, &req.r#ref)?;
    let filter = if req.filter.is_empty() {
        None
    } else {
        if req.filter.len() > MAX_FILTER_LEN {
            return Err(Error::invalid_argument("filter exceeds maximum length"));
        }
        Some(
            regex::bytes::Regex::new(&req.filter)
                .map_err(|e| Error::invalid_argument(format!("filter did not compile: {e}")))?,
        )
    };
    let files = deps
        .read_at(path, move |repo, _| {
            Ok(search::files_by_name(
                repo,
                &req.r#ref,
                req.query.as_bytes(),
                filter.as_ref(),
                req.offset as usize,
                req.limit as usize,
            )?)
        })
        .await?;
    // Upstream answers with one message, empty or not.
    Ok(Box::pin(futures::stream::iter([Ok(SearchFilesByNameResponse { files })])))
}

pub(super) async fn by_content(
    deps: &Deps,
    req: SearchFilesByContentRequest,
) -> Result<BoxStream<SearchFilesByContentResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    validate(&req.query, &req.r#ref)?;
    let pattern = search::content_pattern(&req.query);
    Ok(deps.stream_at(path, move |repo, _, sink| {
        // A pattern git grep would reject prints nothing upstream.
        let Some(pattern) = pattern else { return Ok(()) };
        let make: fn(Vec<u8>) -> SearchFilesByContentResponse =
            |match_data| SearchFilesByContentResponse { match_data, end_of_match: false };
        let mut block = Some(SinkWriter::new(sink, make));
        search::search_content(repo, &req.r#ref, &pattern, &mut |event| {
            match event {
                ContentEvent::Data(d) => {
                    let w = block.get_or_insert_with(|| SinkWriter::new(sink, make));
                    w.write_all(d).map_err(GitError::io("send match"))?;
                }
                // Each block goes out in 128 KiB pieces, then a message
                // marking its end, as upstream sends them.
                ContentEvent::EndOfMatch => {
                    if let Some(w) = block.take() {
                        w.finish().map_err(gone)?;
                    }
                    sink.send(SearchFilesByContentResponse { match_data: Vec::new(), end_of_match: true })
                        .map_err(gone)?;
                }
            }
            Ok(())
        })?;
        Ok(())
    }))
}

/// The search stops when the client has gone away.
fn gone(e: Error) -> GitError {
    GitError::Io { step: "send match", source: std::io::Error::new(std::io::ErrorKind::BrokenPipe, e.to_string()) }
}
