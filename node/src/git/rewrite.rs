//! Rewriting history to drop blobs and redact text (RewriteHistory).
//!
//! Upstream runs git-filter-repo, which the node does not ship. The same
//! result comes from git's own plumbing: `git fast-export --all` of the
//! repository is piped through a filter that leaves out the blobs to
//! remove (and every file entry naming them) and rewrites the text of the
//! others, into `git fast-import` of a fresh staging repository. The
//! repository then fetches every reference from the staging repository in
//! one atomic, pruning, forced fetch (voted on in a router's transaction),
//! unless its references changed while the rewrite ran.
//!
//! Differences from filter-repo: commits that end up empty are kept, and a
//! tag pointing straight at a removed blob fails the rewrite. Redaction
//! rules follow filter-repo's `--replace-text` syntax (`literal:`,
//! `regex:`, `glob:` prefixes, `==>` replacement) and skip binary blobs
//! (a NUL in the first 8 KiB) as it does.

use super::wire::Hooks;
use super::{CommandError, CommandFactory, GitCommand, GitError, ObjectFormat, Subcommand};
use regex::bytes::{NoExpand, Regex};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// What a redaction turns matches into by default (filter-repo's).
const REMOVED: &[u8] = b"***REMOVED***";

/// How much of a blob is checked for a NUL byte (binary blobs are not
/// redacted).
const BINARY_PROBE: usize = 8192;

/// One text replacement.
#[derive(Debug, Clone)]
pub struct Redaction {
    pattern: Regex,
    replacement: Vec<u8>,
    /// Whether `replacement` may refer to capture groups.
    expand: bool,
}

impl Redaction {
    /// Parses one `--replace-text` line: `[literal:|regex:|glob:]pattern`
    /// optionally followed by `==>replacement`.
    pub fn parse(line: &[u8]) -> Result<Self, GitError> {
        let (pattern, replacement) = match find_last(line, b"==>") {
            Some(i) => (&line[..i], line[i + 3..].to_vec()),
            None => (line, REMOVED.to_vec()),
        };
        let invalid = |e: regex::Error| GitError::Invalid(format!("invalid redaction pattern: {e}"));
        if let Some(re) = pattern.strip_prefix(b"regex:") {
            let pattern = Regex::new(&String::from_utf8_lossy(re)).map_err(invalid)?;
            return Ok(Self { pattern, replacement: python_replacement(&replacement), expand: true });
        }
        let source = match pattern.strip_prefix(b"glob:") {
            Some(glob) => glob_to_regex(glob),
            // Byte by byte, so literals need not be UTF-8.
            None => {
                let literal = pattern.strip_prefix(b"literal:").unwrap_or(pattern);
                if literal.is_empty() {
                    String::new()
                } else {
                    literal.iter().fold(String::from("(?-u)"), |mut re, b| {
                        re.push_str(&format!("\\x{b:02x}"));
                        re
                    })
                }
            }
        };
        if source.is_empty() {
            return Err(GitError::Invalid("empty redaction pattern".to_owned()));
        }
        let pattern = Regex::new(&source).map_err(invalid)?;
        Ok(Self { pattern, replacement, expand: false })
    }

