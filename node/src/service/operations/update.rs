//! The one way the operations change a reference on a user's behalf, as a
//! push would: the change's new objects wait in a quarantine while the
//! pre-receive hooks (GitLab's access check, custom hooks) look at them,
//! join the repository once accepted, the update hook runs, the reference
//! moves in one `git update-ref` transaction checked against its expected
//! old value (voting in a router's transaction), and post-receive runs.

use crate::error::{Error, Result};
use crate::git::quarantine::QuarantineDir;
use crate::git::{GitError, refs};
use crate::service::hook::{HookFailure, HookOutput, ReceiveHooks, transaction_hooks};
use crate::service::{Deps, blocking};
use crate::storage::RepoPath;
use crate::transaction::Transaction;
use cairn_proto::gitaly::custom_hook_error::HookType;
use cairn_proto::gitaly::{AccessCheckError, CustomHookError, ReferenceUpdateError, Repository, User};
use tonic::metadata::MetadataMap;

/// Why a reference update did not happen.
#[derive(Debug)]
pub(super) enum UpdateError {
    /// GitLab's access check refused.
    AccessCheck(AccessCheckError),
    /// A custom hook refused.
    CustomHook(CustomHookError),
    /// The reference did not have the expected old value, or was locked;
    /// with git's reason.
    Reference(ReferenceUpdateError, String),
    /// Anything else.
    Other(Error),
}

impl UpdateError {
    /// Upstream's wording of the error, which the RPCs wrap.
    pub(super) fn message(&self) -> String {
        match self {
            Self::AccessCheck(e) => format!("running pre-receive hooks: GitLab: {}", e.error_message),
            Self::CustomHook(e) => {
                let hook = match e.hook_type() {
                    HookType::Update => "update",
                    HookType::Postreceive => "post-receive",
                    _ => "pre-receive",
                };
                format!("running {hook} hooks: {}", super::common::custom_hook_text(e))
            }
            Self::Reference(_, cause) => format!("reference update: {cause}"),
            Self::Other(e) => e.to_string(),
        }
    }
}

impl From<Error> for UpdateError {
    fn from(e: Error) -> Self {
        Self::Other(e)
    }
}

/// What an operation's handler gets besides its request message.
pub(super) struct Call<'a> {
    pub(super) deps: &'a Deps,
    pub(super) metadata: &'a MetadataMap,
    pub(super) transaction: Option<Transaction>,
    pub(super) correlation_id: Option<&'a str>,
}

impl Call<'_> {
    /// `user`'s change to `repository`, resolved to `path`.
    pub(super) fn change<'b>(&'b self, repository: &'b Repository, path: &'b RepoPath, user: &'b User) -> Change<'b> {
        Change {
            deps: self.deps,
            metadata: self.metadata,
            repository,
            path,
            user,
            transaction: self.transaction.clone(),
            correlation_id: self.correlation_id,
            push_options: &[],
        }
    }
}

/// A user's change to one repository.
pub(super) struct Change<'a> {
    pub(super) deps: &'a Deps,
    metadata: &'a MetadataMap,
    pub(super) repository: &'a Repository,
    pub(super) path: &'a RepoPath,
    pub(super) user: &'a User,
    transaction: Option<Transaction>,
    pub(super) correlation_id: Option<&'a str>,
    /// What the hooks see as `git push -o` options.
    push_options: &'a [String],
}

impl<'a> Change<'a> {
    /// The change with push options for its hooks (rebases pass GitLab's on).
    pub(super) fn with_push_options(mut self, options: &'a [String]) -> Self {
        self.push_options = options;
        self
    }

    /// A quarantine for the objects the change creates.
    pub(super) fn quarantine(&self) -> Result<QuarantineDir> {
        QuarantineDir::new(&self.path.path).map_err(Error::from)
    }

