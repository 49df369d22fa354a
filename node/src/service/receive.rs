//! The set-up SSHReceivePack and PostReceivePack share: check the first
//! message, resolve the repository, build the push's hooks and start
//! `git receive-pack`. The callers differ only in transport framing and in
//! how they report git's exit.

use crate::error::{Error, Result};
use crate::git::command::Duplex;
use crate::git::wire;
use crate::service::hook::{Pusher, receive_pack_hooks};
use crate::service::{Deps, pump};
use crate::transaction::{Phase, Transaction, TransactionError, Voting, ZERO_VOTE};
use cairn_proto::gitaly::Repository;

/// What the first message of a receive-pack request says.
pub(super) struct ReceivePack<'a> {
    pub(super) repository: Option<&'a Repository>,
    pub(super) gl_id: &'a str,
    pub(super) gl_username: &'a str,
    pub(super) git_config_options: &'a [String],
    pub(super) git_protocol: &'a str,
    /// `ssh` or `http`.
    pub(super) protocol: &'static str,
    /// Smart HTTP's request/response mode (`--stateless-rpc`).
    pub(super) stateless: bool,
    /// The router's transaction the push takes part in.
    pub(super) transaction: Option<Transaction>,
}

impl ReceivePack<'_> {
    /// Validates the request in upstream's order and starts git. The spawn
    /// failure comes back separately because the two RPCs report it with
    /// different codes.
    pub(super) async fn start(
        self,
        deps: &Deps,
        metadata: &tonic::metadata::MetadataMap,
        correlation_id: Option<&str>,
    ) -> Result<std::result::Result<Duplex, crate::git::command::CommandError>> {
        let path = deps.storages.repo(self.repository)?;
        let mut opts = pump::wire_options(self.git_config_options, self.git_protocol)?;
        let pusher = Pusher { gl_id: self.gl_id, gl_username: self.gl_username, protocol: self.protocol };
        let repository = self.repository.cloned().unwrap_or_default();
        opts.hooks = Some(receive_pack_hooks(deps, &repository, &path, pusher, self.transaction, metadata).await?);
        Ok(deps.git.spawn_duplex(wire::receive_pack(&path.path, self.stateless, false, &opts), correlation_id))
    }
}

/// Upstream checks the user before the repository.
pub(super) fn require_gl_id(gl_id: &str) -> Result<()> {
    if gl_id.is_empty() {
        return Err(Error::invalid_argument("empty GlId"));
    }
    Ok(())
}

/// Upstream's closing vote after git receive-pack succeeded: when git
/// refused every update, no hook voted, and the router would see no vote
/// at all; with the vote every voter casts at least one, and voters whose
/// hooks voted differently fail here. A stopped transaction (the primary's
/// hook refused) is no error: the push already reported the refusal.
pub(super) async fn final_vote(voting: Option<&Voting>) -> Result<()> {
    let Some(voting) = voting else { return Ok(()) };
    match voting.vote(ZERO_VOTE, Phase::Committed).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_stopped() => Ok(()),
        Err(e) => Err(final_vote_error(e)),
    }
}

fn final_vote_error(e: TransactionError) -> Error {
    Error::aborted(format!("final transactional vote: {}", crate::error::error_chain(&e)))
}
