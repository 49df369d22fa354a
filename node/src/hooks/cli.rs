//! `gitaly-hooks`: the program git runs for a push's hooks. git invokes it
//! through links named after the hook (`pre-receive`, `update <ref> <old>
//! <new>`, `post-receive`, `reference-transaction <state>`); it can also be
//! run as `gitaly-hooks <hook> [args]`. upload-pack runs it as `gitaly-hooks
//! git pack-objects ...` (its pack-objects hook, see [`pack_objects`]). It reads `GITALY_HOOKS_PAYLOAD`,
//! calls the node's HookService over the internal socket with its whole
//! environment, streams stdin to the node and the node's stdout/stderr back,
//! and exits with the status the node returns. Other failures print `error
//! executing git hook` and exit 1; details go to
//! `$GITALY_LOG_DIR/gitaly_hooks.log`, never to git's output.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tonic::Request;

use super::payload::{self, HooksPayload, hook};
use super::sidechannel;
use crate::client::stdio::{StdioResponse, requests};
use crate::client::{DialError, DialOptions};
use cairn_proto::gitaly::hook_service_client::HookServiceClient;
use cairn_proto::gitaly::reference_transaction_hook_request::State;
use cairn_proto::gitaly::{
    PackObjectsHookWithSidechannelRequest, PostReceiveHookRequest, PreReceiveHookRequest,
    ReferenceTransactionHookRequest, UpdateHookRequest,
};

