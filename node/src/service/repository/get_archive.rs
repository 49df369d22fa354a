//! GetArchive: a tar, tar.gz, tar.bz2 or zip archive of a revision's tree
//! (or a directory of it), written in-process and streamed in 128 KiB
//! messages as it is produced.

use crate::error::{Error, Result};
use crate::git::archive::{self, Format, Refusal};
use crate::git::{refs, search};
use crate::service::stream::Sink;
use crate::service::{CHUNK_SIZE, Deps};
use cairn_proto::gitaly::get_archive_request::Format as ProtoFormat;
use cairn_proto::gitaly::{GetArchiveRequest, GetArchiveResponse};
use tonic::codegen::BoxStream;

pub(super) async fn handle(deps: &Deps, req: GetArchiveRequest) -> Result<BoxStream<GetArchiveResponse>> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    let escapes = || Error::invalid_argument("relative path escapes root directory");
    let archive_path = search::clean_path(&req.path).ok_or_else(escapes)?;
    let exclude = req.exclude.iter().map(|e| search::clean_path(e).ok_or_else(escapes)).collect::<Result<Vec<_>>>()?;
    refs::validate_revision(req.commit_id.as_bytes())
        .map_err(|e| Error::invalid_argument(format!("invalid commitId: {e}")))?;
    let format = match ProtoFormat::try_from(req.format) {
        Ok(ProtoFormat::Zip) => Format::Zip,
        Ok(ProtoFormat::Tar) => Format::Tar,
        Ok(ProtoFormat::TarGz) => Format::TarGz,
        Ok(ProtoFormat::TarBz2) => Format::TarBz2,
        Err(_) => return Err(Error::invalid_argument("invalid format")),
    };
    let mut prefix = req.prefix.into_bytes();
    prefix.push(b'/');
    let request = archive::Request {
        revision: req.commit_id.into_bytes(),
        path: archive_path,
        exclude,
        elide_path: req.elide_path,
        prefix,
        format,
        include_lfs_blobs: req.include_lfs_blobs,
    };
    let plan = deps
        .read_at(path.clone(), move |repo, _| {
            archive::plan(repo, &request)?.map_err(|refusal| match refusal {
                Refusal::PathMissing => Error::failed_precondition("path doesn't exist"),
                Refusal::ExcludeMissing(i) => Error::failed_precondition(format!("exclude[{i}] doesn't exist")),
                Refusal::ExcludeOutsidePath { exclude, path } => Error::invalid_argument(format!(
                    "invalid exclude: {:?} is not a subdirectory of {:?}",
                    String::from_utf8_lossy(&exclude),
                    String::from_utf8_lossy(&path)
                )),
                // Upstream's object lookup fails here with git's "object not
                // found", which reaches the client without a code.
                Refusal::RevisionMissing => Error::new(tonic::Code::Unknown, "object not found"),
                Refusal::NotATree => Error::failed_precondition("path is not a directory"),
            })
        })
        .await?;
    Ok(deps.stream_at(path, move |repo, _, sink| {
        let mut out = SinkWriter::new(sink, |data| GetArchiveResponse { data });
        archive::write(repo, &plan, &mut out)?;
        out.finish()
    }))
}

/// Bytes written to it leave as messages of [`CHUNK_SIZE`] bytes (the last
/// one shorter); a client that went away fails the next write.
pub(super) struct SinkWriter<'a, T> {
    sink: &'a Sink<T>,
    buf: Vec<u8>,
    make: fn(Vec<u8>) -> T,
}

impl<'a, T> SinkWriter<'a, T> {
    pub(super) fn new(sink: &'a Sink<T>, make: fn(Vec<u8>) -> T) -> Self {
        Self { sink, buf: Vec::with_capacity(CHUNK_SIZE), make }
    }

    fn send_full(&mut self) -> Result<()> {
        while self.buf.len() >= CHUNK_SIZE {
            let rest = self.buf.split_off(CHUNK_SIZE);
            let full = std::mem::replace(&mut self.buf, rest);
            self.sink.send((self.make)(full))?;
        }
        Ok(())
    }

    /// Sends what is left.
    pub(super) fn finish(mut self) -> Result<()> {
        self.send_full()?;
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.sink.send((self.make)(rest))?;
        }
        Ok(())
    }
}

impl<T> std::io::Write for SinkWriter<'_, T> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.send_full().map_err(|e| std::io::Error::new(std::io::ErrorKind::BrokenPipe, e.to_string()))?;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
