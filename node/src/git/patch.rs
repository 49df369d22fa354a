//! Patches as `git format-patch` writes them (one or more mails in an
//! mbox) turned into commits the way `git am --3way` does, without a work
//! tree: `git mailsplit` cuts the mbox into mails, `git mailinfo` reads each
//! mail's author, date and message, `git apply --cached` applies its diff
//! to a temporary index (falling back to a three-way merge from the blobs
//! the diff names), `git write-tree` and `git commit-tree` record it. Every
//! object goes into the caller's quarantine; no reference moves here.

use super::GitError;
use super::command::{CommandError, CommandFactory, GitCommand, Output, Subcommand};
use super::merge::{self, MergeOptions, MergeOutcome, NewCommit};
use super::repo::Quarantine;
use super::write::Identity;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt as _;

/// An mbox as a client streams it in, kept in a scratch directory (which
/// also holds the split mails and the temporary indexes) until applied.
#[derive(Debug)]
pub struct Mbox {
    dir: tempfile::TempDir,
    file: tokio::fs::File,
    len: u64,
}

impl Mbox {
    /// An empty mbox in a new scratch directory below `tmp_root`.
    pub fn new(tmp_root: &Path) -> Result<Self, GitError> {
        std::fs::create_dir_all(tmp_root).map_err(GitError::io("create temporary directory"))?;
        let dir = tempfile::Builder::new()
            .prefix("patches-")
            .tempdir_in(tmp_root)
            .map_err(GitError::io("create patch directory"))?;
        let file = std::fs::File::create(dir.path().join("mbox")).map_err(GitError::io("create mbox"))?;
        Ok(Self { dir, file: tokio::fs::File::from_std(file), len: 0 })
    }

    /// Appends a chunk of the mbox.
    pub async fn append(&mut self, data: &[u8]) -> Result<(), GitError> {
        self.file.write_all(data).await.map_err(GitError::io("write mbox"))?;
        self.len += data.len() as u64;
        Ok(())
    }

    /// Bytes received so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was received.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Why a series of patches was not applied.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// Patch `number` (from 1) neither applies nor merges; `subject` is
    /// the first line of its message, as `git am` names it.
    #[error("patch {number} does not apply")]
    DoesNotApply { number: usize, subject: Vec<u8> },
    /// Mail `number` is no patch `git am` would take.
    #[error("patch {number}: {reason}")]
    Malformed { number: usize, reason: &'static str },
    #[error(transparent)]
    Git(#[from] GitError),
}

impl From<CommandError> for PatchError {
    fn from(e: CommandError) -> Self {
        Self::Git(e.into())
    }
}

/// What a mail says about its patch (`git mailinfo` output).
#[derive(Debug, Default, PartialEq, Eq)]
struct MailInfo {
    author: Vec<u8>,
    email: Vec<u8>,
    subject: Vec<u8>,
    date: String,
}

/// Where a series is applied.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The bare repository.
    pub repo: &'a Path,
    /// The quarantine every new object goes into.
    pub objects: &'a Quarantine,
    /// The commit the first patch applies to.
    pub parent: &'a str,
    /// Who commits the patches, and when.
    pub committer: &'a Identity,
}

/// Applies every patch of `mbox` in order on top of `target.parent`, each
/// as one commit authored as its mail says (name, e-mail, date; the
/// committer's date when the mail has none, so replicas agree) and
/// committed by `target.committer`. Answers the last commit (the parent
/// itself when the mbox holds no patch). A patch whose change is already
/// there is skipped, as `git am` does.
pub async fn apply(
    factory: &CommandFactory,
    target: Target<'_>,
    mut mbox: Mbox,
    correlation_id: Option<&str>,
) -> Result<String, PatchError> {
    mbox.file.flush().await.map_err(GitError::io("write mbox"))?;
    // git am takes an empty series as nothing to do; mailsplit would fail.
    if mbox.is_empty() {
        return Ok(target.parent.to_owned());
    }
    let scratch = mbox.dir.path();
    let session = Session { factory, target, index: scratch.join("index"), correlation_id };

    let mails = scratch.join("mails");
    std::fs::create_dir(&mails).map_err(GitError::io("create mail directory"))?;
    // -b: a series that does not start with a "From " line is one mail.
    let split = GitCommand::new(Subcommand::Mailsplit)
        .flag("-b")
        .flag("-d4")
        .flag_joined("-o", &mails)
        .flag("--")
        .arg(scratch.join("mbox"));
    let out = session.run(split).await?;
    let count: usize = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| GitError::Invalid("mailsplit printed no mail count".into()))?;

