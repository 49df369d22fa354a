//! The node's error type and its one conversion into a gRPC status.
//!
//! The gRPC code is chosen where the cause is known (`Error::invalid_argument`,
//! `Error::not_found`, ...). Structured details (errors.proto messages such as
//! `LimitError`) travel in `grpc-status-details-bin` as upstream sends them,
//! because GitLab branches on the detail type. Metadata (offending paths,
//! git's stderr) is logged, never sent.

use prost::Message as _;
use std::borrow::Cow;
use tonic::Code;

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error with the gRPC code it should surface as.
#[derive(Debug)]
pub struct Error {
    code: Code,
    message: Cow<'static, str>,
    source: Option<Source>,
    details: Vec<prost_types::Any>,
    metadata: Vec<(&'static str, String)>,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        // Upstream's wrapped errors read "step: cause"; keep that shape for
        // errors whose cause is the interesting part.
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// The google.rpc.Status message carried in `grpc-status-details-bin`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

macro_rules! constructors {
    ($($name:ident => $code:ident),* $(,)?) => {
        $(
            #[doc = concat!("An error answered with `", stringify!($code), "`.")]
            pub fn $name(message: impl Into<Cow<'static, str>>) -> Self {
                Self::new(Code::$code, message)
            }
        )*
    };
}

impl Error {
    /// An error with an explicit code.
    pub fn new(code: Code, message: impl Into<Cow<'static, str>>) -> Self {
        Self { code, message: message.into(), source: None, details: Vec::new(), metadata: Vec::new() }
    }

    constructors! {
        invalid_argument => InvalidArgument,
        not_found => NotFound,
        already_exists => AlreadyExists,
        failed_precondition => FailedPrecondition,
        permission_denied => PermissionDenied,
        unauthenticated => Unauthenticated,
        resource_exhausted => ResourceExhausted,
        aborted => Aborted,
        canceled => Cancelled,
        deadline_exceeded => DeadlineExceeded,
        unimplemented => Unimplemented,
        data_loss => DataLoss,
    }

    /// An unexpected failure while doing `step` (lower case, e.g. "read config").
    pub fn internal(step: impl Into<Cow<'static, str>>, source: impl Into<Source>) -> Self {
        Self { source: Some(source.into()), ..Self::new(Code::Internal, step) }
    }

    /// An internal error with only a message.
    pub fn internal_msg(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Code::Internal, message)
    }

    /// Attaches the cause.
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Attaches a structured detail (an errors.proto message).
    pub fn with_detail<M: prost::Name>(mut self, detail: &M) -> Self {
        self.details.push(prost_types::Any { type_url: M::type_url(), value: detail.encode_to_vec() });
        self
    }

    /// Attaches a key/value that is logged with the error but not sent.
    pub fn with_metadata(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.metadata.push((key, value.into()));
        self
    }

    /// The gRPC code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// Logged-only key/values.
    pub fn metadata(&self) -> &[(&'static str, String)] {
        &self.metadata
    }
}

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        for (k, v) in &err.metadata {
            tracing::debug!(code = ?err.code, error = %message, key = k, value = %v, "error metadata");
        }
        if err.details.is_empty() {
            return tonic::Status::new(err.code, message);
        }
        let status = RpcStatus { code: err.code as i32, message: message.clone(), details: err.details };
        tonic::Status::with_details(err.code, message, status.encode_to_vec().into())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::internal("i/o", e)
    }
}

/// Decodes the structured details of a status (first detail first), for
/// tests and clients.
pub fn status_details(status: &tonic::Status) -> Vec<prost_types::Any> {
    RpcStatus::decode(status.details()).map(|s| s.details).unwrap_or_default()
}

/// An error and its causes as one line, `outer: inner: innermost`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        // Transparent wrappers repeat their inner message; print it once.
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

/// Result alias for handlers and helpers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<crate::git::GitError> for Error {
    fn from(e: crate::git::GitError) -> Self {
        use crate::git::GitError as G;
        match e {
            G::AlreadyExists(m) => Error::already_exists(m),
            G::NotFound(m) => Error::not_found(m),
            G::Locked => Error::failed_precondition("repository is already locked"),
            G::ReferenceLocked(r) => Error::aborted("reference is locked already").with_metadata("reference", r),
            G::Invalid(m) => Error::invalid_argument(m),
            G::RevisionNotFound(r) => Error::invalid_argument(format!("revision not found: {r:?}")),
            other => Error::internal_msg(error_chain(&other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::gitaly::LimitError;

    #[test]
    fn details_round_trip_through_status() {
        let detail = LimitError { error_message: "maximum queue size reached".into(), retry_after: None };
        let status: tonic::Status = Error::resource_exhausted("maximum queue size reached").with_detail(&detail).into();
        assert_eq!(status.code(), Code::ResourceExhausted);
        let details = status_details(&status);
        assert_eq!(details[0].type_url, "type.googleapis.com/gitaly.LimitError");
        assert_eq!(LimitError::decode(details[0].value.as_slice()).expect("decodes"), detail);
    }

    #[test]
    fn internal_errors_name_step_and_cause() {
        let io = std::io::Error::other("disk on fire");
        let status: tonic::Status = Error::internal("write config", io).into();
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "write config: disk on fire");
    }
}
