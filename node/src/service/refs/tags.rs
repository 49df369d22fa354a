//! Tags: FindAllTags (sorted, paginated), FindTag (by `git tag -l`
//! pattern, with a FindTagError detail when nothing matches),
//! GetTagMessages (whole messages, chunked) and GetTagSignatures (tags
//! reached from revisions, split into signature and signed content).
//!
//! Tag messages follow upstream: the message is everything after the
//! headers, an appended signature included, with trailing newlines
//! trimmed, sized, then capped; the target commit is the fully peeled tag.

use super::{Page, check_patterns, target_commit};
use crate::error::{Error, Result};
use crate::git::Repo;
use crate::git::blob::walk::{self, Filter};
use crate::git::blob::{self, Resolved};
use crate::git::objects::{self, Kind, ObjectId};
use crate::git::references::{self, Sort, SortKey};
use crate::service::stream::Chunker;
use crate::service::{CHUNK_SIZE, Deps, convert};
use cairn_proto::gitaly::find_all_tags_request::sort_by::Key;
use cairn_proto::gitaly::{
    FindAllTagsRequest, FindAllTagsResponse, FindTagError, FindTagRequest, FindTagResponse, GetTagMessagesRequest,
    GetTagMessagesResponse, GetTagSignaturesRequest, GetTagSignaturesResponse, ReferenceNotFoundError, SortDirection,
    Tag, find_tag_error, get_tag_signatures_response,
};
use tonic::codegen::BoxStream;

/// A tag reference as GitLab sees it. `name` is the reference name without
/// `refs/tags/`.
fn build_tag(repo: &Repo, name: &[u8], target: ObjectId) -> Result<Tag> {
    let Some((kind, _)) = objects::header(repo, target)? else {
        return Err(Error::internal_msg(format!("tag target {target} not found")));
    };
    let plain = || Tag { id: target.to_string(), name: name.to_vec(), ..Default::default() };
    Ok(match kind {
        Kind::Tag => {
            let annotated = references::annotated_tag(repo, target)?
                .ok_or_else(|| Error::internal_msg(format!("tag {target} vanished")))?;
            let mut tag = convert::tag(&annotated.tag);
            // The reference's name wins over the one in the object.
            if !name.is_empty() {
                tag.name = name.to_vec();
            }
            // Upstream keeps an appended signature in the message.
            let mut message = annotated.message.unwrap_or_default();
            while message.last() == Some(&b'\n') {
                message.pop();
            }
            tag.message_size = message.len() as i64;
            message.truncate(convert::MAX_MESSAGE_SIZE);
            tag.message = message;
            tag.signature_type = convert::signature_type(annotated.signature).into();
            tag.target_commit = match references::peel(repo, target)? {
                Some((id, Kind::Commit)) => Some(target_commit(repo, id)?),
                _ => None,
            };
            tag
        }
        Kind::Commit => Tag { target_commit: Some(target_commit(repo, target)?), ..plain() },
        _ => plain(),
    })
}

fn tag_sort(sort_by: Option<&cairn_proto::gitaly::find_all_tags_request::SortBy>) -> Result<Sort> {
    let Some(s) = sort_by else { return Ok(Sort::BY_NAME) };
    let descending = match SortDirection::try_from(s.direction) {
        Ok(SortDirection::Ascending) => false,
        Ok(SortDirection::Descending) => true,
        Err(_) => return Err(Error::invalid_argument(format!("unsupported sorting direction: {}", s.direction))),
    };
    let key = match Key::try_from(s.key) {
        Ok(Key::Refname) => SortKey::RefName,
        Ok(Key::Creatordate) => SortKey::CreatorDate,
        Ok(Key::VersionRefname) => SortKey::Version,
        Err(_) => return Err(Error::invalid_argument(format!("unsupported sorting key: {}", s.key))),
    };
    Ok(Sort { key, descending })
}

