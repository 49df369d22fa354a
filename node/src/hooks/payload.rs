//! `GITALY_HOOKS_PAYLOAD`: what a git process started by the node tells the
//! hooks it runs. The value is standard base64 of a JSON object whose
//! `repository` member is itself a JSON string holding the protojson of the
//! Repository message, exactly as upstream encodes it, so gitaly-hooks
//! binaries of either implementation understand it.

use base64::Engine as _;
use cairn_proto::gitaly::Repository;
use serde::{Deserialize, Serialize};

/// The environment variable carrying the payload.
pub const ENV: &str = "GITALY_HOOKS_PAYLOAD";

/// Bits of `requested_hooks`.
pub mod hook {
    pub const REFERENCE_TRANSACTION: u32 = 1;
    pub const UPDATE: u32 = 1 << 1;
    pub const PRE_RECEIVE: u32 = 1 << 2;
    pub const POST_RECEIVE: u32 = 1 << 3;
    pub const PACK_OBJECTS: u32 = 1 << 4;
    pub const PROC_RECEIVE: u32 = 1 << 5;
    /// What `0` means: everything but proc-receive.
    pub const ALL: u32 = REFERENCE_TRANSACTION | UPDATE | PRE_RECEIVE | POST_RECEIVE | PACK_OBJECTS;
    /// What receive-pack asks for.
    pub const RECEIVE_PACK: u32 = REFERENCE_TRANSACTION | UPDATE | PRE_RECEIVE | POST_RECEIVE;
}

/// Who pushes, as GitLab told the node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDetails {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub userid: String,
    /// `ssh`, `http` or `web`.
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub remote_ip: String,
}

/// A Praefect transaction the git process takes part in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub backchannel_id: u64,
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub primary: bool,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A feature flag and its value for the request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureFlagWithValue {
    pub flag: FeatureFlag,
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureFlag {
    pub name: String,
    #[serde(default)]
    pub on_by_default: bool,
}

/// The decoded payload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HooksPayload {
    pub requested_hooks: u32,
    pub feature_flags: Vec<FeatureFlagWithValue>,
    pub repository: Repository,
    /// `sha1` or `sha256`.
    pub object_format: String,
    pub runtime_dir: String,
    pub internal_socket: String,
    pub internal_socket_token: String,
    pub transaction: Option<Transaction>,
    pub user_details: Option<UserDetails>,
    pub transaction_id: u64,
}

/// The JSON shape, member names as upstream.
#[derive(Debug, Serialize, Deserialize)]
struct Json {
    #[serde(default)]
    requested_hooks: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    feature_flags_with_value: Vec<FeatureFlagWithValue>,
    #[serde(default)]
    object_format: String,
    #[serde(default)]
    runtime_dir: String,
    #[serde(default)]
    internal_socket: String,
    #[serde(default)]
    internal_socket_token: String,
    #[serde(default)]
    transaction: Option<Transaction>,
    #[serde(default)]
    user_details: Option<UserDetails>,
    #[serde(default, skip_serializing_if = "is_zero")]
    transaction_id: u64,
    #[serde(default)]
    repository: String,
}