    /// Moves `reference` from `old` (the zero id: must not exist) to `new`
    /// (the zero id: delete), with the objects in `quarantine` joining the
    /// repository once the pre-receive hooks accepted them.
    pub(super) async fn update_reference(
        &self,
        quarantine: Option<QuarantineDir>,
        reference: &[u8],
        new: &str,
        old: &str,
    ) -> std::result::Result<(), UpdateError> {
        let format = self.deps.read_at(self.path.clone(), |repo, _| Ok(repo.object_format())).await?;
        if reference.is_empty() {
            return Err(Error::internal_msg("reference cannot be empty").into());
        }
        for (what, oid) in [("old", old), ("new", new)] {
            if !format.is_oid(oid) {
                return Err(Error::internal_msg(format!("validating {what} value: invalid object ID: {oid:?}")).into());
            }
        }
        let mut changes = format!("{old} {new} ").into_bytes();
        changes.extend_from_slice(reference);
        changes.push(b'\n');

        let hooks = ReceiveHooks::new(
            self.deps,
            self.repository,
            self.path,
            self.user,
            self.transaction.clone(),
            self.metadata,
        )
        .await?
        .with_push_options(self.push_options);
        let quarantine_env = quarantine.as_ref().map(QuarantineDir::hook_env).unwrap_or_default();
        let (output, outcome) = hooks.pre_receive(&changes, &quarantine_env).await;
        self.refused(outcome, output, HookType::Prereceive, &changes)?;

        self.migrate(quarantine).await?;

        let (output, outcome) = hooks.update(reference, old, new).await;
        self.refused(outcome, output, HookType::Update, &changes)?;

        self.move_reference(reference, new, old).await?;

        let (output, outcome) = hooks.post_receive(&changes).await;
        match outcome {
            Ok(()) => {}
            // The reference moved already; a custom hook cannot undo that.
            Err(HookFailure::Custom) => tracing::warn!(
                stderr = %String::from_utf8_lossy(&output.stderr),
                "custom post-receive hook returned an error"
            ),
            Err(HookFailure::Denied(m) | HookFailure::Failed(m)) => {
                return Err(Error::internal_msg(format!("running post-receive hooks: {m}")).into());
            }
        }
        Ok(())
    }

    /// Moves `reference` as [`Change::update_reference`] does, without the
    /// receive hooks: for references GitLab itself asks for (upstream's
    /// UserMergeToRef and UserRebaseToRef run no hooks). The quarantined
    /// objects join the repository first; the update still votes in the
    /// router's transaction.
    pub(super) async fn update_reference_without_hooks(
        &self,
        quarantine: Option<QuarantineDir>,
        reference: &[u8],
        new: &str,
        old: &str,
    ) -> std::result::Result<(), UpdateError> {
        self.migrate(quarantine).await?;
        self.move_reference(reference, new, old).await
    }

    /// Moves the quarantined objects into the repository.
    async fn migrate(&self, quarantine: Option<QuarantineDir>) -> Result<()> {
        if let Some(q) = quarantine {
            blocking(move || q.migrate().map_err(|e| Error::internal("migrating quarantined objects", e))).await?;
            self.deps.repos.forget(&self.path.path);
        }
        Ok(())
    }

    /// One `git update-ref` of `reference` from `old` to `new`, voting in
    /// the router's transaction.
    async fn move_reference(&self, reference: &[u8], new: &str, old: &str) -> std::result::Result<(), UpdateError> {
        let ref_hooks =
            transaction_hooks(self.deps, self.repository, self.path, self.transaction.as_ref(), self.metadata).await?;
        let update = refs::RefUpdate { name: reference.to_vec(), new: new.to_owned(), old: Some(old.to_owned()) };
        refs::update(&self.deps.git, &self.path.path, &[update], ref_hooks.as_ref(), self.correlation_id).await.map_err(
            |e| match e {
                GitError::ReferenceUpdate(cause) | GitError::ReferenceLocked(cause) => UpdateError::Reference(
                    ReferenceUpdateError {
                        reference_name: reference.to_vec(),
                        old_oid: old.to_owned(),
                        new_oid: new.to_owned(),
                    },
                    cause,
                ),
                other => UpdateError::Other(Error::from(other)),
            },
        )
    }

    /// The error for a hook that refused.
    fn refused(
        &self,
        outcome: std::result::Result<(), HookFailure>,
        output: HookOutput,
        hook: HookType,
        changes: &[u8],
    ) -> std::result::Result<(), UpdateError> {
        let name = if hook == HookType::Update { "update" } else { "pre-receive" };
        match outcome {
            Ok(()) => Ok(()),
            Err(HookFailure::Custom) => Err(UpdateError::CustomHook(CustomHookError {
                stdout: output.stdout,
                stderr: output.stderr,
                hook_type: hook as i32,
            })),
            Err(HookFailure::Denied(message)) => Err(UpdateError::AccessCheck(AccessCheckError {
                error_message: message,
                protocol: "web".to_owned(),
                user_id: self.user.gl_id.clone(),
                changes: changes.to_vec(),
            })),
            Err(HookFailure::Failed(m)) => Err(Error::internal_msg(format!("running {name} hooks: {m}")).into()),
        }
    }
}