    fn apply(&self, data: Vec<u8>) -> Vec<u8> {
        if self.expand {
            self.pattern.replace_all(&data, self.replacement.as_slice()).into_owned()
        } else {
            self.pattern.replace_all(&data, NoExpand(&self.replacement)).into_owned()
        }
    }
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// Python's `\1` group references in a replacement become `${1}`; a
/// literal `$` is escaped.
fn python_replacement(replacement: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(replacement.len());
    let mut i = 0;
    while i < replacement.len() {
        match replacement[i] {
            b'\\' if replacement.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                out.extend_from_slice(format!("${{{}}}", replacement[i + 1] - b'0').as_bytes());
                i += 2;
                continue;
            }
            b'$' => out.extend_from_slice(b"$$"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// fnmatch-style glob (`*`, `?`) as a regular expression.
fn glob_to_regex(glob: &[u8]) -> String {
    let text = String::from_utf8_lossy(glob);
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out
}

/// What to rewrite.
#[derive(Debug, Clone, Default)]
pub struct RewriteSpec {
    /// Blob ids (hex) to remove from history.
    pub blobs: HashSet<String>,
    pub redactions: Vec<Redaction>,
}

/// Rewrites the history of `repo` into a new repository at `staging`
/// (which must not exist), then makes `repo`'s references those of the
/// staging repository unless they changed meanwhile
/// ([`RewriteError::Changed`]).
pub async fn rewrite_history(
    factory: &CommandFactory,
    repo: &Path,
    staging: &Path,
    format: ObjectFormat,
    spec: &RewriteSpec,
    hooks: Option<&Hooks>,
    correlation_id: Option<&str>,
) -> Result<(), RewriteError> {
    let init = GitCommand::new(Subcommand::Init)
        .flag("--bare")
        .flag("--quiet")
        .flag_value("--object-format", format.as_str())
        .arg(staging);
    factory.run(init, correlation_id).await.map_err(GitError::from)?;
    let before = super::refs::listing(factory, repo, correlation_id).await?;
    export_import(factory, repo, staging, spec, correlation_id).await?;
    let after = super::refs::listing(factory, repo, correlation_id).await?;
    if before != after {
        return Err(RewriteError::Changed);
    }
    let mut fetch = GitCommand::new(Subcommand::Fetch)
        .git_dir(repo)
        // References the rewrite dropped go too.
        .flag("--prune")
        // The refspec brings the tags already.
        .flag("--no-tags")
        // The new history is unrelated to the old one.
        .flag("--force")
        // All references move together or none does.
        .flag("--atomic")
        .flag("--no-show-forced-updates")
        .flag("--no-write-fetch-head")
        .flag("--quiet")
        .config("advice.fetchShowForcedUpdates", "false")
        .arg(staging)
        .arg("+refs/*:refs/*");
    fetch = match hooks {
        Some(h) => h.apply(fetch),
        None => fetch.config("core.hooksPath", "/dev/null"),
    };
    factory.run(fetch, correlation_id).await.map_err(GitError::from)?;
    Ok(())
}

/// Failures of [`rewrite_history`].
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// The repository's references changed while the rewrite ran.
    #[error("source repository checksum altered")]
    Changed,
    #[error(transparent)]
    Git(#[from] GitError),
}

/// Pipes `git fast-export` of `repo` through the filter into `git
/// fast-import` of `staging`.
async fn export_import(
    factory: &CommandFactory,
    repo: &Path,
    staging: &Path,
    spec: &RewriteSpec,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    let export = GitCommand::new(Subcommand::FastExport)
        .git_dir(repo)
        .flag("--all")
        // Blobs are recognised by their original ids.
        .flag("--show-original-ids")
        // Signatures cannot survive a rewrite; without this git aborts.
        .flag("--signed-tags=strip")
        // fast-import requires a tagger.
        .flag("--fake-missing-tagger")
        // Commit bytes (and so the ids of untouched commits) stay as they are.
        .flag("--reencode=no")
        .flag("--use-done-feature");
    let import = GitCommand::new(Subcommand::FastImport)
        .git_dir(staging)
        .flag("--quiet")
        .flag("--force")
        .flag("--date-format=raw-permissive")
        .config("core.hooksPath", "/dev/null");
    let mut exporter = factory.spawn(export, correlation_id)?;
    let mut importer = factory.spawn_duplex(import, correlation_id)?;
    let stdin = importer.stdin.take().expect("fast-import's stdin is piped");
    let drain = |pipe: Option<tokio::process::ChildStderr>| {
        tokio::spawn(async move {
            let mut kept = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut kept).await;
            }
            kept
        })
    };
    let import_stderr = drain(importer.stderr.take());
    if let Some(mut stdout) = importer.stdout.take() {
        tokio::spawn(async move { tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await });
    }
    let mut reader = tokio::io::BufReader::new(exporter.stdout());
    let mut writer = tokio::io::BufWriter::new(stdin);
    let filtered = filter_stream(&mut reader, &mut writer, spec).await;
    let flushed = writer.shutdown().await;
    drop(writer);
    drop(reader);
    exporter.wait().await?;
    let code = importer.wait().await?;
    let stderr = String::from_utf8_lossy(&import_stderr.await.unwrap_or_default()).trim().to_owned();
    if let Some(code) = code {
        return Err(CommandError::Failed { subcommand: "fast-import", code: Some(code), stderr }.into());
    }
    filtered.map_err(GitError::io("filter fast-export stream"))?;
    flushed.map_err(GitError::io("write fast-import stream"))?;
    Ok(())
}

/// The filter: copies a fast-export stream, leaving out the blobs of
/// `spec.blobs` and the file and note entries using them, and applying the
/// redactions to the data of the other blobs. Like `git filter-repo`, a
/// commit left without changes by that (one that had some) is pruned: its
/// children and references point at its parent instead, and a reference
/// whose whole history went is deleted, as is a tag of a removed blob.
pub async fn filter_stream<R, W>(reader: &mut R, writer: &mut W, spec: &RewriteSpec) -> std::io::Result<()>
where
    R: AsyncBufRead + AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut marks = Marks { dropped: HashSet::new(), pruned: HashMap::new(), spec };
    let mut line = Vec::new();
    // A line read ahead that starts the next command.
    let mut pending: Option<Vec<u8>> = None;
    loop {
        line.clear();
        match pending.take() {
            Some(next) => line = next,
            None if reader.read_until(b'\n', &mut line).await? == 0 => return Ok(()),
            None => {}
        }
        if line == b"blob\n" {
            filter_blob(reader, writer, spec, &mut marks.dropped).await?;
        } else if line.starts_with(b"commit ") {
            let commit = Command::read(reader, &line).await?;
            filter_commit(commit, writer, &mut marks).await?;
        } else if line.starts_with(b"tag ") {
            let tag = Command::read(reader, &line).await?;
            match tag.from.as_deref().map(|f| marks.resolve(f)) {
                Some(Target::Gone) => skip_optional_lf(reader).await?,
                target => tag.write(writer, target).await?,
            }
        } else if line.starts_with(b"reset ") {
            // `reset <ref>` and, unless the next command starts, `from`.
            writer.write_all(&line).await?;
            let mut next = Vec::new();
            reader.read_until(b'\n', &mut next).await?;
            match next.strip_prefix(b"from ") {
                Some(from) => {
                    if let Target::Commit(to) = marks.resolve(trim_lf(from)) {
                        writer.write_all(&[b"from ".as_slice(), &to, b"\n"].concat()).await?;
                    }
                }
                None if next.is_empty() => {}
                None => pending = Some(next),
            }
        } else {
            writer.write_all(&line).await?;
        }
    }
}

/// What the filter left out so far.
struct Marks<'a> {
    /// Marks of removed blobs.
    dropped: HashSet<Vec<u8>>,
    /// Marks of pruned commits and what stands in for them (`None`: no
    /// commit, the pruned one had no parent left).
    pruned: HashMap<Vec<u8>, Option<Vec<u8>>>,
    spec: &'a RewriteSpec,
}

