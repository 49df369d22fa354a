//! Diffs.
//!
//! Lists of changed paths are computed in-process: gitoxide diffs the
//! trees ([`tree`]) and git's own rename detection is ported on top
//! ([`rename`]), so CommitDelta and FindChangedPaths answer like
//! `git diff --raw` and `git diff-tree` without a process. Answers that are
//! git's text (patches, numstat, format-patch, range-diff) come from one
//! streamed git process per request ([`cli`]) and are read with the same
//! rules as upstream's parsers ([`patch`], [`numstat`], [`range_diff`]);
//! patch ids are computed in-process over that stream ([`patch_id`]).

pub mod changed_paths;
pub mod cli;
pub mod numstat;
pub mod patch;
pub mod patch_id;
pub mod quarantine;
pub mod quote;
pub mod range_diff;
pub mod rename;
pub mod tree;

use gix::ObjectId;

/// One side of a changed path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Side {
    /// git's mode, e.g. `0o100644`.
    pub mode: u32,
    pub id: ObjectId,
}

/// What happened to a path, as git's status letters say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Added,
    Deleted,
    Modified,
    TypeChanged,
    Renamed,
}

impl Status {
    /// git's letter for the status.
    pub fn letter(self) -> u8 {
        match self {
            Self::Added => b'A',
            Self::Deleted => b'D',
            Self::Modified => b'M',
            Self::TypeChanged => b'T',
            Self::Renamed => b'R',
        }
    }
}

/// One entry of a raw diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub status: Status,
    /// The old side; `None` for an addition.
    pub old: Option<Side>,
    /// The new side; `None` for a deletion.
    pub new: Option<Side>,
    /// The old path (the source of a rename; the path otherwise).
    pub old_path: Vec<u8>,
    pub path: Vec<u8>,
    /// Similarity of a rename in percent.
    pub score: u32,
}

/// Kind of tree entry a mode names, for git's type-change rule.
fn mode_kind(mode: u32) -> u32 {
    mode & 0o170000
}

/// Whether `mode` is a regular file (executable or not).
pub fn is_regular(mode: u32) -> bool {
    mode_kind(mode) == 0o100000
}

/// The all-zero id of `id`'s hash kind.
pub fn null_id(kind: gix::hash::Kind) -> ObjectId {
    ObjectId::null(kind)
}
