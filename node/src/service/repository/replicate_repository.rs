//! ReplicateRepository: makes the target repository a copy of a source
//! repository on another node (named in `gitaly-servers`).
//!
//! A missing (or invalid) target is first built from the source's
//! GetSnapshot in a temporary directory, synchronised there and renamed
//! into place, so a failure leaves no target at all. An existing target is
//! synchronised in place: references by one atomic mirror fetch through
//! gitaly-ssh (`+refs/*:refs/*`, pruned: identical afterwards), then
//! `config`, HEAD and custom hooks, each replaced atomically.
//!
//! Object-pool membership is not replicated: a source's alternates are
//! folded into the snapshot's objects, so the replica stands alone.

use super::internal::{self, ServerInfo};
use crate::client::Connection;
use crate::error::{Error, Result};
use crate::git::{self, GitCommand, Subcommand, custom_hooks, lifecycle, remote, snapshot};
use crate::service::Deps;
use cairn_proto::gitaly::ref_service_client::RefServiceClient;
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::*;
use futures::StreamExt as _;
use std::path::{Path, PathBuf};
use tonic::metadata::MetadataMap;

pub(super) async fn handle(
    deps: &Deps,
    metadata: &MetadataMap,
    req: ReplicateRepositoryRequest,
    correlation_id: Option<&str>,
) -> Result<ReplicateRepositoryResponse> {
    let target = deps.storages.repo_for_create(req.repository.as_ref())?;
    let source = req.source.ok_or_else(|| Error::invalid_argument("source repository cannot be empty"))?;
    if source.storage_name == target.storage {
        return Err(Error::invalid_argument("repository and source have the same storage"));
    }
    let server = internal::server_for(metadata, &source.storage_name)
        .map_err(|e| Error::internal_msg(format!("new client: {e}")))?;
    let conn = internal::connect(&server).await.map_err(|e| Error::internal("new client", e))?;
    // Checked first so that a missing source is a clear NOT_FOUND rather
    // than whatever git says through gitaly-ssh.
    let exists = RepositoryServiceClient::new(conn.channel())
        .repository_exists(RepositoryExistsRequest { repository: Some(source.clone()) })
        .await
        .map_err(|s| Error::internal_msg(format!("checking for repo existence: {}", s.message())))?
        .into_inner()
        .exists;
    if !exists {
        return Err(Error::not_found("invalid source repository"));
    }
    let tmp = deps.storages.root(&target.storage)?.tmp_dir();
    let sync = Sync { deps, conn: &conn, server: &server, source: &source, tmp: &tmp, correlation_id };

    let result = if deps.storages.repo(Some(&target_message(&target))).is_ok() {
        sync.run(&target.path).await
    } else {
        create(&sync, &target.path, &tmp).await
    };
    deps.repos.forget(&target.path);
    result.map(|()| ReplicateRepositoryResponse {})
}

/// Reference locks older than this on a replica being replicated are a
/// killed process's leftovers.
const STALE_LOCK_AGE: std::time::Duration = std::time::Duration::from_secs(30);

fn target_message(target: &crate::storage::RepoPath) -> Repository {
    Repository {
        storage_name: target.storage.clone(),
        relative_path: target.relative_path.clone(),
        ..Default::default()
    }
}

/// Builds the target aside from the source's snapshot, synchronises it
/// there, and moves it into place (replacing an invalid directory).
async fn create(sync: &Sync<'_>, target: &Path, tmp: &Path) -> Result<()> {
    lifecycle::discard_invalid(target, tmp).await.map_err(|e| Error::internal("removing invalid repository", e))?;
    lifecycle::create_seeded(
        target,
        tmp,
        |staged: PathBuf| async move {
            let format = sync.object_format().await?;
            let init = GitCommand::new(Subcommand::Init)
                .flag("--bare")
                .flag("--quiet")
                .flag_value("--object-format", format.as_str())
                .arg(&staged);
            sync.deps.git.run(init, sync.correlation_id).await.map_err(|e| Error::internal("init repository", e))?;
            sync.extract_snapshot(&staged).await?;
            sync.run(&staged).await
        },
        lifecycle::no_vote::<Error>,
    )
    .await
    .map_err(|e: Error| match e.code() {
        tonic::Code::AlreadyExists | tonic::Code::NotFound => e,
        _ => Error::internal_msg(format!("could not create repository from snapshot: {}", e)),
    })
}

/// The pieces of one replication.
struct Sync<'a> {
    deps: &'a Deps,
    conn: &'a Connection,
    server: &'a ServerInfo,
    source: &'a Repository,
    /// The target storage's temporary directory.
    tmp: &'a Path,
    correlation_id: Option<&'a str>,
}