/// What a commit-ish of the stream names after filtering.
enum Target {
    Commit(Vec<u8>),
    /// A removed blob, or a pruned commit without a parent.
    Gone,
}

impl Marks<'_> {
    fn resolve(&self, commitish: &[u8]) -> Target {
        if self.dropped.contains(commitish) || self.spec.blobs.contains(String::from_utf8_lossy(commitish).as_ref()) {
            return Target::Gone;
        }
        match self.pruned.get(commitish) {
            Some(Some(to)) => Target::Commit(to.clone()),
            Some(None) => Target::Gone,
            None => Target::Commit(commitish.to_vec()),
        }
    }
}

/// A `commit` or `tag` command, read up to its end.
struct Command {
    /// The command's first line (`commit <ref>`, `tag <name>`).
    first: Vec<u8>,
    /// Header lines (mark, original-oid, author, committer, tagger, ...).
    header: Vec<Vec<u8>>,
    mark: Option<Vec<u8>>,
    /// The `data` line and the message.
    message: Vec<u8>,
    from: Option<Vec<u8>>,
    merges: Vec<Vec<u8>>,
    /// File, note and `deleteall` lines (commits only).
    changes: Vec<Vec<u8>>,
}

impl Command {
    async fn read<R: AsyncBufRead + AsyncRead + Unpin>(reader: &mut R, first: &[u8]) -> std::io::Result<Self> {
        let truncated = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated fast-export stream");
        let mut cmd = Self {
            first: first.to_vec(),
            header: Vec::new(),
            mark: None,
            message: Vec::new(),
            from: None,
            merges: Vec::new(),
            changes: Vec::new(),
        };
        let is_tag = first.starts_with(b"tag ");
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).await? == 0 {
                return Err(truncated());
            }
            if let Some(size) = line.strip_prefix(b"data ") {
                cmd.message = line.clone();
                (&mut *reader).take(parse_size(size)?).read_to_end(&mut cmd.message).await?;
                break;
            }
            // A tag's `from` comes before its message.
            if let Some(from) = line.strip_prefix(b"from ") {
                cmd.from = Some(trim_lf(from).to_vec());
                continue;
            }
            if let Some(mark) = line.strip_prefix(b"mark ") {
                cmd.mark = Some(trim_lf(mark).to_vec());
            }
            cmd.header.push(line.clone());
        }
        if is_tag {
            return Ok(cmd);
        }
        // A commit's parents and changes, up to its closing empty line.
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).await? == 0 || line == b"\n" {
                return Ok(cmd);
            }
            if let Some(from) = line.strip_prefix(b"from ") {
                cmd.from = Some(trim_lf(from).to_vec());
            } else if let Some(merge) = line.strip_prefix(b"merge ") {
                cmd.merges.push(trim_lf(merge).to_vec());
            } else {
                cmd.changes.push(line.clone());
            }
        }
    }

    /// Writes the command with `from` pointing at `target` (none when
    /// `None`).
    async fn write<W: AsyncWrite + Unpin>(&self, writer: &mut W, target: Option<Target>) -> std::io::Result<()> {
        let from = match target {
            Some(Target::Commit(to)) => [b"from ".as_slice(), &to, b"\n"].concat(),
            _ => Vec::new(),
        };
        let is_tag = self.first.starts_with(b"tag ");
        writer.write_all(&self.first).await?;
        if is_tag {
            writer.write_all(&from).await?;
        }
        for line in &self.header {
            writer.write_all(line).await?;
        }
        writer.write_all(&self.message).await?;
        if !is_tag {
            writer.write_all(&from).await?;
        }
        Ok(())
    }
}