    session.run(GitCommand::new(Subcommand::ReadTree).arg(target.parent).env("GIT_INDEX_FILE", &session.index)).await?;
    let mut tree = session.write_tree(&session.index).await?;
    let mut head = target.parent.to_owned();
    let (msg_file, patch_file, fake) = (scratch.join("msg"), scratch.join("patch"), scratch.join("fake-ancestor"));
    for number in 1..=count {
        let mail = tokio::fs::read(mails.join(format!("{number:04}"))).await.map_err(GitError::io("read mail"))?;
        let read = GitCommand::new(Subcommand::Mailinfo).flag("-u").arg(&msg_file).arg(&patch_file).stdin(mail);
        let info = parse_info(&session.run(read).await?.stdout);
        if info.email.is_empty() {
            return Err(PatchError::Malformed { number, reason: "patch does not have a valid e-mail address" });
        }
        let diff_size = std::fs::metadata(&patch_file).map_err(GitError::io("read patch"))?.len();
        if diff_size == 0 {
            return Err(PatchError::Malformed { number, reason: "patch is empty" });
        }
        let body = std::fs::read(&msg_file).map_err(GitError::io("read message"))?;
        let message = commit_message(&info.subject, &body);

        let new_tree = match session.apply_one(&tree, &patch_file, &fake).await? {
            Applied::Tree(t) => t,
            Applied::AlreadyThere => continue,
            Applied::Conflict => {
                let subject = message.split(|b| *b == b'\n').next().unwrap_or_default().to_vec();
                return Err(PatchError::DoesNotApply { number, subject });
            }
        };
        let author = Identity {
            name: info.author,
            email: info.email,
            seconds: target.committer.seconds,
            offset: target.committer.offset.clone(),
        };
        let date = if info.date.is_empty() { author.raw_date() } else { info.date };
        let parents = [head];
        let commit = NewCommit {
            tree: &new_tree,
            parents: &parents,
            author: &author,
            committer: target.committer,
            message: &message,
            signing_key: None,
        };
        head = merge::write_commit_dated(factory, target.repo, target.objects, &commit, &date, correlation_id)
            .await
            .map_err(|e| match e {
                // git refuses the identity or date the mail carries.
                GitError::Command(CommandError::Failed { .. }) => {
                    PatchError::Malformed { number, reason: "patch has an invalid author or date" }
                }
                other => other.into(),
            })?;
        tree = new_tree;
    }
    Ok(head)
}

/// How one patch went.
enum Applied {
    /// The tree with the patch applied (and in the index).
    Tree(String),
    /// The three-way merge found the change made already.
    AlreadyThere,
    /// Neither the patch nor the merge applies.
    Conflict,
}

/// The git commands of one series, against one temporary index.
struct Session<'a> {
    factory: &'a CommandFactory,
    target: Target<'a>,
    index: PathBuf,
    correlation_id: Option<&'a str>,
}

