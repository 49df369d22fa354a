//! Validation of a decoded [`Config`], collecting every problem with the
//! dotted key path it belongs to, in the style of upstream's `ValidateV2`.

use super::Config;
use std::fmt;
use std::path::Path;

/// sockaddr_un holds 108 bytes including the terminator.
const MAX_SOCKET_PATH: usize = 107;

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Dotted key path, e.g. `storage.[1].path`; empty for the file as a whole.
    pub key: String,
    /// What is wrong, in lower case.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.key, self.message) }
    }
}

/// Every problem found in a config.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ValidationErrors {
    /// Records one problem.
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ValidationError { key: key.into(), message: message.into() });
    }

    fn dir_exists(&mut self, key: &str, path: &Path) {
        self.exists(key, path, std::fs::Metadata::is_dir, "a directory");
    }

    /// Records a problem unless `path` is an existing file.
    pub fn file_exists(&mut self, key: &str, path: &Path) {
        self.exists(key, path, std::fs::Metadata::is_file, "a file");
    }

    fn exists(&mut self, key: &str, path: &Path, is_kind: fn(&std::fs::Metadata) -> bool, kind: &str) {
        if path.as_os_str().is_empty() {
            self.push(key, "not set");
            return;
        }
        match std::fs::metadata(path) {
            Ok(m) if is_kind(&m) => {}
            Ok(_) => self.push(key, format!("{path:?} is not {kind}")),
            Err(_) => self.push(key, format!("{path:?} does not exist")),
        }
    }

    /// Records a problem unless `addr` is `host:port`.
    pub fn listen_addr(&mut self, key: &str, addr: &str) {
        // Go accepts ":8075" (all interfaces) and host names; require host:port.
        let ok = addr.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok());
        if !ok {
            self.push(key, format!("{addr:?} is not a host:port address"));
        }
    }
}

/// A git config key as upstream accepts it: `section(.sub)+`, with a
/// restricted character set so a key can never smuggle in an option.
pub(crate) fn valid_git_config_key(key: &str) -> bool {
    let mut parts = key.split('.');
    let first_ok = parts.next().is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()));
    let mut rest = 0;
    let rest_ok = parts.all(|p| {
        rest += 1;
        !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || ('*'..='/').contains(&c) || "_:@".contains(c))
    });
    first_ok && rest_ok && rest > 0
}

impl Config {
    /// Checks the whole config and returns every problem found.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();

