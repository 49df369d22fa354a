//! Fetching and cloning from elsewhere: from another node through
//! `gitaly-ssh` (internal fetches, [`InternalRemote`]) and from arbitrary
//! URLs (FetchRemote, CreateRepositoryFromURL).
//!
//! Internal fetches run `git fetch ssh://gitaly/internal.git` with
//! `GIT_SSH_COMMAND` set to `gitaly-ssh upload-pack`: git believes it talks
//! SSH while gitaly-ssh relays the protocol to the other node's
//! SSHUploadPackWithSidechannel. Everything git needs besides the sealed
//! environment is passed as variables (`GITALY_ADDRESS`, `GITALY_PAYLOAD`,
//! `GITALY_TOKEN`), never as options.

use super::{CommandError, CommandFactory, GitCommand, GitError, Subcommand};
use std::path::{Path, PathBuf};

/// The URL git is given for internal fetches; gitaly-ssh ignores it.
pub const INTERNAL_URL: &str = "ssh://gitaly/internal.git";

/// Where and how to reach a repository on another node.
#[derive(Clone)]
pub struct InternalRemote {
    /// The `gitaly-ssh` binary.
    pub gitaly_ssh: PathBuf,
    /// The node's address (`tcp://`, `tls://`, `unix:`).
    pub address: String,
    /// The node's shared secret; empty when it needs none.
    pub token: String,
    /// SSHUploadPackWithSidechannelRequest in protojson.
    pub payload: String,
}

impl std::fmt::Debug for InternalRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalRemote")
            .field("address", &self.address)
            .field("token", &if self.token.is_empty() { "" } else { "<redacted>" })
            .finish_non_exhaustive()
    }
}

impl InternalRemote {
    fn apply(&self, cmd: GitCommand) -> GitCommand {
        cmd.env("GIT_SSH_COMMAND", format!("{} upload-pack", shell_quote(&self.gitaly_ssh.to_string_lossy())))
            // git passes gitaly-ssh only the host and command, no options.
            .env("GIT_SSH_VARIANT", "simple")
            .env("GITALY_ADDRESS", &self.address)
            .env("GITALY_PAYLOAD", &self.payload)
            .env("GITALY_TOKEN", &self.token)
            .env("GITALY_USE_SIDECHANNEL", "1")
            // Objects from another node of the same installation were
            // accepted once; stricter checks added since must not make them
            // impossible to replicate.
            .config("fetch.fsckObjects", "false")
            .config("advice.fetchShowForcedUpdates", "false")
            // No hooks run for internal transfers.
            .config("core.hooksPath", "/dev/null")
    }
}

/// Quotes `s` for the shell git runs `GIT_SSH_COMMAND` with.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Makes the repository at `repo` mirror the remote: every reference is
/// fetched, force-updated and pruned in one atomic transaction, so the
/// references end up identical to the source's or unchanged.
pub async fn mirror_internal(
    factory: &CommandFactory,
    repo: &Path,
    remote: &InternalRemote,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    let cmd = GitCommand::new(Subcommand::Fetch)
        .git_dir(repo)
        // FETCH_HEAD would list every reference for nothing.
        .flag("--no-write-fetch-head")
        .flag("--quiet")
        .flag("--prune")
        // Tags come with the mirror refspec; following them costs time.
        .flag("--no-tags")
        .flag("--atomic")
        .config("fetch.negotiationAlgorithm", "skipping")
        .arg(INTERNAL_URL)
        .arg("+refs/*:refs/*");
    factory.run(remote.apply(cmd), correlation_id).await?;
    Ok(())
}

/// Fetches the single object `oid` (and what it reaches) from the remote
/// into `objects` (the repository's own object directory when it names
/// none), changing no reference.
pub async fn fetch_object_internal(
    factory: &CommandFactory,
    repo: &Path,
    objects: &super::repo::Quarantine,
    remote: &InternalRemote,
    oid: &str,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    let cmd = fetch_object(repo, std::ffi::OsStr::new(INTERNAL_URL), oid);
    factory.run(objects.apply(remote.apply(cmd)), correlation_id).await?;
    Ok(())
}

