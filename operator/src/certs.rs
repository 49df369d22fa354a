//! Operator-managed TLS: a CA and one serving certificate (ECDSA P-256,
//! made with rcgen) for nodes and routers. Renewal re-signs with the same
//! leaf key and the same CA, so clients that trust `ca.crt` never notice.

use crate::names::Names;
use crate::types::GitalyClusterSpec;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// CA lifetime; rotating a CA is manual (delete the `<cluster>-ca` Secret).
const CA_DAYS: i64 = 3650;

/// Why a certificate could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("generate or sign certificate")]
    Rcgen(#[from] rcgen::Error),
    #[error("parse certificate PEM")]
    Pem,
    #[error("parse certificate")]
    X509,
}

/// A PEM certificate and its PEM private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub cert: String,
    pub key: String,
}

/// The names the serving certificate must cover: every node pod under its
/// headless Service (by wildcard, so scaling never needs a new cert), the
/// router Service in all its short forms, and the user's extras.
pub fn desired_sans(spec: &GitalyClusterSpec, names: &Names) -> Vec<String> {
    let ns = &names.namespace;
    let mut sans = Vec::new();
    for vs in &spec.storages {
        let set = names.node_set(&vs.name);
        sans.push(format!("*.{set}.{ns}.svc"));
        sans.push(format!("*.{set}.{ns}.svc.cluster.local"));
    }
    let router = names.router();
    sans.push(router.clone());
    sans.push(format!("{router}.{ns}"));
    sans.push(format!("{router}.{ns}.svc"));
    sans.push(format!("{router}.{ns}.svc.cluster.local"));
    sans.extend(spec.tls.extra_dns_names.iter().cloned());
    sans
}

/// Makes a new self-signed CA.
pub fn new_ca(cluster: &str, now: OffsetDateTime) -> Result<Pair, CertError> {
    let key = KeyPair::generate()?;
    let cert = ca_params(cluster, now).self_signed(&key)?;
    Ok(Pair { cert: cert.pem(), key: key.serialize_pem() })
}

fn ca_params(cluster: &str, now: OffsetDateTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, format!("{cluster} cairn CA"));
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + Duration::days(CA_DAYS);
    p
}

/// Issues the serving certificate signed by `ca`. With `key` it re-signs
/// for that key (renewal); without, it makes a new key.
pub fn issue(ca: &Pair, key: Option<&str>, sans: &[String], now: OffsetDateTime, days: u32) -> Result<Pair, CertError> {
    let ca_key = KeyPair::from_pem(&ca.key)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key)?;
    let key = match key {
        Some(pem) => KeyPair::from_pem(pem)?,
        None => KeyPair::generate()?,
    };
    let mut p = CertificateParams::new(sans.to_vec())?;
    p.distinguished_name.push(DnType::CommonName, sans.first().cloned().unwrap_or_default());
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    // Nodes present their server certificate as a client certificate too.
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + Duration::days(i64::from(days));
    let cert = p.signed_by(&key, &issuer)?;
    Ok(Pair { cert: cert.pem(), key: key.serialize_pem() })
}

/// What the operator needs to know about an existing certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    pub not_after: OffsetDateTime,
    pub sans: Vec<String>,
    pub issuer: String,
}

/// Reads expiry and DNS SANs of a PEM certificate.
pub fn inspect(pem: &str) -> Result<CertInfo, CertError> {
    use x509_parser::extensions::GeneralName;
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|_| CertError::Pem)?;
    let cert = pem.parse_x509().map_err(|_| CertError::X509)?;
    let not_after = cert.validity().not_after.to_datetime();
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for n in &ext.value.general_names {
            if let GeneralName::DNSName(d) = n {
                sans.push((*d).to_owned());
            }
        }
    }
    Ok(CertInfo { not_after, sans, issuer: cert.issuer().to_string() })
}

/// Why the serving certificate must be re-issued, if it must.
pub fn renewal_reason(info: &CertInfo, sans: &[String], now: OffsetDateTime, renew_before_days: u32) -> Option<String> {
    if info.not_after - Duration::days(i64::from(renew_before_days)) <= now {
        return Some(format!("certificate expires at {}", rfc3339(info.not_after)));
    }
    let mut have = info.sans.clone();
    let mut want = sans.to_vec();
    have.sort();
    want.sort();
    if have != want {
        return Some("certificate names changed".to_owned());
    }
    None
}

/// Whether `host` is covered by `san` (a `*.` wildcard covers one label).
pub fn san_matches(san: &str, host: &str) -> bool {
    match san.strip_prefix("*.") {
        Some(suffix) => host.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => san == host,
    }
}

/// RFC 3339 text of a time.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| t.to_string())
}
