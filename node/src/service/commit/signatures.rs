//! GetCommitSignatures and FilterShasWithSignatures. Signatures and signed
//! text are split out of the commit object exactly as git does for
//! verification (the object without its `gpgsig` header).

use crate::error::{Error, Result};
use crate::git::{commit, signature};
use crate::service::{CHUNK_SIZE, Deps, convert};
use cairn_proto::gitaly::get_commit_signatures_response::Signer;
use cairn_proto::gitaly::{
    FilterShasWithSignaturesRequest, FilterShasWithSignaturesResponse, GetCommitSignaturesRequest,
    GetCommitSignaturesResponse,
};
use tonic::Streaming;
use tonic::codegen::BoxStream;

/// For each commit id: a message with the id, signature, signer, author
/// and committer, then the signed text in 128 KiB messages. Unknown and
/// unsigned commits are skipped. The signer is SIGNER_SYSTEM for a good
/// signature by the node's own `[git] signing_key` (an SSH key), else
/// SIGNER_USER.
pub(super) async fn get_commit_signatures(
    deps: &Deps,
    req: GetCommitSignaturesRequest,
) -> Result<BoxStream<GetCommitSignaturesResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    if req.commit_ids.is_empty() {
        return Err(Error::invalid_argument("empty CommitIds"));
    }
    let hex_len = deps.read_at(path.clone(), |repo, _| Ok(repo.object_format().hex_len())).await?;
    for id in &req.commit_ids {
        if id.len() != hex_len || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid_argument(format!("invalid object ID: {id:?}")));
        }
    }
    let system_key = match &deps.config.git.signing_key {
        Some(key) => {
            let key = key.clone();
            crate::service::blocking(move || Ok(crate::signing::read_public_key(&key).ok().flatten())).await?
        }
        None => None,
    };
    let git = deps.git.clone();
    Ok(deps.stream_at(path, move |repo, path, sink| {
        let runtime = tokio::runtime::Handle::current();
        let scratch = match system_key {
            Some(_) => Some(tempfile::tempdir().map_err(|e| Error::internal("create scratch directory", e))?),
            None => None,
        };
        for id in &req.commit_ids {
            let Some((oid, raw)) = commit::find_raw(repo, id.as_bytes())? else { continue };
            let signed = signature::extract(&raw);
            let Some(sig) = signed.signatures.into_iter().next() else { continue };
            let parsed = crate::git::objects::parse_commit(&oid, &raw);
            // Only a signature naming the node's key is checked, by git.
            let system = match (&system_key, &scratch) {
                (Some(key), Some(scratch)) if crate::signing::signature_public_key(&sig).as_ref() == Some(key) => {
                    let id = oid.to_string();
                    let check = signature::verified_by(&git, &path.path, &id, key, scratch.path(), None);
                    runtime.block_on(check).map_err(|e| Error::internal("verify commit signature", e))?
                }
                _ => false,
            };
            sink.send(GetCommitSignaturesResponse {
                commit_id: oid.to_string(),
                signature: sig,
                signer: if system { Signer::System } else { Signer::User }.into(),
                author: parsed.author.as_ref().map(convert::author),
                committer: parsed.committer.as_ref().map(convert::author),
                signed_text: Vec::new(),
            })?;
            for chunk in signed.payload.chunks(CHUNK_SIZE) {
                sink.send(GetCommitSignaturesResponse { signed_text: chunk.to_vec(), ..Default::default() })?;
            }
        }
        Ok(())
    }))
}

/// Answers each request with the ids among its `shas` that name signed
/// commits.
pub(super) async fn filter_shas_with_signatures(
    deps: &Deps,
    mut requests: Streaming<FilterShasWithSignaturesRequest>,
) -> Result<BoxStream<FilterShasWithSignaturesResponse>> {
    let Some(first) = requests.message().await.map_err(|s| Error::new(s.code(), s.message().to_owned()))? else {
        return Ok(Box::pin(futures::stream::empty()));
    };
    let path = deps.storages.repo(first.repository.as_ref())?;
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let runtime = tokio::runtime::Handle::current();
        let mut request = first;
        loop {
            let mut shas = Vec::new();
            for sha in request.shas {
                if let Some(c) = commit::find(repo, &sha)?
                    && c.signature != crate::git::objects::SignatureKind::None
                {
                    shas.push(sha);
                }
            }
            sink.send(FilterShasWithSignaturesResponse { shas })?;
            match runtime.block_on(requests.message()) {
                Ok(Some(next)) => request = next,
                Ok(None) => return Ok(()),
                Err(s) => return Err(Error::new(s.code(), s.message().to_owned())),
            }
        }
    }))
}