/// Writes `commit` with removed blobs' entries left out, or prunes it.
async fn filter_commit<W: AsyncWrite + Unpin>(
    mut commit: Command,
    writer: &mut W,
    marks: &mut Marks<'_>,
) -> std::io::Result<()> {
    let had_changes = !commit.changes.is_empty();
    commit.changes.retain(|line| {
        !((line.starts_with(b"M ") && uses_dropped(line, 2, &marks.dropped, marks.spec))
            || (line.starts_with(b"N ") && uses_dropped(line, 1, &marks.dropped, marks.spec)))
    });
    let parent = commit.from.as_deref().map(|f| marks.resolve(f));
    let reference = &commit.first[b"commit ".len()..];
    if commit.merges.is_empty() && had_changes && commit.changes.is_empty() {
        // Pruned: its reference points at the parent (or goes) instead.
        let to = match parent {
            Some(Target::Commit(to)) => Some(to),
            _ => None,
        };
        writer.write_all(&[b"reset ".as_slice(), reference].concat()).await?;
        if let Some(to) = &to {
            writer.write_all(&[b"from ".as_slice(), to, b"\n"].concat()).await?;
        }
        writer.write_all(b"\n").await?;
        if let Some(mark) = commit.mark {
            marks.pruned.insert(mark, to);
        }
        return Ok(());
    }
    if matches!(parent, Some(Target::Gone)) {
        // Its parent went: it starts a new history, as a root commit does.
        writer.write_all(&[b"reset ".as_slice(), reference].concat()).await?;
    }
    commit.write(writer, parent).await?;
    for merge in &commit.merges {
        if let Target::Commit(to) = marks.resolve(merge) {
            writer.write_all(&[b"merge ".as_slice(), &to, b"\n"].concat()).await?;
        }
    }
    for line in &commit.changes {
        writer.write_all(line).await?;
    }
    writer.write_all(b"\n").await
}

