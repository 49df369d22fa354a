//! Merges and commits written on a user's behalf, without a work tree:
//! `git merge-tree --write-tree` computes the merged tree and
//! `git commit-tree` records it. Both write objects only, so callers run
//! them against a quarantine and nothing reaches the repository until the
//! reference update accepted it.

use super::GitError;
use super::command::{CommandError, CommandFactory, GitCommand, Subcommand};
use super::repo::Quarantine;
use super::write::Identity;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;
use std::path::Path;

/// A commit to write.
#[derive(Debug, Clone)]
pub struct NewCommit<'a> {
    pub tree: &'a str,
    pub parents: &'a [String],
    pub author: &'a Identity,
    pub committer: &'a Identity,
    pub message: &'a [u8],
    /// An OpenSSH private key to sign the commit with (`gpgsig` header).
    /// Ed25519 and RSA signatures are deterministic, so replicas signing
    /// the same commit still agree on its id.
    pub signing_key: Option<&'a Path>,
}

/// Writes `commit` into `objects` (the quarantine) of the repository at
/// `repo` and returns its id. The same input always gives the same commit.
pub async fn write_commit(
    factory: &CommandFactory,
    repo: &Path,
    objects: &Quarantine,
    commit: &NewCommit<'_>,
    correlation_id: Option<&str>,
) -> Result<String, GitError> {
    // `@` makes git read the number as seconds however small it is.
    let date = format!("@{}", commit.author.raw_date());
    write_commit_dated(factory, repo, objects, commit, &date, correlation_id).await
}

/// [`write_commit`] with the author date given as text that git parses
/// itself (an e-mailed patch's `Date:` header, which `git am` hands on the
/// same way); the author identity's own date is not used.
pub async fn write_commit_dated(
    factory: &CommandFactory,
    repo: &Path,
    objects: &Quarantine,
    commit: &NewCommit<'_>,
    author_date: &str,
    correlation_id: Option<&str>,
) -> Result<String, GitError> {
    let mut cmd = GitCommand::new(Subcommand::CommitTree).git_dir(repo).arg(commit.tree);
    for parent in commit.parents {
        cmd = cmd.arg("-p").arg(parent);
    }
    if let Some(key) = commit.signing_key {
        cmd = cmd.config("gpg.format", "ssh").config("user.signingKey", &key.to_string_lossy()).flag("-S");
    }
    let bytes = |v: &[u8]| OsString::from_vec(v.to_vec());
    cmd = cmd
        .env("GIT_AUTHOR_NAME", bytes(&commit.author.name))
        .env("GIT_AUTHOR_EMAIL", bytes(&commit.author.email))
        .env("GIT_AUTHOR_DATE", author_date)
        .env("GIT_COMMITTER_NAME", bytes(&commit.committer.name))
        .env("GIT_COMMITTER_EMAIL", bytes(&commit.committer.email))
        .env("GIT_COMMITTER_DATE", format!("@{}", commit.committer.raw_date()))
        .stdin(commit.message.to_vec());
    let out = factory.run(objects.apply(cmd), correlation_id).await?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(GitError::Invalid(format!("commit-tree printed no object id: {id:?}")));
    }
    Ok(id)
}

/// One conflicting stage of a path as `git merge-tree` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictEntry {
    pub mode: u32,
    pub oid: String,
    /// 1 = merge base, 2 = ours, 3 = theirs.
    pub stage: u8,
    pub path: Vec<u8>,
}

/// How a merge went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The merged tree.
    Clean(String),
    /// The tree with conflict markers and what conflicted; `entries` may be
    /// empty for conflicts git cannot pin on a path.
    Conflict { tree: String, entries: Vec<ConflictEntry> },
    /// The commits share no history (and unrelated histories were not allowed).
    Unrelated,
}

impl MergeOutcome {
    /// The conflicting paths, each once, in git's order.
    pub fn conflicting_paths(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        if let Self::Conflict { entries, .. } = self {
            for e in entries {
                if !out.contains(&e.path) {
                    out.push(e.path.clone());
                }
            }
        }
        out
    }
}

/// Options of [`merge_tree`].
#[derive(Debug, Clone, Default)]
pub struct MergeOptions {
    /// Merge base to use instead of the computed one (cherry-picks, reverts).
    pub merge_base: Option<String>,
    pub allow_unrelated_histories: bool,
}

/// Merges `theirs` into `ours` (commits or, with a merge base, trees),
/// writing the result's objects into `objects`.
pub async fn merge_tree(
    factory: &CommandFactory,
    repo: &Path,
    objects: &Quarantine,
    ours: &str,
    theirs: &str,
    options: &MergeOptions,
    correlation_id: Option<&str>,
) -> Result<MergeOutcome, GitError> {
    // Only the tree and the conflicted file info are used; exit status 1
    // means conflicts, with the same output shape.
    let mut cmd =
        GitCommand::new(Subcommand::MergeTree).git_dir(repo).flag("--write-tree").flag("-z").flag("--no-messages");
    if options.allow_unrelated_histories {
        cmd = cmd.flag("--allow-unrelated-histories");
    }
    if let Some(base) = &options.merge_base {
        cmd = cmd.flag_value("--merge-base", base);
    }
    cmd = cmd.arg(ours).arg(theirs);
    let mut running = factory.spawn(objects.apply(cmd), correlation_id)?;
    let mut out = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(running.stdout(), &mut out)
        .await
        .map_err(GitError::io("read merge-tree output"))?;
    match running.wait().await {
        Ok(()) => Ok(MergeOutcome::Clean(parse_oid(out.split(|b| *b == 0).next().unwrap_or_default())?)),
        Err(CommandError::Failed { code: Some(1), .. }) => parse_conflicts(&out),
        Err(CommandError::Failed { stderr, .. }) if stderr.contains("refusing to merge unrelated histories") => {
            Ok(MergeOutcome::Unrelated)
        }
        Err(e) => Err(e.into()),
    }
}

