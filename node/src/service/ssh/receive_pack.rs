//! SSHReceivePack: `git receive-pack` fed by the client's push, running the
//! push's hooks through gitaly-hooks and HookService (protocol `ssh`).
//! git's receive quarantine stays on, so a failed, rejected or abandoned
//! push leaves neither objects nor refs behind.

use tonic::codegen::BoxStream;
use tonic::{Request, Streaming};

use crate::error::{Error, Result};
use crate::service::pump::{self, Band, HUNG_UP, Messages, OnDisconnect};
use crate::service::receive::{ReceivePack, final_vote, require_gl_id};
use crate::service::{Deps, correlation_id};
use cairn_proto::gitaly::{ExitStatus, SshReceivePackRequest, SshReceivePackResponse};

pub(super) async fn handle(
    deps: &Deps,
    req: Request<Streaming<SshReceivePackRequest>>,
) -> Result<BoxStream<SshReceivePackResponse>> {
    let cid = correlation_id(&req);
    let metadata = req.metadata().clone();
    let transaction = crate::transaction::from_request(&req)?;
    let mut stream = req.into_inner();
    let first = pump::first(&mut stream).await?;
    // Upstream's order: the user, the data, then the repository.
    require_gl_id(&first.gl_id)?;
    if !first.stdin.is_empty() {
        return Err(Error::invalid_argument("non-empty data in first request"));
    }
    let git = ReceivePack {
        repository: first.repository.as_ref(),
        gl_id: &first.gl_id,
        gl_username: &first.gl_username,
        git_config_options: &first.git_config_options,
        git_protocol: &first.git_protocol,
        protocol: "ssh",
        stateless: false,
        transaction: transaction.clone(),
    }
    .start(deps, &metadata, cid.as_deref())
    .await?
    .map_err(|e| Error::internal("start cmd", e))?;
    let repository = first.repository.clone().unwrap_or_default();
    let voting = transaction.map(|t| deps.transactions.voting(t, &repository));
    let (tx, responses) = pump::channel();
    tokio::spawn(async move {
        let mut out = Messages { tx: tx.clone(), make: message };
        let input = pump::input(stream, |m: SshReceivePackRequest| m.stdin);
        let error = match pump::run(git, input, &mut out, None, OnDisconnect::Drain).await {
            Ok(f) => match f.exit {
                None => match final_vote(voting.as_ref()).await {
                    Ok(()) => return,
                    Err(e) => e,
                },
                Some(value) => {
                    let exit_status = Some(ExitStatus { value });
                    let _ = tx.send(Ok(SshReceivePackResponse { exit_status, ..Default::default() })).await;
                    if f.stderr == HUNG_UP {
                        Error::canceled("user canceled the push")
                    } else {
                        Error::internal_msg(pump::exit_message("receive-pack", value, &f.stderr))
                    }
                }
            },
            Err(e) => e.into_error(),
        };
        let _ = tx.send(Err(error.into())).await;
    });
    Ok(responses)
}

fn message(band: Band, data: Vec<u8>) -> Option<SshReceivePackResponse> {
    Some(match band {
        Band::Stdout => SshReceivePackResponse { stdout: data, ..Default::default() },
        Band::Stderr => SshReceivePackResponse { stderr: data, ..Default::default() },
    })
}
