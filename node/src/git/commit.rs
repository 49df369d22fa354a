//! Reading commits.

use super::objects::{self, Commit, Kind};
use super::{GitError, Repo};

/// The commit a revision names (tags peeled), or `None`.
pub fn find(repo: &Repo, revision: &[u8]) -> Result<Option<Commit>, GitError> {
    let Some(id) = objects::resolve_commit(repo, revision)? else { return Ok(None) };
    read(repo, id)
}

/// The commit with this id, or `None` when it is missing or not a commit.
pub fn read(repo: &Repo, id: objects::ObjectId) -> Result<Option<Commit>, GitError> {
    match objects::read(repo, id)? {
        Some(o) if o.kind == Kind::Commit => Ok(Some(objects::parse_commit(&id, &o.data))),
        _ => Ok(None),
    }
}