/// Why a payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("no hooks payload found in environment")]
    NotFound,
    #[error("decode base64")]
    Base64(#[source] base64::DecodeError),
    #[error("decode JSON")]
    Json(#[source] serde_json::Error),
    #[error("decode repository: {0}")]
    Repository(String),
}

impl HooksPayload {
    /// Whether `bit` (see [`hook`]) is among the requested hooks.
    pub fn requested(&self, bit: u32) -> bool {
        self.requested_hooks & bit != 0
    }

    /// The value of [`ENV`].
    pub fn encode(&self) -> String {
        let json = Json {
            requested_hooks: self.requested_hooks,
            feature_flags_with_value: self.feature_flags.clone(),
            object_format: self.object_format.clone(),
            runtime_dir: self.runtime_dir.clone(),
            internal_socket: self.internal_socket.clone(),
            internal_socket_token: self.internal_socket_token.clone(),
            transaction: self.transaction.clone(),
            user_details: self.user_details.clone(),
            transaction_id: self.transaction_id,
            repository: to_protojson(&self.repository),
        };
        let text = serde_json::to_vec(&json).expect("the payload is plain data");
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    /// Decodes a value of [`ENV`]; `requested_hooks` 0 means all hooks.
    pub fn decode(value: &str) -> Result<Self, PayloadError> {
        let raw = base64::engine::general_purpose::STANDARD.decode(value.trim()).map_err(PayloadError::Base64)?;
        let json: Json = serde_json::from_slice(&raw).map_err(PayloadError::Json)?;
        let repository = from_protojson(&json.repository).map_err(PayloadError::Repository)?;
        Ok(Self {
            requested_hooks: if json.requested_hooks == 0 { hook::ALL } else { json.requested_hooks },
            feature_flags: json.feature_flags_with_value,
            repository,
            object_format: json.object_format,
            runtime_dir: json.runtime_dir,
            internal_socket: json.internal_socket,
            internal_socket_token: json.internal_socket_token,
            transaction: json.transaction,
            user_details: json.user_details,
            transaction_id: json.transaction_id,
        })
    }

    /// The payload from a list of `KEY=value` strings (a hook's environment).
    pub fn from_env<S: AsRef<str>>(env: &[S]) -> Result<Self, PayloadError> {
        Self::decode(&lookup(env, ENV).ok_or(PayloadError::NotFound)?)
    }
}

/// The value of `key` in a list of `KEY=value` strings (the last one wins,
/// as in a process environment).
pub fn lookup<S: AsRef<str>>(env: &[S], key: &str) -> Option<String> {
    env.iter().rev().find_map(|e| {
        let (k, v) = e.as_ref().split_once('=')?;
        (k == key).then(|| v.to_owned())
    })
}

/// protojson of a Repository (lowerCamelCase names, defaults left out).
fn to_protojson(repo: &Repository) -> String {
    crate::protojson::encode(repo).expect("a Repository always has a protojson form")
}

fn from_protojson(json: &str) -> Result<Repository, String> {
    crate::protojson::decode(json).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_upstream_shape() {
        let p = HooksPayload {
            requested_hooks: hook::RECEIVE_PACK,
            repository: Repository {
                storage_name: "default".into(),
                relative_path: "a.git".into(),
                gl_repository: "project-1".into(),
                ..Default::default()
            },
            object_format: "sha1".into(),
            runtime_dir: "/run".into(),
            internal_socket: "/run/sock.d/intern".into(),
            user_details: Some(UserDetails { userid: "user-1".into(), protocol: "ssh".into(), ..Default::default() }),
            ..Default::default()
        };
        let encoded = p.encode();
        assert_eq!(HooksPayload::decode(&encoded).expect("decodes"), p);
        let json: serde_json::Value =
            serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(&encoded).expect("base64"))
                .expect("json");
        assert_eq!(json["requested_hooks"], 15);
        assert_eq!(json["transaction"], serde_json::Value::Null);
        let repo: serde_json::Value =
            serde_json::from_str(json["repository"].as_str().expect("a string")).expect("protojson");
        assert_eq!(repo["storageName"], "default");
        assert_eq!(repo["glRepository"], "project-1");
    }

    #[test]
    fn zero_means_all_and_env_lookup() {
        let p = HooksPayload::default();
        let env = vec!["A=b".to_owned(), format!("{ENV}={}", p.encode())];
        let back = HooksPayload::from_env(&env).expect("found");
        assert_eq!(back.requested_hooks, hook::ALL);
        assert!(!back.requested(hook::PROC_RECEIVE));
        assert!(matches!(HooksPayload::from_env(&["A=b"]), Err(PayloadError::NotFound)));
    }
}
