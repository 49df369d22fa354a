//! CommitService: commits, trees, history walks, blame and signatures.
//!
//! Everything is answered in-process through the git layer except RawBlame
//! (git's porcelain blame output is produced by `git blame`).

mod check_objects_exist;
mod commit_languages;
mod commit_stats;
mod count_commits;
mod find_all_commits;
mod find_commit;
mod find_commits;
mod get_tree_entries;
mod last_commit_for_path;
mod list_all_commits;
mod list_commits;
mod list_files;
mod list_last_commits_for_tree;
mod lookups;
mod raw_blame;
mod signatures;
mod tree_entry;

use super::{Deps, respond};
use crate::error::{Error, Result};
use crate::git::GitError;
use cairn_proto::gitaly::commit_service_server;
use cairn_proto::gitaly::*;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

/// Handlers of CommitService.
#[derive(Debug, Clone)]
pub(super) struct CommitService {
    deps: Deps,
}

impl CommitService {
    pub(super) fn new(deps: &Deps) -> Self {
        Self { deps: deps.clone() }
    }
}

/// Which relaxations of upstream's revision checks an RPC allows.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RevisionRules {
    pub(super) allow_empty: bool,
    /// `--all`, `--not`, `--branches[=]`, `--tags[=]`, `--glob=`, `--alternate-refs`.
    pub(super) pseudo: bool,
    /// `<rev>:<path>`.
    pub(super) path_scoped: bool,
}

/// Upstream's `ValidateRevision`: no option-like or malformed revisions.
pub(super) fn check_revision(revision: &[u8], rules: RevisionRules) -> std::result::Result<(), &'static str> {
    if rules.pseudo {
        let exact: [&[u8]; 5] = [b"--all", b"--not", b"--branches", b"--tags", b"--alternate-refs"];
        let prefixed: [&[u8]; 3] = [b"--branches=", b"--tags=", b"--glob="];
        if exact.contains(&revision) || prefixed.iter().any(|p| revision.starts_with(p)) {
            return Ok(());
        }
    }
    if revision.starts_with(b"-") {
        return Err("revision can't start with '-'");
    }
    if revision.contains(&0) {
        return Err("revision can't contain NUL");
    }
    let revision = match (rules.path_scoped, revision.iter().position(|b| *b == b':')) {
        (true, Some(colon)) => &revision[..colon],
        _ => revision,
    };
    if rules.allow_empty && revision.is_empty() {
        return Ok(());
    }
    crate::git::refs::validate_revision(revision)
}

/// Validates a revision, answering INVALID_ARGUMENT as upstream.
pub(super) fn valid_revision(revision: &[u8], rules: RevisionRules) -> Result<()> {
    check_revision(revision, rules).map_err(Error::invalid_argument)
}

/// A git-layer failure upstream reports as INTERNAL (a failed git command).
pub(super) fn internal(e: impl Into<GitError>) -> Error {
    Error::internal_msg(crate::error::error_chain(&e.into()))
}

/// Whether the request asks for `--literal-pathspecs`.
pub(super) fn literal(options: Option<&GlobalOptions>) -> bool {
    options.is_some_and(|o| o.literal_pathspecs)
}

/// Timestamp seconds, as git reads the dates upstream passes.
pub(super) fn seconds(t: Option<&prost_types::Timestamp>) -> Option<i64> {
    t.map(|t| t.seconds)
}

type Stream<T> = std::result::Result<Response<BoxStream<T>>, Status>;

fn stream<T>(r: Result<BoxStream<T>>) -> Stream<T> {
    respond(r)
}

#[tonic::async_trait]
impl commit_service_server::CommitService for CommitService {
    async fn list_commits(&self, req: Request<ListCommitsRequest>) -> Stream<ListCommitsResponse> {
        stream(list_commits::handle(&self.deps, req.into_inner()))
    }

    async fn list_all_commits(&self, req: Request<ListAllCommitsRequest>) -> Stream<ListAllCommitsResponse> {
        stream(list_all_commits::handle(&self.deps, req.into_inner()))
    }

    async fn commit_is_ancestor(
        &self,
        req: Request<CommitIsAncestorRequest>,
    ) -> std::result::Result<Response<CommitIsAncestorResponse>, Status> {
        respond(lookups::commit_is_ancestor(&self.deps, req.into_inner()).await)
    }

    async fn tree_entry(&self, req: Request<TreeEntryRequest>) -> Stream<TreeEntryResponse> {
        stream(tree_entry::handle(&self.deps, req.into_inner()))
    }

    async fn count_commits(
        &self,
        req: Request<CountCommitsRequest>,
    ) -> std::result::Result<Response<CountCommitsResponse>, Status> {
        respond(count_commits::count_commits(&self.deps, req.into_inner()).await)
    }

    async fn count_diverging_commits(
        &self,
        req: Request<CountDivergingCommitsRequest>,
    ) -> std::result::Result<Response<CountDivergingCommitsResponse>, Status> {
        respond(count_commits::count_diverging(&self.deps, req.into_inner()).await)
    }

    async fn get_tree_entries(&self, req: Request<GetTreeEntriesRequest>) -> Stream<GetTreeEntriesResponse> {
        stream(get_tree_entries::handle(&self.deps, req.into_inner()))
    }