        if self.socket_path.is_none() && self.listen_addr.is_none() && self.tls_listen_addr.is_none() {
            errs.push("", r#"none of "socket_path", "listen_addr" or "tls_listen_addr" is set"#);
        }
        if let Some(a) = &self.listen_addr {
            errs.listen_addr("listen_addr", a);
        }
        if let Some(a) = &self.prometheus_listen_addr {
            errs.listen_addr("prometheus_listen_addr", a);
        }
        if let Some(a) = &self.tls_listen_addr {
            errs.listen_addr("tls_listen_addr", a);
            if self.tls.is_none() {
                errs.push("tls", "tls_listen_addr is set but [tls] is not");
            }
        }
        if let Some(socket) = &self.socket_path
            && socket.as_os_str().len() > MAX_SOCKET_PATH
        {
            errs.push("socket_path", format!("{socket:?} is too long for a Unix socket"));
        }
        if let Some(tls) = &self.tls {
            errs.file_exists("tls.certificate_path", &tls.certificate_path);
            match (&tls.key_path, &tls.key) {
                (Some(_), Some(_)) => errs.push("tls.key_path", "key_path and key cannot both be set"),
                (Some(p), None) => errs.file_exists("tls.key_path", p),
                (None, Some(k)) if k.trim().is_empty() => errs.push("tls.key", "empty"),
                (None, Some(_)) => {}
                (None, None) => errs.push("tls.key_path", "not set"),
            }
        }
        if let Some(d) = &self.bin_dir {
            errs.dir_exists("bin_dir", d);
        }
        if let Some(d) = &self.runtime_dir {
            errs.dir_exists("runtime_dir", d);
            // The internal socket for gitaly-hooks lives below the
            // per-process directory; check it with the largest pid Linux
            // hands out so the node cannot fail later at bind time.
            let internal = crate::hooks::internal_socket(&d.join("gitaly-4194304"));
            if internal.as_os_str().len() > MAX_SOCKET_PATH {
                errs.push(
                    "runtime_dir",
                    format!("{d:?} is too long: the internal socket {internal:?} would not fit a Unix socket path"),
                );
            }
        }

        self.validate_storages(&mut errs);
        if self.pack_objects_cache.enabled {
            match self.pack_objects_cache_dir() {
                None => errs.push("pack_objects_cache.dir", "not set and there is no storage to default to"),
                Some(d) if !d.is_absolute() => errs.push("pack_objects_cache.dir", format!("{d:?} is not absolute")),
                Some(_) => {}
            }
        }

        if !matches!(self.logging.format.to_ascii_lowercase().as_str(), "text" | "json") {
            errs.push("logging.format", format!("{:?} is not one of \"text\", \"json\"", self.logging.format));
        }
        if !matches!(
            self.logging.level.to_ascii_lowercase().as_str(),
            "trace" | "debug" | "info" | "warn" | "warning" | "error" | "fatal" | "panic"
        ) {
            errs.push("logging.level", format!("{:?} is not a log level", self.logging.level));
        }
        if let Some(d) = &self.logging.dir {
            errs.dir_exists("logging.dir", d);
        }

        let buckets = &self.prometheus.grpc_latency_buckets;
        if buckets.windows(2).any(|w| w[0] >= w[1]) {
            errs.push("prometheus.grpc_latency_buckets", "buckets must be strictly increasing");
        }

        if let Some(bin) = &self.git.bin_path
            && !bin.is_file()
        {
            errs.push("git.bin_path", format!("{bin:?} does not exist"));
        }
        for (i, entry) in self.git.config.iter().enumerate() {
            let key = format!("git.config.[{i}].key");
            if entry.key.is_empty() {
                errs.push(key, "not set");
            } else if entry.key.contains('=') {
                errs.push(key, format!("key {:?} cannot contain \"=\"", entry.key));
            } else if !entry.key.contains('.') {
                errs.push(key, format!("key {:?} must contain at least one section", entry.key));
            } else if !valid_git_config_key(&entry.key) {
                errs.push(key, format!("key {:?} failed regexp validation", entry.key));
            }
        }

        for (i, c) in self.concurrency.iter().enumerate() {
            let key = |f: &str| format!("concurrency.[{i}].{f}");
            if c.rpc.is_empty() {
                errs.push(key("rpc"), "not set");
            } else if cairn_proto::facts::lookup(&c.rpc).is_none() {
                errs.push(key("rpc"), format!("{:?} is not a known RPC (expected \"/gitaly.Service/Method\")", c.rpc));
            }
            if c.max_per_repo < 0 {
                errs.push(key("max_per_repo"), format!("{} is negative", c.max_per_repo));
            }
            if c.max_queue_size < 0 {
                errs.push(key("max_queue_size"), format!("{} is negative", c.max_queue_size));
            }
            if c.adaptive {
                if c.min_limit <= 0 {
                    errs.push(key("min_limit"), format!("{} must be greater than 0", c.min_limit));
                }
                if c.max_limit < c.initial_limit {
                    errs.push(
                        key("max_limit"),
                        format!("{} is less than initial_limit {}", c.max_limit, c.initial_limit),
                    );
                }
                if c.initial_limit < c.min_limit {
                    errs.push(
                        key("initial_limit"),
                        format!("{} is less than min_limit {}", c.initial_limit, c.min_limit),
                    );
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.concurrency.iter().enumerate() {
            if !c.rpc.is_empty() && !seen.insert(&c.rpc) {
                errs.push(format!("concurrency.[{i}].rpc"), format!("{:?} is configured more than once", c.rpc));
            }
        }

        if let Some(url) = &self.gitlab.url
            && !["http://", "https://", "http+unix://"].iter().any(|p| url.starts_with(p))
        {
            errs.push("gitlab.url", format!("{url:?} is not an http, https or http+unix URL"));
        }

        let dm = &self.daily_maintenance;
        if dm.start_hour > 23 {
            errs.push("daily_maintenance.start_hour", format!("{} is not an hour", dm.start_hour));
        }
        if dm.start_minute > 59 {
            errs.push("daily_maintenance.start_minute", format!("{} is not a minute", dm.start_minute));
        }
        for (i, s) in dm.storages.iter().enumerate() {
            if self.storage(s).is_none() {
                errs.push(format!("daily_maintenance.storages.[{i}]"), format!("storage {s:?} is not configured"));
            }
        }

        if errs.0.is_empty() { Ok(()) } else { Err(errs) }
    }

    fn validate_storages(&self, errs: &mut ValidationErrors) {
        if self.storages.is_empty() {
            errs.push("storage", "not set");
            return;
        }
        for (i, s) in self.storages.iter().enumerate() {
            if s.name.trim().is_empty() {
                errs.push(format!("storage.[{i}].name"), "not set");
            }
            errs.dir_exists(&format!("storage.[{i}].path"), &s.path);
        }
        for (i, s) in self.storages.iter().enumerate() {
            for other in &self.storages[..i] {
                if !s.name.is_empty() && other.name == s.name {
                    errs.push(format!("storage.[{i}].name"), format!("not unique: {:?}", s.name));
                }
                // Identical paths are allowed (upstream keeps this for legacy
                // setups); nested ones would let one storage reach into another.
                if s.path == other.path || s.path.as_os_str().is_empty() || other.path.as_os_str().is_empty() {
                    continue;
                }
                if s.path.starts_with(&other.path) || other.path.starts_with(&s.path) {
                    errs.push(
                        format!("storage.[{i}].path"),
                        format!("{:?} and {:?} (storage {:?}) are nested", s.path, other.path, other.name),
                    );
                }
            }
        }
    }
}
