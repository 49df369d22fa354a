//! PackObjectsHookWithSidechannel: what gitaly-hooks asks when upload-pack
//! runs it as `uploadpack.packObjectsHook`. The request names the
//! repository and pack-objects' arguments; git's stdin arrives on the
//! hook's Unix-socket sidechannel, and the pack goes back on it as sideband
//! pkt-lines, from the pack-objects cache when the same request was seen.
//!
//! The cache key is a SHA-256 over the repository, the arguments, the git
//! protocol and the stdin (the wanted and common objects), so a push that
//! moves a ref makes the next clone's key differ.

use std::path::PathBuf;
use std::sync::Arc;

use sha2::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tonic::Request;

use crate::error::{Error, Result};
use crate::git::CommandFactory;
use crate::git::pack_objects::{PackObjectsArgs, generate};
use crate::hooks::pack_cache::{CacheError, PackCache, Producer};
use crate::hooks::sidechannel::{self, DialError};
use crate::service::{Deps, correlation_id};
use cairn_proto::gitaly::{PackObjectsHookWithSidechannelRequest, PackObjectsHookWithSidechannelResponse};

pub(super) async fn handle(
    deps: &Deps,
    req: Request<PackObjectsHookWithSidechannelRequest>,
) -> Result<PackObjectsHookWithSidechannelResponse> {
    let cid = correlation_id(&req);
    let metadata = req.metadata().clone();
    let req = req.into_inner();
    let path = deps.storages.repo(req.repository.as_ref())?;
    let args = PackObjectsArgs::parse(&req.args).map_err(|e| {
        Error::invalid_argument(format!("invalid pack-objects command: {:?}: {e}", req.args)).with_source(e)
    })?;
    let conn = sidechannel::dial(&metadata).await.map_err(|e| match e {
        DialError::InvalidAddress(_) => Error::invalid_argument(e.to_string()),
        DialError::Connect(..) => Error::internal("get side-channel", e),
    })?;
    let (mut reader, mut writer) = conn.into_split();
    let mut stdin = Vec::new();
    reader.read_to_end(&mut stdin).await.map_err(|e| Error::internal("pack objects hook: read stdin", e))?;
    let key = cache_key(&req, &stdin);
    let job = Box::new(Job { git: deps.git.clone(), repo: path.path.clone(), args, stdin: Arc::new(stdin), cid });
    let result = match &deps.pack_cache {
        Some(cache) => serve(cache, &key, &mut writer, job).await,
        // Without a cache (an upload-pack configured elsewhere, or a direct
        // call) every request generates its own pack.
        None => job.produce(&mut writer).await.map(|_| ()).map_err(CacheError::Generate),
    };
    match result {
        Ok(()) => {}
        Err(CacheError::Write(e)) => return Err(Error::canceled("pack objects hook: client went away").with_source(e)),
        Err(e) => return Err(Error::internal("pack objects hook", e)),
    }
    writer.shutdown().await.map_err(|e| Error::internal("close side-channel", e))?;
    Ok(PackObjectsHookWithSidechannelResponse {})
}

async fn serve(
    cache: &PackCache,
    key: &str,
    out: &mut (dyn AsyncWrite + Unpin + Send),
    job: Box<Job>,
) -> std::result::Result<(), CacheError> {
    let fetched = cache.fetch(key, out, job).await?;
    tracing::debug!(key, served_bytes = fetched.served, hit = !fetched.created, "pack_objects_cache");
    Ok(())
}

/// What determines the pack's bytes, and nothing else (not who fetches).
fn cache_key(req: &PackObjectsHookWithSidechannelRequest, stdin: &[u8]) -> String {
    let prefix = PackObjectsHookWithSidechannelRequest {
        repository: req.repository.clone(),
        args: req.args.clone(),
        git_protocol: req.git_protocol.clone(),
        ..Default::default()
    };
    let mut h = sha2::Sha256::new();
    h.update(prost::Message::encode_to_vec(&prefix));
    h.update(stdin);
    hex::encode(h.finalize())
}

/// One `git pack-objects` run.
struct Job {
    git: CommandFactory,
    repo: PathBuf,
    args: PackObjectsArgs,
    stdin: Arc<Vec<u8>>,
    cid: Option<String>,
}

impl Producer for Job {
    fn produce<'a>(
        self: Box<Self>,
        out: &'a mut (dyn AsyncWrite + Unpin + Send),
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<u64, String>> + Send + 'a>> {
        Box::pin(async move {
            generate(&self.git, &self.repo, &self.args, self.stdin.clone(), self.cid.as_deref(), out)
                .await
                .map_err(|e| crate::error::error_chain(&e))
        })
    }
}
