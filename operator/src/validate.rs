//! Checks on a spec that the operator makes before building anything. The
//! CRD's CEL rules stop most of these at the apiserver; these give the same
//! verdict (and name the field) for objects that slipped past, e.g. created
//! before a rule existed, and power the example tests.

use crate::types::{GitalyClusterSpec, Placement, TlsMode};

/// Every problem with a spec, one line each, prefixed with the field path.
pub fn validate(spec: &GitalyClusterSpec) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    if !tag_like(&spec.version) {
        errs.push(format!("spec.version: {:?} must be a tag-like string, e.g. 18.2.1", spec.version));
    }
    if spec.storages.is_empty() {
        errs.push("spec.storages: at least one virtual storage is required".to_owned());
    }
    let mut seen = std::collections::HashSet::new();
    for (i, vs) in spec.storages.iter().enumerate() {
        let at = format!("spec.storages[{i}]");
        if !dns_label(&vs.name, 32) {
            errs.push(format!("{at}.name: {:?} must be a DNS label of at most 32 characters", vs.name));
        }
        if !seen.insert(vs.name.as_str()) {
            errs.push(format!("{at}.name: {:?} is listed twice", vs.name));
        }
        if vs.nodes < 1 {
            errs.push(format!("{at}.nodes: must be at least 1"));
        }
        if quantity_bytes(&vs.volume_size).is_none() {
            errs.push(format!("{at}.volumeSize: {:?} is not a quantity, e.g. 100Gi", vs.volume_size));
        }
        if vs.storage_class_name.is_empty() {
            errs.push(format!("{at}.storageClassName: must name an SSD-backed StorageClass"));
        }
        if spec.replication_factor > vs.nodes {
            errs.push(format!(
                "spec.replicationFactor: {} exceeds the {} nodes of virtual storage {:?}",
                spec.replication_factor, vs.nodes, vs.name
            ));
        }
    }
    if spec.replication_factor < 1 {
        errs.push("spec.replicationFactor: must be at least 1".to_owned());
    }
    if spec.routers.placement == Placement::Deployment && spec.routers.replicas < 1 {
        errs.push("spec.routers.replicas: must be at least 1".to_owned());
    }
    match (&spec.database.external, &spec.database.managed) {
        (Some(_), Some(_)) | (None, None) => {
            errs.push("spec.database: needs exactly one of external or managed".to_owned())
        }
        (Some(e), None) if e.secret_name.is_empty() => {
            errs.push("spec.database.external.secretName: must name a Secret".to_owned())
        }
        _ => {}
    }
    let tls = &spec.tls;
    if tls.mode == TlsMode::Secret && tls.secret_name.as_deref().is_none_or(str::is_empty) {
        errs.push("spec.tls.secretName: is required when tls.mode is secret".to_owned());
    }
    if tls.mode == TlsMode::Managed && tls.renew_before_days >= tls.certificate_days {
        errs.push(format!(
            "spec.tls.renewBeforeDays: {} must be less than certificateDays {}",
            tls.renew_before_days, tls.certificate_days
        ));
    }
    for (i, c) in spec.node.concurrency.iter().enumerate() {
        if !c.rpc.starts_with("/gitaly.") || c.rpc.matches('/').count() != 2 {
            errs.push(format!(
                "spec.node.concurrency[{i}].rpc: {:?} is not a full method name like /gitaly.SmartHTTPService/PostUploadPackWithSidechannel",
                c.rpc
            ));
        }
    }
    if let Some(g) = &spec.node.gitlab
        && !(g.url.starts_with("http://") || g.url.starts_with("https://"))
    {
        errs.push(format!("spec.node.gitlab.url: {:?} is not an http or https URL", g.url));
    }
    for (i, s) in spec.node.sidecars.iter().enumerate() {
        if matches!(s.name.as_str(), "node" | "router" | "render-config") {
            errs.push(format!("spec.node.sidecars[{i}].name: {:?} is reserved", s.name));
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// The transition rules of the CRD (nothing removed, nothing shrunk, class
/// fixed), for an update from `old` to `new`.
pub fn validate_update(old: &GitalyClusterSpec, new: &GitalyClusterSpec) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    for o in &old.storages {
        let Some(n) = new.storages.iter().find(|n| n.name == o.name) else {
            errs.push(format!(
                "spec.storages: virtual storage {:?} cannot be removed: its repositories live on its volumes",
                o.name
            ));
            continue;
        };
        if n.nodes < o.nodes {
            errs.push(format!(
                "spec.storages[{}].nodes: cannot be reduced from {} to {}: move repositories off the storage first",
                o.name, o.nodes, n.nodes
            ));
        }
        if let (Some(a), Some(b)) = (quantity_bytes(&o.volume_size), quantity_bytes(&n.volume_size))
            && b < a
        {
            errs.push(format!(
                "spec.storages[{}].volumeSize: can only grow ({} -> {})",
                o.name, o.volume_size, n.volume_size
            ));
        }
        if n.storage_class_name != o.storage_class_name {
            errs.push(format!("spec.storages[{}].storageClassName: is immutable", o.name));
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// Whether a token or password can go through the render script's sed
/// unescaped (and into TOML strings unquoted-safe).
pub fn secret_value_ok(v: &str) -> bool {
    !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || "-._~+/=:@".contains(c))
}

fn tag_like(v: &str) -> bool {
    let mut chars = v.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && v.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || ".+_-".contains(c))
}

fn dns_label(v: &str, max: usize) -> bool {
    !v.is_empty()
        && v.len() <= max
        && v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !v.starts_with('-')
        && !v.ends_with('-')
}

/// Bytes of a Kubernetes quantity with a binary or decimal suffix.
pub fn quantity_bytes(q: &str) -> Option<u128> {
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: u128 = num.parse().ok()?;
    let mult: u128 = match suffix {
        "" => 1,
        "k" => 1000,
        "M" => 1000u128.pow(2),
        "G" => 1000u128.pow(3),
        "T" => 1000u128.pow(4),
        "P" => 1000u128.pow(5),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        _ => return None,
    };
    Some(n * mult)
}