fn parse_oid(raw: &[u8]) -> Result<String, GitError> {
    let id = String::from_utf8_lossy(raw).trim().to_owned();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(GitError::Invalid(format!("merge-tree printed no tree id: {id:?}")));
    }
    Ok(id)
}

/// Parses `<tree> NUL (<mode> <oid> <stage> TAB <path> NUL)*`.
fn parse_conflicts(out: &[u8]) -> Result<MergeOutcome, GitError> {
    let mut fields = out.split(|b| *b == 0);
    let tree = parse_oid(fields.next().unwrap_or_default())?;
    let mut entries = Vec::new();
    for field in fields.filter(|f| !f.is_empty()) {
        let bad = || GitError::Invalid(format!("parsing conflicting file info: {}", String::from_utf8_lossy(field)));
        let tab = field.iter().position(|b| *b == b'\t').ok_or_else(bad)?;
        let info = std::str::from_utf8(&field[..tab]).map_err(|_| bad())?;
        let mut parts = info.split(' ');
        let (Some(mode), Some(oid), Some(stage), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let mode = u32::from_str_radix(mode, 8).map_err(|_| bad())?;
        let stage: u8 = stage.parse().map_err(|_| bad())?;
        if !(1..=3).contains(&stage) {
            return Err(bad());
        }
        entries.push(ConflictEntry { mode, oid: oid.to_owned(), stage, path: field[tab + 1..].to_vec() });
    }
    Ok(MergeOutcome::Conflict { tree, entries })
}

/// A blob to put into a tree at `path` with `mode`.
#[derive(Debug, Clone)]
pub struct Replacement {
    pub path: Vec<u8>,
    pub mode: u32,
    pub content: Vec<u8>,
}

/// `tree` with `replacements` written in, through a temporary index (no
/// work tree); the blobs and trees go into `objects`. Blobs are hashed
/// with their file name's filters (line endings), as upstream does.
pub async fn replace_blobs(
    factory: &CommandFactory,
    repo: &Path,
    objects: &Quarantine,
    tree: &str,
    replacements: &[Replacement],
    correlation_id: Option<&str>,
) -> Result<String, GitError> {
    let scratch = tempfile::tempdir().map_err(GitError::io("create temporary index directory"))?;
    let index = scratch.path().join("index");
    let with_index = |cmd: GitCommand| objects.apply(cmd.git_dir(repo).env("GIT_INDEX_FILE", index.as_os_str()));
    factory.run(with_index(GitCommand::new(Subcommand::ReadTree).arg(tree)), correlation_id).await?;
    let mut info = Vec::new();
    for r in replacements {
        let name = r.path.rsplit(|b| *b == b'/').next().unwrap_or(&r.path);
        let cmd = GitCommand::new(Subcommand::HashObject)
            .flag("-w")
            .flag("--stdin")
            .flag_value("--path", OsString::from_vec(name.to_vec()))
            .stdin(r.content.clone());
        let out = factory.run(with_index(cmd), correlation_id).await?;
        let blob = parse_oid(&out.stdout)?;
        info.extend_from_slice(format!("{:o} {blob}\t", r.mode).as_bytes());
        info.extend_from_slice(&r.path);
        info.push(0);
    }
    let cmd = GitCommand::new(Subcommand::UpdateIndex).flag("-z").flag("--index-info").stdin(info);
    factory.run(with_index(cmd), correlation_id).await?;
    let out = factory.run(with_index(GitCommand::new(Subcommand::WriteTree)), correlation_id).await?;
    parse_oid(&out.stdout)
}

/// The blob at `path` below tree `tree` (hex): its mode and content;
/// `None` when there is no blob there.
pub fn blob_at(repo: &super::Repo, tree: &str, path: &[u8]) -> Result<Option<(u32, Vec<u8>)>, GitError> {
    let Some(root) = super::objects::parse_oid(repo, tree.as_bytes()) else { return Ok(None) };
    let Some(components) = super::tree::path_components(path) else { return Ok(None) };
    let Some(entry) = super::tree::lookup(repo, root, &components)? else { return Ok(None) };
    if !entry.is_file() && !entry.is_link() {
        return Ok(None);
    }
    match super::objects::read(repo, entry.id)? {
        Some(object) if object.kind == super::objects::Kind::Blob => Ok(Some((entry.mode, object.data))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_are_parsed() {
        let out = b"abc123\x00100644 1111 1\tf\x00100644 2222 2\tf\x00100755 3333 3\tdir/g h\x00\x00";
        let parsed = parse_conflicts(out).expect("parses");
        let MergeOutcome::Conflict { tree, entries } = &parsed else { panic!("conflict") };
        assert_eq!(tree, "abc123");
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[2],
            ConflictEntry { mode: 0o100755, oid: "3333".into(), stage: 3, path: b"dir/g h".to_vec() }
        );
        assert_eq!(parsed.conflicting_paths(), vec![b"f".to_vec(), b"dir/g h".to_vec()]);
        assert!(parse_conflicts(b"abc\x00garbage\x00").is_err());
    }
}
