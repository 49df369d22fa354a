//! Bundles sent by clients (CreateRepositoryFromBundle, FetchBundle):
//! spooled to a file in the storage's temporary area, since git reads
//! bundles from files only.

use crate::error::{Error, Result};
use futures::{Stream, StreamExt as _};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt as _;

/// A spooled bundle; the file goes away with it.
#[derive(Debug)]
pub(super) struct SpooledBundle {
    dir: tempfile::TempDir,
}

impl SpooledBundle {
    pub(super) fn path(&self) -> PathBuf {
        self.dir.path().join("repo.bundle")
    }
}

/// Writes `first` and the data of every further message to a new file
/// below `tmp_root`.
pub(super) async fn spool(
    tmp_root: &Path,
    first: Vec<u8>,
    rest: impl Stream<Item = std::result::Result<Vec<u8>, tonic::Status>>,
) -> Result<SpooledBundle> {
    std::fs::create_dir_all(tmp_root).map_err(|e| Error::internal("create temp bundle", e))?;
    let dir = tempfile::Builder::new()
        .prefix("bundle-")
        .tempdir_in(tmp_root)
        .map_err(|e| Error::internal("create temp bundle", e))?;
    let spooled = SpooledBundle { dir };
    let mut file =
        tokio::fs::File::create(spooled.path()).await.map_err(|e| Error::internal("create temp bundle", e))?;
    file.write_all(&first).await.map_err(|e| Error::internal("create temp bundle", e))?;
    let mut rest = std::pin::pin!(rest);
    while let Some(data) = rest.next().await {
        let data = data.map_err(|e| Error::internal_msg(format!("create temp bundle: {}", e.message())))?;
        file.write_all(&data).await.map_err(|e| Error::internal("create temp bundle", e))?;
    }
    file.flush().await.map_err(|e| Error::internal("create temp bundle", e))?;
    Ok(spooled)
}
