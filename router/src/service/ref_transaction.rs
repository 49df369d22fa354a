//! RefTransaction: nodes taking part in a transactional write vote here,
//! over the backchannel of the router's own connection to them.

use crate::db::Db;
use crate::transactions::{Manager, Outcome, TransactionError};
use cairn_proto::gitaly::ref_transaction_server::RefTransaction;
use cairn_proto::gitaly::vote_transaction_response::TransactionState;
use cairn_proto::gitaly::{
    StopTransactionRequest, StopTransactionResponse, VoteTransactionRequest, VoteTransactionResponse,
};
use std::time::Duration;
use tonic::{Request, Response, Status};

/// How long a vote waits for the other voters before those that have not
/// voted yet are counted out (a paused or cut-off node must not hold the
/// others' reference locks for longer).
pub const VOTE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct RefTransactionService {
    manager: Manager,
    db: Db,
}

impl RefTransactionService {
    pub fn new(manager: Manager, db: Db) -> Self {
        Self { manager, db }
    }

    /// Whether the transaction's primary still holds the term the write
    /// started under; a primary replaced meanwhile must not commit.
    async fn fenced(&self, id: u64, node: &str) -> Result<bool, Status> {
        let registration = self.manager.registration(id).map_err(status)?;
        if registration.primary != node {
            return Ok(false);
        }
        let current = self.db.term(registration.repository_id).await?;
        Ok(current != Some(registration.term))
    }
}

fn status(e: TransactionError) -> Status {
    match e {
        TransactionError::NotFound(_) => Status::not_found(e.to_string()),
        TransactionError::UnknownVoter { .. } | TransactionError::Invalid(_) => Status::invalid_argument(e.to_string()),
        TransactionError::Finished { .. } => Status::failed_precondition(e.to_string()),
    }
}

fn answer(state: TransactionState) -> Response<VoteTransactionResponse> {
    Response::new(VoteTransactionResponse { state: state.into() })
}

#[tonic::async_trait]
impl RefTransaction for RefTransactionService {
    async fn vote_transaction(
        &self,
        request: Request<VoteTransactionRequest>,
    ) -> Result<Response<VoteTransactionResponse>, Status> {
        let r = request.into_inner();
        let hash: [u8; 20] = r.reference_updates_hash.as_slice().try_into().map_err(|_| {
            Status::invalid_argument(format!("vote hash has {} bytes, want 20", r.reference_updates_hash.len()))
        })?;
        if self.fenced(r.transaction_id, &r.node).await? {
            tracing::warn!(
                transaction_id = r.transaction_id,
                node = %r.node,
                "the primary changed since the write started; aborting its transaction"
            );
            self.manager.stop(r.transaction_id).map_err(status)?;
            return Ok(answer(TransactionState::Abort));
        }
        let vote = self.manager.vote(r.transaction_id, &r.node, hash);
        tokio::pin!(vote);
        let outcome = match tokio::time::timeout(VOTE_TIMEOUT, &mut vote).await {
            Ok(outcome) => outcome,
            Err(_) => {
                let absent = self.manager.cancel_absent(r.transaction_id).map_err(status)?;
                tracing::warn!(transaction_id = r.transaction_id, ?absent, "voters did not vote in time");
                vote.await
            }
        };
        let state = match outcome {
            Ok(Outcome::Committed) => TransactionState::Commit,
            Ok(Outcome::Stopped) => TransactionState::Stop,
            Ok(Outcome::Failed | Outcome::Canceled | Outcome::Undecided) | Err(TransactionError::Finished { .. }) => {
                TransactionState::Abort
            }
            Err(e) => return Err(status(e)),
        };
        Ok(answer(state))
    }

    async fn stop_transaction(
        &self,
        request: Request<StopTransactionRequest>,
    ) -> Result<Response<StopTransactionResponse>, Status> {
        self.manager.stop(request.into_inner().transaction_id).map_err(status)?;
        Ok(Response::new(StopTransactionResponse {}))
    }
}
