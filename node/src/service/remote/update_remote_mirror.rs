//! UpdateRemoteMirror: pushes the repository's branches and tags to a
//! remote mirror (see `git::mirror` for which references move). The
//! request stream carries the remote and options first, then possibly more
//! branch patterns.

use crate::error::{Error, Result};
use crate::git::{CommandError, GitError, mirror, remote};
use crate::service::Deps;
use cairn_proto::gitaly::{UpdateRemoteMirrorRequest, UpdateRemoteMirrorResponse};
use futures::StreamExt as _;
use tonic::Streaming;

pub(super) async fn handle(
    deps: &Deps,
    mut stream: Streaming<UpdateRemoteMirrorRequest>,
    correlation_id: Option<&str>,
) -> Result<UpdateRemoteMirrorResponse> {
    let first = match stream.next().await {
        Some(Ok(m)) => m,
        Some(Err(e)) => return Err(Error::internal_msg(format!("receive first request: {}", e.message()))),
        None => return Err(Error::internal_msg("receive first request: EOF")),
    };
    let repo = deps.storages.repo(first.repository.as_ref())?;
    let Some(target) = first.remote else { return Err(Error::invalid_argument("missing Remote")) };
    if target.url.is_empty() {
        return Err(Error::invalid_argument("remote is missing URL"));
    }
    let mut patterns = first.only_branches_matching;
    while let Some(msg) = stream.next().await {
        let msg = msg.map_err(|e| Error::internal_msg(format!("receive: {}", e.message())))?;
        patterns.extend(msg.only_branches_matching);
    }
    let tmp = deps.storages.root(&repo.storage)?.tmp_dir();
    let ssh = remote::SshSetup::new(&tmp, &first.ssh_key, &first.known_hosts)
        .map_err(|e| Error::internal("build ssh invocation", e))?;
    let opts = mirror::MirrorOptions {
        remote: remote::UrlRemote {
            url: target.url,
            authorization: target.http_authorization_header,
            resolved_address: target.resolved_address,
        },
        only_branches_matching: patterns,
        keep_divergent_refs: first.keep_divergent_refs,
        ssh_command: ssh.command.clone(),
    };
    let divergent_refs =
        mirror::update_mirror(&deps.git, &repo.path, &opts, correlation_id).await.map_err(|e| match e {
            GitError::Invalid(m) if m.starts_with("create reference matcher") => Error::internal_msg(m),
            GitError::Invalid(m) => Error::internal_msg(format!("couldn't get curloptResolve config: {m}")),
            GitError::Command(CommandError::Failed { subcommand, code, stderr }) => Error::internal_msg(format!(
                "{}: exit status {}",
                match subcommand {
                    "push" => "push to mirror: git push",
                    "ls-remote" => "get remote references: create git ls-remote",
                    _ => subcommand,
                },
                code.map_or_else(|| "signal".to_owned(), |c| c.to_string())
            ))
            .with_metadata("stderr", stderr),
            other => Error::internal("update remote mirror", other),
        })?;
    drop(ssh);
    Ok(UpdateRemoteMirrorResponse { divergent_refs })
}
