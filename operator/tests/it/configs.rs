//! The rendered config.toml files load in the real node and router loaders
//! with no unknown keys and pass their validate().

use crate::support::example;
use cairn_operator::config::{self, DbConn, Paths};
use cairn_operator::names::Names;

/// Paths inside a temp dir, with the files validate() checks for.
fn paths(dir: &std::path::Path) -> Paths {
    let storage = dir.join("storage");
    std::fs::create_dir_all(&storage).expect("storage dir");
    let ca = cairn_operator::certs::new_ca("t", time::OffsetDateTime::now_utc()).expect("ca");
    let leaf =
        cairn_operator::certs::issue(&ca, None, &["x".into()], time::OffsetDateTime::now_utc(), 90).expect("leaf");
    std::fs::write(dir.join("tls.crt"), leaf.cert).expect("write cert");
    std::fs::write(dir.join("tls.key"), leaf.key).expect("write key");
    Paths {
        storage,
        tls_cert: dir.join("tls.crt"),
        tls_key: dir.join("tls.key"),
        git: which_git(),
        gitlab_secret: dir.join("gitlab-secret"),
    }
}

fn which_git() -> std::path::PathBuf {
    ["/usr/bin/git", "/usr/local/bin/git"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
        .expect("git installed")
}

fn db() -> DbConn {
    DbConn {
        host: "cairn-postgres.cairn.svc".into(),
        port: 5432,
        user: "praefect".into(),
        dbname: "praefect".into(),
        sslmode: "disable".into(),
    }
}

#[test]
fn node_config_loads_in_the_node() {
    for file in ["cluster.yaml", "production.yaml"] {
        let gc = example(file);
        let dir = tempfile::tempdir().expect("tempdir");
        let template = config::node_toml(&gc.spec, &paths(dir.path()));
        for p in config::PLACEHOLDERS {
            assert!(!p.is_empty());
        }
        let text = config::render(&template, "cairn-default-0", "tok-en", "pw");
        let loaded = cairn_node::config::Config::from_toml(&text).unwrap_or_else(|e| panic!("{file}: {e}\n{text}"));
        assert!(loaded.warnings.is_empty(), "{file}: unknown keys {:?}", loaded.warnings);
        loaded.config.validate().unwrap_or_else(|e| panic!("{file}: {e}\n{text}"));
        assert_eq!(loaded.config.storages[0].name, "cairn-default-0");
        assert_eq!(loaded.config.auth.token, "tok-en");
        assert_eq!(loaded.config.graceful_restart_timeout().as_secs(), 25);
        if file == "production.yaml" {
            assert!(loaded.config.tls.is_some() && loaded.config.tls_listen_addr.as_deref() == Some("0.0.0.0:9999"));
            assert!(loaded.config.pack_objects_cache.enabled);
            assert_eq!(loaded.config.concurrency[0].max_per_repo, 20);
            assert_eq!(loaded.config.concurrency[0].max_queue_wait.get().as_secs(), 60);
        }
    }
}

#[test]
fn router_config_loads_in_the_router() {
    for file in ["cluster.yaml", "production.yaml"] {
        let mut gc = example(file);
        gc.metadata.namespace = Some("cairn".into());
        let dir = tempfile::tempdir().expect("tempdir");
        let template = config::router_toml(&gc.spec, &Names::of(&gc), &db(), &paths(dir.path()));
        let text = config::render(&template, "cairn-router-abc", "tok-en", "pw");
        let loaded = cairn_router::config::Config::from_toml(&text).unwrap_or_else(|e| panic!("{file}: {e}\n{text}"));
        assert!(loaded.warnings.is_empty(), "{file}: unknown keys {:?}", loaded.warnings);
        loaded.config.validate().unwrap_or_else(|e| panic!("{file}: {e}\n{text}"));
        let vs = &loaded.config.virtual_storages[0];
        assert_eq!(vs.nodes.len(), 3);
        assert_eq!(vs.default_replication_factor, 3);
        assert_eq!(loaded.config.database.password, "pw");
        assert_eq!(loaded.config.name.as_deref(), Some("cairn-router-abc"));
        let scheme = if file == "production.yaml" { "tls://" } else { "tcp://" };
        assert!(vs.nodes[1].address.starts_with(scheme), "{}", vs.nodes[1].address);
    }
}

#[test]
fn node_config_has_no_node_count() {
    let mut gc = example("cluster.yaml");
    let a = config::node_toml(&gc.spec, &Paths::default());
    gc.spec.storages[0].nodes = 7;
    assert_eq!(a, config::node_toml(&gc.spec, &Paths::default()), "scaling must not change the node config");
}

#[test]
fn render_script_substitutes_like_render() {
    // The init container's sed script, run for real on a template.
    let gc = example("cluster.yaml");
    let dir = tempfile::tempdir().expect("tempdir");
    let template = config::node_toml(&gc.spec, &Paths::default());
    std::fs::write(dir.path().join("in.toml"), &template).expect("write");
    let script = config::render_script(
        dir.path().join("in.toml").to_str().expect("utf8"),
        dir.path().join("out.toml").to_str().expect("utf8"),
    )
    .replace("/etc/cairn/token/token", dir.path().join("token").to_str().expect("utf8"))
    .replace("/etc/cairn/db/password", dir.path().join("pw").to_str().expect("utf8"));
    std::fs::write(dir.path().join("token"), "a+b/c=\n").expect("write");
    #[allow(clippy::disallowed_methods)]
    let status = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("POD_NAME", "cairn-default-1")
        .status()
        .expect("run sh");
    assert!(status.success());
    let out = std::fs::read_to_string(dir.path().join("out.toml")).expect("read");
    assert_eq!(out, config::render(&template, "cairn-default-1", "a+b/c=", ""));
}
