//! Praefect-style reference transactions, the node's side.
//!
//! A router that fans a write out to several nodes tags each copy of the
//! request with `gitaly-reference-transaction` metadata: standard base64 of
//! `{"id":…,"node":"…","primary":…}`. The request arrives over the router's
//! backchannel (yamux) session, and the node votes by calling
//! `RefTransaction` back over that same session: each vote is a SHA-1 of
//! the change the node is about to make (prepared) or has made (committed),
//! and the router answers COMMIT (go on), ABORT (another outcome won) or
//! STOP (the primary gave up). Git processes vote through the
//! reference-transaction hook (`gitaly-hooks` → HookService), which finds
//! the session again by the backchannel id carried in the hooks payload.

use base64::Engine as _;
use cairn_proto::gitaly::ref_transaction_client::RefTransactionClient;
use cairn_proto::gitaly::vote_transaction_request::Phase as ProtoPhase;
use cairn_proto::gitaly::vote_transaction_response::TransactionState;
use cairn_proto::gitaly::{Repository, StopTransactionRequest, VoteTransactionRequest};
use sha1::Digest as _;
use std::time::Duration;

use crate::transport::{BackchannelRegistry, ConnInfo};

pub use crate::hooks::payload::Transaction;

/// The request metadata naming the transaction.
pub const METADATA_KEY: &str = "gitaly-reference-transaction";

/// How long one vote may wait for the other voters (upstream's limit).
const VOTE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// A vote: the SHA-1 of what is being changed.
pub type Vote = [u8; 20];

/// The vote on `data`.
pub fn vote_of(data: &[u8]) -> Vote {
    sha1::Sha1::digest(data).into()
}

/// The all-zero vote, which upstream casts to close a write that may have
/// changed nothing (every voter always casts at least one vote).
pub const ZERO_VOTE: Vote = [0; 20];

/// Where in a change a vote is cast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A vote on a state rather than on a step (FetchRemote's references).
    Unknown,
    /// Before the change is made: the only phase in which a "no" stops it.
    Prepared,
    /// After the change is made: tells the router it really happened.
    Committed,
    /// Primary and secondaries wait for each other (after a receive hook).
    Synchronized,
}

impl Phase {
    fn to_proto(self) -> ProtoPhase {
        match self {
            Self::Unknown => ProtoPhase::UnknownPhase,
            Self::Prepared => ProtoPhase::PreparedPhase,
            Self::Committed => ProtoPhase::CommittedPhase,
            Self::Synchronized => ProtoPhase::SynchronizedPhase,
        }
    }
}

/// Why a transaction could not be joined or a vote did not go through.
#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    #[error("invalid {METADATA_KEY} metadata: {0}")]
    Metadata(String),
    #[error(
        "transaction {0} needs a backchannel connection: the node cannot vote on a request that did not arrive over one"
    )]
    NoBackchannel(u64),
    #[error("get backchannel: backchannel {0} not found")]
    BackchannelGone(u64),
    #[error("vote")]
    Vote(#[source] tonic::Status),
    #[error("transaction timeout 5m0s exceeded")]
    Timeout,
    #[error("stop transaction")]
    Stop(#[source] tonic::Status),
    #[error("transaction was aborted")]
    Aborted,
    #[error("transaction was stopped")]
    Stopped,
    #[error("invalid transaction state {0}")]
    InvalidState(i32),
}

impl TransactionError {
    /// Whether the router stopped the transaction (the primary gave up):
    /// a graceful end, not a conflict.
    pub fn is_stopped(&self) -> bool {
        matches!(self, Self::Stopped)
    }
}

/// The codes upstream's reference-transaction hook answers: ABORTED for an
/// aborted transaction, FAILED_PRECONDITION for a stopped one, INTERNAL
/// otherwise; bad metadata is the client's fault. Callers that answer
/// differently (creation: FAILED_PRECONDITION) map errors themselves.
impl From<TransactionError> for crate::error::Error {
    fn from(e: TransactionError) -> Self {
        use crate::error::Error;
        let message = crate::error::error_chain(&e);
        match e {
            TransactionError::Metadata(_) => Error::invalid_argument(message),
            TransactionError::NoBackchannel(_) | TransactionError::Stopped => Error::failed_precondition(message),
            TransactionError::Aborted => Error::aborted(message),
            _ => Error::internal_msg(message),
        }
    }
}

/// The transaction a request takes part in: `None` without the metadata.
/// The backchannel id comes from the connection the request arrived on.
pub fn from_request<T>(req: &tonic::Request<T>) -> Result<Option<Transaction>, TransactionError> {
    let Some(value) = req.metadata().get(METADATA_KEY) else { return Ok(None) };
    let value = value.to_str().map_err(|_| TransactionError::Metadata("not ASCII".into()))?;
    let backchannel = req.extensions().get::<ConnInfo>().and_then(|c| c.backchannel.as_ref()).map(|p| p.id());
    parse(value, backchannel).map(Some)
}

/// Decodes the metadata value and attaches the backchannel id.
fn parse(value: &str, backchannel: Option<u64>) -> Result<Transaction, TransactionError> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|e| TransactionError::Metadata(format!("decode base64: {e}")))?;
    let mut tx: Transaction =
        serde_json::from_slice(&raw).map_err(|e| TransactionError::Metadata(format!("decode JSON: {e}")))?;
    tx.backchannel_id = backchannel.ok_or(TransactionError::NoBackchannel(tx.id))?;
    Ok(tx)
}

