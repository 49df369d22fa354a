//! GetSnapshot: a tar archive of the repository's references and objects
//! (see `git::snapshot` for what is in it), streamed as it is built.

use crate::error::{Error, Result};
use crate::git::snapshot;
use crate::service::stream::{Sink, blocking_stream};
use crate::service::{CHUNK_SIZE, Deps};
use cairn_proto::gitaly::{GetSnapshotRequest, GetSnapshotResponse};
use tonic::codegen::BoxStream;

pub(super) async fn handle(deps: &Deps, req: GetSnapshotRequest) -> Result<BoxStream<GetSnapshotResponse>> {
    let repo = deps.storages.repo(req.repository.as_ref())?;
    Ok(blocking_stream(move |sink| {
        let mut out = ChunkWriter { sink, buf: Vec::with_capacity(CHUNK_SIZE), gone: false };
        let written = snapshot::write(&repo.path, &repo.storage_root, &mut out);
        if out.gone {
            return Err(Error::canceled("client went away"));
        }
        written.map_err(|e| Error::internal("building snapshot failed", e))?;
        out.flush_chunk()
    }))
}

/// Cuts the archive into messages of [`CHUNK_SIZE`] bytes.
struct ChunkWriter<'a> {
    sink: &'a Sink<GetSnapshotResponse>,
    buf: Vec<u8>,
    gone: bool,
}

impl ChunkWriter<'_> {
    fn flush_chunk(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_SIZE));
        self.sink.send(GetSnapshotResponse { data }).inspect_err(|_| self.gone = true)
    }
}

impl std::io::Write for ChunkWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK_SIZE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_SIZE {
            self.flush_chunk().map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Chunks go out when full or at the end; the archive's own flush
        // must not cut a short message.
        Ok(())
    }
}
