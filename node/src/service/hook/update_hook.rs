//! UpdateHook: once per updated reference (`ref`, old and new value), the
//! repository's and global custom update hooks run with those three
//! arguments. Unlike the receive hooks, problems other than a hook's exit
//! code are RPC errors (INTERNAL), as upstream answers.

use tonic::Request;
use tonic::codegen::BoxStream;

use super::{Failure, Run, payload, stream_hook, transactional};
use crate::error::{Error, Result};
use crate::hooks::custom::Chunk;
use crate::service::Deps;
use cairn_proto::gitaly::{ExitStatus, UpdateHookRequest, UpdateHookResponse};

pub(super) async fn handle(deps: &Deps, req: Request<UpdateHookRequest>) -> Result<BoxStream<UpdateHookResponse>> {
    let req = req.into_inner();
    let path = deps.storages.repo(req.repository.as_ref())?;
    let deps = deps.clone();
    Ok(stream_hook(
        move |out| async move {
            let payload = payload(&req.environment_variables)?;
            let repository = req.repository.clone().unwrap_or_default();
            let run = run(&deps, &path.path, &payload, &req, out);
            transactional(&deps, &payload, &repository, "update", run).await
        },
        chunk,
        finish,
    ))
}

/// The update hook's own work: checks, then the custom update hooks.
pub(super) async fn run(
    deps: &Deps,
    repo: &std::path::Path,
    payload: &crate::hooks::payload::HooksPayload,
    req: &UpdateHookRequest,
    out: tokio::sync::mpsc::Sender<Chunk>,
) -> std::result::Result<(), Failure> {
    let fail = |m: String| Err(Failure::Message(m));
    let reference = String::from_utf8_lossy(&req.r#ref).into_owned();
    if reference.is_empty() {
        return fail("hook got no reference".into());
    }
    let hex_len = if payload.object_format == "sha256" { 64 } else { 40 };
    for (what, value) in [("old", &req.old_value), ("new", &req.new_value)] {
        if value.len() != hex_len || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
            return fail(format!("hook got invalid {what} value: invalid object ID: {value:?}"));
        }
    }
    if payload.user_details.is_none() {
        return fail("payload has no receive hooks info".into());
    }
    let run = Run { deps, repo, payload, env: &req.environment_variables, push_options: &[] };
    let args = [reference, req.old_value.clone(), req.new_value.clone()];
    run.custom("update", &args, &[], &out).await
}

fn chunk(c: Chunk) -> UpdateHookResponse {
    match c {
        Chunk::Stdout(stdout) => UpdateHookResponse { stdout, ..Default::default() },
        Chunk::Stderr(stderr) => UpdateHookResponse { stderr, ..Default::default() },
    }
}

fn finish(outcome: std::result::Result<(), Failure>) -> Result<UpdateHookResponse> {
    let value = match outcome {
        Ok(()) => 0,
        Err(Failure::Exit(code)) => code,
        Err(Failure::Message(m) | Failure::Denied(m)) => return Err(Error::internal_msg(m)),
        Err(Failure::Vote(e)) => return Err(Error::internal_msg(crate::error::error_chain(&e))),
    };
    Ok(UpdateHookResponse { exit_status: Some(ExitStatus { value }), ..Default::default() })
}
