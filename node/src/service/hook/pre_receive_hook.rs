//! PreReceiveHook: the push's changes (`<old> <new> <ref>` lines) arrive as
//! stdin; the repository's and global custom pre-receive hooks run on them.
//! Objects of the push are still in git's quarantine directory, which the
//! hook's environment names (`GIT_OBJECT_DIRECTORY`,
//! `GIT_ALTERNATE_OBJECT_DIRECTORIES`) and custom hooks inherit.

use tonic::{Request, Streaming};

use super::{Failure, Run, check_receive, payload, read_stdin, stream_hook};
use crate::error::Result;
use crate::hooks::custom::Chunk;
use crate::service::{Deps, pump};
use cairn_proto::gitaly::{ExitStatus, PreReceiveHookRequest, PreReceiveHookResponse};
use tonic::codegen::BoxStream;

pub(super) async fn handle(
    deps: &Deps,
    req: Request<Streaming<PreReceiveHookRequest>>,
) -> Result<BoxStream<PreReceiveHookResponse>> {
    let mut stream = req.into_inner();
    let first = pump::first(&mut stream).await?;
    let path = deps.storages.repo(first.repository.as_ref())?;
    let deps = deps.clone();
    Ok(stream_hook(
        move |out| async move {
            let payload = payload(&first.environment_variables)?;
            let changes = read_stdin(&mut stream, |m: PreReceiveHookRequest| m.stdin).await?;
            let repository = first.repository.clone().unwrap_or_default();
            // Transaction secondaries leave the checks to the primary.
            if payload.transaction.as_ref().is_some_and(|t| !t.primary) {
                return Ok(());
            }
            check_receive(&payload, &repository.gl_repository, &changes, true)?;
            let run = Run {
                deps: &deps,
                repo: &path.path,
                payload: &payload,
                env: &first.environment_variables,
                push_options: &first.git_push_options,
            };
            run.custom("pre-receive", &[], &changes, &out).await
        },
        chunk,
        finish,
    ))
}

fn chunk(c: Chunk) -> PreReceiveHookResponse {
    match c {
        Chunk::Stdout(stdout) => PreReceiveHookResponse { stdout, ..Default::default() },
        Chunk::Stderr(stderr) => PreReceiveHookResponse { stderr, ..Default::default() },
    }
}

/// Upstream answers every failure in-band: a hook's own exit code, or 1
/// with the reason as stderr.
fn finish(outcome: std::result::Result<(), Failure>) -> Result<PreReceiveHookResponse> {
    let (value, stderr) = match outcome {
        Ok(()) => (0, Vec::new()),
        Err(Failure::Exit(code)) => (code, Vec::new()),
        Err(Failure::Message(m)) => (1, m.into_bytes()),
    };
    Ok(PreReceiveHookResponse { exit_status: Some(ExitStatus { value }), stderr, ..Default::default() })
}