fn trim_lf(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

/// Whether the data reference (field `index`, space-separated) of a
/// `M <mode> <ref> <path>` or `N <ref> <commit>` line is a dropped mark or
/// a removed blob's id.
fn uses_dropped(line: &[u8], index: usize, dropped: &HashSet<Vec<u8>>, spec: &RewriteSpec) -> bool {
    let Some(data_ref) = line.split(|b| *b == b' ').nth(index) else { return false };
    dropped.contains(data_ref) || spec.blobs.contains(String::from_utf8_lossy(data_ref).as_ref())
}

fn parse_size(field: &[u8]) -> std::io::Result<u64> {
    String::from_utf8_lossy(field)
        .trim_end()
        .parse()
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad data length in fast-export stream"))
}

/// One `blob` command (its `blob` line already read).
async fn filter_blob<R, W>(
    reader: &mut R,
    writer: &mut W,
    spec: &RewriteSpec,
    dropped: &mut HashSet<Vec<u8>>,
) -> std::io::Result<()>
where
    R: AsyncBufRead + AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut header = b"blob\n".to_vec();
    let mut mark = None;
    let mut original = None;
    let size = loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated blob in fast-export stream"));
        }
        if let Some(size) = line.strip_prefix(b"data ") {
            break parse_size(size)?;
        }
        let trimmed = line.strip_suffix(b"\n").unwrap_or(&line);
        if let Some(m) = trimmed.strip_prefix(b"mark ") {
            mark = Some(m.to_vec());
        } else if let Some(oid) = trimmed.strip_prefix(b"original-oid ") {
            original = Some(String::from_utf8_lossy(oid).into_owned());
        }
        header.extend_from_slice(&line);
    };
    let remove = original.as_ref().is_some_and(|oid| spec.blobs.contains(oid));
    if remove || !spec.redactions.is_empty() {
        let mut data = Vec::new();
        (&mut *reader).take(size).read_to_end(&mut data).await?;
        skip_optional_lf(reader).await?;
        if remove {
            if let Some(mark) = mark {
                dropped.insert(mark);
            }
            return Ok(());
        }
        if !data[..data.len().min(BINARY_PROBE)].contains(&0) {
            for r in &spec.redactions {
                data = r.apply(data);
            }
        }
        writer.write_all(&header).await?;
        writer.write_all(format!("data {}\n", data.len()).as_bytes()).await?;
        writer.write_all(&data).await?;
        return writer.write_all(b"\n").await;
    }
    writer.write_all(&header).await?;
    writer.write_all(format!("data {size}\n").as_bytes()).await?;
    tokio::io::copy(&mut (&mut *reader).take(size), writer).await?;
    Ok(())
}

