//! GetFileAttributes: the gitattributes of paths as a revision's tree
//! defines them, answered in-process (upstream runs `git check-attr
//! --source`). Unspecified attributes are left out.

use crate::error::{Error, Result};
use crate::git::{attributes, search};
use crate::service::Deps;
use cairn_proto::gitaly::get_file_attributes_response::AttributeInfo;
use cairn_proto::gitaly::{GetFileAttributesRequest, GetFileAttributesResponse};

pub(super) async fn handle(deps: &Deps, req: GetFileAttributesRequest) -> Result<GetFileAttributesResponse> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    if req.revision.is_empty() {
        return Err(Error::invalid_argument("revision is required"));
    }
    if req.paths.is_empty() {
        return Err(Error::invalid_argument("file paths are required"));
    }
    if req.attributes.is_empty() {
        return Err(Error::invalid_argument("attributes are required"));
    }
    // The revision becomes `--source=<rev>` upstream: an option-like
    // value would be read as a revision and fail there.
    if req.revision.starts_with(b"-") || req.revision.contains(&0) {
        return Err(Error::invalid_argument("invalid revision"));
    }
    if req.paths.iter().any(|p| p.contains('\0')) {
        return Err(Error::invalid_argument("check attr: path with NUL byte not allowed"));
    }
    // git check-attr refuses paths outside the repository (and so the
    // whole request fails upstream).
    if req.paths.iter().any(|p| p.starts_with('/') || search::clean_path(p.as_bytes()).is_none()) {
        return Err(Error::invalid_argument("check attr: path is outside repository"));
    }
    deps.read_at(path, move |repo, _| {
        let values = attributes::check(repo, &req.revision, &req.attributes, &req.paths)?
            .ok_or_else(|| Error::invalid_argument("check attr: invalid revision"))?;
        Ok(GetFileAttributesResponse {
            attribute_infos: values
                .into_iter()
                .map(|v| AttributeInfo { path: v.path, attribute: v.attribute, value: v.value })
                .collect(),
        })
    })
    .await
}
