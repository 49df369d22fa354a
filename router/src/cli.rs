//! The `praefect` command line, as upstream spells it:
//!
//! ```text
//! praefect -config FILE                 serve
//! praefect -config FILE serve           serve
//! praefect -version
//! praefect configuration validate < FILE
//! praefect -config FILE <subcommand> [flags]
//! ```
//!
//! Flags follow Go's `flag` package (see [`flags`]). Subcommands log only
//! errors, to stderr; their results go to stdout; a failure is one line on
//! stderr and a non-zero exit code.

mod configuration;
mod flags;
mod nodes;
mod repos;
mod sql;
mod track;

use crate::config::Config;
use crate::db::Db;
use cairn_node::client::{Connection, DialOptions, dial};
use flags::{FlagError, Parsed, Spec};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How long dialing the running router may take (upstream's default).
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

const GLOBAL_FLAGS: &[Spec] = &[
    Spec::value("config", "FILE", "load configuration from FILE"),
    Spec::boolean("version", "print the version and exit"),
];

/// A subcommand: name, one-line summary, flags, and whether it takes
/// positional arguments (only `sql-migrate-down` does).
struct Command {
    name: &'static str,
    summary: &'static str,
    flags: &'static [Spec],
    positional: Option<&'static str>,
}

const VS: &str = "virtual-storage";
const RP: &str = "relative-path";

const COMMANDS: &[Command] = &[
    Command { name: "serve", summary: "launch the server daemon", flags: &[], positional: None },
    Command {
        name: "accept-dataloss",
        summary: "accept potential data loss in a repository",
        flags: &[
            Spec::value(VS, "NAME", "name of the repository's virtual storage"),
            Spec::value(RP, "PATH", "relative path on the virtual storage of the repository to accept data loss for"),
            Spec::value(
                "authoritative-storage",
                "STORAGE",
                "physical storage containing the replica of the repository to set as authoritative",
            ),
        ],
        positional: None,
    },
    Command {
        name: "check",
        summary: "run startup checks",
        flags: &[Spec::boolean("q", "do not print verbose output for each check")],
        positional: None,
    },
    Command {
        name: "dataloss",
        summary: "identify potential data loss in repositories",
        flags: &[
            Spec::value(
                VS,
                "NAME",
                "virtual storage to check for data loss; every configured virtual storage when not given",
            ),
            Spec::boolean(
                "partially-unavailable",
                "also list repositories that are available but have unavailable assigned replicas",
            ),
        ],
        positional: None,
    },
    Command {
        name: "dial-nodes",
        summary: "check connections",
        flags: &[Spec::value("timeout", "duration", "timeout for dialing Gitaly nodes (0 = 10s)")],
        positional: None,
    },
    Command {
        name: "list-storages",
        summary: "list physical storages for virtual storages",
        flags: &[Spec::value(VS, "NAME", "name of the virtual storage to list physical storages for")],
        positional: None,
    },
    Command {
        name: "list-untracked-repositories",
        summary: "list repositories without a database record",
        flags: &[
            Spec::value("delimiter", "STRING", "string appended to each JSON entry").with_default("\n"),
            Spec::value("older-than", "duration", "only list repositories older than this").with_default("6h"),
        ],
        positional: None,
    },
    Command {
        name: "track-repository",
        summary: "start tracking a repository",
        flags: &[
            Spec::value(VS, "NAME", "name of the repository's virtual storage"),
            Spec::value(RP, "PATH", "relative path of the repository on the virtual storage"),
            Spec::value("replica-path", "PATH", "relative path of the repository on the physical storage"),
            Spec::value("authoritative-storage", "STORAGE", "storage holding the canonical copy of the repository"),
            Spec::boolean(
                "replicate-immediately",
                "replicate to the other assigned storages now, not in the background",
            ),
        ],
        positional: None,
    },
    Command {
        name: "track-repositories",
        summary: "process bulk requests to track repositories",
        flags: &[
            Spec::value("input-path", "FILE", "file of newline-delimited JSON objects, one repository each"),
            Spec::boolean(
                "replicate-immediately",
                "replicate to the other assigned storages now, not in the background",
            ),
        ],
        positional: None,
    },
    Command {
        name: "verify",
        summary: "mark repository replicas as unverified",
        flags: &[
            Spec::value("repository-id", "ID", "repository ID of the repository to mark as unverified"),
            Spec::value(VS, "NAME", "name of the virtual storage with replicas to mark as unverified"),
            Spec::value("storage", "STORAGE", "name of the physical storage with replicas to mark as unverified"),
        ],
        positional: None,
    },
    Command {
        name: "metadata",
        summary: "show metadata about a repository",
        flags: &[
            Spec::value("repository-id", "ID", "the repository's ID"),
            Spec::value(VS, "NAME", "the repository's virtual storage"),
            Spec::value(RP, "PATH", "the repository's relative path in the virtual storage"),
        ],
        positional: None,
    },
    Command { name: "sql-ping", summary: "check reachability of the database", flags: &[], positional: None },
    Command {
        name: "sql-migrate",
        summary: "apply outstanding SQL migrations",
        flags: &[
            Spec::boolean("ignore-unknown", "ignore unknown migrations").with_default("true"),
            Spec::boolean("verbose", "show text of migration query"),
        ],
        positional: None,
    },
    Command {
        name: "sql-migrate-down",
        summary: "apply revert SQL migrations",
        flags: &[Spec::boolean("f", "apply down-migrations")],
        positional: Some("N"),
    },
    Command { name: "sql-migrate-status", summary: "show applied database migrations", flags: &[], positional: None },
    Command {
        name: "remove-repository",
        summary: "remove a repository",
        flags: &[
            Spec::value(VS, "NAME", "virtual storage containing the repository"),
            Spec::value(RP, "PATH", "relative path to the repository on the virtual storage"),
            Spec::boolean("apply", "remove the repository from physical storages and the database"),
            Spec::boolean("db-only", "remove the repository records from the database only"),
        ],
        positional: None,
    },
    Command {
        name: "set-replication-factor",
        summary: "set a replication factor for a repository",
        flags: &[
            Spec::value(VS, "NAME", "name of the repository's virtual storage"),
            Spec::value(RP, "PATH", "relative path on the virtual storage of the repository"),
            Spec::value("replication-factor", "N", "replication factor to set"),
        ],
        positional: None,
    },
];

/// A subcommand's failure: the one line printed and the exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: 1 }
    }
}

