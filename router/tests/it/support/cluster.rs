//! Real node (and router) processes for router tests. Each runs from the
//! workspace's target directory, listens on loopback, and is killed when
//! dropped. `kill9`/`restart` simulate crashes.

#![allow(clippy::disallowed_methods, reason = "tests start real node and router processes")]

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The directory with the workspace's binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/debug/deps/it-xxxx -> target/debug
    let dir = exe.parent().and_then(Path::parent).expect("target dir").to_owned();
    for bin in ["gitaly", "gitaly-ssh", "gitaly-hooks", "praefect"] {
        assert!(
            dir.join(bin).exists(),
            "{} is missing: build the workspace binaries first (cargo build --workspace --bins)",
            dir.join(bin).display()
        );
    }
    dir
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_for_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start listening on {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal_group(child: &Child, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_child(child);
    // The group may be gone already (the process exited).
    let _ = rustix::process::kill_process_group(pid, signal);
}

/// A `praefect` process serving on a Unix socket; killed when dropped.
pub struct RouterProc {
    pub socket: PathBuf,
    pub config_path: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl RouterProc {
    /// Starts `praefect` with `config` (which must not set `socket_path`).
    pub fn start(config: &str) -> Self {
        let tmp = tempfile::Builder::new().prefix("cairn-praefect-").tempdir().expect("temp dir");
        let socket = tmp.path().join("praefect.socket");
        let config_path = tmp.path().join("config.toml");
        std::fs::write(&config_path, format!("socket_path = {socket:?}\n{config}")).expect("write router config");
        let mut router = Self { socket, config_path, child: None, log: tmp.path().join("praefect.log"), _tmp: tmp };
        router.restart();
        router
    }

    /// Starts the process (again) with the same configuration.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "router is running");
        let _ = std::fs::remove_file(&self.socket);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log");
        let child = Command::new(bin_dir().join("praefect"))
            .arg("-config")
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start praefect");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(Instant::now() < deadline, "praefect did not start: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `unix:<socket>`.
    pub fn address(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RouterProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A `gitaly` process with one storage, listening on a loopback port.
pub struct NodeProc {
    pub storage_name: String,
    pub storage: PathBuf,
    pub port: u16,
    pub token: String,
    dir: PathBuf,
    child: Option<Child>,
    _tmp: tempfile::TempDir,
}

impl NodeProc {
    pub fn start(storage_name: &str, token: &str) -> Self {
        let tmp = tempfile::Builder::new().prefix("cairn-node-").tempdir().expect("temp dir");
        let dir = tmp.path().to_owned();
        let storage = dir.join("storage");
        std::fs::create_dir_all(&storage).expect("storage dir");
        std::fs::create_dir_all(dir.join("run")).expect("runtime dir");
        let mut node = Self {
            storage_name: storage_name.to_owned(),
            storage,
            port: free_port(),
            token: token.to_owned(),
            dir,
            child: None,
            _tmp: tmp,
        };
        node.restart();
        node
    }

    /// `tcp://127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("gitaly.log")
    }

    /// Starts the process (again), on the same storage and port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "node {} is running", self.storage_name);
        let bin = bin_dir();
        let config = format!(
            "listen_addr = \"127.0.0.1:{port}\"\nruntime_dir = {run:?}\nbin_dir = {bin:?}\n\
             [auth]\ntoken = {token:?}\n[logging]\nlevel = \"warn\"\n\
             [[storage]]\nname = {name:?}\npath = {storage:?}\n",
            port = self.port,
            run = self.dir.join("run"),
            bin = bin,
            token = self.token,
            name = self.storage_name,
            storage = self.storage,
        );
        let config_path = self.dir.join("config.toml");
        std::fs::write(&config_path, config).expect("write node config");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("log");
        // Its own process group, so a kill or pause takes the git and hook
        // processes it started with it, as losing the machine would.
        let child = Command::new(bin.join("gitaly"))
            .process_group(0)
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start gitaly");
        self.child = Some(child);
        wait_for_port(self.port, "gitaly", &self.log_path());
    }

    /// SIGKILL to the node and its children, as a crashed machine would look.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_group(&child, rustix::process::Signal::KILL);
            let _ = child.wait();
        }
    }

    /// SIGSTOP / SIGCONT to the node and its children: a machine that hangs
    /// or is cut off.
    pub fn pause(&self, paused: bool) {
        if let Some(child) = &self.child {
            let signal = if paused { rustix::process::Signal::STOP } else { rustix::process::Signal::CONT };
            signal_group(child, signal);
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The replica's directory on this node's disk.
    pub fn path_of(&self, replica_path: &str) -> PathBuf {
        self.storage.join(replica_path)
    }

    /// `[[virtual_storage.node]]` entry for a router config.
    pub fn router_entry(&self) -> String {
        format!(
            "[[virtual_storage.node]]\nstorage = {:?}\naddress = {:?}\ntoken = {:?}\n",
            self.storage_name,
            self.address(),
            self.token
        )
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.pause(false);
        self.kill9();
    }
}
