//! ServerSignature: the public half of `[git] signing_key`, which GitLab
//! shows to verify commits the node signs. Empty when no key is configured.

use crate::error::{Error, Result};
use crate::service::{Deps, blocking};
use cairn_proto::gitaly::ServerSignatureResponse;

pub(super) async fn handle(deps: &Deps) -> Result<ServerSignatureResponse> {
    let Some(key_path) = deps.config.git.signing_key.clone() else {
        return Ok(ServerSignatureResponse::default());
    };
    blocking(move || {
        let public_key = crate::signing::read_public_key(&key_path)
            .map_err(|e| Error::internal("read signing key", e))?
            .ok_or_else(|| Error::failed_precondition("signing key is neither an OpenSSH nor an OpenPGP key"))?;
        Ok(ServerSignatureResponse { public_key })
    })
    .await
}
