//! CreateRepository: an empty bare repository, built aside and renamed
//! into place.

use crate::error::{Error, Result};
use crate::git::lifecycle::{self, CreateOptions};
use crate::git::{ObjectFormat, refs};
use crate::service::Deps;
use cairn_proto::gitaly::{CreateRepositoryRequest, CreateRepositoryResponse, ObjectFormat as ProtoFormat};

pub(super) async fn handle(
    deps: &Deps,
    req: CreateRepositoryRequest,
    voting: Option<crate::transaction::Voting>,
    correlation_id: Option<&str>,
) -> Result<CreateRepositoryResponse> {
    let repo = deps.storages.repo_for_create(req.repository.as_ref())?;
    let object_format = match ProtoFormat::try_from(req.object_format) {
        Ok(ProtoFormat::Unspecified | ProtoFormat::Sha1) => ObjectFormat::Sha1,
        Ok(ProtoFormat::Sha256) => ObjectFormat::Sha256,
        Err(_) => return Err(Error::invalid_argument(format!("unknown object format: {}", req.object_format))),
    };
    let default_branch = if req.default_branch.is_empty() {
        None
    } else {
        let name = String::from_utf8(req.default_branch)
            .map_err(|_| Error::invalid_argument("default branch is not valid UTF-8"))?;
        let branch = name.strip_prefix("refs/heads/").unwrap_or(&name);
        if !refs::valid_ref_name(format!("refs/heads/{branch}").as_bytes()) || branch.starts_with('-') {
            return Err(Error::invalid_argument(format!("invalid default branch name: {name:?}")));
        }
        Some(branch.to_owned())
    };
    let tmp = deps.storages.root(&repo.storage)?.tmp_dir();
    let options = CreateOptions { default_branch, object_format };
    lifecycle::create(&deps.git, &repo.path, &tmp, &options, super::creation_vote(voting), correlation_id)
        .await
        .map_err(|e: Error| match e.code() {
            tonic::Code::AlreadyExists | tonic::Code::FailedPrecondition => e,
            _ => Error::internal_msg(format!("creating repository: {e}")),
        })?;
    deps.repos.forget(&repo.path);
    Ok(CreateRepositoryResponse {})
}