/// The metadata value for `tx` (what a router sends; for tests and tools).
pub fn encode_metadata(id: u64, node: &str, primary: bool) -> String {
    let tx = Transaction { backchannel_id: 0, id, node: node.to_owned(), primary };
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&tx).expect("a transaction is plain data"))
}

/// Casts votes and stops transactions over the backchannels of the node's
/// listeners. Cloning shares the registry.
#[derive(Debug, Clone, Default)]
pub struct Manager {
    backchannels: BackchannelRegistry,
}

impl Manager {
    pub fn new(backchannels: BackchannelRegistry) -> Self {
        Self { backchannels }
    }

    /// The registry votes are sent through.
    pub fn backchannels(&self) -> &BackchannelRegistry {
        &self.backchannels
    }

    fn client(&self, tx: &Transaction) -> Result<RefTransactionClient<tonic::transport::Channel>, TransactionError> {
        let peer =
            self.backchannels.get(tx.backchannel_id).ok_or(TransactionError::BackchannelGone(tx.backchannel_id))?;
        Ok(RefTransactionClient::new(peer.grpc_channel()))
    }

    /// Votes `vote` in `phase`; `Ok` only when the router answers COMMIT.
    pub async fn vote(
        &self,
        tx: &Transaction,
        repository: &Repository,
        vote: Vote,
        phase: Phase,
    ) -> Result<(), TransactionError> {
        let mut client = self.client(tx)?;
        let request = VoteTransactionRequest {
            repository: Some(repository.clone()),
            transaction_id: tx.id,
            node: tx.node.clone(),
            reference_updates_hash: vote.to_vec(),
            phase: phase.to_proto() as i32,
        };
        let answer = tokio::time::timeout(VOTE_TIMEOUT, client.vote_transaction(request))
            .await
            .map_err(|_| TransactionError::Timeout)?
            .map_err(TransactionError::Vote)?
            .into_inner();
        let outcome = match TransactionState::try_from(answer.state) {
            Ok(TransactionState::Commit) => return Ok(()),
            Ok(TransactionState::Abort) => TransactionError::Aborted,
            Ok(TransactionState::Stop) => TransactionError::Stopped,
            Err(_) => TransactionError::InvalidState(answer.state),
        };
        tracing::warn!(transaction.id = tx.id, transaction.voter = %tx.node, error = %outcome, ?phase, "vote not committed");
        Err(outcome)
    }

    /// Tells the router this node (the primary) gave up, so the other
    /// voters stop instead of waiting for it.
    pub async fn stop(&self, tx: &Transaction, repository: &Repository) -> Result<(), TransactionError> {
        let mut client = self.client(tx)?;
        let request = StopTransactionRequest { repository: Some(repository.clone()), transaction_id: tx.id };
        tokio::time::timeout(VOTE_TIMEOUT, client.stop_transaction(request))
            .await
            .map_err(|_| TransactionError::Timeout)?
            .map_err(TransactionError::Stop)?;
        Ok(())
    }

    /// A request's transaction bound to this manager and its repository.
    pub fn voting(&self, tx: Transaction, repository: &Repository) -> Voting {
        Voting { manager: self.clone(), tx, repository: repository.clone() }
    }
}

/// What a handler holds while it takes part in a transaction.
#[derive(Debug, Clone)]
pub struct Voting {
    manager: Manager,
    tx: Transaction,
    repository: Repository,
}

impl Voting {
    pub fn transaction(&self) -> &Transaction {
        &self.tx
    }

    pub async fn vote(&self, vote: Vote, phase: Phase) -> Result<(), TransactionError> {
        self.manager.vote(&self.tx, &self.repository, vote, phase).await
    }

    pub async fn stop(&self) -> Result<(), TransactionError> {
        self.manager.stop(&self.tx, &self.repository).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trip_and_errors() {
        let value = encode_metadata(7, "gitaly-2", true);
        let json = base64::engine::general_purpose::STANDARD.decode(&value).expect("base64");
        assert_eq!(String::from_utf8(json).expect("utf-8"), r#"{"id":7,"node":"gitaly-2","primary":true}"#);
        let tx = parse(&value, Some(3)).expect("valid");
        assert_eq!(tx, Transaction { backchannel_id: 3, id: 7, node: "gitaly-2".into(), primary: true });
        assert!(matches!(parse(&value, None), Err(TransactionError::NoBackchannel(7))));
        assert!(matches!(parse("%%%", Some(1)), Err(TransactionError::Metadata(_))));
        let not_json = base64::engine::general_purpose::STANDARD.encode("{id:");
        assert!(matches!(parse(&not_json, Some(1)), Err(TransactionError::Metadata(_))));
    }

    #[test]
    fn codes() {
        let code = |e| crate::error::Error::from(e).code();
        assert_eq!(code(TransactionError::Metadata("x".into())), tonic::Code::InvalidArgument);
        assert_eq!(code(TransactionError::NoBackchannel(1)), tonic::Code::FailedPrecondition);
        assert_eq!(code(TransactionError::Aborted), tonic::Code::Aborted);
        assert_eq!(code(TransactionError::Stopped), tonic::Code::FailedPrecondition);
        assert_eq!(code(TransactionError::BackchannelGone(1)), tonic::Code::Internal);
    }

    #[test]
    fn votes_are_sha1() {
        assert_eq!(hex::encode(vote_of(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }
}
