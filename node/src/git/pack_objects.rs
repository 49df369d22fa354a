//! `git pack-objects` as the pack-objects hook runs it: the arguments git's
//! upload-pack passes to its hook (checked against an allow-list, so no
//! request can smuggle in an option), and a generation that writes the
//! pack as sideband pkt-lines (band 1 the pack, band 2 progress), which is
//! what the hook's sidechannel carries and what the cache stores.

use std::path::Path;

use tokio::io::{AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use super::command::{CommandFactory, GitCommand, Subcommand};
use super::wire::{BAND_STDERR, BAND_STDOUT, MAX_SIDEBAND_DATA, sideband};

/// Why hook arguments are not a pack-objects command the node runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    #[error("missing pack-objects")]
    NoPackObjects,
    #[error("non-flag argument")]
    NonFlag,
    #[error("missing --stdout")]
    NoStdout,
    #[error("disallowed flag {0:?}")]
    Disallowed(String),
}

/// Flags git's upload-pack passes to pack-objects that take no value.
const PLAIN_FLAGS: &[&str] = &[
    "--revs",
    "--thin",
    "--shallow",
    "--progress",
    "--all-progress",
    "--all-progress-implied",
    "-q",
    "--quiet",
    "--delta-base-offset",
    "--include-tag",
    "--keep-true-parents",
    "--use-bitmap-index",
    "--no-use-bitmap-index",
];

/// Flags with a value (`--name=value`) git's upload-pack may pass.
const VALUE_FLAGS: &[&str] = &["--filter", "--uri-protocol", "--missing"];

/// One allowed flag.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Flag {
    Plain(&'static str),
    Value(&'static str, String),
}

/// Parsed hook arguments (`[--shallow-file ""] pack-objects --stdout ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackObjectsArgs {
    shallow_file: bool,
    flags: Vec<Flag>,
}

impl PackObjectsArgs {
    /// Checks the hook's arguments (without the leading `git`) as upstream
    /// does, and additionally allows only flags upload-pack uses.
    pub fn parse(args: &[String]) -> Result<Self, ArgsError> {
        let mut rest = args;
        let mut shallow_file = false;
        if let [flag, value, tail @ ..] = rest
            && flag == "--shallow-file"
            && value.is_empty()
        {
            shallow_file = true;
            rest = tail;
        }
        let Some((_, rest)) = rest.split_first().filter(|(f, _)| f.as_str() == "pack-objects") else {
            return Err(ArgsError::NoPackObjects);
        };
        let mut stdout = false;
        let mut flags = Vec::new();
        for a in rest {
            if !a.starts_with('-') {
                return Err(ArgsError::NonFlag);
            }
            if a == "--stdout" {
                stdout = true;
            } else if let Some(f) = PLAIN_FLAGS.iter().find(|f| **f == a) {
                flags.push(Flag::Plain(f));
            } else if let Some((name, value)) = a.split_once('=')
                && let Some(f) = VALUE_FLAGS.iter().find(|f| **f == name)
            {
                flags.push(Flag::Value(f, value.to_owned()));
            } else {
                return Err(ArgsError::Disallowed(a.clone()));
            }
        }
        if !stdout {
            return Err(ArgsError::NoStdout);
        }
        Ok(Self { shallow_file, flags })
    }

    fn command(&self, repo: &Path) -> GitCommand {
        let mut cmd = GitCommand::new(Subcommand::PackObjects).git_dir(repo).flag("--stdout");
        if self.shallow_file {
            cmd = cmd.without_shallow_file();
        }
        for f in &self.flags {
            cmd = match f {
                Flag::Plain(name) => cmd.flag(name),
                Flag::Value(name, value) => cmd.flag_value(name, value),
            };
        }
        cmd
    }
}

