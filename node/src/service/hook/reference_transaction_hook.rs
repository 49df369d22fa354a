//! ReferenceTransactionHook: git reports each reference transaction's
//! state (prepared, committed, aborted) with the changes as stdin. Upstream
//! uses it to vote in Praefect transactions; the node takes part in none
//! yet, so after checking the request it answers success.

use tonic::codegen::BoxStream;
use tonic::{Request, Streaming};

use super::{Failure, payload, read_stdin, stream_hook};
use crate::error::{Error, Result};
use crate::hooks::custom::Chunk;
use crate::service::{Deps, pump};
use cairn_proto::gitaly::reference_transaction_hook_request::State;
use cairn_proto::gitaly::{ExitStatus, ReferenceTransactionHookRequest, ReferenceTransactionHookResponse};

pub(super) async fn handle(
    deps: &Deps,
    req: Request<Streaming<ReferenceTransactionHookRequest>>,
) -> Result<BoxStream<ReferenceTransactionHookResponse>> {
    let mut stream = req.into_inner();
    let first = pump::first(&mut stream).await?;
    deps.storages.repo(first.repository.as_ref())?;
    if State::try_from(first.state).is_err() {
        return Err(Error::invalid_argument("invalid hook state"));
    }
    Ok(stream_hook(
        move |_out| async move {
            let payload = payload(&first.environment_variables)?;
            if !matches!(payload.object_format.as_str(), "sha1" | "sha256" | "") {
                return Err(Failure::Message(format!(
                    "looking up object hash: unknown object format: {:?}",
                    payload.object_format
                )));
            }
            read_stdin(&mut stream, |m: ReferenceTransactionHookRequest| m.stdin).await?;
            Ok(())
        },
        chunk,
        finish,
    ))
}

fn chunk(c: Chunk) -> ReferenceTransactionHookResponse {
    match c {
        Chunk::Stdout(stdout) => ReferenceTransactionHookResponse { stdout, ..Default::default() },
        Chunk::Stderr(stderr) => ReferenceTransactionHookResponse { stderr, ..Default::default() },
    }
}

fn finish(outcome: std::result::Result<(), Failure>) -> Result<ReferenceTransactionHookResponse> {
    match outcome {
        Ok(()) => {
            Ok(ReferenceTransactionHookResponse { exit_status: Some(ExitStatus { value: 0 }), ..Default::default() })
        }
        Err(Failure::Exit(code)) => {
            Ok(ReferenceTransactionHookResponse { exit_status: Some(ExitStatus { value: code }), ..Default::default() })
        }
        Err(Failure::Message(m)) => Err(Error::internal_msg(format!("reference-transaction hook: {m}"))),
    }
}
