//! PostReceivePack: `git receive-pack --stateless-rpc` fed by the body of
//! `POST /git-receive-pack`, running the push's hooks through gitaly-hooks
//! and HookService (protocol `http`); git's receive quarantine stays on.

use tonic::codegen::BoxStream;
use tonic::{Request, Streaming};

use crate::error::{Error, Result};
use crate::service::pump::{self, Band, Messages, OnDisconnect};
use crate::service::receive::{ReceivePack, final_vote, require_gl_id};
use crate::service::{Deps, correlation_id};
use cairn_proto::gitaly::{PostReceivePackRequest, PostReceivePackResponse};

pub(super) async fn handle(
    deps: &Deps,
    req: Request<Streaming<PostReceivePackRequest>>,
) -> Result<BoxStream<PostReceivePackResponse>> {
    let cid = correlation_id(&req);
    let metadata = req.metadata().clone();
    let transaction = crate::transaction::from_request(&req)?;
    let mut stream = req.into_inner();
    let first = pump::first(&mut stream).await?;
    require_gl_id(&first.gl_id)?;
    if !first.data.is_empty() {
        return Err(Error::invalid_argument("non-empty Data"));
    }
    let git = ReceivePack {
        repository: first.repository.as_ref(),
        gl_id: &first.gl_id,
        gl_username: &first.gl_username,
        git_config_options: &first.git_config_options,
        git_protocol: &first.git_protocol,
        protocol: "http",
        stateless: true,
        transaction: transaction.clone(),
    }
    .start(deps, &metadata, cid.as_deref())
    .await?
    .map_err(|e| Error::failed_precondition("spawning receive-pack").with_source(e))?;
    let repository = first.repository.clone().unwrap_or_default();
    let voting = transaction.map(|t| deps.transactions.voting(t, &repository));
    let (tx, responses) = pump::channel();
    tokio::spawn(async move {
        let mut out = Messages { tx: tx.clone(), make: message };
        let input = pump::input(stream, |m: PostReceivePackRequest| m.data);
        let error = match pump::run(git, input, &mut out, None, OnDisconnect::Drain).await {
            Ok(f) => match f.exit {
                None => match final_vote(voting.as_ref()).await {
                    Ok(()) => return,
                    Err(e) => e,
                },
                Some(code) => {
                    Error::failed_precondition(pump::exit_message("waiting for receive-pack", code, &f.stderr))
                }
            },
            Err(e) => e.into_error(),
        };
        let _ = tx.send(Err(error.into())).await;
    });
    Ok(responses)
}

fn message(band: Band, data: Vec<u8>) -> Option<PostReceivePackResponse> {
    (band == Band::Stdout).then_some(PostReceivePackResponse { data })
}