/// Fetches the single object `oid` from the repository at `source` on
/// this node into `objects`, as [`fetch_object_internal`] does from others.
pub async fn fetch_object_local(
    factory: &CommandFactory,
    repo: &Path,
    objects: &super::repo::Quarantine,
    source: &Path,
    oid: &str,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    let cmd = fetch_object(repo, source.as_os_str(), oid)
        // The source's upload-pack reads this from the environment git
        // passes on; it lets a fetch want an id no reference names.
        .config("uploadpack.allowAnySHA1InWant", "true")
        .config("core.hooksPath", "/dev/null");
    factory.run(objects.apply(cmd), correlation_id).await?;
    Ok(())
}

fn fetch_object(repo: &Path, url: &std::ffi::OsStr, oid: &str) -> GitCommand {
    GitCommand::new(Subcommand::Fetch)
        .git_dir(repo)
        .flag("--no-write-fetch-head")
        .flag("--quiet")
        .flag("--no-tags")
        .arg(url)
        .arg(oid)
}

/// Clones the remote bare into `dest` (which must not exist); with
/// `branch`, only that branch, which HEAD then points to.
pub async fn clone_internal(
    factory: &CommandFactory,
    dest: &Path,
    remote: &InternalRemote,
    branch: Option<&str>,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    let mut cmd = GitCommand::new(Subcommand::Clone).flag("--bare").flag("--quiet");
    if let Some(branch) = branch {
        cmd = cmd.flag("--no-tags").flag("--single-branch").flag_value("--branch", branch);
    }
    let cmd = cmd.arg(INTERNAL_URL).arg(dest);
    factory.run(remote.apply(cmd), correlation_id).await?;
    Ok(())
}

