//! ReferenceTransactionHook: git reports each reference transaction's
//! state (prepared, committed, aborted) with the changes as stdin
//! (`<old> <new> <ref>` lines). Inside a router's transaction the node votes
//! the SHA-1 of exactly those bytes: in prepared (where a refusal makes git
//! abort the update) and in committed (telling the router it happened).
//! A failed vote is an RPC error, so gitaly-hooks exits non-zero.

use tonic::codegen::BoxStream;
use tonic::{Request, Streaming};

use super::{Failure, payload, read_stdin, stream_hook};
use crate::error::{Error, Result};
use crate::hooks::custom::Chunk;
use crate::service::{Deps, pump};
use crate::transaction::{Phase, vote_of};
use cairn_proto::gitaly::reference_transaction_hook_request::State;
use cairn_proto::gitaly::{ExitStatus, ReferenceTransactionHookRequest, ReferenceTransactionHookResponse};

pub(super) async fn handle(
    deps: &Deps,
    req: Request<Streaming<ReferenceTransactionHookRequest>>,
) -> Result<BoxStream<ReferenceTransactionHookResponse>> {
    let mut stream = req.into_inner();
    let first = pump::first(&mut stream).await?;
    deps.storages.repo(first.repository.as_ref())?;
    let Ok(state) = State::try_from(first.state) else {
        return Err(Error::invalid_argument("invalid hook state"));
    };
    let deps = deps.clone();
    Ok(stream_hook(
        move |_out| async move {
            let payload = payload(&first.environment_variables)?;
            let hex_len = match payload.object_format.as_str() {
                "sha1" | "" => 40,
                "sha256" => 64,
                other => {
                    return Err(Failure::Message(format!("looking up object hash: unknown object format: {other:?}")));
                }
            };
            let changes = read_stdin(&mut stream, |m: ReferenceTransactionHookRequest| m.stdin).await?;
            let phase = match state {
                State::Prepared => Phase::Prepared,
                State::Committed => Phase::Committed,
                State::Aborted => return Ok(()),
            };
            let Some(tx) = payload.transaction else { return Ok(()) };
            if force_deletions_only(&changes, hex_len) {
                return Ok(());
            }
            let repository = first.repository.unwrap_or_default();
            deps.transactions.vote(&tx, &repository, vote_of(&changes), phase).await.map_err(Failure::Vote)
        },
        chunk,
        finish,
    ))
}

/// Whether every change force-deletes a reference (zero old and new value).
/// git deletes references that are also packed in a transaction of their
/// own on packed-refs, which exists or not depending on each replica's
/// packing state; the same deletions follow in the loose-references
/// transaction, which is voted on instead.
fn force_deletions_only(changes: &[u8], hex_len: usize) -> bool {
    let zero = "0".repeat(hex_len);
    let prefix = format!("{zero} {zero} ");
    changes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).all(|l| l.starts_with(prefix.as_bytes()))
}

fn chunk(c: Chunk) -> ReferenceTransactionHookResponse {
    match c {
        Chunk::Stdout(stdout) => ReferenceTransactionHookResponse { stdout, ..Default::default() },
        Chunk::Stderr(stderr) => ReferenceTransactionHookResponse { stderr, ..Default::default() },
    }
}

/// The final answer; a failed vote is an RPC error with upstream's code
/// for it (ABORTED, FAILED_PRECONDITION when stopped, else INTERNAL).
fn finish(outcome: std::result::Result<(), Failure>) -> Result<ReferenceTransactionHookResponse> {
    match outcome {
        Ok(()) => {
            Ok(ReferenceTransactionHookResponse { exit_status: Some(ExitStatus { value: 0 }), ..Default::default() })
        }
        Err(Failure::Exit(code)) => {
            Ok(ReferenceTransactionHookResponse { exit_status: Some(ExitStatus { value: code }), ..Default::default() })
        }
        Err(Failure::Message(m) | Failure::Denied(m)) => {
            Err(Error::internal_msg(format!("reference-transaction hook: {m}")))
        }
        Err(Failure::Vote(e)) => {
            let e = Error::from(e);
            Err(Error::new(e.code(), format!("reference-transaction hook: error voting on transaction: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::force_deletions_only;

    #[test]
    fn packed_refs_cleanup_is_recognised() {
        let zero = "0".repeat(40);
        let one = "1".repeat(40);
        let deletions = format!("{zero} {zero} refs/heads/a\n{zero} {zero} refs/heads/b\n");
        assert!(force_deletions_only(deletions.as_bytes(), 40));
        let checked = format!("{one} {zero} refs/heads/a\n");
        assert!(!force_deletions_only(checked.as_bytes(), 40));
        let mixed = format!("{zero} {zero} refs/heads/a\n{zero} {one} refs/heads/b\n");
        assert!(!force_deletions_only(mixed.as_bytes(), 40));
        // An empty transaction has nothing to vote on either (upstream's rule).
        assert!(force_deletions_only(b"", 40));
    }
}
