//! `gitaly-ssh`: lets git fetch from, push to, or archive from a node as if
//! over SSH. git runs it as its SSH command (`GIT_SSH_COMMAND="gitaly-ssh
//! upload-pack"`, `GIT_SSH_VARIANT=simple`), i.e. as
//! `gitaly-ssh <mode> <host> <remote command>`; the two trailing arguments
//! from git are ignored and everything else comes from the environment:
//!
//! - `GITALY_ADDRESS`: `tcp://host:port`, `tls://host:port` or `unix:/path`
//! - `GITALY_PAYLOAD`: the request in protojson (repository, options)
//! - `GITALY_TOKEN`: shared secret, if the node requires one
//! - `GITALY_FEATUREFLAGS`: `name:bool,...` sent as `gitaly-feature-*`
//! - `GITALY_USE_SIDECHANNEL=1`: upload-pack uses
//!   SSHUploadPackWithSidechannel over a backchannel connection
//! - `GITALY_WD`: directory to change into first
//!
//! The exit code is the remote git's exit status (0 when none is sent);
//! usage, connection and RPC errors print to stderr and exit 1.

use std::io;
use std::process::ExitCode;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tonic::Request;

use crate::client::stdio::{StdioResponse, requests};
use crate::client::{ClientSidechannel, Connection, DialError, DialOptions};
use cairn_proto::gitaly::ssh_service_client::SshServiceClient;
use cairn_proto::gitaly::{
    SshReceivePackRequest, SshUploadArchiveRequest, SshUploadPackRequest, SshUploadPackWithSidechannelRequest,
};

/// Shows hidden references too (keep-around, merge requests) so that
/// internal replication sees everything; a negative hideRefs is the only
/// way to undo hiding.
const SHOW_ALL_REFS: &str = "transfer.hideRefs=!refs";

/// Which git service git asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    UploadPack,
    ReceivePack,
    UploadArchive,
}

