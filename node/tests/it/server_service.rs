//! ServerService against a real node.

use crate::support::{Node, STORAGE};
use cairn_proto::gitaly::server_service_client::ServerServiceClient;
use cairn_proto::gitaly::*;

#[tokio::test]
async fn server_info_reports_versions_and_storage_state() {
    let node = Node::start().await;
    let mut client = ServerServiceClient::new(node.channel().await);
    let info = client.server_info(ServerInfoRequest {}).await.expect("server info").into_inner();
    assert!(info.server_version.starts_with("18."), "{}", info.server_version);
    assert!(info.git_version.chars().next().is_some_and(|c| c.is_ascii_digit()), "{}", info.git_version);
    assert_eq!(info.storage_statuses.len(), 1);
    let s = &info.storage_statuses[0];
    assert_eq!(s.storage_name, STORAGE);
    assert!(s.readable && s.writeable);
    assert_ne!(s.fs_type, "");
    assert_eq!(s.replication_factor, 1);
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(node.storage.join(".gitaly-metadata")).expect("metadata file"))
            .expect("json");
    assert_eq!(on_disk["gitaly_filesystem_id"], s.filesystem_id);
    assert!(uuid_like(&s.filesystem_id));
    assert!(!node.storage.join("+testWrite").exists(), "probe file removed");
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test]
async fn disk_statistics_and_readiness() {
    let node = Node::start().await;
    let mut client = ServerServiceClient::new(node.channel().await);
    let stats = client.disk_statistics(DiskStatisticsRequest {}).await.expect("disk stats").into_inner();
    assert_eq!(stats.storage_statuses[0].storage_name, STORAGE);
    assert!(stats.storage_statuses[0].available > 0);
    assert!(stats.storage_statuses[0].used > 0);

    let ready = client.readiness_check(ReadinessCheckRequest { timeout: None }).await.expect("readiness").into_inner();
    assert!(matches!(ready.result, Some(readiness_check_response::Result::OkResponse(_))), "{ready:?}");

    // A storage that disappears makes the node unready, and says why.
    std::fs::rename(&node.storage, node.dir.path().join("gone")).expect("move storage away");
    let ready = client.readiness_check(ReadinessCheckRequest { timeout: None }).await.expect("readiness").into_inner();
    match ready.result {
        Some(readiness_check_response::Result::FailureResponse(f)) => {
            assert_eq!(f.failed_checks[0].name, format!("storage {STORAGE}"));
        }
        other => panic!("expected failure, got {other:?}"),
    }
    let stats = client.disk_statistics(DiskStatisticsRequest {}).await.expect("disk stats").into_inner();
    assert_eq!((stats.storage_statuses[0].available, stats.storage_statuses[0].used), (0, 0));
    let info = client.server_info(ServerInfoRequest {}).await.expect("server info").into_inner();
    assert!(!info.storage_statuses[0].readable && !info.storage_statuses[0].writeable);
}

#[tokio::test]
async fn server_signature_with_and_without_key() {
    let node = Node::start().await;
    let mut client = ServerServiceClient::new(node.channel().await);
    let sig = client.server_signature(ServerSignatureRequest {}).await.expect("signature").into_inner();
    assert!(sig.public_key.is_empty());

    let key = tempfile::NamedTempFile::new().expect("key file");
    std::fs::write(key.path(), include_str!("../fixtures/signing_key_ed25519")).expect("write key");
    let key_path = key.path().to_owned();
    let node = Node::start_with(|c| c.git.signing_key = Some(key_path)).await;
    let mut client = ServerServiceClient::new(node.channel().await);
    let sig = client.server_signature(ServerSignatureRequest {}).await.expect("signature").into_inner();
    assert!(String::from_utf8(sig.public_key).expect("utf-8").starts_with("ssh-ed25519 AAAA"));
}
