//! The only part of the node that touches repositories.
//!
//! Reads go through gitoxide ([`repo`]); writes and the wire protocol go
//! through the git CLI ([`command`]), spawned only by [`CommandFactory`].
//! Nothing here knows about gRPC: functions take paths and bytes and return
//! plain Rust types and [`GitError`].

pub mod archive;
pub mod attributes;
pub mod blame;
pub mod blob;
pub mod bloom;
pub mod bundle;
pub mod checksum;
pub mod cleanup;
pub mod command;
pub mod commit;
pub mod commit_graph;
pub mod custom_hooks;
pub mod diff;
pub mod housekeeping;
pub mod languages;
pub mod lfs;
pub mod license;
pub mod lifecycle;
pub mod merge;
pub mod mirror;
pub mod object_cache;
pub mod objectpool;
pub mod objects;
pub mod objects_size;
pub mod pack_objects;
pub mod patch;
pub mod quarantine;
pub mod raw_changes;
pub mod rebase;
pub mod references;
pub mod refs;
pub mod remote;
pub mod repo;
pub mod rewrite;
pub mod search;
pub mod signature;
pub mod snapshot;
pub mod stats;
pub mod trailers;
pub mod tree;
pub mod walk;
pub mod wire;
pub mod write;

pub use command::{CommandError, CommandFactory, GitCommand, Subcommand};
pub use repo::{Repo, Repositories};

/// A repository's hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectFormat {
    Sha1,
    Sha256,
}

impl ObjectFormat {
    /// Hex length of an object id.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Sha1 => 40,
            Self::Sha256 => 64,
        }
    }

    /// The all-zero object id, which update-ref reads as "does not exist".
    pub fn zero_oid(self) -> String {
        "0".repeat(self.hex_len())
    }

    /// Name as git spells it (`extensions.objectFormat`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
        }
    }

    /// Whether `s` is a full object id (hex) of this format.
    pub fn is_oid(self, s: &str) -> bool {
        s.len() == self.hex_len() && s.bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// The empty tree's id, which git knows without storing it.
    pub fn empty_tree(self) -> &'static str {
        match self {
            Self::Sha1 => "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
            Self::Sha256 => "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321",
        }
    }

    /// Whether `s` is this format's zero object id.
    pub fn is_zero_oid(self, s: &[u8]) -> bool {
        s.len() == self.hex_len() && s.iter().all(|b| *b == b'0')
    }
}

/// Failures of the git layer. The service layer maps them to gRPC codes.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// A gitoxide operation failed while doing `step`.
    #[error("{step}")]
    Gix {
        step: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A git process failed.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// File system work failed while doing `step`.
    #[error("{step}")]
    Io {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A revision names no object.
    #[error("revision not found: {0:?}")]
    RevisionNotFound(String),
    /// A reference update lost a race or its expected old value did not match.
    #[error("reference update failed: {0}")]
    ReferenceUpdate(String),
    /// A reference is locked by a concurrent writer.
    #[error("reference is locked already: {0}")]
    ReferenceLocked(String),
    /// Input that git would reject (bad tar entry, bad ref name).
    #[error("{0}")]
    Invalid(String),
    /// The repository, or something it needs, already exists.
    #[error("{0}")]
    AlreadyExists(&'static str),
    /// The repository is locked by a concurrent create or remove.
    #[error("repository is already locked")]
    Locked,
    /// The repository does not exist.
    #[error("{0}")]
    NotFound(&'static str),
}

impl GitError {
    pub(crate) fn gix(step: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Gix { step, source: Box::new(source) }
    }

    pub(crate) fn io(step: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { step, source }
    }
}

/// Size in bytes of every file below `path` (files vanishing during the
/// walk are skipped, as a concurrent repack may remove them).
pub fn dir_size(path: &std::path::Path) -> Result<u64, GitError> {
    let mut total = 0u64;
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(GitError::Io { step: "walk repository", source: e }),
        };
        for entry in entries {
            let entry = entry.map_err(GitError::io("walk repository"))?;
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(GitError::Io { step: "stat file", source: e }),
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    Ok(total)
}
