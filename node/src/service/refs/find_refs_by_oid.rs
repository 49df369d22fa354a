//! FindRefsByOID: the references pointing at an object (directly or
//! through tags), among `refs/heads/` and `refs/tags/` unless patterns are
//! given, sorted by a git-for-each-ref sort key, at most `limit` of them.

use super::check_patterns;
use crate::error::{Error, Result};
use crate::git::blob::{self, Resolved};
use crate::git::objects;
use crate::git::references::{self, Sort};
use crate::service::Deps;
use cairn_proto::gitaly::{FindRefsByOidRequest, FindRefsByOidResponse};
use std::collections::HashSet;

pub(super) async fn handle(deps: &Deps, req: FindRefsByOidRequest) -> Result<FindRefsByOidResponse> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    if req.oid.is_empty() {
        return Err(Error::invalid_argument("empty Oid"));
    }
    let patterns: Vec<Vec<u8>> = if req.ref_patterns.is_empty() {
        vec![b"refs/tags/".to_vec(), b"refs/heads/".to_vec()]
    } else {
        req.ref_patterns.iter().map(|p| p.as_bytes().to_vec()).collect()
    };
    check_patterns(patterns.iter().map(Vec::as_slice))?;
    // git rejects unknown sort keys as a usage error.
    let sort = if req.sort_field.is_empty() {
        Sort::BY_NAME
    } else {
        Sort::parse(&req.sort_field)
            .ok_or_else(|| Error::invalid_argument(format!("unsupported sort field {:?}", req.sort_field)))?
    };
    deps.read_at(path, move |repo, _| {
        // A full object id is taken as is; anything else must resolve.
        let oid = match objects::parse_oid(repo, req.oid.as_bytes()) {
            Some(id) => id,
            None => match blob::resolve(repo, req.oid.as_bytes()) {
                Resolved::Found(id) => id,
                _ => return Err(Error::invalid_argument(format!("malformed object name {}", req.oid))),
            },
        };
        let patterns: Vec<&[u8]> = patterns.iter().map(Vec::as_slice).collect();
        let wanted = HashSet::from([oid]);
        let mut refs = Vec::new();
        for r in references::list(repo, &patterns)? {
            if references::points_at(repo, r.target, &wanted)? {
                refs.push(r);
            }
        }
        references::sort(repo, &mut refs, sort)?;
        if req.limit > 0 {
            refs.truncate(req.limit as usize);
        }
        Ok(FindRefsByOidResponse {
            refs: refs.into_iter().map(|r| String::from_utf8_lossy(&r.name).into_owned()).collect(),
        })
    })
    .await
}
