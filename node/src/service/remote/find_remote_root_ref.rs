//! FindRemoteRootRef: the branch a remote's HEAD points to, from `git
//! ls-remote --symref` (upstream parses `git remote show`; both ask the
//! remote for its HEAD symref). A remote without a HEAD symref (unborn
//! or detached) is NOT_FOUND.

use crate::error::{Error, Result};
use crate::git::{CommandError, GitError, remote};
use crate::service::Deps;
use cairn_proto::gitaly::{FindRemoteRootRefRequest, FindRemoteRootRefResponse};

pub(super) async fn handle(
    deps: &Deps,
    req: FindRemoteRootRefRequest,
    correlation_id: Option<&str>,
) -> Result<FindRemoteRootRefResponse> {
    if req.remote_url.is_empty() {
        return Err(Error::invalid_argument("missing remote URL"));
    }
    let repo = deps.storages.repo(req.repository.as_ref())?;
    let source = remote::UrlRemote {
        url: req.remote_url,
        authorization: req.http_authorization_header,
        resolved_address: req.resolved_address,
    };
    let refs = remote::ls_remote(&deps.git, Some(&repo.path), &source, &["HEAD"], false, "ssh", correlation_id)
        .await
        .map_err(|e| match e {
        GitError::Invalid(m) => Error::invalid_argument(format!("couldn't get curloptResolve config: {m}")),
        GitError::Command(CommandError::Failed { code, stderr, .. }) => {
            Error::internal_msg(format!("exit status {}", code.map_or_else(|| "signal".to_owned(), |c| c.to_string())))
                .with_metadata("stderr", stderr)
        }
        other => Error::internal("query remote HEAD", other),
    })?;
    let head = refs.into_iter().find_map(|(name, target)| match target {
        remote::RemoteTarget::Symbolic(to) if name == "HEAD" => Some(to),
        _ => None,
    });
    let Some(head) = head else { return Err(Error::not_found("no remote HEAD found")) };
    let branch = head.strip_prefix("refs/heads/").unwrap_or(&head).to_owned();
    Ok(FindRemoteRootRefResponse { r#ref: branch })
}
