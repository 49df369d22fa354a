//! HookService: what `gitaly-hooks` asks the node when git runs a push's
//! hooks, or upload-pack its pack-objects hook (the pack-objects cache).
//! For receive hooks the node asks GitLab's internal API (`crate::gitlab`,
//! when configured) and runs the repository's and the global custom hooks
//! (see `crate::hooks::custom`), and answers with their output and exit
//! status.
//! A failing hook is an answer (`exit_status`), not an RPC error.
//!
//! Inside a router's transaction (the payload names one) only the primary
//! runs the receive hooks' GitLab and custom-hook work; when it refuses, it
//! stops the transaction so that secondaries do not wait for it. Every
//! voter then casts a synchronising vote, and the reference-transaction
//! hook votes on the reference updates themselves.

mod in_process;
mod pack_objects_hook_with_sidechannel;
mod post_receive_hook;
mod pre_receive_hook;
mod receive;
mod reference_transaction_hook;
mod update_hook;

use std::future::Future;
use std::path::{Path, PathBuf};

use super::{Deps, respond};
use crate::error::Error;
use crate::hooks::custom::{self, Chunk, CustomHookError};
use crate::hooks::payload::HooksPayload;
use crate::transaction::Transaction;
use cairn_proto::gitaly::*;
pub(in crate::service) use in_process::{HookFailure, HookOutput, ReceiveHooks};
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

/// Handlers of HookService.
#[derive(Debug, Clone)]
pub(super) struct HookService {
    deps: Deps,
}

impl HookService {
    pub(super) fn new(deps: &Deps) -> Self {
        Self { deps: deps.clone() }
    }
}

type StreamResult<T> = Result<Response<BoxStream<T>>, Status>;

#[tonic::async_trait]
impl hook_service_server::HookService for HookService {
    async fn pre_receive_hook(
        &self,
        req: Request<Streaming<PreReceiveHookRequest>>,
    ) -> StreamResult<PreReceiveHookResponse> {
        respond(pre_receive_hook::handle(&self.deps, req).await)
    }

    async fn post_receive_hook(
        &self,
        req: Request<Streaming<PostReceiveHookRequest>>,
    ) -> StreamResult<PostReceiveHookResponse> {
        respond(post_receive_hook::handle(&self.deps, req).await)
    }

    async fn update_hook(&self, req: Request<UpdateHookRequest>) -> StreamResult<UpdateHookResponse> {
        respond(update_hook::handle(&self.deps, req).await)
    }

    async fn reference_transaction_hook(
        &self,
        req: Request<Streaming<ReferenceTransactionHookRequest>>,
    ) -> StreamResult<ReferenceTransactionHookResponse> {
        respond(reference_transaction_hook::handle(&self.deps, req).await)
    }

    async fn pack_objects_hook_with_sidechannel(
        &self,
        req: Request<PackObjectsHookWithSidechannelRequest>,
    ) -> Result<Response<PackObjectsHookWithSidechannelResponse>, Status> {
        respond(pack_objects_hook_with_sidechannel::handle(&self.deps, req).await)
    }
}

/// How a hook ended when it did not succeed.
#[derive(Debug)]
enum Failure {
    /// A custom hook exited with this code; its output already went out.
    Exit(i32),
    /// The hook refused for a reason of its own (exit 1 with this text).
    Message(String),
    /// GitLab's access check refused the change with this message.
    Denied(String),
    /// A transaction vote was not committed.
    Vote(crate::transaction::TransactionError),
}

impl From<CustomHookError> for Failure {
    fn from(e: CustomHookError) -> Self {
        match e {
            CustomHookError::Exit { code, .. } => Self::Exit(code),
            other => Self::Message(format!("executing custom hooks: {}", crate::error::error_chain(&other))),
        }
    }
}

/// Runs `work` (which writes hook output into the sender it gets) and
/// streams that output as responses made by `chunk`, then ends with
/// `finish(outcome)`: a final message or an RPC error.
fn stream_hook<T, W, F>(
    work: W,
    chunk: fn(Chunk) -> T,
    finish: impl FnOnce(Result<(), Failure>) -> Result<T, Error> + Send + 'static,
) -> BoxStream<T>
where
    T: Send + 'static,
    W: FnOnce(tokio::sync::mpsc::Sender<Chunk>) -> F,
    F: Future<Output = Result<(), Failure>> + Send + 'static,
{
    let (tx, responses) = super::pump::channel();
    let (out, mut chunks) = tokio::sync::mpsc::channel(4);
    let work = work(out);
    tokio::spawn(async move {
        tokio::pin!(work);
        let mut open = true;
        let outcome = loop {
            tokio::select! {
                c = chunks.recv(), if open => match c {
                    Some(c) => {
                        if tx.send(Ok(chunk(c))).await.is_err() {
                            return;
                        }
                    }
                    None => open = false,
                },
                r = &mut work => break r,
            }
        };
        // The work is done and its sender dropped: pass on what is left.
        while let Some(c) = chunks.recv().await {
            if tx.send(Ok(chunk(c))).await.is_err() {
                return;
            }
        }
        let last = finish(outcome).map_err(Status::from);
        let _ = tx.send(last).await;
    });
    responses
}

