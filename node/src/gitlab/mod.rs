//! Client of GitLab's internal API (`/api/v4/internal/...`), which the
//! receive hooks ask whether a push is allowed (`/allowed`), and tell that
//! a push starts (`/pre_receive`) and ended (`/post_receive`). Requests are
//! JSON, authenticated with a JWT signed by the shared secret ([`jwt`]) and
//! optionally basic auth; answers and error texts follow upstream Gitaly, so
//! the pusher sees the same `GitLab: ...` lines.

pub mod jwt;
pub mod messages;
pub mod transport;

pub use messages::PostReceiveMessage;

use crate::config::Config;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use transport::{Answer, ExchangeError, SetupError, Transport};

/// Path of the internal API below GitLab's root.
const INTERNAL_API: &str = "/api/v4/internal";
/// Upstream's default when `read_timeout` is not set.
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(300);

/// Why the node cannot talk to the configured GitLab.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("gitlab.url {url:?}: {source}")]
    Url {
        url: String,
        #[source]
        source: SetupError,
    },
    #[error("gitlab.url is set but neither gitlab.secret nor gitlab.secret_file (or gitlab-shell.dir) is")]
    NoSecret,
    #[error("reading secret file {path:?}")]
    SecretFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A failed API call, worded as upstream words it: these texts reach the
/// pusher behind `GitLab: `.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No response (connection refused, timeout, broken HTTP).
    #[error("Internal API unreachable")]
    Unreachable(#[source] ExchangeError),
    /// An error status; GitLab's `message`, or the status when it sent none.
    #[error("{0}")]
    Refused(String),
    #[error("{endpoint} endpoint respond with unsupported content type: {content_type}")]
    ContentType { endpoint: &'static str, content_type: String },
    #[error("decoding response from {endpoint} endpoint: {source}")]
    Decode {
        endpoint: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("gitlab api is not accessible: {0}")]
    NotAccessible(u16),
    #[error("{what} call failed with status: {status}")]
    Status { what: &'static str, status: u16 },
    #[error("http post to gitlab api {endpoint} endpoint: {message}")]
    Post { endpoint: &'static str, message: String },
    #[error("setting gl_id: gl_id={0:?} is invalid")]
    GlId(String),
}

/// What `/allowed` is asked.
#[derive(Debug, Clone)]
pub struct AllowedParams<'a> {
    /// Absolute path of the repository.
    pub repo_path: &'a Path,
    pub relative_path: &'a str,
    /// The push's quarantine object directory, relative to the repository.
    pub git_object_directory: &'a str,
    /// Relative to the repository too.
    pub git_alternate_object_directories: &'a [String],
    pub gl_repository: &'a str,
    /// `user-<n>`, `key-<n>` or `username-<name>`.
    pub gl_id: &'a str,
    pub gl_protocol: &'a str,
    pub changes: &'a str,
    /// The pusher's address, when known.
    pub remote_ip: &'a str,
}

/// The `/allowed` request body; member names and omissions as upstream.
#[derive(Debug, Default, Serialize)]
struct AllowedRequest {
    #[serde(skip_serializing_if = "String::is_empty")]
    action: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    gl_repository: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    project: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    changes: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    protocol: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    relative_path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    env: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    key_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    user_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    check_ip: String,
}

/// The `env` member of `/allowed`: GitLab reads the push's objects through
/// these (members in Go's sorted order).
#[derive(Serialize)]
struct ObjectDirs<'a> {
    #[serde(rename = "GIT_ALTERNATE_OBJECT_DIRECTORIES_RELATIVE")]
    alternates: Option<&'a [String]>,
    #[serde(rename = "GIT_OBJECT_DIRECTORY_RELATIVE")]
    object_directory: &'a str,
}

#[derive(Deserialize)]
struct AllowedResponse {
    #[serde(default)]
    status: bool,
    #[serde(default)]
    message: String,
}

#[derive(Serialize)]
struct PreReceiveRequest<'a> {
    gl_repository: &'a str,
}

#[derive(Deserialize)]
struct PreReceiveResponse {
    #[serde(default)]
    reference_counter_increased: bool,
}

/// Members in Go's sorted map order; no push options is `null` as upstream.
#[derive(Serialize)]
struct PostReceiveRequest<'a> {
    changes: &'a str,
    gl_repository: &'a str,
    identifier: &'a str,
    push_options: Option<&'a [String]>,
}

#[derive(Deserialize)]
struct PostReceiveResponse {
    #[serde(default)]
    reference_counter_decreased: bool,
    #[serde(default)]
    messages: Vec<PostReceiveMessage>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    #[serde(default)]
    message: String,
}

/// A client of one GitLab instance.
#[derive(Debug, Clone)]
pub struct Client {
    transport: Transport,
    secret: String,
    basic_auth: Option<String>,
    user_agent: String,
}

