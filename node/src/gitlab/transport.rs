//! One HTTP/1.1 exchange with GitLab per call, over TCP, TLS or a Unix
//! socket, on hyper's client connections. Upstream closes the connection
//! after every request too, so there is no pool to manage.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Why the configured GitLab URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("unknown GitLab URL prefix")]
    Scheme,
    #[error("{0:?} is not a valid url")]
    Url(String),
    #[error("cannot find cafile {0:?}")]
    CaFile(PathBuf),
    #[error("TLS client configuration: {0}")]
    Tls(String),
}

/// Where requests go.
#[derive(Clone)]
enum Target {
    Tcp { host: String, port: u16 },
    Tls { host: String, port: u16, connector: tokio_rustls::TlsConnector },
    Unix(PathBuf),
}

/// The connection details of GitLab's API.
#[derive(Clone)]
pub struct Transport {
    target: Target,
    /// `Host` header value.
    authority: String,
    /// Path prepended to every request path (no trailing `/`).
    prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = match &self.target {
            Target::Tcp { host, port } => format!("http://{host}:{port}"),
            Target::Tls { host, port, .. } => format!("https://{host}:{port}"),
            Target::Unix(p) => format!("http+unix://{}", p.display()),
        };
        f.debug_struct("Transport").field("target", &target).field("prefix", &self.prefix).finish()
    }
}

/// A response, read completely.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// Why an exchange failed before a response arrived.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

impl Transport {
    /// A transport for `url` (already percent-decoded), with upstream's
    /// defaults: `relative_url_root` applies to Unix sockets only, and
    /// https trusts the system roots plus `ca_file` and the files in
    /// `ca_path`.
    pub fn new(
        url: &str,
        relative_url_root: Option<&str>,
        ca_file: Option<&Path>,
        ca_path: Option<&Path>,
        timeout: Duration,
    ) -> Result<Self, SetupError> {
        if let Some(socket) = url.strip_prefix("http+unix://") {
            let root = relative_url_root.unwrap_or_default().trim_matches('/');
            let prefix = if root.is_empty() { String::new() } else { format!("/{root}") };
            return Ok(Self { target: Target::Unix(socket.into()), authority: "unix".into(), prefix, timeout });
        }
        let (tls, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else {
            return Err(SetupError::Scheme);
        };
        let (authority, path) = rest.find('/').map_or((rest, ""), |i| (&rest[..i], &rest[i..]));
        let parsed: http::uri::Authority = authority.parse().map_err(|_| SetupError::Url(url.to_owned()))?;
        let host = parsed.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        if host.is_empty() {
            return Err(SetupError::Url(url.to_owned()));
        }
        let port = parsed.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let prefix = path.trim_end_matches('/').to_owned();
        let target = if tls {
            Target::Tls { host, port, connector: tls_connector(ca_file, ca_path)? }
        } else {
            Target::Tcp { host, port }
        };
        Ok(Self { target, authority: authority.to_owned(), prefix, timeout })
    }

    /// POSTs `body` to `path` (below the prefix) with `headers`.
    pub async fn post(
        &self,
        path: &str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    ) -> Result<Answer, ExchangeError> {
        let uri = format!("{}{path}", self.prefix);
        let mut req = hyper::Request::post(uri).header(http::header::HOST, &self.authority);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req.body(Full::new(Bytes::from(body))).expect("request parts are valid header values");
        let exchange = async {
            match &self.target {
                Target::Tcp { host, port } => {
                    let s =
                        tokio::net::TcpStream::connect((host.as_str(), *port)).await.map_err(ExchangeError::Connect)?;
                    exchange(s, req).await
                }
                Target::Tls { host, port, connector } => {
                    let s =
                        tokio::net::TcpStream::connect((host.as_str(), *port)).await.map_err(ExchangeError::Connect)?;
                    let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| {
                        ExchangeError::Connect(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
                    })?;
                    let s = connector.connect(name, s).await.map_err(ExchangeError::Connect)?;
                    exchange(s, req).await
                }
                Target::Unix(path) => {
                    let s = tokio::net::UnixStream::connect(path).await.map_err(ExchangeError::Connect)?;
                    exchange(s, req).await
                }
            }
        };
        tokio::time::timeout(self.timeout, exchange).await.map_err(|_| ExchangeError::Timeout(self.timeout))?
    }
}

async fn exchange<S>(stream: S, req: hyper::Request<Full<Bytes>>) -> Result<Answer, ExchangeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let conn = tokio::spawn(conn);
    let res = sender.send_request(req).await;
    let res = match res {
        Ok(r) => r,
        Err(e) => {
            conn.abort();
            return Err(e.into());
        }
    };
    let status = res.status().as_u16();
    let content_type = res.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = res.into_body().collect().await?.to_bytes();
    drop(sender);
    conn.abort();
    Ok(Answer { status, content_type, body })
}

fn tls_connector(ca_file: Option<&Path>, ca_path: Option<&Path>) -> Result<tokio_rustls::TlsConnector, SetupError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(file) = ca_file.filter(|f| !f.as_os_str().is_empty()) {
        if !file.exists() {
            return Err(SetupError::CaFile(file.to_owned()));
        }
        add_pem(&mut roots, file);
    }
    if let Some(dir) = ca_path.filter(|d| !d.as_os_str().is_empty())
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| !t.is_dir()) {
                add_pem(&mut roots, &entry.path());
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(crate::transport::tls_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Adds the certificates of a PEM file; unreadable files are skipped, as
/// upstream skips them.
fn add_pem(roots: &mut rustls::RootCertStore, path: &Path) {
    if let Ok(certs) = crate::transport::load_certs(path) {
        roots.add_parsable_certificates(certs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Transport::new("http://gitlab.local:8080/root/", Some("/ignored"), None, None, Duration::from_secs(1))
            .expect("http");
        assert!(matches!(&t.target, Target::Tcp { host, port: 8080 } if host == "gitlab.local"));
        assert_eq!((t.authority.as_str(), t.prefix.as_str()), ("gitlab.local:8080", "/root"));
        let t = Transport::new("http+unix:///run/gitlab.socket", Some("/gitlab/"), None, None, Duration::from_secs(1))
            .expect("unix");
        assert!(matches!(&t.target, Target::Unix(p) if p == Path::new("/run/gitlab.socket")));
        assert_eq!((t.authority.as_str(), t.prefix.as_str()), ("unix", "/gitlab"));
        let t = Transport::new("https://[::1]", None, None, None, Duration::from_secs(1)).expect("https");
        assert!(matches!(&t.target, Target::Tls { host, port: 443, .. } if host == "::1"));
        assert!(matches!(Transport::new("ftp://x", None, None, None, Duration::ZERO), Err(SetupError::Scheme)));
        assert!(matches!(
            Transport::new("https://x", None, Some(Path::new("/nonexistent/ca.pem")), None, Duration::ZERO),
            Err(SetupError::CaFile(_))
        ));
    }
}