/// Everything custom hooks need besides their input.
struct Run<'a> {
    deps: &'a Deps,
    repo: &'a Path,
    payload: &'a HooksPayload,
    env: &'a [String],
    push_options: &'a [String],
}

impl Run<'_> {
    /// Runs the custom `hook`s with `args` and `stdin`.
    async fn custom(
        &self,
        hook: &str,
        args: &[String],
        stdin: &[u8],
        out: &tokio::sync::mpsc::Sender<Chunk>,
    ) -> Result<(), Failure> {
        let global: Option<PathBuf> = self.deps.config.custom_hooks_dir();
        let hooks = custom::find(self.repo, global.as_deref(), hook)?;
        if hooks.is_empty() {
            return Ok(());
        }
        let env =
            custom::environment(self.repo, self.payload, self.push_options, self.env, &self.deps.config.git_binary());
        custom::run(&hooks, self.repo, args, &env, stdin, out).await?;
        Ok(())
    }
}

/// Runs a receive hook's work (`run`, on the primary or outside
/// transactions only) as upstream does inside a transaction: a primary whose
/// hook failed stops the transaction, and every voter then casts the
/// synchronising vote for `hook`, so secondaries take their reference locks
/// only once the primary's hook has finished.
async fn transactional<F>(
    deps: &Deps,
    payload: &HooksPayload,
    repository: &Repository,
    hook: &str,
    run: F,
) -> Result<(), Failure>
where
    F: Future<Output = Result<(), Failure>>,
{
    let voting = payload.transaction.clone().map(|t| deps.transactions.voting(t, repository));
    if voting.as_ref().is_none_or(|v| v.transaction().primary)
        && let Err(failure) = run.await
    {
        if let Some(v) = &voting {
            tracing::warn!(hook, "stopping transaction because the hook failed");
            if let Err(e) = v.stop().await {
                tracing::error!(hook, error = %crate::error::error_chain(&e), "failed stopping transaction");
            }
        }
        return Err(failure);
    }
    let Some(voting) = voting else { return Ok(()) };
    let vote = crate::transaction::vote_of(format!("synchronize {hook} hook").as_bytes());
    voting.vote(vote, crate::transaction::Phase::Synchronized).await.map_err(|e| {
        Failure::Message(format!("synchronizing {hook} hook: vote failed: {}", crate::error::error_chain(&e)))
    })
}

/// The payload from the hook's environment, or upstream's message.
fn payload(env: &[String]) -> Result<HooksPayload, Failure> {
    HooksPayload::from_env(env)
        .map_err(|e| Failure::Message(format!("extracting hooks payload: {}", crate::error::error_chain(&e))))
}

/// Reads the rest of a bidi hook request stream's stdin.
async fn read_stdin<T>(stream: &mut Streaming<T>, data: fn(T) -> Vec<u8>) -> Result<Vec<u8>, Failure> {
    let mut all = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(m)) => all.extend_from_slice(&data(m)),
            Ok(None) => return Ok(all),
            Err(s) => return Err(Failure::Message(format!("reading stdin from request: {}", s.message()))),
        }
    }
}

/// The checks upstream makes before running receive hooks.
fn check_receive(payload: &HooksPayload, gl_repository: &str, changes: &[u8], protocol: bool) -> Result<(), Failure> {
    let fail = |m: &str| Err(Failure::Message(m.to_owned()));
    if changes.is_empty() {
        return fail("hook got no reference updates");
    }
    if gl_repository.is_empty() {
        return fail("repository not set");
    }
    let Some(user) = &payload.user_details else { return fail("payload has no receive hooks info") };
    if user.userid.is_empty() {
        return fail("user ID not set");
    }
    if protocol && user.protocol.is_empty() {
        return fail("protocol not set");
    }
    Ok(())
}

/// Who pushes, from a receive-pack request.
pub(in crate::service) struct Pusher<'a> {
    pub(in crate::service) gl_id: &'a str,
    pub(in crate::service) gl_username: &'a str,
    /// `ssh` or `http`.
    pub(in crate::service) protocol: &'static str,
}