impl Client {
    /// The client `config` asks for: `None` without `[gitlab] url`.
    pub fn from_config(config: &Config) -> Result<Option<Self>, ConfigError> {
        let Some(raw_url) = config.gitlab.url.as_deref().filter(|u| !u.is_empty()) else { return Ok(None) };
        // GitLab writes socket paths percent-encoded (`http+unix://%2Frun%2F...`).
        let url = percent_decode(raw_url);
        let settings = &config.gitlab.http_settings;
        let timeout = settings.read_timeout.filter(|s| *s > 0).map_or(DEFAULT_READ_TIMEOUT, Duration::from_secs);
        let transport = Transport::new(
            &url,
            config.gitlab.relative_url_root.as_deref(),
            settings.ca_file.as_deref(),
            settings.ca_path.as_deref(),
            timeout,
        )
        .map_err(|source| ConfigError::Url { url: raw_url.to_owned(), source })?;
        let secret = match config.gitlab.secret.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => s.to_owned(),
            None => {
                let path = config.gitlab_secret_file().ok_or(ConfigError::NoSecret)?;
                std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile { path, source })?
            }
        };
        let basic_auth = match (settings.user.as_deref(), settings.password.as_deref()) {
            (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => {
                Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))))
            }
            _ => None,
        };
        Ok(Some(Self { transport, secret, basic_auth, user_agent: format!("gitaly/{}", crate::server_version()) }))
    }

    /// Asks whether the push may proceed: `(allowed, GitLab's message)`.
    pub async fn allowed(&self, p: &AllowedParams<'_>) -> Result<(bool, String), ApiError> {
        let alternates = (!p.git_alternate_object_directories.is_empty()).then_some(p.git_alternate_object_directories);
        let env = serde_json::to_string(&ObjectDirs { alternates, object_directory: p.git_object_directory })
            .expect("plain strings serialize");
        let mut req = AllowedRequest {
            action: "git-receive-pack".into(),
            gl_repository: p.gl_repository.into(),
            project: p.repo_path.display().to_string().replace('\'', ""),
            changes: p.changes.into(),
            protocol: p.gl_protocol.into(),
            relative_path: p.relative_path.into(),
            env,
            check_ip: p.remote_ip.into(),
            ..Default::default()
        };
        set_gl_id(&mut req, p.gl_id)?;
        let answer = self.post("/allowed", &req).await?;
        if !matches!(answer.status, 200 | 300) {
            return Err(ApiError::NotAccessible(answer.status));
        }
        let r: AllowedResponse = json_body("/allowed", &answer)?;
        Ok((r.status, r.message))
    }

    /// Tells GitLab a push starts (it counts pushes in flight); whether it
    /// counted this one.
    pub async fn pre_receive(&self, gl_repository: &str) -> Result<bool, ApiError> {
        let answer = self
            .post("/pre_receive", &PreReceiveRequest { gl_repository })
            .await
            .map_err(|e| ApiError::Post { endpoint: "/pre_receive", message: e.to_string() })?;
        if answer.status != 200 {
            return Err(ApiError::Status { what: "pre-receive", status: answer.status });
        }
        let r: PreReceiveResponse = json_body("/pre_receive", &answer)?;
        Ok(r.reference_counter_increased)
    }

    /// Tells GitLab a push ended: whether it uncounted it, and what to show
    /// the pusher.
    pub async fn post_receive(
        &self,
        gl_repository: &str,
        gl_id: &str,
        changes: &str,
        push_options: &[String],
    ) -> Result<(bool, Vec<PostReceiveMessage>), ApiError> {
        let body = PostReceiveRequest {
            changes,
            gl_repository,
            identifier: gl_id,
            push_options: (!push_options.is_empty()).then_some(push_options),
        };
        let answer = self
            .post("/post_receive", &body)
            .await
            .map_err(|e| ApiError::Post { endpoint: "/post_receive", message: e.to_string() })?;
        if answer.status != 200 {
            return Err(ApiError::Status { what: "post-receive", status: answer.status });
        }
        let r: PostReceiveResponse = json_body("/post_receive", &answer)?;
        Ok((r.reference_counter_decreased, r.messages))
    }

    /// One authenticated POST; statuses outside 200..=399 are errors.
    async fn post(&self, endpoint: &str, body: &impl Serialize) -> Result<Answer, ApiError> {
        let body = serde_json::to_vec(body).expect("request bodies are plain data");
        let mut headers = vec![
            ("content-type", "application/json".to_owned()),
            ("user-agent", self.user_agent.clone()),
            (jwt::HEADER, jwt::token_now(&self.secret)),
            ("connection", "close".to_owned()),
        ];
        if let Some(auth) = &self.basic_auth {
            headers.push(("authorization", auth.clone()));
        }
        let path = format!("{INTERNAL_API}{endpoint}");
        let answer = match self.transport.post(&path, headers, body).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %crate::error::error_chain(&e), path, "GitLab internal API unreachable");
                return Err(ApiError::Unreachable(e));
            }
        };
        if (200..=399).contains(&answer.status) {
            return Ok(answer);
        }
        tracing::warn!(status = answer.status, path, "GitLab internal API error");
        Err(match serde_json::from_slice::<ErrorResponse>(&answer.body) {
            Ok(e) => ApiError::Refused(e.message),
            Err(_) => ApiError::Refused(format!("Internal API error ({})", answer.status)),
        })
    }
}