impl Sync<'_> {
    fn repository_client(&self) -> RepositoryServiceClient<crate::client::AuthChannel> {
        RepositoryServiceClient::new(self.conn.channel())
    }

    async fn object_format(&self) -> Result<git::ObjectFormat> {
        let format = self
            .repository_client()
            .object_format(ObjectFormatRequest { repository: Some(self.source.clone()) })
            .await
            .map_err(|s| Error::internal_msg(format!("detecting object format: {}", s.message())))?
            .into_inner()
            .format;
        Ok(match ObjectFormat::try_from(format) {
            Ok(ObjectFormat::Sha256) => git::ObjectFormat::Sha256,
            _ => git::ObjectFormat::Sha1,
        })
    }

    /// Streams GetSnapshot into the (fresh) repository at `repo`.
    async fn extract_snapshot(&self, repo: &Path) -> Result<()> {
        let mut stream = self
            .repository_client()
            .get_snapshot(GetSnapshotRequest { repository: Some(self.source.clone()) })
            .await
            .map_err(|s| Error::internal_msg(format!("extracting snapshot: get snapshot: {}", s.message())))?
            .into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let dest = repo.to_owned();
        let extractor = tokio::task::spawn_blocking(move || {
            snapshot::extract(ChannelReader { rx, current: std::io::Cursor::new(Vec::new()) }, &dest)
        });
        let mut received = Ok(());
        while let Some(msg) = stream.next().await {
            match msg {
                // A send fails only when extraction stopped; its error wins.
                Ok(m) => {
                    if tx.send(m.data).await.is_err() {
                        break;
                    }
                }
                Err(s) => {
                    received = Err(Error::internal_msg(format!("extracting snapshot: {}", s.message())));
                    break;
                }
            }
        }
        drop(tx);
        let extracted = extractor.await.map_err(|e| Error::internal("extract snapshot", e))?;
        received?;
        extracted.map_err(|e| Error::internal_msg(format!("extracting snapshot: {}", crate::error::error_chain(&e))))
    }

    /// Brings the repository at `repo` in line with the source.
    async fn run(&self, repo: &Path) -> Result<()> {
        // A replica whose node was killed mid-write keeps the reference
        // locks; the mirror fetch below would fail on them forever.
        let target = repo.to_owned();
        let removed = crate::service::blocking(move || {
            Ok(git::housekeeping::remove_stale_reference_locks(&target, STALE_LOCK_AGE))
        })
        .await?;
        if removed > 0 {
            tracing::warn!(removed, repo = %repo.display(), "removed stale reference locks before replicating");
        }
        let remote = internal::internal_remote(self.deps, self.server, self.source)?;
        remote::mirror_internal(&self.deps.git, repo, &remote, self.correlation_id).await.map_err(|e| {
            Error::internal_msg(format!(
                "replicating repository: synchronizing references: fetch internal remote: {}",
                crate::error::error_chain(&e)
            ))
        })?;
        self.sync_config(repo).await?;
        self.sync_head(repo).await?;
        self.sync_custom_hooks(repo).await
    }

    async fn sync_config(&self, repo: &Path) -> Result<()> {
        let fail = |m: String| Error::internal_msg(format!("replicating repository: synchronizing gitconfig: {m}"));
        let mut stream = self
            .repository_client()
            .get_config(GetConfigRequest { repository: Some(self.source.clone()) })
            .await
            .map_err(|s| fail(s.message().to_owned()))?
            .into_inner();
        let mut config = Vec::new();
        while let Some(msg) = stream.next().await {
            config.extend_from_slice(&msg.map_err(|s| fail(s.message().to_owned()))?.data);
        }
        // A source without a config file keeps ours (git init's).
        if config.is_empty() {
            return Ok(());
        }
        let path = repo.join("config");
        crate::service::blocking(move || {
            snapshot::replace_file(&path, &config).map_err(|e| fail(crate::error::error_chain(&e)))
        })
        .await
    }

    async fn sync_head(&self, repo: &Path) -> Result<()> {
        let fail = |m: String| Error::internal_msg(format!("replicating repository: setting default branch: {m}"));
        let wanted = RefServiceClient::new(self.conn.channel())
            .find_default_branch_name(FindDefaultBranchNameRequest {
                repository: Some(self.source.clone()),
                head_only: true,
            })
            .await
            .map_err(|s| fail(s.message().to_owned()))?
            .into_inner()
            .name;
        let wanted = String::from_utf8(wanted).map_err(|_| fail("HEAD is not UTF-8".to_owned()))?;
        if wanted.is_empty() || !git::refs::valid_ref_name(wanted.as_bytes()) {
            return Ok(());
        }
        let current = remote::head_target(&self.deps.git, repo, self.correlation_id)
            .await
            .map_err(|e| fail(crate::error::error_chain(&e)))?;
        if current != wanted {
            git::refs::set_head(&self.deps.git, repo, &wanted, None, self.correlation_id)
                .await
                .map_err(|e| fail(crate::error::error_chain(&e)))?;
        }
        Ok(())
    }

    async fn sync_custom_hooks(&self, repo: &Path) -> Result<()> {
        let fail = |m: String| Error::internal_msg(format!("replicating repository: synchronizing custom hooks: {m}"));
        let mut stream = self
            .repository_client()
            .get_custom_hooks(GetCustomHooksRequest { repository: Some(self.source.clone()) })
            .await
            .map_err(|s| fail(s.message().to_owned()))?
            .into_inner();
        let mut archive = Vec::new();
        while let Some(msg) = stream.next().await {
            archive.extend_from_slice(&msg.map_err(|s| fail(s.message().to_owned()))?.data);
        }
        let repo = repo.to_owned();
        let tmp = self.tmp.to_owned();
        crate::service::blocking(move || {
            // Nothing to copy and nothing to remove: leave the repository alone.
            if archive.is_empty() && !repo.join(custom_hooks::DIR).exists() {
                return Ok(());
            }
            custom_hooks::replace(&repo, &tmp, &archive).map_err(|e| fail(crate::error::error_chain(&e)))
        })
        .await
    }
}

/// A blocking reader over the chunks an async task receives.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    current: std::io::Cursor<Vec<u8>>,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = std::io::Cursor::new(chunk),
                None => return Ok(0),
            }
        }
    }
}
