//! OperationService: changes made on a user's behalf, checked against what
//! the git CLI sees in the repository afterwards.

mod branches;
mod commit_files;
mod conflicts;
mod ff;
mod merges;
mod patches;
mod picks;
mod rebases;
mod signing;
mod squash;
mod submodules;
mod tags;

use crate::support::git::{Format, TestRepo};
use crate::support::{Node, STORAGE};
use cairn_proto::gitaly::operation_service_client::OperationServiceClient;
use cairn_proto::gitaly::{Repository, User};
use tonic::transport::Channel;

/// The user GitLab acts for.
pub(crate) fn user() -> User {
    User {
        gl_id: "user-1".into(),
        name: b"Jane Doe".to_vec(),
        email: b"jane@example.com".to_vec(),
        gl_username: "jane".into(),
        timezone: "UTC".into(),
    }
}

/// A repository on `node` with GitLab's identifiers, which receive hooks need.
pub(crate) fn repository(relative: &str) -> Repository {
    Repository {
        storage_name: STORAGE.into(),
        relative_path: relative.into(),
        gl_repository: "project-1".into(),
        gl_project_path: "group/project".into(),
        ..Default::default()
    }
}

/// A repository with `main` holding two commits; returns them.
pub(crate) fn seeded(node: &Node, relative: &str, format: Format) -> (TestRepo, String, String) {
    let repo = node.create_repo(relative, format);
    let first = repo.commit_on("main", &[("README.md", "hello\n")], "first");
    let second = repo.commit_on("main", &[("README.md", "hello\n"), ("a.txt", "a\n")], "second");
    repo.git(&["symbolic-ref", "HEAD", "refs/heads/main"]);
    (repo, first, second)
}

pub(crate) async fn client(node: &Node) -> OperationServiceClient<Channel> {
    OperationServiceClient::new(node.channel().await)
}

/// The value of `reference`, or `None`.
#[allow(clippy::disallowed_methods, reason = "tests read the repository back with the real git CLI")]
pub(crate) fn resolve(repo: &TestRepo, reference: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(&repo.path)
        .args(["rev-parse", "--verify", "--quiet", reference])
        .output()
        .expect("git runs");
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The one structured detail of `status`, decoded as `M`.
pub(crate) fn detail<M: prost::Message + prost::Name + Default>(status: &tonic::Status) -> M {
    let details = cairn_node::error::status_details(status);
    assert_eq!(details.len(), 1, "one detail in {status:?}");
    assert_eq!(details[0].type_url, M::type_url());
    M::decode(details[0].value.as_slice()).expect("detail decodes")
}

/// A copy of `repo` (its objects and references, no hooks) on `node` at
/// `relative`, as a replica of the same repository would be.
pub(crate) fn copy_repo(node: &Node, repo: &TestRepo, relative: &str) -> std::path::PathBuf {
    let target = node.storage.join(relative);
    let (from, to) = (repo.path.to_string_lossy(), target.to_string_lossy());
    crate::support::git::git(None, &["clone", "--quiet", "--mirror", "--no-local", &from, &to]);
    target
}

/// The git CLI in `dir` committing as [`user`] at `date` (git's raw
/// `<seconds> <zone>`), for reference results made the way a person at a
/// terminal would (`git rebase`, `git am`).
#[allow(clippy::disallowed_methods, reason = "reference results come from the real git CLI")]
pub(crate) fn git_as_user(dir: &std::path::Path, date: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new("git");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_COMMITTER_NAME", "Jane Doe")
        .env("GIT_COMMITTER_EMAIL", "jane@example.com")
        .env("GIT_COMMITTER_DATE", date)
        .arg("-C")
        .arg(dir);
    cmd
}