/// Where HEAD points (`refs/heads/main`), unborn or not.
pub async fn head_target(
    factory: &CommandFactory,
    repo: &Path,
    correlation_id: Option<&str>,
) -> Result<String, GitError> {
    let out = factory.run(GitCommand::new(Subcommand::SymbolicRef).git_dir(repo).arg("HEAD"), correlation_id).await?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Whether the object `oid` exists in `repo` and is (or peels to) a commit.
pub async fn has_commit(
    factory: &CommandFactory,
    repo: &Path,
    oid: &str,
    correlation_id: Option<&str>,
) -> Result<bool, GitError> {
    let cmd = GitCommand::new(Subcommand::RevParse)
        .git_dir(repo)
        .flag("--verify")
        .flag("--quiet")
        .arg(format!("{oid}^{{commit}}"));
    match factory.run(cmd, correlation_id).await {
        Ok(_) => Ok(true),
        Err(CommandError::Failed { code: Some(1), .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Drops the `origin` remote `git clone` configured (the repository must
/// not remember where it came from, credentials included).
pub async fn remove_origin(
    factory: &CommandFactory,
    repo: &Path,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    let cmd = GitCommand::new(Subcommand::Config).git_dir(repo).flag("--remove-section").arg("remote.origin");
    match factory.run(cmd, correlation_id).await {
        Ok(_) => Ok(()),
        // No such section: nothing to remove.
        Err(CommandError::Failed { code: Some(128), ref stderr, .. }) if stderr.contains("no such section") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// An external remote, as FetchRemote and CreateRepositoryFromURL name it.
#[derive(Clone, Default)]
pub struct UrlRemote {
    pub url: String,
    /// Value of an `Authorization` header for HTTP(S) remotes.
    pub authorization: String,
    /// Pinned IP address of the URL's host (against DNS rebinding).
    pub resolved_address: String,
}

impl std::fmt::Debug for UrlRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlRemote")
            .field("url", &redact_userinfo(&self.url))
            .field("resolved_address", &self.resolved_address)
            .finish_non_exhaustive()
    }
}

/// The URL without a `user:password@` part, for messages.
pub fn redact_userinfo(url: &str) -> String {
    split_userinfo(url).map_or_else(|| url.to_owned(), |(_, rest)| rest)
}

/// Splits `scheme://user[:pass]@host/...` into the decoded credentials and
/// the URL without them.
fn split_userinfo(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let (userinfo, host) = authority.rsplit_once('@')?;
    Some((percent_decode(userinfo), format!("{scheme}://{host}{path}")))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(|&b| hex(b)), bytes.get(i + 2).and_then(|&b| hex(b)))
        {
            out.push(u8::try_from(h * 16 + l).expect("two hex digits fit a byte"));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URL to hand git and the configuration pinning its host to
/// `resolved` (upstream's rules: `http.curloptResolve` for HTTP(S) and
/// git://, the address substituted into SSH URLs).
pub fn pin_address(url: &str, resolved: &str) -> Result<(String, Vec<(String, String)>), GitError> {
    let invalid = |m: &str| GitError::Invalid(m.to_owned());
    if url.is_empty() {
        return Err(invalid("URL is empty"));
    }
    if resolved.parse::<std::net::IpAddr>().is_err() {
        return Err(invalid("resolved address has invalid IPv4/IPv6 address"));
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = match host_port.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6.split_once(']').ok_or_else(|| invalid("couldn't parse remoteURL"))?;
                (h, after.strip_prefix(':'))
            }
            None => match host_port.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (host_port, None),
            },
        };
        return match scheme {
            "http" | "https" | "git" => {
                let port = match (port, scheme) {
                    (Some(p), _) if !p.is_empty() => p,
                    (_, "http") => "80",
                    (_, "https") => "443",
                    _ => "9418",
                };
                Ok((url.to_owned(), vec![("http.curloptResolve".to_owned(), format!("{host}:{port}:{resolved}"))]))
            }
            "ssh" => {
                let user = authority.rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                let host = if resolved.contains(':') { format!("[{resolved}]") } else { resolved.to_owned() };
                Ok((format!("{scheme}://{user}{host}{port}{}", &rest[authority_end..]), Vec::new()))
            }
            other => Err(GitError::Invalid(format!("unknown schema provided: {other}"))),
        };
    }
    // scp-like `user@host:path`.
    let (host_part, path) = url.split_once(':').ok_or_else(|| invalid("invalid protocol/URL encountered"))?;
    if host_part.contains('/') {
        return Err(invalid("SSH URLs with '/' before colon are unsupported"));
    }
    let user = host_part.rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
    Ok((format!("{user}{resolved}:{path}"), Vec::new()))
}

/// A temporary directory holding an SSH key and known-hosts file, and the
/// `GIT_SSH_COMMAND` using them; removed when dropped.
#[derive(Debug)]
pub struct SshSetup {
    _dir: Option<tempfile::TempDir>,
    pub command: String,
}

impl SshSetup {
    /// Writes the key and known hosts (when given) below `tmp_root`.
    pub fn new(tmp_root: &Path, key: &str, known_hosts: &str) -> Result<Self, GitError> {
        if key.is_empty() && known_hosts.is_empty() {
            return Ok(Self { _dir: None, command: "ssh".to_owned() });
        }
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::create_dir_all(tmp_root).map_err(GitError::io("create temporary directory"))?;
        let dir = tempfile::Builder::new()
            .prefix("ssh-")
            .tempdir_in(tmp_root)
            .map_err(GitError::io("create temporary directory"))?;
        let write = |name: &str, content: &str| -> Result<PathBuf, GitError> {
            let path = dir.path().join(name);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o400)
                .open(&path)
                .map_err(GitError::io("write ssh file"))?;
            f.write_all(content.as_bytes()).map_err(GitError::io("write ssh file"))?;
            Ok(path)
        };
        let mut command = String::from("ssh");
        if !key.is_empty() {
            let path = write("ssh-key", key)?;
            command.push_str(" -oIdentitiesOnly=yes -oIdentityFile=");
            command.push_str(&shell_quote(&path.to_string_lossy()));
        }
        if !known_hosts.is_empty() {
            let path = write("known-hosts", known_hosts)?;
            command.push_str(" -oStrictHostKeyChecking=yes -oCheckHostIP=no -oUserKnownHostsFile=");
            command.push_str(&shell_quote(&path.to_string_lossy()));
        }
        Ok(Self { _dir: Some(dir), command })
    }
}

/// Options of [`fetch_url`].
#[derive(Debug, Clone, Default)]
pub struct FetchUrlOptions {
    pub remote: UrlRemote,
    /// Refspecs (`remote.<name>.fetch` values).
    pub refspecs: Vec<String>,
    pub force: bool,
    pub prune: bool,
    pub no_tags: bool,
    pub ssh_command: String,
    /// The reference-transaction hook inside a router's transaction: the
    /// atomic fetch is one reference transaction, voted on by the hook.
    pub hooks: Option<super::wire::Hooks>,
}

/// What a fetch changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchOutcome {
    /// A tag was created or moved.
    pub tags_changed: bool,
    /// Any reference was created, moved or pruned.
    pub repo_changed: bool,
}

/// Only network transports may be used with request-supplied URLs: a local
/// path or `file://` URL would let a caller copy any repository (or other
/// git directory) the node can read.
fn network_protocols_only(cmd: GitCommand) -> GitCommand {
    cmd.config("protocol.allow", "never")
        .config("protocol.http.allow", "always")
        .config("protocol.https.allow", "always")
        .config("protocol.git.allow", "always")
        .config("protocol.ssh.allow", "always")
}

/// Name of the ad-hoc remote (it exists only in the command's configuration).
const ADHOC_REMOTE: &str = "inmemory";

/// Fetches from an external URL into `repo`. References that cannot be
/// updated fail the call with git's message.
pub async fn fetch_url(
    factory: &CommandFactory,
    repo: &Path,
    opts: &FetchUrlOptions,
    correlation_id: Option<&str>,
) -> Result<FetchOutcome, GitError> {
    let mut cmd = network_protocols_only(GitCommand::new(Subcommand::Fetch))
        .git_dir(repo)
        .flag("--no-write-fetch-head")
        .flag("--porcelain")
        // All references move together or none does.
        .flag("--atomic")
        .env("GIT_SSH_COMMAND", &opts.ssh_command)
        .config("advice.fetchShowForcedUpdates", "false")
        .config("core.hooksPath", "/dev/null");
    if opts.prune {
        cmd = cmd.flag("--prune");
    }
    if opts.force {
        cmd = cmd.flag("--force").flag("--no-show-forced-updates");
    }
    cmd = cmd.flag(if opts.no_tags { "--no-tags" } else { "--tags" });
    for refspec in &opts.refspecs {
        cmd = cmd.config(&format!("remote.{ADHOC_REMOTE}.fetch"), refspec);
    }
    cmd = adhoc_remote(cmd, &opts.remote)?.arg(ADHOC_REMOTE);
    if let Some(hooks) = &opts.hooks {
        cmd = hooks.apply(cmd);
    }
    let out = factory.run(cmd, correlation_id).await?;
    Ok(parse_porcelain(&String::from_utf8_lossy(&out.stdout)))
}

/// Configures `cmd` with the ad-hoc remote [`ADHOC_REMOTE`] standing for
/// `remote`: its URL (pinned to the resolved address when given) and its
/// `Authorization` header, scoped to that URL as upstream scopes it.
fn adhoc_remote(mut cmd: GitCommand, remote: &UrlRemote) -> Result<GitCommand, GitError> {
    let mut url = remote.url.clone();
    if !remote.resolved_address.is_empty() {
        let (pinned, config) = pin_address(&url, &remote.resolved_address)?;
        url = pinned;
        for (k, v) in config {
            cmd = cmd.config(&k, &v);
        }
    }
    cmd = cmd.config(&format!("remote.{ADHOC_REMOTE}.url"), &url);
    if !remote.authorization.is_empty() {
        cmd = cmd
            .config(&format!("http.{}.extraHeader", remote.url), &format!("Authorization: {}", remote.authorization));
    }
    Ok(cmd)
}

/// What a remote reference points at, as `git ls-remote --symref` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteTarget {
    /// An object id (hex).
    Object(String),
    /// A symbolic reference to the named reference.
    Symbolic(String),
}

/// Lists the references of `remote` matching `patterns` (all when empty):
/// `git ls-remote --symref` with the ad-hoc remote, run in `repo` when
/// given (only for its object format). A symbolic reference is listed with
/// its target's name only. `refs_only` drops HEAD and peeled tags
/// (`--refs`).
pub async fn ls_remote(
    factory: &CommandFactory,
    repo: Option<&Path>,
    remote: &UrlRemote,
    patterns: &[&str],
    refs_only: bool,
    ssh_command: &str,
    correlation_id: Option<&str>,
) -> Result<Vec<(String, RemoteTarget)>, GitError> {
    let mut cmd = network_protocols_only(GitCommand::new(Subcommand::LsRemote))
        .flag("--symref")
        .env("GIT_SSH_COMMAND", ssh_command);
    if let Some(repo) = repo {
        cmd = cmd.git_dir(repo);
    }
    if refs_only {
        cmd = cmd.flag("--refs");
    }
    cmd = adhoc_remote(cmd, remote)?.arg(ADHOC_REMOTE);
    for p in patterns {
        cmd = cmd.arg(p);
    }
    let out = factory.run(cmd, correlation_id).await?;
    parse_ls_remote(&String::from_utf8_lossy(&out.stdout))
}

/// Reads `git ls-remote --symref` lines: `<oid>\t<name>`, and for symbolic
/// references `ref: <target>\t<name>` before the resolved line (which is
/// then skipped: the symbolic entry stands for it).
fn parse_ls_remote(text: &str) -> Result<Vec<(String, RemoteTarget)>, GitError> {
    let mut out: Vec<(String, RemoteTarget)> = Vec::new();
    let mut symbolic: Option<String> = None;
    for line in text.lines() {
        let (target, name) = line
            .split_once('\t')
            .ok_or_else(|| GitError::Invalid(format!("invalid ls-remote output line: {line:?}")))?;
        if let Some(to) = target.strip_prefix("ref: ") {
            symbolic = Some(name.to_owned());
            out.push((name.to_owned(), RemoteTarget::Symbolic(to.to_owned())));
            continue;
        }
        if symbolic.take().as_deref() == Some(name) {
            continue;
        }
        out.push((name.to_owned(), RemoteTarget::Object(target.to_owned())));
    }
    Ok(out)
}

/// Whether `url` answers as a git repository with a HEAD (upstream's
/// check: `git ls-remote <url> HEAD` prints one object id). Any failure
/// to talk to it means "no".
pub async fn remote_exists(factory: &CommandFactory, url: &str, correlation_id: Option<&str>) -> bool {
    let cmd = network_protocols_only(GitCommand::new(Subcommand::LsRemote)).arg(url).arg("HEAD");
    let Ok(out) = factory.run(cmd, correlation_id).await else { return false };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some((oid, rest)) = text.split_once('\t') else { return false };
    rest == "HEAD\n" && matches!(oid.len(), 40 | 64) && oid.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Pushes `refspecs` to `remote` from `repo` (`--force` when asked). No
/// hooks run: the push changes nothing locally.
pub async fn push(
    factory: &CommandFactory,
    repo: &Path,
    remote: &UrlRemote,
    refspecs: &[String],
    force: bool,
    ssh_command: &str,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    let mut cmd = network_protocols_only(GitCommand::new(Subcommand::Push))
        .git_dir(repo)
        .flag("--quiet")
        .env("GIT_SSH_COMMAND", ssh_command)
        .config("core.hooksPath", "/dev/null");
    if force {
        cmd = cmd.flag("--force");
    }
    cmd = adhoc_remote(cmd, remote)?.arg(ADHOC_REMOTE);
    for r in refspecs {
        cmd = cmd.arg(r);
    }
    factory.run(cmd, correlation_id).await?;
    Ok(())
}

/// Reads `git fetch --porcelain` lines: `<flag> <old> <new> <reference>`.
fn parse_porcelain(text: &str) -> FetchOutcome {
    let mut outcome = FetchOutcome::default();
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        let (Some(flag), Some(_old), Some(_new), Some(name)) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        match flag {
            // Up to date, or rejected: nothing changed.
            "=" | "!" => {}
            "t" => {
                outcome.tags_changed = true;
                outcome.repo_changed = true;
            }
            "*" if name.starts_with("refs/tags/") => {
                outcome.tags_changed = true;
                outcome.repo_changed = true;
            }
            _ => outcome.repo_changed = true,
        }
    }
    outcome
}

/// Clones `remote` into `dest` (which must not exist), bare or as a mirror.
/// Credentials in the URL become an `Authorization: Basic` header so that
/// they are never written to the repository's configuration.
pub async fn clone_url(
    factory: &CommandFactory,
    dest: &Path,
    remote: &UrlRemote,
    mirror: bool,
    correlation_id: Option<&str>,
) -> Result<(), GitError> {
    use base64::Engine as _;
    let mut cmd = network_protocols_only(GitCommand::new(Subcommand::Clone))
        .flag("--quiet")
        .flag(if mirror { "--mirror" } else { "--bare" })
        .config("core.hooksPath", "/dev/null");
    let mut url = remote.url.clone();
    if let Some((credentials, without)) = split_userinfo(&remote.url) {
        url = without;
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        cmd = cmd.config("http.extraHeader", &format!("Authorization: Basic {encoded}"));
    } else if !remote.authorization.is_empty() {
        cmd = cmd.config("http.extraHeader", &format!("Authorization: {}", remote.authorization));
    }
    if !remote.resolved_address.is_empty() {
        let (pinned, config) = pin_address(&url, &remote.resolved_address)?;
        url = pinned;
        for (k, v) in config {
            cmd = cmd.config(&k, &v);
        }
    }
    factory.run(cmd.arg(url).arg(dest), correlation_id).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn porcelain_lines() {
        let z = "0".repeat(40);
        let a = "a".repeat(40);
        let none = parse_porcelain(&format!("= {a} {a} refs/heads/main\n"));
        assert_eq!(none, FetchOutcome::default());
        let branch = parse_porcelain(&format!("* {z} {a} refs/heads/new\n"));
        assert_eq!(branch, FetchOutcome { tags_changed: false, repo_changed: true });
        let tag = parse_porcelain(&format!("= {a} {a} refs/heads/main\n* {z} {a} refs/tags/v1\n"));
        assert_eq!(tag, FetchOutcome { tags_changed: true, repo_changed: true });
        let moved = parse_porcelain(&format!("t {a} {z} refs/tags/v1\n"));
        assert!(moved.tags_changed);
        let pruned = parse_porcelain(&format!("- {a} {z} refs/heads/gone\n"));
        assert_eq!(pruned, FetchOutcome { tags_changed: false, repo_changed: true });
    }

    #[test]
    fn ls_remote_lines() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let text = format!("ref: refs/heads/main\tHEAD\n{a}\tHEAD\n{a}\trefs/heads/main\n{b}\trefs/tags/v1\n");
        let refs = parse_ls_remote(&text).expect("parses");
        assert_eq!(
            refs,
            vec![
                ("HEAD".to_owned(), RemoteTarget::Symbolic("refs/heads/main".to_owned())),
                ("refs/heads/main".to_owned(), RemoteTarget::Object(a)),
                ("refs/tags/v1".to_owned(), RemoteTarget::Object(b)),
            ]
        );
        assert!(parse_ls_remote("garbage\n").is_err());
    }

    #[test]
    fn userinfo_is_split_and_decoded() {
        let (creds, url) = split_userinfo("https://us%40er:p%3Ass@example.com:8080/a/b.git").expect("userinfo");
        assert_eq!(creds, "us@er:p:ss");
        assert_eq!(url, "https://example.com:8080/a/b.git");
        assert!(split_userinfo("https://example.com/a@b").is_none());
        assert_eq!(redact_userinfo("http://u:p@h/x"), "http://h/x");
    }

    #[test]
    fn pinned_addresses() {
        let (url, cfg) = pin_address("https://example.com/x.git", "192.0.2.1").expect("https");
        assert_eq!(url, "https://example.com/x.git");
        assert_eq!(cfg, vec![("http.curloptResolve".to_owned(), "example.com:443:192.0.2.1".to_owned())]);
        let (_, cfg) = pin_address("http://example.com:8080/x.git", "::1").expect("http");
        assert_eq!(cfg[0].1, "example.com:8080:::1");
        let (url, cfg) = pin_address("ssh://git@example.com:22/x.git", "192.0.2.1").expect("ssh");
        assert_eq!(url, "ssh://git@192.0.2.1:22/x.git");
        assert!(cfg.is_empty());
        let (url, _) = pin_address("git@example.com:group/x.git", "192.0.2.1").expect("scp");
        assert_eq!(url, "git@192.0.2.1:group/x.git");
        assert!(pin_address("https://example.com/x.git", "example.org").is_err());
        assert!(pin_address("a/b:c", "192.0.2.1").is_err());
    }
}