pub(super) fn find_all_tags(deps: &Deps, req: FindAllTagsRequest) -> Result<BoxStream<FindAllTagsResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    let sort = tag_sort(req.sort_by.as_ref())?;
    let page = Page::from(req.pagination_params.as_ref());
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let mut refs = references::list(repo, &[b"refs/tags/"])?;
        references::sort(repo, &mut refs, sort)?;
        let mut chunker = Chunker::new(sink, |tags| FindAllTagsResponse { tags });
        // Upstream checks the limit before the page token, so a zero limit
        // never finds the token.
        let mut past = page.token.is_none();
        let mut sent = 0;
        for r in refs {
            if sent >= page.limit {
                break;
            }
            if !past {
                past = Some(&r.name) == page.token.as_ref();
                continue;
            }
            let name = r.name.strip_prefix(b"refs/tags/").unwrap_or(&r.name);
            chunker.push(build_tag(repo, name, r.target)?)?;
            sent += 1;
        }
        if !past {
            return Err(Error::invalid_argument("could not find page token"));
        }
        chunker.flush()
    }))
}

pub(super) async fn find_tag(deps: &Deps, req: FindTagRequest) -> Result<FindTagResponse> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    if req.tag_name.is_empty() {
        return Err(Error::invalid_argument("tag name is empty"));
    }
    check_patterns([req.tag_name.as_slice()])?;
    deps.read_at(path, move |repo, _| {
        // `git tag -l <name>`: the name is a glob over tag names.
        for r in references::list(repo, &[b"refs/tags/"])? {
            let name = &r.name[b"refs/tags/".len()..];
            if references::matches_tag(&req.tag_name, name) {
                return Ok(FindTagResponse { tag: Some(build_tag(repo, name, r.target)?) });
            }
        }
        let reference_name = [b"refs/tags/".as_slice(), &req.tag_name].concat();
        Err(Error::not_found("tag does not exist").with_detail(&FindTagError {
            error: Some(find_tag_error::Error::TagNotFound(ReferenceNotFoundError { reference_name })),
        }))
    })
    .await
}

pub(super) fn get_tag_messages(deps: &Deps, req: GetTagMessagesRequest) -> Result<BoxStream<GetTagMessagesResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    Ok(deps.stream_at(path, move |repo, _, sink| {
        for tag_id in req.tag_ids {
            let id = match blob::resolve(repo, tag_id.as_bytes()) {
                Resolved::Found(id) => id,
                _ => return Err(Error::internal_msg(format!("getting tag: object not found: {tag_id}"))),
            };
            let Some(tag) = references::annotated_tag(repo, id)? else {
                let kind = objects::header(repo, id)?.map_or("nothing".to_owned(), |(k, _)| k.to_string());
                return Err(Error::internal_msg(format!("getting tag: expected tag, got {kind}")));
            };
            sink.send(GetTagMessagesResponse { tag_id, message: Vec::new() })?;
            for chunk in tag.message.unwrap_or_default().chunks(CHUNK_SIZE) {
                sink.send(GetTagMessagesResponse { tag_id: String::new(), message: chunk.to_vec() })?;
            }
        }
        Ok(())
    }))
}

pub(super) fn get_tag_signatures(
    deps: &Deps,
    req: GetTagSignaturesRequest,
) -> Result<BoxStream<GetTagSignaturesResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    if req.tag_revisions.is_empty() {
        return Err(Error::invalid_argument("missing revisions"));
    }
    for revision in &req.tag_revisions {
        walk::validate_argument(revision.as_bytes(), false).map_err(|e| {
            Error::invalid_argument(format!("invalid revision: {e}")).with_metadata("revision", revision.clone())
        })?;
    }
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let mut chunker = Chunker::new(sink, |signatures| GetTagSignaturesResponse { signatures });
        let mut failure = None;
        walk::walk(repo, &req.tag_revisions, Filter::Tags, |id, _| {
            let sent = objects::read(repo, id)
                .map_err(Error::from)
                .and_then(|o| o.ok_or_else(|| Error::internal_msg(format!("reading tag: {id} vanished"))))
                .and_then(|o| {
                    let (signature, content) = references::split_signature(&o.data);
                    chunker.push(get_tag_signatures_response::TagSignature {
                        tag_id: id.to_string(),
                        signature: signature.unwrap_or_default().to_vec(),
                        content: content.to_vec(),
                    })
                });
            match sent {
                Ok(()) => Ok(true),
                Err(e) => {
                    failure = Some(e);
                    Ok(false)
                }
            }
        })
        .map_err(|e| Error::internal("cat-file iterator stop", e))?;
        if let Some(e) = failure {
            return Err(e);
        }
        chunker.flush()
    }))
}
