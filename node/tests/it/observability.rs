//! Metrics and concurrency limits, observed from outside.

use crate::support::Node;
use crate::support::git::Format;
use cairn_node::config::{Concurrency, GoDuration};
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::*;
use prost::Message as _;
use std::time::Duration;
use tonic::Code;

#[tokio::test]
async fn per_method_metrics_and_connections() {
    let node = Node::start_with(|c| c.prometheus_listen_addr = Some("127.0.0.1:0".into())).await;
    node.create_repo("m.git", Format::Sha1);
    let mut c = RepositoryServiceClient::new(node.channel().await);
    for _ in 0..3 {
        c.repository_exists(RepositoryExistsRequest { repository: Some(node.repo("m.git")) }).await.expect("exists");
    }
    c.object_format(ObjectFormatRequest { repository: Some(node.repo("missing.git")) }).await.expect_err("missing");
    let mut s =
        c.get_config(GetConfigRequest { repository: Some(node.repo("m.git")) }).await.expect("config").into_inner();
    while s.message().await.expect("msg").is_some() {}
    // Let the response bodies finish before scraping.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let m = node.metrics().await;
    let l = r#"grpc_type="unary",grpc_service="gitaly.RepositoryService",grpc_method="RepositoryExists""#;
    assert!(m.contains(&format!("grpc_server_started_total{{{l}}} 3")), "{m}");
    assert!(m.contains(&format!("grpc_server_handled_total{{{l},grpc_code=\"OK\"}} 3")), "{m}");
    assert!(m.contains(&format!("grpc_server_handling_seconds_count{{{l}}} 3")), "{m}");
    assert!(m.contains(&format!("grpc_server_msg_received_total{{{l}}} 3")), "{m}");
    assert!(m.contains(r#"grpc_method="ObjectFormat",grpc_code="NotFound"} 1"#), "{m}");
    assert!(m.contains(r#"grpc_server_msg_sent_total{grpc_type="server_stream",grpc_service="gitaly.RepositoryService",grpc_method="GetConfig"} 1"#), "{m}");
    assert!(m.contains(r#"gitaly_connections_total{type="unix"}"#), "{m}");
}

#[tokio::test]
async fn concurrency_limit_queue_and_wait() {
    let node = Node::start_with(|c| {
        c.prometheus_listen_addr = Some("127.0.0.1:0".into());
        c.concurrency.push(Concurrency {
            rpc: "/gitaly.RepositoryService/SetCustomHooks".into(),
            max_per_repo: 1,
            max_queue_size: 1,
            max_queue_wait: GoDuration(Duration::from_millis(300)),
            ..Default::default()
        });
    })
    .await;
    node.create_repo("busy.git", Format::Sha1);
    node.create_repo("other.git", Format::Sha1);
    let c = RepositoryServiceClient::new(node.channel().await);

    // A client-streaming call that stays open holds the only slot.
    let (hold_tx, hold_rx) = tokio::sync::mpsc::channel::<SetCustomHooksRequest>(1);
    hold_tx
        .send(SetCustomHooksRequest { repository: Some(node.repo("busy.git")), data: Vec::new() })
        .await
        .expect("send");
    let mut holder = c.clone();
    let held =
        tokio::spawn(
            async move { holder.set_custom_hooks(tokio_stream::wrappers::ReceiverStream::new(hold_rx)).await },
        );
    tokio::time::sleep(Duration::from_millis(100)).await;

    let one = |repo: &str| {
        let mut c = c.clone();
        let r = node.repo(repo);
        async move {
            c.set_custom_hooks(futures::stream::iter(vec![SetCustomHooksRequest {
                repository: Some(r),
                data: Vec::new(),
            }]))
            .await
        }
    };
    // The second call queues and gives up after max_queue_wait...
    let waiting = tokio::spawn(one("busy.git"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...while a third finds the queue full at once.
    let e = one("busy.git").await.expect_err("queue full");
    assert_eq!((e.code(), e.message()), (Code::ResourceExhausted, "maximum queue size reached"));
    let detail = &cairn_node::error::status_details(&e)[0];
    assert_eq!(detail.type_url, "type.googleapis.com/gitaly.LimitError");
    let limit = LimitError::decode(detail.value.as_slice()).expect("LimitError");
    assert_eq!(limit.error_message, "maximum queue size reached");
    assert_eq!(limit.retry_after, Some(prost_types::Duration::default()));
    // Other repositories are not affected.
    one("other.git").await.expect("independent key");

    let e = waiting.await.expect("join").expect_err("waited too long");
    assert_eq!((e.code(), e.message()), (Code::ResourceExhausted, "maximum time in concurrency queue reached"));

    drop(hold_tx);
    held.await.expect("join").expect("the holder finishes normally");
    one("busy.git").await.expect("slot free again");

    let m = node.metrics().await;
    assert!(m.contains(r#"gitaly_requests_dropped_total{system="gitaly",grpc_service="gitaly.RepositoryService",grpc_method="SetCustomHooks",reason="max_size"} 1"#), "{m}");
    assert!(m.contains(r#"reason="max_time"} 1"#), "{m}");
    assert!(m.contains(r#"gitaly_concurrency_limiting_in_progress{system="gitaly",grpc_service="gitaly.RepositoryService",grpc_method="SetCustomHooks"} 0"#), "{m}");
    assert!(m.contains("gitaly_concurrency_limiting_acquiring_seconds_count"), "{m}");
}
