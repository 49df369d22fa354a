//! The `.gitaly-metadata` file at each storage root. It carries a random
//! filesystem id that GitLab compares across storages to detect that two
//! storage names share one disk.

use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::Path;

/// File name GitLab also knows (`GITALY_METADATA_FILENAME`).
pub const FILE_NAME: &str = ".gitaly-metadata";

#[derive(Debug, Serialize, Deserialize)]
struct Metadata {
    gitaly_filesystem_id: String,
}

/// Reads the filesystem id, if the file exists and parses.
pub fn read_filesystem_id(root: &Path) -> Option<String> {
    let bytes = std::fs::read(root.join(FILE_NAME)).ok()?;
    serde_json::from_slice::<Metadata>(&bytes).ok().map(|m| m.gitaly_filesystem_id)
}

/// Returns the filesystem id, creating the file first if needed. The file is
/// written to a temporary name and renamed, so a crash never leaves a
/// half-written file, and a concurrent writer's file is kept.
pub fn ensure(root: &Path) -> std::io::Result<String> {
    if let Some(id) = read_filesystem_id(root) {
        return Ok(id);
    }
    let id = uuid::Uuid::new_v4().to_string();
    let mut tmp = tempfile::Builder::new().prefix(".gitaly-metadata.").tempfile_in(root)?;
    serde_json::to_writer(&mut tmp, &Metadata { gitaly_filesystem_id: id.clone() })?;
    tmp.write_all(b"\n")?;
    tmp.as_file().sync_all()?;
    match tmp.persist_noclobber(root.join(FILE_NAME)) {
        Ok(_) => Ok(id),
        // Someone else created it between our read and rename; theirs wins.
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => read_filesystem_id(root).ok_or(e.error),
        Err(e) => Err(e.error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_and_stable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = ensure(dir.path()).expect("create");
        let b = ensure(dir.path()).expect("read");
        assert_eq!(a, b);
        assert!(uuid::Uuid::parse_str(&a).is_ok());
        let entries: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(entries.len(), 1, "no temporary files left behind");
    }
}