/// Why gitaly-ssh failed (it then exits 1).
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("invalid number of arguments, expected at least 1, got {0}")]
    Arguments(usize),
    #[error("invalid pack command: {0:?}")]
    Mode(String),
    #[error("unable to chdir to {0}")]
    Chdir(String, #[source] io::Error),
    #[error("gitaly address can not be empty")]
    NoAddress,
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error("json unmarshal: {0}")]
    Payload(String),
    #[error("rpc: {}", .0.message())]
    Rpc(#[from] tonic::Status),
    #[error("{0}")]
    Io(String, #[source] io::Error),
    #[error("sidechannel: {0}")]
    Sidechannel(String),
}

/// The process environment gitaly-ssh reads; a function so tests can supply it.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Entry point of the binary.
pub fn main(args: Vec<String>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gitaly-ssh: start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let env = |k: &str| std::env::var(k).ok();
    let result = runtime.block_on(run(&args, &env));
    // Reading stdin may still block a runtime thread; do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code.clamp(0, 255)).expect("clamped to u8")),
        Err(e) => {
            eprintln!("gitaly-ssh: {}", crate::error::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// Runs gitaly-ssh with `args` (program name first) against real stdio.
pub async fn run(args: &[String], env: Env<'_>) -> Result<i32, SshError> {
    // git passes two trailing arguments (host and remote command).
    if args.len() < 4 {
        return Err(SshError::Arguments(args.len().saturating_sub(1)));
    }
    let mode = match args[1].as_str() {
        "upload-pack" => Mode::UploadPack,
        "receive-pack" => Mode::ReceivePack,
        "upload-archive" => Mode::UploadArchive,
        other => return Err(SshError::Mode(other.to_owned())),
    };
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(wd) = var("GITALY_WD") {
        std::env::set_current_dir(&wd).map_err(|e| SshError::Chdir(wd.clone(), e))?;
    }
    let address = var("GITALY_ADDRESS").ok_or(SshError::NoAddress)?;
    let sidechannel = env("GITALY_USE_SIDECHANNEL").as_deref() == Some("1");
    let opts = DialOptions { token: var("GITALY_TOKEN"), backchannel: sidechannel, ..Default::default() };
    let conn = crate::client::dial(&address, opts).await?;
    let payload = env("GITALY_PAYLOAD").unwrap_or_default();
    let md = Metadata {
        flags: crate::frontdoor::feature_flag_metadata(&var("GITALY_FEATUREFLAGS").unwrap_or_default()),
        correlation_id: var("CORRELATION_ID"),
    };
    let (stdin, stdout, stderr) = (tokio::io::stdin(), tokio::io::stdout(), tokio::io::stderr());
    match mode {
        Mode::UploadPack if sidechannel => {
            let mut req: SshUploadPackWithSidechannelRequest = from_protojson(&payload)?;
            req.git_config_options.insert(0, SHOW_ALL_REFS.to_owned());
            upload_pack_with_sidechannel(&conn, md, req, stdin, stdout, stderr).await
        }
        Mode::UploadPack => {
            let mut req: SshUploadPackRequest = from_protojson(&payload)?;
            req.git_config_options.insert(0, SHOW_ALL_REFS.to_owned());
            req.stdin.clear();
            let input = requests(req, stdin, |stdin| SshUploadPackRequest { stdin, ..Default::default() });
            let mut client = SshServiceClient::new(conn.channel());
            let responses = client.ssh_upload_pack(md.apply(Request::new(input))).await?.into_inner();
            relay(responses, stdout, stderr).await
        }
        Mode::ReceivePack => {
            let mut req: SshReceivePackRequest = from_protojson(&payload)?;
            req.stdin.clear();
            let input = requests(req, stdin, |stdin| SshReceivePackRequest { stdin, ..Default::default() });
            let mut client = SshServiceClient::new(conn.channel());
            let responses = client.ssh_receive_pack(md.apply(Request::new(input))).await?.into_inner();
            relay(responses, stdout, stderr).await
        }
        Mode::UploadArchive => {
            let mut req: SshUploadArchiveRequest = from_protojson(&payload)?;
            req.stdin.clear();
            let input = requests(req, stdin, |stdin| SshUploadArchiveRequest { stdin, ..Default::default() });
            let mut client = SshServiceClient::new(conn.channel());
            let responses = client.ssh_upload_archive(md.apply(Request::new(input))).await?.into_inner();
            relay(responses, stdout, stderr).await
        }
    }
}

/// Outgoing metadata besides authentication.
struct Metadata {
    flags: Vec<(String, &'static str)>,
    correlation_id: Option<String>,
}

impl Metadata {
    fn apply<T>(&self, mut req: Request<T>) -> Request<T> {
        let md = req.metadata_mut();
        for (k, v) in &self.flags {
            if let Ok(key) = tonic::metadata::MetadataKey::from_bytes(k.as_bytes()) {
                md.insert(key, tonic::metadata::MetadataValue::from_static(v));
            }
        }
        if let Some(id) = self.correlation_id.as_deref().and_then(|id| id.parse().ok()) {
            md.insert("x-gitlab-correlation-id", id);
        }
        req
    }
}

/// Decodes a request from protojson (field names in lowerCamelCase or as
/// in the .proto file), as upstream's `protojson.Unmarshal`.
pub fn from_protojson<T: prost::Message + prost::Name + Default>(json: &str) -> Result<T, SshError> {
    crate::protojson::decode(json).map_err(|e| SshError::Payload(e.to_string()))
}

/// Writes responses to stdout/stderr until the server ends the stream;
/// returns the last exit status (0 when none came).
async fn relay<R: StdioResponse>(
    mut responses: tonic::Streaming<R>,
    mut stdout: impl AsyncWrite + Unpin,
    mut stderr: impl AsyncWrite + Unpin,
) -> Result<i32, SshError> {
    let mut exit = 0;
    while let Some(r) = responses.message().await? {
        let (out, err, status) = r.parts();
        if let Some(s) = status {
            exit = s;
        }
        if !err.is_empty() {
            stderr.write_all(&err).await.map_err(|e| SshError::Io("write stderr".into(), e))?;
            stderr.flush().await.map_err(|e| SshError::Io("write stderr".into(), e))?;
        }
        if !out.is_empty() {
            stdout.write_all(&out).await.map_err(|e| SshError::Io("write stdout".into(), e))?;
            stdout.flush().await.map_err(|e| SshError::Io("write stdout".into(), e))?;
        }
    }
    Ok(exit)
}

/// SSHUploadPackWithSidechannel: stdin goes framed over the sidechannel,
/// the answer comes back as sideband packets.
async fn upload_pack_with_sidechannel(
    conn: &Connection,
    md: Metadata,
    req: SshUploadPackWithSidechannelRequest,
    stdin: impl AsyncRead + Unpin + Send + 'static,
    stdout: impl AsyncWrite + Unpin,
    stderr: impl AsyncWrite + Unpin,
) -> Result<i32, SshError> {
    let (id, waiter) = conn.sidechannels().register();
    let mut request = md.apply(Request::new(req));
    request.metadata_mut().insert(crate::transport::SIDECHANNEL_ID_KEY, id.into());
    let mut client = SshServiceClient::new(conn.channel());
    let rpc = client.ssh_upload_pack_with_sidechannel(request);
    tokio::pin!(rpc);
    let channel = tokio::select! {
        sc = waiter.wait() => sc.map_err(|e| SshError::Sidechannel(e.to_string()))?,
        r = &mut rpc => {
            r?;
            return Err(SshError::Sidechannel("callback de-registered without having run".into()));
        }
    };
    let (proxied, rpc) = tokio::join!(proxy_pkt_lines(channel, stdin, stdout, stderr), rpc);
    rpc?;
    proxied?;
    Ok(0)
}

/// Copies stdin into the sidechannel (then the flush that ends it) while
/// demultiplexing the server's sideband answer; done when the server closes.
async fn proxy_pkt_lines(
    channel: ClientSidechannel,
    mut stdin: impl AsyncRead + Unpin + Send + 'static,
    mut stdout: impl AsyncWrite + Unpin,
    mut stderr: impl AsyncWrite + Unpin,
) -> Result<(), SshError> {
    let (mut reader, mut writer) = channel.into_split();
    let send = tokio::spawn(async move {
        tokio::io::copy(&mut stdin, &mut writer).await?;
        writer.close_write().await
    });
    let result = async {
        let mut header = [0u8; 4];
        loop {
            match reader.read_exact(&mut header).await {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(SshError::Io("read sidechannel".into(), e)),
            }
            let len = std::str::from_utf8(&header)
                .ok()
                .and_then(|h| usize::from_str_radix(h, 16).ok())
                .filter(|l| (5..=crate::git::wire::MAX_PKT_LEN).contains(l))
                .ok_or_else(|| SshError::Sidechannel(format!("invalid sideband packet {header:?}")))?;
            let mut packet = vec![0u8; len - 4];
            reader.read_exact(&mut packet).await.map_err(|e| SshError::Io("read sidechannel".into(), e))?;
            let (band, data) = (packet[0], &packet[1..]);
            let w: &mut (dyn AsyncWrite + Unpin) = match band {
                1 => &mut stdout,
                2 => &mut stderr,
                b => return Err(SshError::Sidechannel(format!("unexpected band: {b}"))),
            };
            w.write_all(data).await.map_err(|e| SshError::Io("write output".into(), e))?;
            w.flush().await.map_err(|e| SshError::Io("write output".into(), e))?;
        }
    }
    .await;
    // The server is done; whatever stdin still holds is not needed.
    send.abort();
    result
}
