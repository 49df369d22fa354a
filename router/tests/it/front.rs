//! The router's front: the same listeners, auth and metrics as a node.

use crate::support::cluster::NodeProc;
use crate::support::router::{NODE_TOKEN, Router, migrated_db, repo};
use cairn_node::client::{DialOptions, dial};
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::*;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tcp_tls_and_unix_with_token_auth_and_metrics() {
    let (test_db, _db) = migrated_db().await;
    let node = NodeProc::start("s1", NODE_TOKEN);
    let dir = tempfile::tempdir().expect("tmp");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("key");
    let extra = format!(
        "tls_listen_addr = \"127.0.0.1:0\"\nprometheus_listen_addr = \"127.0.0.1:0\"\n\
         [auth]\ntoken = \"router-secret\"\n[tls]\ncertificate_path = {cert_path:?}\nkey_path = {key_path:?}\n"
    );
    let router = Router::start(&test_db, &[&node], &extra).await;
    let tcp = router.addrs.tcp.expect("tcp");
    let tls = router.addrs.tls.expect("tls");
    let addresses = [format!("tcp://{tcp}"), format!("tls://localhost:{}", tls.port()), router.address()];
    for (i, address) in addresses.iter().enumerate() {
        let opts =
            DialOptions { token: Some("router-secret".into()), tls_ca: Some(cert_path.clone()), ..Default::default() };
        let conn = dial(address, opts).await.unwrap_or_else(|e| panic!("dial {address}: {e}"));
        let mut client = RepositoryServiceClient::new(conn.channel());
        let name = format!("r{i}.git");
        client
            .create_repository(CreateRepositoryRequest { repository: Some(repo(&name)), ..Default::default() })
            .await
            .unwrap_or_else(|e| panic!("create over {address}: {e:?}"));
        let exists = client.repository_exists(RepositoryExistsRequest { repository: Some(repo(&name)) }).await;
        assert!(exists.expect("exists").into_inner().exists, "{address}");
    }
    let opts = DialOptions { tls_ca: Some(cert_path.clone()), ..Default::default() };
    let conn = dial(&format!("tcp://{tcp}"), opts).await.expect("dial");
    let err = RepositoryServiceClient::new(conn.channel())
        .repository_exists(RepositoryExistsRequest { repository: Some(repo("r0.git")) })
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    let metrics = crate::support::http_get(router.addrs.prometheus.expect("metrics"), "/metrics").await;
    assert!(metrics.contains("grpc_server_handled_total"), "{metrics}");
    assert!(metrics.contains("RepositoryExists"), "{metrics}");
}
