//! A real PostgreSQL for tests: one fresh database per test.
//!
//! `dev/test.sh` starts one private server for the whole suite and exports
//! `CAIRN_TEST_PGHOST` (its socket directory) and `CAIRN_TEST_PGPORT`.
//! Without them, the first test in a process starts a private server in a
//! temporary directory (as `nobody` when running as root, since PostgreSQL
//! refuses root) and stops it when the process exits. Tests that stop and
//! restart PostgreSQL start their own [`PgServer`].

#![allow(clippy::disallowed_methods, reason = "tests run PostgreSQL's own programs")]

use cairn_router::config::Database;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A private PostgreSQL server in a temporary directory.
pub struct PgServer {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

/// The directory holding initdb and postgres.
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CAIRN_PG_BINDIR") {
        return dir.into();
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    versions.sort();
    versions.pop().unwrap_or_else(|| PathBuf::from("/usr/local/bin"))
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs PostgreSQL programs as `nobody` when we are root.
fn pg_command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

impl PgServer {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("cairn-pg-").tempdir().expect("temp dir");
        if is_root() {
            std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).expect("chown");
        }
        let data = dir.path().join("data");
        let out = pg_command(&bin_dir().join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"])
            .stdout(Stdio::null())
            .output()
            .expect("run initdb (is PostgreSQL installed? dev/test.sh installs it)");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let mut server = Self { dir, port: free_port(), child: None };
        server.resume();
        server
    }

    /// The socket directory (libpq's host for Unix sockets).
    pub fn host(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// Starts (again) the server on the same data directory and port.
    pub fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("log")).expect("log file");
        let child = pg_command(&bin_dir().join("postgres"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-k", &self.host(), "-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=", "-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=400", "-c", "shared_buffers=32MB"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let socket = self.dir.path().join(format!(".s.PGSQL.{}", self.port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "postgres did not start: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        // The socket appears slightly before connections are accepted.
        std::thread::sleep(Duration::from_millis(100));
    }

    /// Stops the server (fast shutdown) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = rustix::process::Pid::from_child(&child);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// A new, empty database on this server.
    pub fn database(&self) -> TestDb {
        TestDb::create(self.host(), self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The suite's shared server: from the environment, or started once per process.
fn shared() -> (String, u16) {
    static SHARED: OnceLock<(String, u16)> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            if let (Ok(host), Ok(port)) = (std::env::var("CAIRN_TEST_PGHOST"), std::env::var("CAIRN_TEST_PGPORT")) {
                return (host, port.parse().expect("CAIRN_TEST_PGPORT is a port"));
            }
            // Leaked on purpose: it lives as long as the test process, and
            // the stopper below ends it at exit.
            let server = Box::leak(Box::new(PgServer::start()));
            let pid = server.child.as_ref().map(|c| c.id()).expect("started");
            stop_at_exit(pid, server.dir.path());
            (server.host(), server.port)
        })
        .clone()
}

/// Ends the process-wide server and removes its directory when the test
/// process exits, even though statics are never dropped: a watcher process
/// waits for our death.
fn stop_at_exit(pg_pid: u32, dir: &Path) {
    let me = std::process::id();
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {me} 2>/dev/null; do sleep 0.2; done; kill -INT {pg_pid} 2>/dev/null; \
             while kill -0 {pg_pid} 2>/dev/null; do sleep 0.1; done; rm -rf '{}'",
            dir.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// A fresh database; dropped (with its connections) when the value is.
pub struct TestDb {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl TestDb {
    /// A new database on the suite's shared server.
    pub fn new() -> Self {
        let (host, port) = shared();
        Self::create(host, port)
    }

    fn create(host: String, port: u16) -> Self {
        let name = format!("cairn_test_{}", uuid::Uuid::new_v4().simple());
        admin(&host, port, &format!("CREATE DATABASE {name}"));
        Self { name, host, port }
    }

    /// `[database]` settings pointing at this database.
    pub fn config(&self) -> Database {
        Database {
            host: self.host.clone(),
            port: self.port,
            user: "postgres".into(),
            dbname: self.name.clone(),
            ..Default::default()
        }
    }

    /// The same as TOML, for config files of spawned routers.
    pub fn toml(&self) -> String {
        format!(
            "[database]\nhost = {:?}\nport = {}\nuser = \"postgres\"\ndbname = {:?}\n",
            self.host, self.port, self.name
        )
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        admin(&self.host, self.port, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// Runs one statement on the `postgres` database, on a private runtime so it
/// works from Drop and from async tests alike.
fn admin(host: &str, port: u16, sql: &str) {
    let (host, sql) = (host.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let mut config = tokio_postgres::Config::new();
            config.host(&host).port(port).user("postgres").dbname("postgres");
            let (client, conn) = config.connect(tokio_postgres::NoTls).await.expect("connect to test PostgreSQL");
            let task = tokio::spawn(conn);
            client.batch_execute(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            drop(client);
            let _ = task.await;
        });
    })
    .join()
    .expect("admin statement");
}
