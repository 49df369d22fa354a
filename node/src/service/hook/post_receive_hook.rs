//! PostReceiveHook: after the references were updated, GitLab's
//! `/post_receive` learns of the changes (and answers messages for the
//! pusher, written to stdout), then the repository's and global custom
//! post-receive hooks run on them (upstream's order). All output reaches
//! the pusher as `remote:` lines.

use tokio::sync::mpsc::Sender;
use tonic::codegen::BoxStream;
use tonic::{Request, Streaming};

use super::receive::{self, Receive};
use super::{Failure, check_receive};
use crate::error::Result;
use crate::gitlab::messages;
use crate::hooks::custom::Chunk;
use crate::service::Deps;
use cairn_proto::gitaly::{PostReceiveHookRequest, PostReceiveHookResponse};

pub(super) async fn handle(
    deps: &Deps,
    req: Request<Streaming<PostReceiveHookRequest>>,
) -> Result<BoxStream<PostReceiveHookResponse>> {
    receive::handle(deps, req, "post-receive", run).await
}

pub(super) async fn run(rx: Receive, out: Sender<Chunk>) -> std::result::Result<(), Failure> {
    check_receive(&rx.payload, &rx.repository.gl_repository, &rx.changes, false)?;
    if let Some(gitlab) = rx.deps.gitlab.clone() {
        let user = rx.payload.user_details.clone().unwrap_or_default();
        let changes = String::from_utf8_lossy(&rx.changes);
        let (counted, shown) = gitlab
            .post_receive(&rx.repository.gl_repository, &user.userid, &changes, &rx.push_options)
            .await
            .map_err(|e| Failure::Message(format!("GitLab: {e}")))?;
        let (text, invalid) = messages::format(&shown);
        if !text.is_empty() && out.send(Chunk::Stdout(text)).await.is_err() {
            return Err(Failure::Message("error writing messages to stream: client went away".into()));
        }
        if let Some(e) = invalid {
            return Err(Failure::Message(format!("error writing messages to stream: {e}")));
        }
        if !counted {
            // GitLab did not uncount the push: a failure without a reason, as upstream.
            return Err(Failure::Message(String::new()));
        }
    }
    rx.custom("post-receive", &out).await
}
