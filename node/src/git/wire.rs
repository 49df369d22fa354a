//! The git wire protocol as the node serves it: commands for upload-pack,
//! receive-pack and upload-archive, request-supplied configuration and
//! protocol versions, and pkt-line framing (encoding, sideband, and a
//! streaming scanner that watches the client's negotiation).
//!
//! The transfer itself is git's (`git upload-pack` etc. through the command
//! factory): gix has no server side of the pack protocol.

use std::path::Path;

use super::command::{GitCommand, Subcommand};

/// Largest pkt-line, header included (git's `LARGE_PACKET_MAX`).
pub const MAX_PKT_LEN: usize = 65520;
/// Largest sideband payload: a packet minus header and band byte.
pub const MAX_SIDEBAND_DATA: usize = MAX_PKT_LEN - 5;
/// The flush packet.
pub const FLUSH: &[u8] = b"0000";

/// Sideband channel numbers.
pub const BAND_STDOUT: u8 = 1;
pub const BAND_STDERR: u8 = 2;

/// A request field that cannot be turned into a git invocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("cannot convert invalid config key: {0:?}")]
    ConfigWithoutValue(String),
    #[error("invalid configuration key {0:?}")]
    ConfigKey(String),
}

/// Upstream's syntax check for configuration keys (`config.GitConfig`): a
/// section and at least one more dot-separated part from a restricted
/// alphabet, not ending in a dot. The key grammar is the only restriction
/// upstream applies to request-supplied configuration.
fn valid_config_key(key: &str) -> bool {
    static KEY: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^[[:alnum:]]+(\.[*-/_:@a-zA-Z0-9]+)+$").expect("the pattern is valid")
    });
    !key.ends_with('.') && KEY.is_match(key)
}

