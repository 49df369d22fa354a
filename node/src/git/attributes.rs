//! Git attributes of paths as a revision's tree defines them: what
//! `git check-attr --source=<rev> <attr>... -- <path>...` answers, read
//! in-process. The `.gitattributes` files of the revision's tree apply
//! (every directory's, deeper ones winning), then the repository's
//! `info/attributes`; macros such as `binary` expand as in git.

use super::{GitError, Repo, search};
use gix::bstr::ByteSlice as _;

/// git's rule for attribute names (check-attr refuses others).
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('-') && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

/// One specified attribute of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeValue {
    pub path: String,
    pub attribute: String,
    /// `set`, `unset`, or the value, as check-attr prints them.
    pub value: String,
}

/// The attributes `names` of each of `paths`, in request order, leaving
/// out unspecified ones. `None` when the revision names no tree.
pub fn check(
    repo: &Repo,
    revision: &[u8],
    names: &[String],
    paths: &[String],
) -> Result<Option<Vec<AttributeValue>>, GitError> {
    let Some(tree) = search::resolve_tree(repo, revision)? else { return Ok(None) };
    let r = repo.gix();
    let index = r.index_from_tree(&tree).map_err(|e| GitError::gix("load tree for attributes", e))?;
    let mut stack = r
        .attributes_only(&index, gix::worktree::stack::state::attributes::Source::IdMapping)
        .map_err(|e| GitError::gix("load attributes", e))?;
    if let Some(bad) = names.iter().find(|n| !valid_name(n)) {
        return Err(GitError::Invalid(format!("{bad}: not a valid attribute name")));
    }
    let mut outcome = stack.selected_attribute_matches(names.iter().map(String::as_str));
    let mut out = Vec::new();
    for path in paths {
        let Some(clean) = search::clean_path(path.as_bytes()) else { continue };
        if clean.is_empty() {
            continue;
        }
        let platform = stack.at_entry(clean.as_bstr(), None).map_err(|e| GitError::gix("read attributes", e))?;
        outcome.reset();
        platform.matching_attributes(&mut outcome);
        for name in names {
            let Some(m) = outcome.iter_selected().find(|m| m.assignment.name.as_str() == name) else { continue };
            let value = match m.assignment.state {
                gix::attrs::StateRef::Set => "set".to_owned(),
                gix::attrs::StateRef::Unset => "unset".to_owned(),
                gix::attrs::StateRef::Value(v) => v.as_bstr().to_str_lossy().into_owned(),
                gix::attrs::StateRef::Unspecified => continue,
            };
            out.push(AttributeValue { path: path.clone(), attribute: name.clone(), value });
        }
    }
    Ok(Some(out))
}