/// Splits GitLab's user identifier into the member `/allowed` expects.
fn set_gl_id(req: &mut AllowedRequest, gl_id: &str) -> Result<(), ApiError> {
    let numeric = if let Some(name) = gl_id.strip_prefix("username-") {
        req.username = name.to_owned();
        return Ok(());
    } else if let Some(id) = gl_id.strip_prefix("key-") {
        req.key_id = id.to_owned();
        id
    } else if let Some(id) = gl_id.strip_prefix("user-") {
        req.user_id = id.to_owned();
        id
    } else {
        ""
    };
    if numeric.is_empty() || !numeric.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::GlId(gl_id.to_owned()));
    }
    Ok(())
}

/// Decodes a JSON answer, which must say it is JSON.
fn json_body<T: serde::de::DeserializeOwned>(endpoint: &'static str, answer: &Answer) -> Result<T, ApiError> {
    let media_type = answer
        .content_type
        .as_deref()
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty());
    match media_type.as_deref() {
        Some("application/json") => {}
        Some(other) => return Err(ApiError::ContentType { endpoint, content_type: other.to_owned() }),
        None => return Err(ApiError::ContentType { endpoint, content_type: "mime: no media type".to_owned() }),
    }
    serde_json::from_slice(&answer.body).map_err(|source| ApiError::Decode { endpoint, source })
}

/// `%XX` escapes decoded (invalid ones kept as written).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Ok(hex) = std::str::from_utf8(hex)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration() {
        let mut config = Config::default();
        assert!(Client::from_config(&config).expect("no url is fine").is_none());
        config.gitlab.url = Some("http+unix://%2Frun%2Fgitlab.socket".into());
        assert!(matches!(Client::from_config(&config), Err(ConfigError::NoSecret)));
        config.gitlab.secret_file = Some("/nonexistent/.gitlab_shell_secret".into());
        assert!(matches!(Client::from_config(&config), Err(ConfigError::SecretFile { .. })));
        config.gitlab.secret = Some("inline".into());
        let client = Client::from_config(&config).expect("valid").expect("configured");
        assert_eq!(client.secret, "inline");
        assert_eq!(client.basic_auth, None);
        config.gitlab.http_settings.user = Some("u".into());
        config.gitlab.http_settings.password = Some("p".into());
        let client = Client::from_config(&config).expect("valid").expect("configured");
        assert_eq!(client.basic_auth.as_deref(), Some("Basic dTpw"));
        config.gitlab.url = Some("ftp://gitlab".into());
        assert!(matches!(Client::from_config(&config), Err(ConfigError::Url { source: SetupError::Scheme, .. })));
    }

    #[test]
    fn gl_ids() {
        let mut r = AllowedRequest::default();
        set_gl_id(&mut r, "user-42").expect("user");
        assert_eq!(r.user_id, "42");
        let mut r = AllowedRequest::default();
        set_gl_id(&mut r, "key-7").expect("key");
        assert_eq!(r.key_id, "7");
        let mut r = AllowedRequest::default();
        set_gl_id(&mut r, "username-jane").expect("username");
        assert_eq!(r.username, "jane");
        for bad in ["user-x", "key-", "jane", ""] {
            let e = set_gl_id(&mut AllowedRequest::default(), bad).expect_err(bad);
            assert_eq!(e.to_string(), format!("setting gl_id: gl_id={bad:?} is invalid"));
        }
    }

    #[test]
    fn bodies_have_upstream_shape() {
        let dirs = ["objects".to_owned()];
        let env =
            serde_json::to_string(&ObjectDirs { alternates: Some(&dirs), object_directory: "objects/incoming-1" })
                .expect("json");
        assert_eq!(
            env,
            r#"{"GIT_ALTERNATE_OBJECT_DIRECTORIES_RELATIVE":["objects"],"GIT_OBJECT_DIRECTORY_RELATIVE":"objects/incoming-1"}"#
        );
        let body = serde_json::to_string(&PostReceiveRequest {
            changes: "a b c\n",
            gl_repository: "project-1",
            identifier: "user-1",
            push_options: None,
        })
        .expect("json");
        assert_eq!(
            body,
            r#"{"changes":"a b c\n","gl_repository":"project-1","identifier":"user-1","push_options":null}"#
        );
    }

    #[test]
    fn content_types_and_percent_decoding() {
        let answer = |ct: Option<&str>| Answer { status: 200, content_type: ct.map(str::to_owned), body: "{}".into() };
        assert!(json_body::<serde_json::Value>("/allowed", &answer(Some("application/json; charset=utf-8"))).is_ok());
        let e = json_body::<serde_json::Value>("/allowed", &answer(Some("text/html"))).expect_err("html");
        assert_eq!(e.to_string(), "/allowed endpoint respond with unsupported content type: text/html");
        let e = json_body::<serde_json::Value>("/allowed", &answer(None)).expect_err("none");
        assert_eq!(e.to_string(), "/allowed endpoint respond with unsupported content type: mime: no media type");
        assert_eq!(percent_decode("http+unix://%2Frun%2Fgitlab.socket%zz"), "http+unix:///run/gitlab.socket%zz");
    }
}
