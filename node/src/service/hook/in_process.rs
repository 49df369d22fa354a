//! Receive hooks run inside the node for changes made on a user's behalf
//! (the User* operations): the same work PreReceiveHook, UpdateHook and
//! PostReceiveHook do for a push (GitLab's internal API, custom hooks, the
//! router's synchronising votes), with their output collected instead of
//! streamed.

use tokio::sync::mpsc;

use super::receive::Receive;
use super::{Failure, payload_for, post_receive_hook, pre_receive_hook, transactional, update_hook};
use crate::error::Result;
use crate::hooks::custom::Chunk;
use crate::hooks::payload::{HooksPayload, UserDetails, hook};
use crate::service::Deps;
use crate::storage::RepoPath;
use crate::transaction::Transaction;
use cairn_proto::gitaly::{Repository, UpdateHookRequest, User};

/// What a hook printed.
#[derive(Debug, Default)]
pub(in crate::service) struct HookOutput {
    pub(in crate::service) stdout: Vec<u8>,
    pub(in crate::service) stderr: Vec<u8>,
}

/// Why a hook refused a change.
#[derive(Debug)]
pub(in crate::service) enum HookFailure {
    /// A custom hook exited with an error.
    Custom,
    /// GitLab's access check refused, with its message.
    Denied(String),
    /// Anything else (GitLab unreachable, a vote that failed, bad input).
    Failed(String),
}

/// The receive hooks of one change to a repository by a user.
pub(in crate::service) struct ReceiveHooks {
    deps: Deps,
    path: RepoPath,
    repository: Repository,
    payload: HooksPayload,
    push_options: Vec<String>,
}

impl ReceiveHooks {
    /// Hooks for `user`'s change to `repository` (resolved to `path`),
    /// taking part in `transaction` when a router sent one.
    pub(in crate::service) async fn new(
        deps: &Deps,
        repository: &Repository,
        path: &RepoPath,
        user: &User,
        transaction: Option<Transaction>,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<Self> {
        let details = UserDetails {
            userid: user.gl_id.clone(),
            username: user.gl_username.clone(),
            protocol: "web".to_owned(),
            remote_ip: String::new(),
        };
        let payload =
            payload_for(deps, repository, path, hook::RECEIVE_PACK, Some(details), transaction, metadata).await?;
        Ok(Self {
            deps: deps.clone(),
            path: path.clone(),
            repository: repository.clone(),
            payload,
            push_options: Vec::new(),
        })
    }

    /// The hooks with `options` as the push options (`git push -o`) they see.
    pub(in crate::service) fn with_push_options(mut self, options: &[String]) -> Self {
        self.push_options = options.to_vec();
        self
    }

    /// The environment the hooks see: the payload plus `extra` lines
    /// (the quarantine's object directories).
    fn env(&self, extra: &[String]) -> Vec<String> {
        let mut env = vec![format!("{}={}", crate::hooks::payload::ENV, self.payload.encode())];
        env.extend_from_slice(extra);
        env
    }

    fn receive(&self, changes: &[u8], extra_env: &[String]) -> Receive {
        Receive {
            deps: self.deps.clone(),
            path: self.path.clone(),
            repository: self.repository.clone(),
            env: self.env(extra_env),
            push_options: self.push_options.clone(),
            payload: self.payload.clone(),
            changes: changes.to_vec(),
        }
    }

    /// pre-receive with `changes` (`<old> <new> <ref>` lines) while the
    /// change's objects are in the quarantine that `quarantine_env` names.
    pub(in crate::service) async fn pre_receive(
        &self,
        changes: &[u8],
        quarantine_env: &[String],
    ) -> (HookOutput, std::result::Result<(), HookFailure>) {
        let rx = self.receive(changes, quarantine_env);
        self.collect("pre-receive", |out| pre_receive_hook::run(rx, out)).await
    }

    /// update for one reference.
    pub(in crate::service) async fn update(
        &self,
        reference: &[u8],
        old: &str,
        new: &str,
    ) -> (HookOutput, std::result::Result<(), HookFailure>) {
        let req = UpdateHookRequest {
            repository: Some(self.repository.clone()),
            environment_variables: self.env(&[]),
            r#ref: reference.to_vec(),
            old_value: old.to_owned(),
            new_value: new.to_owned(),
        };
        let (deps, path, payload) = (self.deps.clone(), self.path.path.clone(), self.payload.clone());
        self.collect("update", |out| async move { update_hook::run(&deps, &path, &payload, &req, out).await }).await
    }

    /// post-receive once the references changed.
    pub(in crate::service) async fn post_receive(
        &self,
        changes: &[u8],
    ) -> (HookOutput, std::result::Result<(), HookFailure>) {
        let rx = self.receive(changes, &[]);
        self.collect("post-receive", |out| post_receive_hook::run(rx, out)).await
    }

    async fn collect<F, Fut>(&self, name: &str, run: F) -> (HookOutput, std::result::Result<(), HookFailure>)
    where
        F: FnOnce(mpsc::Sender<Chunk>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<(), Failure>>,
    {
        let (tx, mut chunks) = mpsc::channel(16);
        let collector = async move {
            let mut output = HookOutput::default();
            while let Some(chunk) = chunks.recv().await {
                match chunk {
                    Chunk::Stdout(b) => output.stdout.extend_from_slice(&b),
                    Chunk::Stderr(b) => output.stderr.extend_from_slice(&b),
                }
            }
            output
        };
        let work = transactional(&self.deps, &self.payload, &self.repository, name, run(tx));
        let (outcome, output) = tokio::join!(work, collector);
        let outcome = outcome.map_err(|f| match f {
            Failure::Exit(_) => HookFailure::Custom,
            Failure::Denied(m) => HookFailure::Denied(m),
            Failure::Message(m) => HookFailure::Failed(m),
            Failure::Vote(e) => HookFailure::Failed(crate::error::error_chain(&e)),
        });
        (output, outcome)
    }
}