impl Session<'_> {
    /// Runs `cmd` in the repository, objects going to the quarantine.
    async fn run(&self, cmd: GitCommand) -> Result<Output, CommandError> {
        let cmd = self.target.objects.apply(cmd.git_dir(self.target.repo));
        self.factory.run(cmd, self.correlation_id).await
    }

    /// `git apply --cached` of `patch` to the index at `index`; `false`
    /// when the patch does not apply.
    async fn apply_to(&self, index: &Path, patch: &Path) -> Result<bool, GitError> {
        let cmd = GitCommand::new(Subcommand::Apply).flag("--cached").arg(patch).env("GIT_INDEX_FILE", index);
        match self.run(cmd).await {
            Ok(_) => Ok(true),
            Err(CommandError::Failed { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The tree of the index at `index`.
    async fn write_tree(&self, index: &Path) -> Result<String, GitError> {
        let out = self.run(GitCommand::new(Subcommand::WriteTree).env("GIT_INDEX_FILE", index)).await?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(GitError::Invalid(format!("write-tree printed no tree id: {id:?}")));
        }
        Ok(id)
    }

    /// Applies `patch` to the index (holding `tree`) as `git am --3way`
    /// does: directly if it applies, else by merging the change into
    /// `tree` from a base rebuilt out of the blobs the patch names (which
    /// also follows renames).
    async fn apply_one(&self, tree: &str, patch: &Path, fake: &Path) -> Result<Applied, GitError> {
        if self.apply_to(&self.index, patch).await? {
            return Ok(Applied::Tree(self.write_tree(&self.index).await?));
        }
        // The preimages the patch names, as an index of their own; missing
        // blobs mean there is nothing to merge from.
        let _ = std::fs::remove_file(fake);
        let build = GitCommand::new(Subcommand::Apply)
            .flag_value("--build-fake-ancestor", fake)
            .arg(patch)
            .env("GIT_INDEX_FILE", &self.index);
        match self.run(build).await {
            Ok(_) => {}
            Err(CommandError::Failed { .. }) => return Ok(Applied::Conflict),
            Err(e) => return Err(e.into()),
        }
        let base = self.write_tree(fake).await?;
        if !self.apply_to(fake, patch).await? {
            return Ok(Applied::Conflict);
        }
        let theirs = self.write_tree(fake).await?;
        let options = MergeOptions { merge_base: Some(base), ..Default::default() };
        let t = self.target;
        let outcome =
            merge::merge_tree(self.factory, t.repo, t.objects, tree, &theirs, &options, self.correlation_id).await?;
        let MergeOutcome::Clean(merged) = outcome else { return Ok(Applied::Conflict) };
        if merged == tree {
            return Ok(Applied::AlreadyThere);
        }
        self.run(GitCommand::new(Subcommand::ReadTree).arg(&merged).env("GIT_INDEX_FILE", &self.index)).await?;
        Ok(Applied::Tree(merged))
    }
}

/// `git mailinfo`'s `Key: value` lines.
fn parse_info(out: &[u8]) -> MailInfo {
    let mut info = MailInfo::default();
    for line in out.split(|b| *b == b'\n') {
        let Some(colon) = line.windows(2).position(|w| w == b": ") else { continue };
        let value = line[colon + 2..].to_vec();
        match &line[..colon] {
            b"Author" => info.author = value,
            b"Email" => info.email = value,
            b"Subject" => info.subject = value,
            b"Date" => info.date = String::from_utf8_lossy(&value).into_owned(),
            _ => {}
        }
    }
    info
}

/// The commit message `git am` makes of a mail: its subject, a blank
/// line and its body, cleaned up as `git stripspace` does (trailing
/// whitespace and surrounding blank lines dropped, runs of blank lines
/// folded into one).
fn commit_message(subject: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(subject.len() + body.len() + 2);
    let mut blank_pending = false;
    let text = [subject, b"\n\n".as_slice(), body].concat();
    for line in text.split(|b| *b == b'\n') {
        let end = line.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |p| p + 1);
        let line = &line[..end];
        if line.is_empty() {
            blank_pending = !out.is_empty();
            continue;
        }
        if blank_pending {
            out.push(b'\n');
            blank_pending = false;
        }
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cleaned_as_git_am_does() {
        assert_eq!(commit_message(b"subject", b"body line  \n\n\n\nmore\n\n\n"), b"subject\n\nbody line\n\nmore\n");
        assert_eq!(commit_message(b"subject", b""), b"subject\n");
        assert_eq!(commit_message(b"subject", b"\n\nbody\n"), b"subject\n\nbody\n");
        // Comment-like lines stay: am does not strip comments.
        assert_eq!(commit_message(b"s", b"# not a comment\n"), b"s\n\n# not a comment\n");
    }

    #[test]
    fn mailinfo_output_is_parsed() {
        let out = b"Author: Patch User\nEmail: patchuser@gitlab.org\nSubject: A: commit\nDate: Thu, 18 Oct 2018 13:40:35 +0200\n\n";
        assert_eq!(
            parse_info(out),
            MailInfo {
                author: b"Patch User".to_vec(),
                email: b"patchuser@gitlab.org".to_vec(),
                subject: b"A: commit".to_vec(),
                date: "Thu, 18 Oct 2018 13:40:35 +0200".into(),
            }
        );
        assert_eq!(parse_info(b"\n"), MailInfo::default());
    }
}
