//! CommitLanguages: the share of each language in a commit's tree (by
//! blob size), largest first. Partial: languages are detected from file
//! names only (see `git::languages`).

use super::{RevisionRules, valid_revision};
use crate::error::{Error, Result};
use crate::git::objects::{self, ObjectId};
use crate::git::{Repo, commit, languages, tree};
use crate::service::Deps;
use cairn_proto::gitaly::commit_languages_response::Language;
use cairn_proto::gitaly::{CommitLanguagesRequest, CommitLanguagesResponse};

pub(super) async fn handle(deps: &Deps, req: CommitLanguagesRequest) -> Result<CommitLanguagesResponse> {
    let path = deps.storages.repo(req.repository.as_ref())?;
    valid_revision(&req.revision, RevisionRules { allow_empty: true, ..Default::default() })?;
    deps.read_at(path, move |repo, _| {
        let revision = if req.revision.is_empty() {
            commit::default_branch(repo)?.unwrap_or_default()
        } else {
            req.revision.clone()
        };
        let id = lookup(repo, &revision).ok_or_else(|| {
            Error::internal_msg(format!(
                "looking up revision: exit status 128: fatal: ambiguous argument '{}': unknown revision",
                String::from_utf8_lossy(&revision)
            ))
        })?;
        let root = tree::peel_to_tree(repo, id)?.ok_or_else(|| Error::internal_msg("language stats: not a tree"))?;
        let stats = languages::stats(repo, root)?;
        let total: u64 = stats.iter().map(|(_, b)| b).sum();
        let languages = stats
            .into_iter()
            .map(|(lang, bytes)| Language {
                name: lang.name.to_owned(),
                share: (100 * bytes) as f32 / total as f32,
                color: lang.color.to_owned(),
                bytes,
                language_id: 0,
            })
            .collect();
        Ok(CommitLanguagesResponse { languages })
    })
    .await
}

/// `git rev-parse <revision>`, preferring the branch when a tag and a
/// branch share the name (upstream disambiguates to `refs/heads/`).
fn lookup(repo: &Repo, revision: &[u8]) -> Option<ObjectId> {
    if !revision.starts_with(b"refs/") {
        let mut tag = b"refs/tags/".to_vec();
        tag.extend_from_slice(revision);
        let mut branch = b"refs/heads/".to_vec();
        branch.extend_from_slice(revision);
        if objects::resolve(repo, &tag).is_some()
            && let Some(id) = objects::resolve(repo, &branch)
        {
            return Some(id);
        }
    }
    objects::resolve(repo, revision)
}