/// Parses `git_config_options` (`key=value`, split at the first `=`).
pub fn config_options(options: &[String]) -> Result<Vec<(String, String)>, WireError> {
    options
        .iter()
        .map(|o| {
            let (k, v) = o.split_once('=').ok_or_else(|| WireError::ConfigWithoutValue(o.clone()))?;
            if !valid_config_key(k) {
                return Err(WireError::ConfigKey(k.to_owned()));
            }
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The `GIT_PROTOCOL` value for a request's `git_protocol`: only
/// `version=1` and `version=2` are passed on; anything else means v0.
pub fn git_protocol(requested: &str) -> Option<&'static str> {
    match requested {
        "version=2" => Some("version=2"),
        "version=1" => Some("version=1"),
        _ => None,
    }
}

/// Reference prefixes kept away from clients. Hidden ones are not even
/// advertised for fetching; read-only ones can be fetched but not pushed.
const HIDDEN_REFS: &[&str] = &["refs/keep-around/", "refs/remotes/", "refs/tmp/"];
const READ_ONLY_REFS: &[&str] = &["refs/environments/", "refs/merge-requests/", "refs/pipelines/"];

/// Pack settings shared by upload-pack and receive-pack.
fn pack_config(cmd: GitCommand) -> GitCommand {
    // Bounded delta-search memory per thread; reverse indexes speed up
    // later packing; a modest thread count leaves CPU for other requests.
    cmd.config("pack.windowMemory", "100m").config("pack.writeReverseIndex", "true").config("pack.threads", "1")
}

/// Options every wire command takes from the request.
#[derive(Debug, Clone, Default)]
pub struct WireOptions {
    /// Parsed `git_config_options`, applied after the node's defaults.
    pub config: Vec<(String, String)>,
    /// `GIT_PROTOCOL`, from [`git_protocol`].
    pub protocol: Option<&'static str>,
    /// Hooks for receive-pack; `None` runs none.
    pub hooks: Option<Hooks>,
}

/// How a git process runs the node's hooks.
#[derive(Debug, Clone)]
pub struct Hooks {
    /// The node's hooks directory (`core.hooksPath`).
    pub dir: std::path::PathBuf,
    /// The `gitaly-hooks` binary (upload-pack's `uploadpack.packObjectsHook`).
    pub binary: std::path::PathBuf,
    /// `GITALY_HOOKS_PAYLOAD`.
    pub payload: String,
    /// `GITALY_LOG_DIR`, where gitaly-hooks logs.
    pub log_dir: Option<std::path::PathBuf>,
}

impl Hooks {
    /// Makes `cmd` run git's hooks from the node's hooks directory with this
    /// payload. Apply it after any request-supplied configuration, so a
    /// request cannot turn hooks off.
    pub fn apply(&self, cmd: GitCommand) -> GitCommand {
        self.environment(cmd.config("core.hooksPath", &self.dir.to_string_lossy()))
    }

    /// The payload and log directory gitaly-hooks reads.
    fn environment(&self, mut cmd: GitCommand) -> GitCommand {
        cmd = cmd.env("GITALY_HOOKS_PAYLOAD", self.payload.clone());
        if let Some(d) = &self.log_dir {
            cmd = cmd.env("GITALY_LOG_DIR", d.clone());
        }
        cmd
    }
}

fn apply(mut cmd: GitCommand, opts: &WireOptions) -> GitCommand {
    for (k, v) in &opts.config {
        cmd = cmd.config(k, v);
    }
    if let Some(p) = opts.protocol {
        cmd = cmd.env("GIT_PROTOCOL", p);
    }
    cmd
}

/// The configuration key naming upload-pack's pack-objects hook.
const PACK_OBJECTS_HOOK: &str = "uploadpack.packObjectsHook";

/// `git upload-pack [--stateless-rpc] [--advertise-refs] <repo>`.
///
/// With `opts.hooks` (the pack-objects cache is on) upload-pack runs
/// pack-objects through gitaly-hooks, which asks the node's
/// PackObjectsHookWithSidechannel. git honours `uploadpack.packObjectsHook`
/// only from protected configuration; the node passes it as command-line
/// configuration, and a request's own value for the key is dropped either
/// way, so a request can neither redirect nor disable the hook.
pub fn upload_pack(repo: &Path, stateless: bool, advertise: bool, opts: &WireOptions) -> GitCommand {
    let mut cmd = GitCommand::new(Subcommand::UploadPack)
        // Partial clones and fetching any reachable object by id, as GitLab allows.
        .config("uploadpack.allowFilter", "true")
        .config("uploadpack.allowAnySHA1InWant", "true");
    for prefix in HIDDEN_REFS {
        cmd = cmd.config("uploadpack.hideRefs", prefix);
    }
    cmd = pack_config(cmd);
    if stateless {
        cmd = cmd.flag("--stateless-rpc");
    }
    if advertise {
        cmd = cmd.flag("--advertise-refs");
    }
    let mut request = opts.clone();
    request.config.retain(|(k, _)| !k.eq_ignore_ascii_case(PACK_OBJECTS_HOOK));
    cmd = apply(cmd.arg(repo), &request);
    if let Some(h) = &opts.hooks {
        cmd = h.environment(cmd.config(PACK_OBJECTS_HOOK, &h.binary.to_string_lossy()));
    }
    cmd
}

/// `git receive-pack [--stateless-rpc] [--advertise-refs] <repo>`.
///
/// With `opts.hooks` the push runs pre-receive, update,
/// reference-transaction and post-receive through the node's hooks
/// directory (gitaly-hooks and HookService); without (the ref
/// advertisement) no hooks run. git's own receive quarantine
/// (`objects/tmp_objdir-incoming-*`) stays on, so a failed or rejected push
/// leaves no objects behind.
pub fn receive_pack(repo: &Path, stateless: bool, advertise: bool, opts: &WireOptions) -> GitCommand {
    let mut cmd = GitCommand::new(Subcommand::ReceivePack)
        // An object pool's refs must not show up in the advertisement; git
        // appends the pool path, which the `#` turns into a comment.
        .config("core.alternateRefsCommand", "exit 0 #")
        .config("receive.advertisePushOptions", "true")
        // Check everything a client sends, but tolerate the harmless defects
        // old git versions produced.
        .config("transfer.fsckObjects", "true")
        .config("receive.fsck.badTimezone", "ignore")
        .config("receive.fsck.missingSpaceBeforeDate", "ignore")
        .config("receive.fsck.zeroPaddedFilemode", "ignore");
    for prefix in HIDDEN_REFS.iter().chain(READ_ONLY_REFS) {
        cmd = cmd.config("receive.hideRefs", prefix);
    }
    cmd = pack_config(cmd);
    if stateless {
        cmd = cmd.flag("--stateless-rpc");
    }
    if advertise {
        cmd = cmd.flag("--advertise-refs");
    }
    cmd = apply(cmd.arg(repo), opts);
    // After the request's configuration, so a request cannot turn hooks off.
    match &opts.hooks {
        Some(h) => h.apply(cmd),
        None => cmd.config("core.hooksPath", "/dev/null"),
    }
}

/// `git upload-archive <repo>`.
pub fn upload_archive(repo: &Path) -> GitCommand {
    GitCommand::new(Subcommand::UploadArchive).arg(repo)
}

/// One pkt-line holding `data`.
pub fn pkt_line(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:04x}", data.len() + 4).into_bytes();
    out.extend_from_slice(data);
    out
}

/// The prefix smart HTTP puts before a ref advertisement:
/// `# service=git-<service>\n` and a flush packet.
pub fn service_announcement(service: &str) -> Vec<u8> {
    let mut out = pkt_line(format!("# service=git-{service}\n").as_bytes());
    out.extend_from_slice(FLUSH);
    out
}

/// Appends `data` to `out` as sideband packets on `band`.
pub fn sideband(out: &mut Vec<u8>, band: u8, data: &[u8]) {
    for chunk in data.chunks(MAX_SIDEBAND_DATA) {
        out.extend_from_slice(format!("{:04x}", chunk.len() + 5).as_bytes());
        out.push(band);
        out.extend_from_slice(chunk);
    }
}

/// What the client said during fetch negotiation, as upstream reports it in
/// `PackfileNegotiationStatistics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Negotiation {
    pub payload_size: i64,
    pub packets: i64,
    pub caps: Vec<String>,
    pub wants: i64,
    pub haves: i64,
    pub shallows: i64,
    pub deepen: String,
    pub filter: String,
}