/// The hooks a receive-pack for `repository` (already resolved to `path`)
/// runs: the node's hooks directory and the payload describing the push,
/// including the router's transaction the push takes part in.
pub(in crate::service) async fn receive_pack_hooks(
    deps: &Deps,
    repository: &Repository,
    path: &crate::storage::RepoPath,
    pusher: Pusher<'_>,
    transaction: Option<Transaction>,
    metadata: &tonic::metadata::MetadataMap,
) -> crate::error::Result<crate::git::wire::Hooks> {
    use crate::hooks::payload::{UserDetails, hook};
    let user = UserDetails {
        username: pusher.gl_username.to_owned(),
        userid: pusher.gl_id.to_owned(),
        protocol: pusher.protocol.to_owned(),
        remote_ip: String::new(),
    };
    hooks_for(deps, repository, path, hook::RECEIVE_PACK, Some(user), transaction, metadata).await
}

/// The hooks a reference-changing git command (update-ref, symbolic-ref,
/// fetch) runs inside a router's transaction: the reference-transaction
/// hook only, which votes. Outside transactions such commands run no
/// hooks (`None`).
pub(in crate::service) async fn transaction_hooks(
    deps: &Deps,
    repository: &Repository,
    path: &crate::storage::RepoPath,
    transaction: Option<&Transaction>,
    metadata: &tonic::metadata::MetadataMap,
) -> crate::error::Result<Option<crate::git::wire::Hooks>> {
    use crate::hooks::payload::hook;
    let Some(tx) = transaction else { return Ok(None) };
    let hooks = hooks_for(deps, repository, path, hook::REFERENCE_TRANSACTION, None, Some(tx.clone()), metadata);
    Ok(Some(hooks.await?))
}

/// The pack-objects hook an upload-pack for `repository` runs when the
/// pack-objects cache is on (`None` when it is off: git packs itself, as
/// upstream does then). Who fetches comes from the request's metadata, as
/// upstream reads it.
pub(in crate::service) async fn upload_pack_hooks(
    deps: &Deps,
    repository: &Repository,
    path: &crate::storage::RepoPath,
    protocol: &'static str,
    metadata: &tonic::metadata::MetadataMap,
) -> crate::error::Result<Option<crate::git::wire::Hooks>> {
    use crate::hooks::payload::{UserDetails, hook};
    if deps.pack_cache.is_none() {
        return Ok(None);
    }
    let get = |k: &str| metadata.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let user = UserDetails {
        username: get("username"),
        userid: get("user_id"),
        protocol: protocol.to_owned(),
        remote_ip: get("remote_ip"),
    };
    Ok(Some(hooks_for(deps, repository, path, hook::PACK_OBJECTS, Some(user), None, metadata).await?))
}

async fn hooks_for(
    deps: &Deps,
    repository: &Repository,
    path: &crate::storage::RepoPath,
    requested_hooks: u32,
    user: Option<crate::hooks::payload::UserDetails>,
    transaction: Option<Transaction>,
    metadata: &tonic::metadata::MetadataMap,
) -> crate::error::Result<crate::git::wire::Hooks> {
    let hooks = deps.hooks.clone();
    if !hooks.usable() {
        return Err(Error::internal_msg(format!("hooks binary {:?} is missing or not executable", hooks.binary)));
    }
    let payload = payload_for(deps, repository, path, requested_hooks, user, transaction, metadata).await?;
    Ok(crate::git::wire::Hooks {
        dir: hooks.dir.clone(),
        binary: hooks.binary.clone(),
        payload: payload.encode(),
        log_dir: hooks.log_dir.clone(),
    })
}

/// The payload hooks get for a change to `repository`: which hooks run,
/// the feature flags of the request, who makes the change and the router's
/// transaction it takes part in.
async fn payload_for(
    deps: &Deps,
    repository: &Repository,
    path: &crate::storage::RepoPath,
    requested_hooks: u32,
    user: Option<crate::hooks::payload::UserDetails>,
    transaction: Option<Transaction>,
    metadata: &tonic::metadata::MetadataMap,
) -> crate::error::Result<HooksPayload> {
    use crate::hooks::payload::{FeatureFlag, FeatureFlagWithValue};
    let hooks = &deps.hooks;
    let repos = deps.repos.clone();
    let repo_path = path.path.clone();
    let format = super::blocking(move || Ok(repos.open(&repo_path)?.object_format())).await?;
    let feature_flags = metadata
        .iter()
        .filter_map(|kv| match kv {
            tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                let name = k.as_str().strip_prefix("gitaly-feature-")?.replace('-', "_");
                Some(FeatureFlagWithValue {
                    flag: FeatureFlag { name, on_by_default: false },
                    enabled: v.to_str().is_ok_and(|v| v == "true"),
                })
            }
            tonic::metadata::KeyAndValueRef::Binary(..) => None,
        })
        .collect();
    Ok(HooksPayload {
        requested_hooks,
        feature_flags,
        repository: repository.clone(),
        object_format: format.as_str().to_owned(),
        runtime_dir: hooks.runtime_dir.display().to_string(),
        internal_socket: hooks.internal_socket.display().to_string(),
        internal_socket_token: deps.config.auth.token.clone(),
        transaction,
        user_details: user,
        transaction_id: 0,
    })
}