/// Why gitaly-hooks could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum HookCliError {
    #[error("requires hook name. args: {0:?}")]
    NoHook(Vec<String>),
    #[error("subcommand name invalid: {0:?}")]
    UnknownHook(String),
    #[error("update hook expects exactly three arguments, got {0:?}")]
    UpdateArgs(Vec<String>),
    #[error("reference-transaction hook has invalid state: {0:?}")]
    State(String),
    #[error("error when getting hooks payload")]
    Payload(#[from] payload::PayloadError),
    #[error("error when connecting to gitaly")]
    Dial(#[from] DialError),
    #[error("rpc")]
    Rpc(#[from] tonic::Status),
    #[error("sidechannel")]
    Sidechannel(#[source] std::io::Error),
    #[error("relay pack data")]
    Proxy(#[source] super::sidechannel::ProxyError),
    #[error("write output")]
    Io(#[from] std::io::Error),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    let env: Vec<String> =
        std::env::vars_os().map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy())).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error executing git hook");
            log(&env, &format!("start runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let stdout: Box<dyn AsyncWrite + Unpin> =
        if is_pack_objects(&args) { Box::new(DirectStdout) } else { Box::new(tokio::io::stdout()) };
    let result = runtime.block_on(run(&args, &env, tokio::io::stdin(), stdout, tokio::io::stderr()));
    // Reading stdin may still block a runtime thread; do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code.clamp(0, 255)).expect("clamped to u8")),
        Err(e) => {
            eprintln!("error executing git hook");
            if matches!(&e, HookCliError::Rpc(s) if s.code() == tonic::Code::ResourceExhausted) {
                eprintln!("error resource exhausted, please try again later");
            }
            log(&env, &crate::error::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// Whether git runs this process as upload-pack's pack-objects hook.
fn is_pack_objects(args: &[String]) -> bool {
    args.get(1).is_some_and(|a| a == "git")
}

/// stdout written from the runtime's own thread. tokio's stdout hands each
/// write to a blocking-pool thread; for a pack relayed in 64 KiB packets
/// those thread hand-offs cost more CPU than the copying itself. A blocked
/// write cannot hold up the request: the node answers only after it has
/// read all of stdin.
struct DirectStdout;

impl AsyncWrite for DirectStdout {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(rustix::io::write(std::io::stdout(), buf).map_err(std::io::Error::from))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Appends a line to `$GITALY_LOG_DIR/gitaly_hooks.log`, if there is one.
fn log(env: &[String], message: &str) {
    let Some(dir) = payload::lookup(env, "GITALY_LOG_DIR").filter(|d| !d.is_empty()) else { return };
    if let Ok(mut f) =
        std::fs::OpenOptions::new().create(true).append(true).open(Path::new(&dir).join("gitaly_hooks.log"))
    {
        let _ = writeln!(f, "level=error msg=\"error executing git hook\" error={message:?}");
    }
}

/// Runs the hook named by `args` (program name first) with `env` (the
/// process environment as `KEY=value`); returns the exit code.
pub async fn run(
    args: &[String],
    env: &[String],
    stdin: impl AsyncRead + Send + 'static,
    stdout: impl AsyncWrite + Unpin,
    stderr: impl AsyncWrite + Unpin,
) -> Result<i32, HookCliError> {
    let program = args.first().map(|a| Path::new(a).file_name().unwrap_or_default().to_string_lossy().into_owned());
    let (name, rest) = match program.as_deref() {
        Some(super::BINARY) if args.get(1).is_some_and(|a| a == "git") => {
            return pack_objects(&args[2..], env, stdin, stdout, stderr).await;
        }
        Some(super::BINARY) => match args.get(1) {
            Some(name) => (name.clone(), &args[2..]),
            None => return Err(HookCliError::NoHook(args.to_vec())),
        },
        Some(name) => (name.to_owned(), args.get(1..).unwrap_or_default()),
        None => return Err(HookCliError::NoHook(Vec::new())),
    };
    let bit = match name.as_str() {
        "pre-receive" => hook::PRE_RECEIVE,
        "update" => hook::UPDATE,
        "post-receive" => hook::POST_RECEIVE,
        "reference-transaction" => hook::REFERENCE_TRANSACTION,
        _ => return Err(HookCliError::UnknownHook(name)),
    };
    let payload = HooksPayload::from_env(env)?;
    if !payload.requested(bit) {
        return Ok(0);
    }
    // Argument errors come before dialing, as upstream checks them first thing.
    let state = if bit == hook::REFERENCE_TRANSACTION {
        Some(match rest {
            [s] if s == "prepared" => State::Prepared,
            [s] if s == "committed" => State::Committed,
            [s] if s == "aborted" => State::Aborted,
            _ => return Err(HookCliError::State(rest.join(" "))),
        })
    } else {
        None
    };
    if bit == hook::UPDATE && rest.len() != 3 {
        return Err(HookCliError::UpdateArgs(rest.to_vec()));
    }
    let token = Some(payload.internal_socket_token.clone()).filter(|t| !t.is_empty());
    let conn =
        crate::client::dial(&format!("unix:{}", payload.internal_socket), DialOptions { token, ..Default::default() })
            .await?;
    let mut client = HookServiceClient::new(conn.channel());
    let repository = Some(payload.repository.clone());
    let environment_variables = env.to_vec();
    let md = metadata(&payload);
    match bit {
        hook::PRE_RECEIVE => {
            let first = PreReceiveHookRequest {
                repository,
                environment_variables,
                git_push_options: push_options(env),
                ..Default::default()
            };
            let input = requests(first, stdin, |stdin| PreReceiveHookRequest { stdin, ..Default::default() });
            let responses = client.pre_receive_hook(with(md, input)).await?.into_inner();
            relay(responses, stdout, stderr).await
        }
        hook::POST_RECEIVE => {
            let first = PostReceiveHookRequest {
                repository,
                environment_variables,
                git_push_options: push_options(env),
                ..Default::default()
            };
            let input = requests(first, stdin, |stdin| PostReceiveHookRequest { stdin, ..Default::default() });
            let responses = client.post_receive_hook(with(md, input)).await?.into_inner();
            relay(responses, stdout, stderr).await
        }
        hook::UPDATE => {
            let req = UpdateHookRequest {
                repository,
                environment_variables,
                r#ref: rest[0].clone().into_bytes(),
                old_value: rest[1].clone(),
                new_value: rest[2].clone(),
            };
            let responses = client.update_hook(with(md, req)).await?.into_inner();
            relay(responses, stdout, stderr).await
        }
        _ => {
            let first = ReferenceTransactionHookRequest {
                repository,
                environment_variables,
                state: state.expect("set for reference-transaction") as i32,
                ..Default::default()
            };
            let input = requests(first, stdin, |stdin| ReferenceTransactionHookRequest { stdin, ..Default::default() });
            let responses = client.reference_transaction_hook(with(md, input)).await?.into_inner();
            relay(responses, stdout, stderr).await
        }
    }
}

/// `gitaly-hooks git <args>`: upload-pack's pack-objects hook. The pack
/// comes from PackObjectsHookWithSidechannel over a sidechannel socket the
/// hook listens on; stdin goes to the node, the sideband answer to
/// stdout/stderr. Exit 0 once the node answered and the pack was relayed.
async fn pack_objects(
    args: &[String],
    env: &[String],
    stdin: impl AsyncRead + Send + 'static,
    stdout: impl AsyncWrite + Unpin,
    stderr: impl AsyncWrite + Unpin,
) -> Result<i32, HookCliError> {
    let payload = HooksPayload::from_env(env)?;
    if !payload.requested(hook::PACK_OBJECTS) {
        return Ok(0);
    }
    let token = Some(payload.internal_socket_token.clone()).filter(|t| !t.is_empty());
    let conn =
        crate::client::dial(&format!("unix:{}", payload.internal_socket), DialOptions { token, ..Default::default() })
            .await?;
    let mut client = HookServiceClient::new(conn.channel());
    let listener = sidechannel::Listener::bind(&payload.runtime_dir).map_err(HookCliError::Sidechannel)?;
    let user = payload.user_details.clone().unwrap_or_default();
    let request = PackObjectsHookWithSidechannelRequest {
        repository: Some(payload.repository.clone()),
        args: args.to_vec(),
        gl_id: user.userid,
        gl_username: user.username,
        git_protocol: user.protocol,
        remote_ip: user.remote_ip,
        environment_variables: Vec::new(),
    };
    let mut md = metadata(&payload);
    md.push((sidechannel::HEADER.to_owned(), listener.address().display().to_string()));
    let rpc = client.pack_objects_hook_with_sidechannel(with(md, request));
    let relay = async {
        let conn = listener.accept().await.map_err(HookCliError::Sidechannel)?;
        sidechannel::proxy(conn, Box::pin(stdin), stdout, stderr).await.map_err(HookCliError::Proxy)
    };
    tokio::pin!(rpc, relay);
    // The node dials the socket before it answers; a failed call may never.
    let mut relayed = None;
    let answer = loop {
        tokio::select! {
            r = &mut rpc => break r,
            r = &mut relay, if relayed.is_none() => relayed = Some(r),
        }
    };
    answer?;
    match relayed {
        Some(r) => r?,
        None => relay.await?,
    }
    Ok(0)
}

/// The outgoing metadata upstream's gitaly-hooks sends: who pushes and the
/// request's feature flags.
fn metadata(payload: &HooksPayload) -> Vec<(String, String)> {
    let mut md = Vec::new();
    if let Some(u) = &payload.user_details {
        md.push(("user_id".to_owned(), u.userid.clone()));
        md.push(("username".to_owned(), u.username.clone()));
        md.push(("remote_ip".to_owned(), u.remote_ip.clone()));
    }
    for f in &payload.feature_flags {
        let value = if f.enabled { "true" } else { "false" };
        md.push((format!("gitaly-feature-{}", f.flag.name.replace('_', "-")), value.to_owned()));
    }
    md
}

fn with<T>(md: Vec<(String, String)>, message: T) -> Request<T> {
    let mut req = Request::new(message);
    for (k, v) in md {
        if let (Ok(key), Ok(value)) = (tonic::metadata::MetadataKey::from_bytes(k.as_bytes()), v.parse()) {
            req.metadata_mut().insert(key, value);
        }
    }
    req
}

/// `GIT_PUSH_OPTION_<n>` for `n` below `GIT_PUSH_OPTION_COUNT`.
fn push_options(env: &[String]) -> Vec<String> {
    let count: usize = payload::lookup(env, "GIT_PUSH_OPTION_COUNT").and_then(|c| c.parse().ok()).unwrap_or(0);
    (0..count).map(|i| payload::lookup(env, &format!("GIT_PUSH_OPTION_{i}")).unwrap_or_default()).collect()
}

/// Writes the answers to stdout/stderr; the last exit status is the result.
async fn relay<R: StdioResponse>(
    mut responses: tonic::Streaming<R>,
    mut stdout: impl AsyncWrite + Unpin,
    mut stderr: impl AsyncWrite + Unpin,
) -> Result<i32, HookCliError> {
    let mut exit = 0;
    while let Some(r) = responses.message().await? {
        let (out, err, status) = r.parts();
        if !out.is_empty() {
            stdout.write_all(&out).await?;
            stdout.flush().await?;
        }
        if !err.is_empty() {
            stderr.write_all(&err).await?;
            stderr.flush().await?;
        }
        if let Some(s) = status {
            exit = s;
        }
    }
    Ok(exit)
}