impl Negotiation {
    fn record(&mut self, data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        self.packets += 1;
        self.payload_size += text.len() as i64;
        let mut words = text.split(' ');
        match words.next().unwrap_or_default() {
            "want" => {
                self.wants += 1;
                let rest: Vec<String> = words.skip(1).map(str::to_owned).collect();
                if !rest.is_empty() && self.caps.is_empty() {
                    self.caps = rest;
                }
            }
            "have" => self.haves += 1,
            "shallow" => self.shallows += 1,
            "deepen" | "deepen-since" | "deepen-not" => text.clone_into(&mut self.deepen),
            "filter" => self.filter = words.next().unwrap_or_default().to_owned(),
            _ => {}
        }
    }
}

/// Which packet ends the negotiation phase the node times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// `0009done\n` (upload-pack: the client asks for the pack).
    Done,
    /// A flush packet (upload-archive: the arguments are complete).
    Flush,
}

/// Incremental pkt-line scanner over the client's input. It never changes
/// the bytes (git parses them itself); it watches for the boundary packet,
/// counts negotiation statistics, and notices malformed framing early.
#[derive(Debug)]
pub struct Watcher {
    boundary: Boundary,
    header: Vec<u8>,
    remaining: usize,
    payload: Vec<u8>,
    seen: bool,
    stopped: bool,
    /// Statistics up to the boundary.
    pub stats: Negotiation,
}

/// A malformed packet header in the client's input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pkt-line header {0:?}")]
pub struct BadPacket(pub String);

impl Watcher {
    pub fn new(boundary: Boundary) -> Self {
        Self {
            boundary,
            header: Vec::with_capacity(4),
            remaining: 0,
            payload: Vec::new(),
            seen: false,
            stopped: false,
            stats: Negotiation::default(),
        }
    }

    /// Whether the boundary packet has gone by.
    pub fn boundary_seen(&self) -> bool {
        self.seen
    }

