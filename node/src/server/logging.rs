//! Process logging: `tracing` events as text or JSON on stdout, filtered
//! by `[logging] level` (overridable with `GITALY_LOG_LEVEL` for debugging).

use crate::config::{LogFormat, Logging};

/// Installs the global subscriber. Safe to call more than once (tests):
/// later calls keep the first subscriber.
pub fn init(cfg: &Logging) {
    let level = std::env::var("GITALY_LOG_LEVEL").unwrap_or_else(|_| cfg.level.to_ascii_lowercase());
    let level = match level.as_str() {
        "warning" => "warn".to_owned(),
        "fatal" | "panic" => "error".to_owned(),
        other => other.to_owned(),
    };
    let filter =
        tracing_subscriber::EnvFilter::try_new(&level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stdout);
    let _ = match cfg.log_format() {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}