impl From<FlagError> for Failure {
    fn from(e: FlagError) -> Self {
        Self::new(e.to_string())
    }
}

/// `.or_fail("what")`: an error as `what: cause: cause...`.
pub(crate) trait OrFail<T> {
    fn or_fail(self, what: &str) -> Result<T, Failure>;
}

impl<T, E: std::error::Error + 'static> OrFail<T> for Result<T, E> {
    fn or_fail(self, what: &str) -> Result<T, Failure> {
        self.map_err(|e| {
            let cause = match (&e as &dyn std::error::Error).downcast_ref::<tonic::Status>() {
                Some(status) => crate::service::checks::status_text(status),
                None => cairn_node::error::error_chain(&e),
            };
            Failure::new(if what.is_empty() { cause } else { format!("{what}: {cause}") })
        })
    }
}

/// What every subcommand gets: the validated config.
pub(crate) struct Ctx {
    pub(crate) config: Arc<Config>,
}

impl Ctx {
    /// The database pool (connections open on first use).
    pub(crate) fn db(&self) -> Result<Db, Failure> {
        Db::new(&self.config.database).or_fail("sql open")
    }

    /// The running router's address: the first of socket_path, listen_addr
    /// and tls_listen_addr.
    pub(crate) fn router_address(&self) -> Result<String, Failure> {
        let c = &self.config;
        if let Some(p) = &c.socket_path {
            return Ok(format!("unix:{}", p.display()));
        }
        if let Some(a) = &c.listen_addr {
            return Ok(format!("tcp://{}", a.strip_prefix("tcp://").unwrap_or(a)));
        }
        if let Some(a) = &c.tls_listen_addr {
            return Ok(format!("tls://{}", a.strip_prefix("tls://").unwrap_or(a)));
        }
        Err(Failure::new("no Praefect address configured"))
    }

    /// A connection to the running router, with the `[auth] token`.
    pub(crate) async fn router(&self) -> Result<Connection, Failure> {
        let address = self.router_address()?;
        dial_with_timeout(&address, &self.config.auth.token, DIAL_TIMEOUT).await.or_fail("error dialing")
    }
}

/// Dials `address` with an optional token, giving up after `timeout`.
pub(crate) async fn dial_with_timeout(
    address: &str,
    token: &str,
    timeout: Duration,
) -> Result<Connection, cairn_node::client::DialError> {
    let opts = DialOptions { token: Some(token.to_owned()).filter(|t| !t.is_empty()), ..Default::default() };
    tokio::time::timeout(timeout, dial(address, opts)).await.unwrap_or_else(|_| {
        Err(cairn_node::client::DialError::Connect { address: address.to_owned(), message: "timed out".to_owned() })
    })
}

fn usage() -> String {
    let mut out = String::from(
        "Usage: praefect [-config FILE] [command] [flags]\n\n\
         Without a command, or with serve, praefect runs the server.\n\nGlobal flags:\n",
    );
    out.push_str(&flags::describe(GLOBAL_FLAGS));
    out.push_str("\nCommands:\n  configuration validate\n    \tvalidate the configuration read from stdin\n");
    for c in COMMANDS {
        out.push_str(&format!("  {}\n    \t{}\n", c.name, c.summary));
    }
    out
}

