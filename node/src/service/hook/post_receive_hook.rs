//! PostReceiveHook: after the references were updated, the repository's and
//! global custom post-receive hooks run on the changes (stdin). Their
//! output reaches the pusher as `remote:` lines.

use tonic::codegen::BoxStream;
use tonic::{Request, Streaming};

use super::{Failure, Run, check_receive, payload, read_stdin, stream_hook};
use crate::error::Result;
use crate::hooks::custom::Chunk;
use crate::service::{Deps, pump};
use cairn_proto::gitaly::{ExitStatus, PostReceiveHookRequest, PostReceiveHookResponse};

pub(super) async fn handle(
    deps: &Deps,
    req: Request<Streaming<PostReceiveHookRequest>>,
) -> Result<BoxStream<PostReceiveHookResponse>> {
    let mut stream = req.into_inner();
    let first = pump::first(&mut stream).await?;
    let path = deps.storages.repo(first.repository.as_ref())?;
    let deps = deps.clone();
    Ok(stream_hook(
        move |out| async move {
            let payload = payload(&first.environment_variables)?;
            let changes = read_stdin(&mut stream, |m: PostReceiveHookRequest| m.stdin).await?;
            let repository = first.repository.clone().unwrap_or_default();
            if payload.transaction.as_ref().is_some_and(|t| !t.primary) {
                return Ok(());
            }
            check_receive(&payload, &repository.gl_repository, &changes, false)?;
            let run = Run {
                deps: &deps,
                repo: &path.path,
                payload: &payload,
                env: &first.environment_variables,
                push_options: &first.git_push_options,
            };
            run.custom("post-receive", &[], &changes, &out).await
        },
        chunk,
        finish,
    ))
}

fn chunk(c: Chunk) -> PostReceiveHookResponse {
    match c {
        Chunk::Stdout(stdout) => PostReceiveHookResponse { stdout, ..Default::default() },
        Chunk::Stderr(stderr) => PostReceiveHookResponse { stderr, ..Default::default() },
    }
}

/// In-band like pre-receive: a hook's exit code, or 1 with the reason.
fn finish(outcome: std::result::Result<(), Failure>) -> Result<PostReceiveHookResponse> {
    let (value, stderr) = match outcome {
        Ok(()) => (0, Vec::new()),
        Err(Failure::Exit(code)) => (code, Vec::new()),
        Err(Failure::Message(m)) => (1, m.into_bytes()),
    };
    Ok(PostReceiveHookResponse { exit_status: Some(ExitStatus { value }), stderr, ..Default::default() })
}
