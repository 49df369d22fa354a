//! ListRefs: references matching git-for-each-ref patterns, optionally with
//! HEAD first, only those pointing at given objects, with annotated tags
//! peeled, sorted and paginated. A page that stops before the end carries
//! the name of its last reference as the cursor for the next one.

use super::{Page, REFS_PER_MESSAGE, check_patterns};
use crate::error::{Error, Result};
use crate::git::blob::{self, Resolved};
use crate::git::objects::{self, Kind};
use crate::git::references::{self, Sort, SortKey};
use crate::service::Deps;
use cairn_proto::gitaly::list_refs_request::sort_by::Key;
use cairn_proto::gitaly::{ListRefsRequest, ListRefsResponse, PaginationCursor, SortDirection, list_refs_response};
use std::collections::HashSet;
use tonic::codegen::BoxStream;

pub(super) fn handle(deps: &Deps, req: ListRefsRequest) -> Result<BoxStream<ListRefsResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    if req.patterns.is_empty() {
        return Err(Error::invalid_argument("patterns must have at least one entry"));
    }
    let sort = match &req.sort_by {
        None => Sort::BY_NAME,
        Some(s) => {
            let key = match Key::try_from(s.key) {
                Ok(Key::Refname) => SortKey::RefName,
                Ok(Key::Creatordate) => SortKey::CreatorDate,
                Ok(Key::Authordate) => SortKey::AuthorDate,
                Ok(Key::Committerdate) => SortKey::CommitterDate,
                Err(_) => return Err(Error::invalid_argument(format!("sorting key \"{}\" is not supported", s.key))),
            };
            let descending = match SortDirection::try_from(s.direction) {
                Ok(SortDirection::Ascending) => false,
                Ok(SortDirection::Descending) => true,
                Err(_) => return Err(Error::invalid_argument("sorting direction is not supported")),
            };
            Sort { key, descending }
        }
    };
    check_patterns(req.patterns.iter().map(Vec::as_slice))?;
    let page = Page::from(req.pagination_params.as_ref());
    let paginated = req.pagination_params.is_some();
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let head = if req.head { references::head_id(repo) } else { None };
        let mut points_at = HashSet::new();
        for oid in &req.pointing_at_oids {
            match objects::parse_oid(repo, oid).map(Resolved::Found).unwrap_or_else(|| blob::resolve(repo, oid)) {
                Resolved::Found(id) => points_at.insert(id),
                _ => {
                    return Err(Error::internal_msg(format!(
                        "listing failed: malformed object name {}",
                        String::from_utf8_lossy(oid)
                    )));
                }
            };
        }
        let patterns: Vec<&[u8]> = req.patterns.iter().map(Vec::as_slice).collect();
        let mut refs = references::list(repo, &patterns)?;
        if !points_at.is_empty() {
            let mut kept = Vec::with_capacity(refs.len());
            for r in refs {
                if references::points_at(repo, r.target, &points_at)? {
                    kept.push(r);
                }
            }
            refs = kept;
        }
        references::sort(repo, &mut refs, sort)?;
        let Some((refs, more)) = page.apply(refs) else {
            return Err(Error::invalid_argument("could not find page token"));
        };
        let batches: Vec<_> = refs.chunks(REFS_PER_MESSAGE).collect();
        let last = batches.len().saturating_sub(1);
        let mut head = head;
        for (i, batch) in batches.into_iter().enumerate() {
            let mut references = Vec::with_capacity(batch.len() + 1);
            if let Some(id) = head.take() {
                references.push(list_refs_response::Reference {
                    name: b"HEAD".to_vec(),
                    target: id.to_string(),
                    peeled_target: String::new(),
                });
            }
            for r in batch {
                let peeled_target = if req.peel_tags { peeled(repo, r.target)? } else { String::new() };
                references.push(list_refs_response::Reference {
                    name: r.name.clone(),
                    target: r.target.to_string(),
                    peeled_target,
                });
            }
            let pagination_cursor = (paginated && more && i == last).then(|| PaginationCursor {
                next_cursor: String::from_utf8_lossy(&batch.last().expect("batches are not empty").name).into_owned(),
            });
            sink.send(ListRefsResponse { references, pagination_cursor })?;
        }
        Ok(())
    }))
}

/// What `%(*objectname)` prints: the object an annotated tag finally
/// points to, empty for anything that is not a tag.
fn peeled(repo: &crate::git::Repo, target: objects::ObjectId) -> Result<String> {
    match objects::header(repo, target)? {
        Some((Kind::Tag, _)) => Ok(references::peel(repo, target)?.map(|(id, _)| id.to_string()).unwrap_or_default()),
        _ => Ok(String::new()),
    }
}
