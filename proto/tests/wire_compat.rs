//! Wire compatibility with upstream Gitaly.
//!
//! `tests/golden/*.json` hold messages encoded by an encoder that is not ours:
//! Google's Python protobuf runtime, using the generated stubs shipped in the
//! hgitaly 18.9.0a1 package for the nine services those stubs cover, and
//! upstream Gitaly's own 18.x .proto definitions for the other eleven. Every
//! field of every request and response of every RPC is set to a distinct,
//! type-revealing value (negative ints, >2^63 unsigned ints, non-zero enums,
//! each member of each oneof in turn).
//!
//! Each sample is decoded with our descriptors. A field whose number, wire
//! type, name or type differed from upstream would show up as an unknown
//! field, a decode error or a different JSON value.

use base64::Engine as _;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions, Value};
use std::collections::BTreeSet;

fn pool() -> DescriptorPool {
    DescriptorPool::decode(cairn_proto::FILE_DESCRIPTOR_SET).expect("our descriptor set decodes")
}

fn assert_no_unknown_fields(msg: &DynamicMessage, at: &str) {
    let unknown: Vec<u32> = msg.unknown_fields().map(|f| f.number()).collect();
    assert!(
        unknown.is_empty(),
        "{at}: fields {unknown:?} are unknown to our {}",
        prost_reflect::ReflectMessage::descriptor(msg).full_name()
    );
    for (field, value) in msg.fields() {
        let at = format!("{at}.{}", field.name());
        visit(value, &at);
    }
}

fn visit(value: &Value, at: &str) {
    match value {
        Value::Message(m) => assert_no_unknown_fields(m, at),
        Value::List(items) => items.iter().for_each(|v| visit(v, at)),
        Value::Map(entries) => entries.values().for_each(|v| visit(v, at)),
        _ => {}
    }
}

#[test]
fn golden_messages_from_independent_encoders_decode_identically() {
    let pool = pool();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut services = BTreeSet::new();
    let mut rpcs_seen = BTreeSet::new();
    let mut samples = 0;
    for entry in std::fs::read_dir(&dir).expect("golden dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let file: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read golden")).expect("json");
        services.insert(file["service"].as_str().expect("service").to_owned());
        for sample in file["samples"].as_array().expect("samples") {
            let rpc = sample["rpc"].as_str().expect("rpc");
            let type_name = sample["type"].as_str().expect("type");
            let at = format!("{rpc} {} {type_name}", sample["kind"]);
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(sample["bytes"].as_str().expect("bytes"))
                .expect("base64");
            let desc = pool.get_message_by_name(type_name).unwrap_or_else(|| panic!("{at}: no such message"));
            let msg = DynamicMessage::decode(desc, bytes.as_slice()).unwrap_or_else(|e| panic!("{at}: {e}"));
            assert_no_unknown_fields(&msg, &at);

            let mut ser = serde_json::Serializer::new(Vec::new());
            msg.serialize_with_options(&mut ser, &SerializeOptions::new().use_proto_field_name(true))
                .expect("serialize");
            let ours: serde_json::Value = serde_json::from_slice(&ser.into_inner()).expect("our json");
            assert_eq!(ours, sample["json"], "{at}: decoded values differ");

            // Our encoder must produce bytes upstream decodes the same way.
            assert_eq!(msg.encode_to_vec(), bytes, "{at}: re-encoding differs");
            rpcs_seen.insert(rpc.to_owned());
            samples += 1;
        }
    }
    assert_eq!(services.len(), 20, "one golden file per service: {services:?}");
    let all: BTreeSet<String> = cairn_proto::facts::RPCS.iter().map(|r| r.full_method.to_owned()).collect();
    assert_eq!(rpcs_seen, all, "every RPC has golden request and response samples");
    assert!(samples >= 2 * all.len());
}

/// The generated tonic/prost types decode the same bytes: spot checks on a
/// request and a response of services whose handlers exist on the node.
#[test]
fn generated_types_decode_golden_bytes() {
    use cairn_proto::gitaly::*;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let load = |service: &str, rpc: &str, kind: &str| -> Vec<u8> {
        let file: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{service}.json"))).expect("read")).expect("json");
        let s = file["samples"]
            .as_array()
            .expect("samples")
            .iter()
            .find(|s| s["rpc"] == rpc && s["kind"] == kind)
            .unwrap_or_else(|| panic!("{rpc} {kind}"))
            .clone();
        base64::engine::general_purpose::STANDARD.decode(s["bytes"].as_str().expect("bytes")).expect("b64")
    };
    let req = RepositoryExistsRequest::decode(
        load("gitaly.RepositoryService", "/gitaly.RepositoryService/RepositoryExists", "request").as_slice(),
    )
    .expect("decode");
    let repo = req.repository.expect("repository set");
    assert_eq!(repo.storage_name, "storage_name-0-0 \u{e9}");
    assert_eq!(repo.relative_path, "relative_path-0-0 \u{e9}");
    assert_eq!(repo.gl_project_path, "gl_project_path-0-0 \u{e9}");

    let resp = ServerInfoResponse::decode(
        load("gitaly.ServerService", "/gitaly.ServerService/ServerInfo", "response").as_slice(),
    )
    .expect("decode");
    assert_eq!(resp.storage_statuses.len(), 2);
    assert!(resp.storage_statuses[0].writeable);
    assert_eq!(resp.storage_statuses[0].replication_factor, 4_000_000_000 - 6);
}

#[test]
fn facts_table_matches_the_protocol_survey() {
    use cairn_proto::facts::{Operation, RPCS, Scope};
    let services: BTreeSet<_> = RPCS.iter().map(|r| r.service).collect();
    assert_eq!(services.len(), 20);
    assert_eq!(RPCS.len(), 164);
    let count = |f: &dyn Fn(&&cairn_proto::facts::RpcFacts) -> bool| RPCS.iter().filter(f).count();
    assert_eq!(count(&|r| r.op == Some(Operation::Accessor)), 102);
    assert_eq!(count(&|r| r.op == Some(Operation::Mutator)), 48);
    assert_eq!(count(&|r| r.op == Some(Operation::Maintenance)), 2);
    assert_eq!(count(&|r| r.intercepted), 12);
    assert_eq!(count(&|r| r.scope == Some(Scope::Repository)), 143);
    assert_eq!(count(&|r| r.scope == Some(Scope::Storage)), 8);
    assert_eq!(count(&|r| r.scope == Some(Scope::Partition)), 1);
    assert_eq!(count(&|r| !r.client_streaming && !r.server_streaming), 78);
    assert_eq!(count(&|r| !r.client_streaming && r.server_streaming), 57);
    assert_eq!(count(&|r| r.client_streaming && !r.server_streaming), 13);
    assert_eq!(count(&|r| r.client_streaming && r.server_streaming), 16);

    let lang = cairn_proto::facts::lookup("/gitaly.CommitService/CommitLanguages").expect("known");
    assert_eq!(lang.op, Some(Operation::Mutator), "18.x made CommitLanguages a mutator");
    let create_pool = cairn_proto::facts::lookup("/gitaly.ObjectPoolService/CreateObjectPool").expect("known");
    assert_eq!(create_pool.target_repository.expect("target").dotted(), "object_pool.repository");
    assert_eq!(create_pool.additional_repository.expect("additional").dotted(), "origin");
    for r in RPCS.iter().filter(|r| r.scope == Some(Scope::Repository)) {
        assert!(r.target_repository.is_some(), "{}", r.full_method);
    }
    assert!(cairn_proto::facts::lookup("/gitaly.Nope/Nope").is_none());
}
