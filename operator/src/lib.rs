//! The Cairn operator: runs a `GitalyCluster` (storage nodes, routers, their
//! database and TLS) on Kubernetes. Builders are pure ([`build`]); the
//! controller ([`controller`]) applies them and drives upgrades.

pub mod build;
pub mod certs;
pub mod config;
pub mod controller;
pub mod http;
pub mod names;
pub mod status;
pub mod types;
pub mod validate;

/// Why a reconcile failed (user-fixable problems are status, not errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{step} {kind} {name:?}")]
    Kube {
        step: &'static str,
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("certificate")]
    Cert(#[from] certs::CertError),
    #[error("finalizer")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its sources, joined with ": ".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