    async fn list_files(&self, req: Request<ListFilesRequest>) -> Stream<ListFilesResponse> {
        stream(list_files::handle(&self.deps, req.into_inner()))
    }

    async fn find_commit(
        &self,
        req: Request<FindCommitRequest>,
    ) -> std::result::Result<Response<FindCommitResponse>, Status> {
        respond(find_commit::handle(&self.deps, req.into_inner()).await)
    }

    async fn commit_stats(
        &self,
        req: Request<CommitStatsRequest>,
    ) -> std::result::Result<Response<CommitStatsResponse>, Status> {
        respond(commit_stats::handle(&self.deps, req.into_inner()).await)
    }

    async fn find_all_commits(&self, req: Request<FindAllCommitsRequest>) -> Stream<FindAllCommitsResponse> {
        stream(find_all_commits::handle(&self.deps, req.into_inner()))
    }

    async fn find_commits(&self, req: Request<FindCommitsRequest>) -> Stream<FindCommitsResponse> {
        stream(find_commits::handle(&self.deps, req.into_inner()))
    }

    async fn commit_languages(
        &self,
        req: Request<CommitLanguagesRequest>,
    ) -> std::result::Result<Response<CommitLanguagesResponse>, Status> {
        respond(commit_languages::handle(&self.deps, req.into_inner()).await)
    }

    async fn raw_blame(&self, req: Request<RawBlameRequest>) -> Stream<RawBlameResponse> {
        let correlation_id = super::correlation_id(&req);
        stream(raw_blame::handle(&self.deps, req.into_inner(), correlation_id).await)
    }

    async fn last_commit_for_path(
        &self,
        req: Request<LastCommitForPathRequest>,
    ) -> std::result::Result<Response<LastCommitForPathResponse>, Status> {
        respond(last_commit_for_path::handle(&self.deps, req.into_inner()).await)
    }

    async fn list_last_commits_for_tree(
        &self,
        req: Request<ListLastCommitsForTreeRequest>,
    ) -> Stream<ListLastCommitsForTreeResponse> {
        stream(list_last_commits_for_tree::handle(&self.deps, req.into_inner()))
    }

    async fn commits_by_message(&self, req: Request<CommitsByMessageRequest>) -> Stream<CommitsByMessageResponse> {
        stream(find_all_commits::commits_by_message(&self.deps, req.into_inner()))
    }

    async fn list_commits_by_oid(&self, req: Request<ListCommitsByOidRequest>) -> Stream<ListCommitsByOidResponse> {
        stream(lookups::list_commits_by_oid(&self.deps, req.into_inner()))
    }

    async fn list_commits_by_ref_name(
        &self,
        req: Request<ListCommitsByRefNameRequest>,
    ) -> Stream<ListCommitsByRefNameResponse> {
        stream(lookups::list_commits_by_ref_name(&self.deps, req.into_inner()))
    }

    async fn filter_shas_with_signatures(
        &self,
        req: Request<Streaming<FilterShasWithSignaturesRequest>>,
    ) -> Stream<FilterShasWithSignaturesResponse> {
        stream(signatures::filter_shas_with_signatures(&self.deps, req.into_inner()).await)
    }

    async fn get_commit_signatures(
        &self,
        req: Request<GetCommitSignaturesRequest>,
    ) -> Stream<GetCommitSignaturesResponse> {
        stream(signatures::get_commit_signatures(&self.deps, req.into_inner()).await)
    }

    async fn get_commit_messages(&self, req: Request<GetCommitMessagesRequest>) -> Stream<GetCommitMessagesResponse> {
        stream(lookups::get_commit_messages(&self.deps, req.into_inner()))
    }

    async fn check_objects_exist(
        &self,
        req: Request<Streaming<CheckObjectsExistRequest>>,
    ) -> Stream<CheckObjectsExistResponse> {
        stream(check_objects_exist::handle(&self.deps, req.into_inner()).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_rules_like_upstream() {
        let plain = RevisionRules::default();
        assert!(check_revision(b"main~1", plain).is_ok());
        assert_eq!(check_revision(b"--all", plain), Err("revision can't start with '-'"));
        assert!(check_revision(b"--all", RevisionRules { pseudo: true, ..plain }).is_ok());
        assert!(check_revision(b"--glob=refs/x/*", RevisionRules { pseudo: true, ..plain }).is_ok());
        assert!(check_revision(b"--output=x", RevisionRules { pseudo: true, ..plain }).is_err());
        assert_eq!(check_revision(b"", plain), Err("empty revision"));
        assert!(check_revision(b"", RevisionRules { allow_empty: true, ..plain }).is_ok());
        assert!(check_revision(b"main:README.md", plain).is_err());
        assert!(check_revision(b"main:README.md", RevisionRules { path_scoped: true, ..plain }).is_ok());
        assert!(check_revision(b"main:dir with space", RevisionRules { path_scoped: true, ..plain }).is_ok());
        assert!(check_revision(b":x", RevisionRules { path_scoped: true, ..plain }).is_err());
        assert!(check_revision(b"a\\b", plain).is_err());
    }
}
