//! The `gitaly` command line, as upstream spells it:
//!
//! ```text
//! gitaly serve <config.toml>    serve
//! gitaly <config.toml>          serve (legacy form)
//! gitaly check <config.toml>    validate the config and report each storage
//! gitaly readiness <config.toml> ask the running node (ReadinessCheck); exit 0 if ready
//! gitaly --version
//! ```

use crate::config::{Config, Loaded};
use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: gitaly serve <config.toml> | gitaly check <config.toml> | gitaly readiness <config.toml> | gitaly --version";

/// Runs the command line; returns the process exit code.
pub fn main(args: Vec<String>) -> ExitCode {
    let args: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    match args.as_slice() {
        ["--version" | "-v" | "version"] => {
            println!("Gitaly, version {}", crate::server_version());
            ExitCode::SUCCESS
        }
        ["--help" | "-h" | "help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        ["serve", config] => serve(Path::new(config)),
        ["check", config] => check(Path::new(config)),
        // `-config` too, as Kubernetes exec probes are usually written that way.
        ["readiness", config] | ["readiness", "-config" | "--config", config] => readiness(Path::new(config)),
        [config] if !config.starts_with('-') => serve(Path::new(config)),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn load(path: &Path) -> Result<Loaded, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("{}", crate::error::error_chain(&e));
        ExitCode::FAILURE
    })
}

fn serve(path: &Path) -> ExitCode {
    let loaded = match load(path) {
        Ok(l) => l,
        Err(code) => return code,
    };
    crate::server::logging::init(&loaded.config.logging);
    for w in &loaded.warnings {
        tracing::warn!(config = %path.display(), "{w}");
    }
    if let Err(errs) = loaded.config.validate() {
        for e in &errs.0 {
            tracing::error!(key = %e.key, "invalid configuration: {}", e.message);
        }
        eprintln!("invalid configuration in {}:\n{errs}", path.display());
        return ExitCode::FAILURE;
    }
    let runtime = match runtime(tokio::runtime::Builder::new_multi_thread()) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let result = runtime.block_on(crate::server::run(loaded.config, shutdown_signal(), |_| {}));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %crate::error::error_chain(&e), "server failed");
            eprintln!("{}", crate::error::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn runtime(mut builder: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, ExitCode> {
    builder.enable_all().build().map_err(|e| {
        eprintln!("start runtime: {e}");
        ExitCode::FAILURE
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without signal handlers the process still stops on the default action.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down");
}

fn check(path: &Path) -> ExitCode {
    let loaded = match load(path) {
        Ok(l) => l,
        Err(code) => return code,
    };
    println!("Checking GitLab Gitaly configuration {}", path.display());
    for w in &loaded.warnings {
        println!("warning: {w}");
    }
    let config = loaded.config;
    let valid = match config.validate() {
        Ok(()) => {
            println!("configuration: OK");
            true
        }
        Err(errs) => {
            println!("configuration: {} error(s)", errs.0.len());
            for e in &errs.0 {
                println!("  {e}");
            }
            false
        }
    };
    let mut storages_ok = true;
    for s in &config.storages {
        let state = storage_state(&s.path);
        storages_ok &= state.ok;
        println!("storage {:?} at {}: {}", s.name, s.path.display(), state.text);
    }
    if config.storages.is_empty() {
        storages_ok = false;
    }
    if valid && storages_ok {
        println!("Check: OK");
        ExitCode::SUCCESS
    } else {
        println!("Check: FAILED");
        ExitCode::FAILURE
    }
}

/// Kubernetes readiness probe: dials the node's own listener with its
/// token and runs ServerService/ReadinessCheck; prints failed checks.
fn readiness(path: &Path) -> ExitCode {
    let loaded = match load(path) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let config = loaded.config;
    // Prefer the Unix socket; a wildcard TCP address is dialled on loopback.
    let address = match (&config.socket_path, &config.listen_addr) {
        (Some(socket), _) => format!("unix:{}", socket.display()),
        (None, Some(addr)) => {
            let (host, port) = addr.rsplit_once(':').unwrap_or(("", addr));
            let host = if matches!(host, "" | "0.0.0.0" | "[::]" | "::") { "127.0.0.1" } else { host };
            format!("tcp://{host}:{port}")
        }
        (None, None) => {
            eprintln!("not ready: readiness needs socket_path or listen_addr in {}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let runtime = match runtime(tokio::runtime::Builder::new_current_thread()) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let token = Some(config.auth.token.clone()).filter(|t| !t.is_empty());
    match runtime.block_on(readiness_check(&address, token)) {
        Ok(failed) if failed.is_empty() => {
            println!("ready");
            ExitCode::SUCCESS
        }
        Ok(failed) => {
            for (name, message) in failed {
                eprintln!("not ready: {name}: {message}");
            }
            ExitCode::FAILURE
        }
        Err(message) => {
            eprintln!("not ready: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The failed checks (empty when ready), or why the check could not run.
async fn readiness_check(address: &str, token: Option<String>) -> Result<Vec<(String, String)>, String> {
    use cairn_proto::gitaly::readiness_check_response::Result as Outcome;
    use cairn_proto::gitaly::server_service_client::ServerServiceClient;
    let opts = crate::client::DialOptions { token, ..Default::default() };
    let conn = crate::client::dial(address, opts).await.map_err(|e| crate::error::error_chain(&e))?;
    let request =
        cairn_proto::gitaly::ReadinessCheckRequest { timeout: Some(prost_types::Duration { seconds: 3, nanos: 0 }) };
    let response = ServerServiceClient::new(conn.channel())
        .readiness_check(request)
        .await
        .map_err(|s| format!("ReadinessCheck: {:?}: {}", s.code(), s.message()))?
        .into_inner();
    Ok(match response.result {
        Some(Outcome::FailureResponse(f)) => f.failed_checks.into_iter().map(|c| (c.name, c.error_message)).collect(),
        Some(Outcome::OkResponse(_)) | None => Vec::new(),
    })
}

struct StorageState {
    ok: bool,
    text: String,
}

fn storage_state(path: &Path) -> StorageState {
    if !path.is_dir() {
        return StorageState { ok: false, text: "missing".into() };
    }
    let (readable, writeable) = crate::fsinfo::probe(path);
    let fs = crate::fsinfo::fs_type(path);
    let id = crate::storage::metadata::read_filesystem_id(path).unwrap_or_else(|| "not yet assigned".into());
    let usage = match crate::fsinfo::usage(path) {
        Ok((avail, used)) => format!("{} available, {} used", human(avail), human(used)),
        Err(_) => "usage unknown".into(),
    };
    StorageState {
        ok: readable && writeable,
        text: format!(
            "{}, {}, filesystem {fs}, filesystem id {id}, {usage}",
            if readable { "readable" } else { "NOT readable" },
            if writeable { "writeable" } else { "NOT writeable" },
        ),
    }
}

fn human(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}
