use super::*;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seeds")
}

#[test]
fn every_seed_example_parses() {
    let mut n = 0;
    for entry in std::fs::read_dir(fixtures()).expect("fixtures dir") {
        let path = entry.expect("entry").path();
        let loaded = Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n += 1;
        let name = path.file_name().and_then(|n| n.to_str()).expect("utf-8 name");
        match name {
            "000-gitaly-ruby.toml" => assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings),
            "001-server.toml" => {
                assert_eq!(loaded.warnings, vec![r#"unknown configuration key "internal_socket_dir" ignored"#]);
                assert_eq!(loaded.config.storages.len(), 2);
                assert_eq!(loaded.config.logging.log_format(), LogFormat::Json);
                assert_eq!(loaded.config.auth.token, "abc123secret");
            }
            _ => assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings),
        }
    }
    assert_eq!(n, 9);
    let c = Config::load(&fixtures().join("001-concurrency.toml")).expect("loads").config;
    assert_eq!(c.concurrency[1].rpc, "/gitaly.SSHService/SSHUploadPack");
    assert_eq!(c.concurrency[1].max_per_repo, 20);
    let t = Config::load(&fixtures().join("000-tls.toml")).expect("loads").config;
    assert_eq!(t.tls.expect("tls").key_path, Some(PathBuf::from("/etc/gitlab/ssl/key.pem")));
}

#[test]
fn validation_reports_every_error_with_key_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ok = dir.path().join("ok");
    std::fs::create_dir(&ok).expect("mkdir");
    let text = format!(
        r#"
listen_addr = "localhost"
tls_listen_addr = "0.0.0.0:9999"
bin_dir = "/nonexistent/bin"

[logging]
format = "yaml"
level = "chatty"

[prometheus]
grpc_latency_buckets = [1.0, 0.5]

[[storage]]
name = "default"
path = "{ok}"

[[storage]]
name = "default"
path = "/nonexistent/storage"

[[storage]]
name = ""
path = "{ok}/nested"

[[git.config]]
key = "nosection"
value = "x"

[[git.config]]
key = "core.a=b"

[[concurrency]]
rpc = "/gitaly.NoSuchService/Nope"
max_per_repo = -1
max_queue_size = -2

[daily_maintenance]
start_hour = 25
storages = ["missing"]
"#,
        ok = ok.display()
    );
    let loaded = Config::from_toml(&text).expect("parses");
    let errs = loaded.config.validate().expect_err("invalid");
    let keys: Vec<&str> = errs.0.iter().map(|e| e.key.as_str()).collect();
    for want in [
        "listen_addr",
        "tls",
        "bin_dir",
        "storage.[1].name",
        "storage.[1].path",
        "storage.[2].name",
        "storage.[2].path",
        "logging.format",
        "logging.level",
        "prometheus.grpc_latency_buckets",
        "git.config.[0].key",
        "git.config.[1].key",
        "concurrency.[0].rpc",
        "concurrency.[0].max_per_repo",
        "concurrency.[0].max_queue_size",
        "daily_maintenance.start_hour",
        "daily_maintenance.storages.[0]",
    ] {
        assert!(keys.contains(&want), "missing {want} in {errs}");
    }
    // Display puts one error per line, each prefixed with its key.
    assert!(errs.to_string().lines().all(|l| l.contains(": ")), "{errs}");
}

#[test]
fn no_listener_and_no_storage() {
    let errs = Config::from_toml("").expect("parses").config.validate().expect_err("invalid");
    assert_eq!(errs.0[0].key, "");
    assert!(errs.0[0].message.contains("socket_path"));
    assert!(errs.0.iter().any(|e| e.key == "storage" && e.message == "not set"));
}

#[test]
fn a_minimal_valid_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "socket_path = \"{d}/gitaly.socket\"\n[[storage]]\nname = \"default\"\npath = \"{d}\"\n[[concurrency]]\nrpc = \"/gitaly.SmartHTTPService/PostUploadPackWithSidechannel\"\nmax_per_repo = 2\nmax_queue_size = 5\nmax_queue_wait = \"1m\"\n",
        d = dir.path().display()
    );
    let loaded = Config::from_toml(&text).expect("parses");
    assert!(loaded.warnings.is_empty());
    loaded.config.validate().expect("valid");
    assert_eq!(loaded.config.concurrency[0].max_queue_wait.get(), Duration::from_secs(60));
}

#[test]
fn syntax_errors_are_load_errors() {
    assert!(Config::from_toml("listen_addr = ").is_err());
    assert!(Config::from_toml("[[storage]]\nname = 3").is_err());
}

#[test]
fn git_config_keys() {
    assert!(validate::valid_git_config_key("core.gc"));
    assert!(validate::valid_git_config_key("http.https://example.com/.extraHeader"));
    assert!(!validate::valid_git_config_key("core"));
    assert!(!validate::valid_git_config_key("core..x"));
    assert!(!validate::valid_git_config_key("-c.x"));
    assert!(!validate::valid_git_config_key("core.x y"));
}

#[test]
fn runtime_dir_too_long_for_the_internal_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let long = dir.path().join("r".repeat(80));
    std::fs::create_dir(&long).expect("mkdir");
    let text = format!(
        "socket_path = \"{d}/gitaly.socket\"\nruntime_dir = \"{r}\"\n[[storage]]\nname = \"default\"\npath = \"{d}\"\n",
        d = dir.path().display(),
        r = long.display()
    );
    let errs = Config::from_toml(&text).expect("parses").config.validate().expect_err("invalid");
    assert_eq!(errs.0.len(), 1, "{errs:?}");
    assert_eq!(errs.0[0].key, "runtime_dir");
    assert!(errs.0[0].message.contains("internal socket"), "{}", errs.0[0].message);
}

#[test]
fn pack_objects_cache_defaults_and_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base =
        format!("socket_path = \"{d}/s\"\n[[storage]]\nname = \"default\"\npath = \"{d}\"\n", d = dir.path().display());
    let loaded = Config::from_toml(&format!("{base}[pack_objects_cache]\nenabled = true\n")).expect("parses");
    assert!(loaded.warnings.is_empty());
    let c = loaded.config;
    c.validate().expect("valid");
    assert_eq!(c.pack_objects_cache_dir(), Some(dir.path().join("+gitaly/PackObjectsCache")));
    assert_eq!(c.pack_objects_cache.max_age(), Duration::from_secs(300));
    assert_eq!(c.pack_objects_cache.min_occurrences(), 1);
    assert_eq!(c.pack_objects_cache.max_size(), 10 << 30);

    let text = format!(
        "{base}[pack_objects_cache]\nenabled = true\ndir = \"rel/dir\"\nmax_age = \"10s\"\nmin_occurrences = 0\nmax_size = 1000\n"
    );
    let loaded = Config::from_toml(&text).expect("parses");
    assert!(loaded.warnings.is_empty(), "max_size is known: {:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!((c.pack_objects_cache.max_age(), c.pack_objects_cache.min_occurrences()), (Duration::from_secs(10), 0));
    assert_eq!(c.pack_objects_cache.max_size(), 1000);
    let errs = c.validate().expect_err("relative dir");
    assert!(errs.0.iter().any(|e| e.key == "pack_objects_cache.dir"), "{errs:?}");
}