fn command_usage(c: &Command) -> String {
    let positional = c.positional.map(|p| format!(" {p}")).unwrap_or_default();
    format!("Usage: praefect -config FILE {} [flags]{positional}\n\n{}\n\nFlags:\n{}", c.name, c.summary, {
        let d = flags::describe(c.flags);
        if d.is_empty() { "  (none)\n".to_owned() } else { d }
    })
}

/// Runs the command line; returns the process exit code.
pub fn main(args: Vec<String>) -> ExitCode {
    let args = args.get(1..).unwrap_or_default();
    let global = match flags::parse(GLOBAL_FLAGS, args) {
        Ok(g) => g,
        Err(FlagError::Help) => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}\n{}", usage());
            return ExitCode::from(2);
        }
    };
    if global.bool("version") {
        println!("Praefect, version {}", cairn_node::server_version());
        return ExitCode::SUCCESS;
    }
    let (name, rest) = match global.positional.split_first() {
        None => ("serve", &[][..]),
        Some((n, r)) => (n.as_str(), r),
    };
    if name == "configuration" {
        return configuration::main(rest);
    }
    let Some(command) = COMMANDS.iter().find(|c| c.name == name) else {
        eprintln!("praefect: unknown command {name:?}\n\n{}", usage());
        return ExitCode::from(2);
    };
    // A subcommand also accepts -config after its name.
    let specs: Vec<Spec> = command.flags.iter().copied().chain(GLOBAL_FLAGS[..1].iter().copied()).collect();
    let parsed = match flags::parse(&specs, rest) {
        Ok(p) => p,
        Err(FlagError::Help) => {
            print!("{}", command_usage(command));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}\n{}", command_usage(command));
            return ExitCode::from(2);
        }
    };
    if command.positional.is_none() && !parsed.positional.is_empty() {
        eprintln!("{} doesn't accept positional arguments\n{}", command.name, command_usage(command));
        return ExitCode::FAILURE;
    }
    let config_path = if parsed.is_set("config") { parsed.string("config") } else { global.string("config") };
    if config_path.is_empty() {
        eprintln!("{}Required flag \"config\" not set", command_usage(command));
        return ExitCode::from(2);
    }
    let Some(config) = load_config(Path::new(&config_path)) else { return ExitCode::FAILURE };
    if command.name == "serve" {
        return serve(config);
    }
    init_command_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ctx = Ctx { config: Arc::new(config) };
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(command.name, &ctx, &parsed) => r,
            _ = tokio::signal::ctrl_c() => Err(Failure { message: String::new(), code: 130 }),
        }
    });
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("{}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

async fn run(name: &str, ctx: &Ctx, f: &Parsed) -> Result<(), Failure> {
    match name {
        "accept-dataloss" => repos::accept_dataloss(ctx, f).await,
        "check" => nodes::check(ctx, f).await,
        "dataloss" => repos::dataloss(ctx, f).await,
        "dial-nodes" => nodes::dial_nodes(ctx, f).await,
        "list-storages" => nodes::list_storages(ctx, f),
        "list-untracked-repositories" => nodes::list_untracked(ctx, f).await,
        "track-repository" => track::track_repository(ctx, f).await,
        "track-repositories" => track::track_repositories(ctx, f).await,
        "verify" => repos::verify(ctx, f).await,
        "metadata" => repos::metadata(ctx, f).await,
        "sql-ping" => sql::ping(ctx).await,
        "sql-migrate" => sql::migrate(ctx, f).await,
        "sql-migrate-down" => sql::migrate_down(ctx, f).await,
        "sql-migrate-status" => sql::migrate_status(ctx).await,
        "remove-repository" => repos::remove_repository(ctx, f).await,
        "set-replication-factor" => repos::set_replication_factor(ctx, f).await,
        other => Err(Failure::new(format!("unknown command {other:?}"))),
    }
}

/// Reads and validates the config: unknown keys are warnings on stderr,
/// validation errors are listed with their key paths.
fn load_config(path: &Path) -> Option<Config> {
    let loaded = match Config::load(path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error reading config file: {}", cairn_node::error::error_chain(&e));
            return None;
        }
    };
    for w in &loaded.warnings {
        eprintln!("warning: {}: {w}", path.display());
    }
    if let Err(errors) = loaded.config.validate() {
        eprintln!("validating config {}:", path.display());
        for e in &errors.0 {
            let key = if e.key.is_empty() { "(file)" } else { e.key.as_str() };
            eprintln!("  {key}: {}", e.message);
        }
        return None;
    }
    Some(loaded.config)
}

/// Subcommands log errors only, to stderr (upstream's `ConfigureCommand`).
fn init_command_logging() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::ERROR)
        .with_target(false)
        .try_init();
}

fn serve(config: Config) -> ExitCode {
    cairn_node::server::logging::init(&config.logging);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::server::run(config, shutdown_on_ctrl_c_or_sigterm())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = cairn_node::error::error_chain(&e);
            tracing::error!(error = %message, "server failed");
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_on_ctrl_c_or_sigterm() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}