/// fast-export ends blob data with a newline the grammar makes optional.
async fn skip_optional_lf<R: AsyncBufRead + Unpin>(reader: &mut R) -> std::io::Result<()> {
    if reader.fill_buf().await?.first() == Some(&b'\n') {
        reader.consume(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(rules: &[&[u8]], text: &[u8]) -> Vec<u8> {
        let spec = RewriteSpec {
            blobs: HashSet::new(),
            redactions: rules.iter().map(|r| Redaction::parse(r).expect("valid rule")).collect(),
        };
        spec.redactions.iter().fold(text.to_vec(), |d, r| r.apply(d))
    }

    #[test]
    fn redaction_rules_follow_filter_repo() {
        assert_eq!(redact(&[b"secret"], b"a secret; secret."), b"a ***REMOVED***; ***REMOVED***.");
        assert_eq!(redact(&[b"literal:p4$$==>xx"], b"pw=p4$$"), b"pw=xx");
        assert_eq!(redact(&[b"regex:tok_([a-z]+)==>tok_\\1_gone"], b"tok_abc"), b"tok_abc_gone");
        assert_eq!(redact(&[b"glob:ke?-*z"], b"key-12z rest"), b"***REMOVED*** rest");
        assert!(Redaction::parse(b"").is_err());
        assert!(Redaction::parse(b"regex:(").is_err());
    }

    #[tokio::test]
    async fn stream_filter_drops_blobs_and_their_entries() {
        let removed = "a".repeat(40);
        let kept = "b".repeat(40);
        let input = format!(
            "feature done\nblob\nmark :1\noriginal-oid {removed}\ndata 6\nsecret\nblob\nmark :2\noriginal-oid {kept}\ndata 11\nkeep secret\nreset refs/heads/main\ncommit refs/heads/main\nmark :3\ndata 8\nM 1 :1\n\nM 100644 :1 big\nM 100644 :2 small\n\ndone\n"
        );
        let spec = RewriteSpec {
            blobs: [removed].into_iter().collect(),
            redactions: vec![Redaction::parse(b"secret").expect("rule")],
        };
        let mut reader = tokio::io::BufReader::new(input.as_bytes());
        let mut out = Vec::new();
        filter_stream(&mut reader, &mut out, &spec).await.expect("filters");
        let expected = format!(
            "feature done\nblob\nmark :2\noriginal-oid {kept}\ndata 18\nkeep ***REMOVED***\nreset refs/heads/main\ncommit refs/heads/main\nmark :3\ndata 8\nM 1 :1\n\nM 100644 :2 small\n\ndone\n"
        );
        assert_eq!(String::from_utf8_lossy(&out), expected, "commit messages are not filtered");
    }

    #[tokio::test]
    async fn commits_left_empty_are_pruned_and_references_follow() {
        let removed = "a".repeat(40);
        let input = format!(
            "feature done\nblob\nmark :1\noriginal-oid {removed}\ndata 3\nbig\nblob\nmark :2\ndata 1\nx\n\
reset refs/heads/main\ncommit refs/heads/main\nmark :3\ndata 2\nc3M 100644 :2 a\n\n\
commit refs/heads/main\nmark :4\ndata 2\nc4from :3\nM 100644 :1 big\n\n\
commit refs/heads/main\nmark :5\ndata 2\nc5from :4\nM 100644 :2 b\n\n\
reset refs/heads/root\ncommit refs/heads/root\nmark :6\ndata 2\nc6M 100644 :1 big\n\n\
commit refs/heads/root\nmark :7\ndata 2\nc7from :6\nM 100644 :2 c\n\n\
tag blob\nfrom :1\ntagger T <t> 1 +0000\ndata 1\nt\n\
tag v1\nfrom :4\ntagger T <t> 1 +0000\ndata 1\nt\n\
reset refs/heads/gone\nfrom :6\n\nreset refs/heads/kept\nfrom :4\n\ndone\n"
        );
        let spec = RewriteSpec { blobs: [removed].into_iter().collect(), redactions: vec![] };
        let mut reader = tokio::io::BufReader::new(input.as_bytes());
        let mut out = Vec::new();
        filter_stream(&mut reader, &mut out, &spec).await.expect("filters");
        let expected = "feature done\nblob\nmark :2\ndata 1\nx\n\
reset refs/heads/main\ncommit refs/heads/main\nmark :3\ndata 2\nc3M 100644 :2 a\n\n\
reset refs/heads/main\nfrom :3\n\n\
commit refs/heads/main\nmark :5\ndata 2\nc5from :3\nM 100644 :2 b\n\n\
reset refs/heads/root\nreset refs/heads/root\n\n\
reset refs/heads/root\ncommit refs/heads/root\nmark :7\ndata 2\nc7M 100644 :2 c\n\n\
tag v1\nfrom :3\ntagger T <t> 1 +0000\ndata 1\nt\n\
reset refs/heads/gone\n\nreset refs/heads/kept\nfrom :3\n\ndone\n";
        assert_eq!(String::from_utf8_lossy(&out), expected);
    }
}
