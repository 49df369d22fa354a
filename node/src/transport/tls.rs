//! TLS configuration for the `tls_listen_addr` listener.
//!
//! rustls with the ring provider only; TLS 1.2 and 1.3; ALPN `h2`, which
//! gRPC clients (grpc-go in particular) offer and may insist on.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("read TLS file {path:?}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no PEM certificate found in {path:?}")]
    NoCertificate { path: PathBuf },
    #[error("no PKCS#8, RSA or SEC1 private key found in {path:?}")]
    NoPrivateKey { path: PathBuf },
    #[error("TLS certificate {cert:?} with key {key:?} rejected: {source}")]
    Rejected {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS CA bundle {path:?} rejected: {source}")]
    BadCa {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// The crypto provider used everywhere: ring (aws-lc is not built).
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Read { path: path.to_path_buf(), source }
}

/// Reads every certificate in a PEM file; an empty result is an error.
pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file = std::fs::File::open(path).map_err(read_error(path))?;
    let certs =
        rustls_pemfile::certs(&mut BufReader::new(file)).collect::<Result<Vec<_>, _>>().map_err(read_error(path))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_path_buf() });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let file = std::fs::File::open(path).map_err(read_error(path))?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(read_error(path))?
        .ok_or_else(|| TlsError::NoPrivateKey { path: path.to_path_buf() })
}

/// Server configuration from a PEM certificate chain and a PEM private key
/// (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn server_tls_config(cert_path: &Path, key_path: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = load_certs(cert_path)?;
    let key = load_key(key_path)?;
    let rejected = |source| TlsError::Rejected { cert: cert_path.to_path_buf(), key: key_path.to_path_buf(), source };
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rejected)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(rejected)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.pem");
        let err = server_tls_config(&missing, &missing).expect_err("missing file");
        assert!(err.to_string().contains("missing.pem"), "{err}");

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let err = server_tls_config(&empty, &empty).expect_err("empty file");
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");

        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("rcgen");
        let cert_path = dir.path().join("cert.pem");
        std::fs::write(&cert_path, cert.cert.pem()).expect("write");
        let err = server_tls_config(&cert_path, &cert_path).expect_err("no key in cert file");
        assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");

        let key_path = dir.path().join("key.pem");
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write");
        let config = server_tls_config(&cert_path, &key_path).expect("valid pair");
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
    }
}