    /// Feeds more input. Once the boundary was seen (the pack data that may
    /// follow in a push is not pkt-lines) the rest is ignored.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), BadPacket> {
        while !data.is_empty() && !self.stopped {
            if self.remaining == 0 {
                let take = (4 - self.header.len()).min(data.len());
                self.header.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.header.len() < 4 {
                    return Ok(());
                }
                let text = String::from_utf8_lossy(&self.header).into_owned();
                let len = usize::from_str_radix(&text, 16).map_err(|_| BadPacket(text.clone()))?;
                self.header.clear();
                match len {
                    0 => self.packet(None),
                    // Delimiter and response-end packets (protocol v2).
                    1 | 2 => self.packet(Some(&[])),
                    3 => return Err(BadPacket(text)),
                    4 => self.packet(Some(&[])),
                    n if n > MAX_PKT_LEN => return Err(BadPacket(text)),
                    n => self.remaining = n - 4,
                }
            } else {
                let take = self.remaining.min(data.len());
                // Only short packets matter for the statistics.
                if self.payload.len() < 1024 {
                    self.payload.extend_from_slice(&data[..take.min(1024)]);
                }
                self.remaining -= take;
                data = &data[take..];
                if self.remaining == 0 {
                    let payload = std::mem::take(&mut self.payload);
                    self.packet(Some(&payload));
                }
            }
        }
        Ok(())
    }

    fn packet(&mut self, data: Option<&[u8]>) {
        match (self.boundary, data) {
            (Boundary::Flush, None) => {
                self.seen = true;
                self.stopped = true;
            }
            (Boundary::Done, Some(b"done\n" | b"done")) => {
                self.seen = true;
                self.stopped = true;
            }
            (Boundary::Done, Some(d)) => self.stats.record(d),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_follow_upstream_grammar() {
        let ok = ["uploadpack.allowFilter=true", "transfer.hideRefs=!refs", "a.b.c=", "url.https://x/.insteadOf=y"];
        assert_eq!(config_options(&ok.map(String::from)).expect("valid").len(), 4);
        for bad in ["nodot=1", ".a=1", "a.=1", "a b.c=1", "a.b c=1", "ab-c.d=1"] {
            assert!(matches!(config_options(&[bad.to_owned()]), Err(WireError::ConfigKey(_))), "{bad}");
        }
        assert!(matches!(config_options(&["a.b".to_owned()]), Err(WireError::ConfigWithoutValue(_))));
        assert_eq!(config_options(&["a.b=c=d".to_owned()]).expect("valid"), vec![("a.b".into(), "c=d".into())]);
    }

    #[test]
    fn only_known_protocols_pass() {
        assert_eq!(git_protocol("version=2"), Some("version=2"));
        assert_eq!(git_protocol("version=1"), Some("version=1"));
        assert_eq!(git_protocol(""), None);
        assert_eq!(git_protocol("version=3"), None);
    }

    #[test]
    fn framing() {
        assert_eq!(pkt_line(b"a\n"), b"0006a\n");
        assert_eq!(service_announcement("upload-pack"), b"001e# service=git-upload-pack\n0000");
        let mut out = Vec::new();
        sideband(&mut out, BAND_STDERR, b"hi");
        assert_eq!(out, b"0007\x02hi");
        let mut big = Vec::new();
        sideband(&mut big, BAND_STDOUT, &vec![0u8; MAX_SIDEBAND_DATA + 1]);
        assert_eq!(&big[..4], b"fff0");
        assert_eq!(big.len(), MAX_PKT_LEN + 6);
    }

    #[test]
    fn watcher_counts_and_finds_done_across_splits() {
        let oid = "1".repeat(40);
        let mut input = Vec::new();
        input.extend(pkt_line(format!("want {oid} side-band-64k ofs-delta\n").as_bytes()));
        input.extend(pkt_line(format!("want {oid}\n").as_bytes()));
        input.extend(pkt_line(b"deepen 1\n"));
        input.extend(FLUSH);
        input.extend(pkt_line(format!("have {oid}\n").as_bytes()));
        input.extend(pkt_line(b"done\n"));
        input.extend(b"garbage after done");
        let mut w = Watcher::new(Boundary::Done);
        for byte in input.chunks(3) {
            w.feed(byte).expect("valid");
        }
        assert!(w.boundary_seen());
        assert_eq!((w.stats.wants, w.stats.haves), (2, 1));
        assert_eq!(w.stats.caps, vec!["side-band-64k", "ofs-delta"]);
        assert_eq!(w.stats.deepen, "deepen 1");
    }

    #[test]
    fn watcher_rejects_bad_headers() {
        assert!(Watcher::new(Boundary::Done).feed(b"zzzz").is_err());
        assert!(Watcher::new(Boundary::Done).feed(b"fff1").is_err());
        assert!(Watcher::new(Boundary::Done).feed(b"0003").is_err());
        let mut w = Watcher::new(Boundary::Flush);
        w.feed(b"0008abcd0000").expect("valid");
        assert!(w.boundary_seen());
    }
}
