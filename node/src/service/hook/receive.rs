//! What PreReceiveHook and PostReceiveHook share: the request stream (a
//! first message naming the repository, environment and push options, then
//! the changes as stdin), the checks before any work, and in-band answers:
//! every failure is an exit status with the reason as stderr, as upstream
//! answers. Each hook supplies only what it does with the changes.

use std::future::Future;

use tokio::sync::mpsc::Sender;
use tonic::codegen::BoxStream;
use tonic::{Request, Streaming};

use super::{Failure, Run, payload, read_stdin, stream_hook, transactional};
use crate::error::Result;
use crate::hooks::custom::Chunk;
use crate::hooks::payload::HooksPayload;
use crate::service::{Deps, pump};
use crate::storage::RepoPath;
use cairn_proto::gitaly::{
    ExitStatus, PostReceiveHookRequest, PostReceiveHookResponse, PreReceiveHookRequest, PreReceiveHookResponse,
    Repository,
};

/// A receive hook's request message.
pub(super) trait ReceiveRequest: Send + 'static {
    fn repository(&self) -> Option<&Repository>;
    fn environment(&self) -> &[String];
    fn push_options(&self) -> &[String];
    fn into_stdin(self) -> Vec<u8>;
}

/// A receive hook's response message.
pub(super) trait ReceiveResponse: Send + 'static {
    fn output(chunk: Chunk) -> Self;
    fn exit(value: i32, stderr: Vec<u8>) -> Self;
}

macro_rules! receive_messages {
    ($req:ty, $resp:ty) => {
        impl ReceiveRequest for $req {
            fn repository(&self) -> Option<&Repository> {
                self.repository.as_ref()
            }
            fn environment(&self) -> &[String] {
                &self.environment_variables
            }
            fn push_options(&self) -> &[String] {
                &self.git_push_options
            }
            fn into_stdin(self) -> Vec<u8> {
                self.stdin
            }
        }

        impl ReceiveResponse for $resp {
            fn output(chunk: Chunk) -> Self {
                match chunk {
                    Chunk::Stdout(stdout) => Self { stdout, ..Default::default() },
                    Chunk::Stderr(stderr) => Self { stderr, ..Default::default() },
                }
            }
            fn exit(value: i32, stderr: Vec<u8>) -> Self {
                Self { exit_status: Some(ExitStatus { value }), stderr, ..Default::default() }
            }
        }
    };
}

receive_messages!(PreReceiveHookRequest, PreReceiveHookResponse);
receive_messages!(PostReceiveHookRequest, PostReceiveHookResponse);

/// A receive hook's request, read completely.
pub(super) struct Receive {
    pub(super) deps: Deps,
    pub(super) path: RepoPath,
    pub(super) repository: Repository,
    pub(super) env: Vec<String>,
    pub(super) push_options: Vec<String>,
    pub(super) payload: HooksPayload,
    /// `<old> <new> <ref>` lines.
    pub(super) changes: Vec<u8>,
}

impl Receive {
    /// Runs the custom `hook`s on the changes.
    pub(super) async fn custom(&self, hook: &str, out: &Sender<Chunk>) -> std::result::Result<(), Failure> {
        let run = Run {
            deps: &self.deps,
            repo: &self.path.path,
            payload: &self.payload,
            env: &self.env,
            push_options: &self.push_options,
        };
        run.custom(hook, &[], &self.changes, out).await
    }
}

/// Serves the receive hook `name`: reads the request, then (on a
/// transaction's primary or outside transactions) runs `hook`, streaming its
/// output, and takes part in the transaction (see [`transactional`]).
pub(super) async fn handle<Req, Resp, H, F>(
    deps: &Deps,
    req: Request<Streaming<Req>>,
    name: &'static str,
    hook: H,
) -> Result<BoxStream<Resp>>
where
    Req: ReceiveRequest,
    Resp: ReceiveResponse,
    H: FnOnce(Receive, Sender<Chunk>) -> F + Send + 'static,
    F: Future<Output = std::result::Result<(), Failure>> + Send + 'static,
{
    let mut stream = req.into_inner();
    let first = pump::first(&mut stream).await?;
    let path = deps.storages.repo(first.repository())?;
    let deps = deps.clone();
    Ok(stream_hook(
        move |out| async move {
            let env = first.environment().to_vec();
            let payload = payload(&env)?;
            let changes = read_stdin(&mut stream, Req::into_stdin).await?;
            let repository = first.repository().cloned().unwrap_or_default();
            let receive = Receive {
                deps: deps.clone(),
                path,
                repository: repository.clone(),
                push_options: first.push_options().to_vec(),
                env,
                payload: payload.clone(),
                changes,
            };
            transactional(&deps, &payload, &repository, name, hook(receive, out)).await
        },
        Resp::output,
        |outcome| {
            Ok(match outcome {
                Ok(()) => Resp::exit(0, Vec::new()),
                Err(Failure::Exit(code)) => Resp::exit(code, Vec::new()),
                Err(Failure::Message(m)) => Resp::exit(1, m.into_bytes()),
                Err(Failure::Denied(m)) => Resp::exit(1, format!("GitLab: {m}").into_bytes()),
                Err(Failure::Vote(e)) => Resp::exit(1, crate::error::error_chain(&e).into_bytes()),
            })
        },
    ))
}