/// A failed generation.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("start git-pack-objects")]
    Spawn(#[source] super::command::CommandError),
    #[error("git-pack-objects i/o")]
    Io(#[source] std::io::Error),
    #[error("write pack data")]
    Write(#[source] std::io::Error),
    #[error("git-pack-objects: stderr: {stderr:?} exit status {code}")]
    Failed { code: i32, stderr: String },
}

/// Most of git's stderr kept for an error message.
const MAX_STDERR: usize = 16 * 1024;

/// Runs `git pack-objects` in `repo` with `stdin`, writing its stdout and
/// stderr into `out` as sideband packets; returns the bytes written.
pub async fn generate(
    git: &CommandFactory,
    repo: &Path,
    args: &PackObjectsArgs,
    stdin: std::sync::Arc<Vec<u8>>,
    correlation_id: Option<&str>,
    out: &mut (dyn AsyncWrite + Unpin + Send),
) -> Result<u64, GenerateError> {
    let mut child = git.spawn_duplex(args.command(repo), correlation_id).map_err(GenerateError::Spawn)?;
    let mut input = child.stdin.take().expect("stdin is piped");
    let writer = tokio::spawn(async move {
        // pack-objects may exit early (an error) without reading it all.
        let _ = input.write_all(&stdin).await;
    });
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let mut out_buf = vec![0u8; MAX_SIDEBAND_DATA];
    let mut err_buf = vec![0u8; 8192];
    let mut kept = Vec::new();
    let mut written = 0u64;
    let (mut out_open, mut err_open) = (true, true);
    let mut packet = Vec::with_capacity(MAX_SIDEBAND_DATA + 5);
    while out_open || err_open {
        packet.clear();
        tokio::select! {
            r = stdout.read(&mut out_buf), if out_open => match r.map_err(GenerateError::Io)? {
                0 => out_open = false,
                n => sideband(&mut packet, BAND_STDOUT, &out_buf[..n]),
            },
            r = stderr.read(&mut err_buf), if err_open => match r.map_err(GenerateError::Io)? {
                0 => err_open = false,
                n => {
                    let room = MAX_STDERR.saturating_sub(kept.len());
                    kept.extend_from_slice(&err_buf[..n.min(room)]);
                    sideband(&mut packet, BAND_STDERR, &err_buf[..n]);
                }
            },
        }
        if !packet.is_empty() {
            out.write_all(&packet).await.map_err(GenerateError::Write)?;
            written += packet.len() as u64;
        }
    }
    let status = child.wait().await.map_err(|e| GenerateError::Io(std::io::Error::other(e)))?;
    writer.abort();
    if let Some(code) = status {
        return Err(GenerateError::Failed { code, stderr: String::from_utf8_lossy(&kept).into_owned() });
    }
    out.flush().await.map_err(GenerateError::Write)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn upload_pack_arguments_pass() {
        let a = PackObjectsArgs::parse(&args(&[
            "--shallow-file",
            "",
            "pack-objects",
            "--revs",
            "--thin",
            "--stdout",
            "--shallow",
            "--progress",
            "--delta-base-offset",
            "--include-tag",
            "--filter=blob:none",
        ]))
        .expect("valid");
        assert!(a.shallow_file);
        assert_eq!(a.flags.len(), 7);
        assert_eq!(a.flags[6], Flag::Value("--filter", "blob:none".into()));
    }

    #[test]
    fn upstream_rejections_and_the_allow_list() {
        assert_eq!(PackObjectsArgs::parse(&args(&[])), Err(ArgsError::NoPackObjects));
        assert_eq!(PackObjectsArgs::parse(&args(&["rev-list", "--stdout"])), Err(ArgsError::NoPackObjects));
        assert_eq!(PackObjectsArgs::parse(&args(&["pack-objects", "--stdout", "foo"])), Err(ArgsError::NonFlag));
        assert_eq!(PackObjectsArgs::parse(&args(&["pack-objects", "--revs"])), Err(ArgsError::NoStdout));
        assert_eq!(
            PackObjectsArgs::parse(&args(&["pack-objects", "--stdout", "--index-version=1"])),
            Err(ArgsError::Disallowed("--index-version=1".into()))
        );
        // A non-empty shallow file is not what upload-pack passes.
        assert_eq!(
            PackObjectsArgs::parse(&args(&["--shallow-file", "/etc/x", "pack-objects", "--stdout"])),
            Err(ArgsError::NoPackObjects)
        );
    }
}
