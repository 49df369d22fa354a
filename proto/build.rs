//! Compiles the .proto files with tonic/prost and generates the RPC facts
//! table (op_type, scope and repository field paths of every RPC) from the
//! custom options in lint.proto.
//!
//! protoc comes from the protoc-bin-vendored crate, so a fresh clone builds
//! without any system package.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The slice of descriptor.proto the facts generator reads. prost-types drops
/// extension fields while decoding options, so the extensions from lint.proto
/// are declared here as ordinary fields with their extension numbers.
mod desc {
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct FileDescriptorSet {
        #[prost(message, repeated, tag = "1")]
        pub(crate) file: Vec<FileDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct FileDescriptorProto {
        #[prost(string, tag = "1")]
        pub(crate) name: String,
        #[prost(string, tag = "2")]
        pub(crate) package: String,
        #[prost(message, repeated, tag = "4")]
        pub(crate) message_type: Vec<DescriptorProto>,
        #[prost(message, repeated, tag = "6")]
        pub(crate) service: Vec<ServiceDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct DescriptorProto {
        #[prost(string, tag = "1")]
        pub(crate) name: String,
        #[prost(message, repeated, tag = "2")]
        pub(crate) field: Vec<FieldDescriptorProto>,
        #[prost(message, repeated, tag = "3")]
        pub(crate) nested_type: Vec<DescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct FieldDescriptorProto {
        #[prost(string, tag = "1")]
        pub(crate) name: String,
        #[prost(int32, tag = "3")]
        pub(crate) number: i32,
        #[prost(int32, tag = "4")]
        pub(crate) label: i32,
        #[prost(int32, tag = "5")]
        pub(crate) r#type: i32,
        #[prost(string, tag = "6")]
        pub(crate) type_name: String,
        #[prost(message, optional, tag = "8")]
        pub(crate) options: Option<FieldOptions>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct FieldOptions {
        #[prost(bool, tag = "91233")]
        pub(crate) storage: bool,
        #[prost(bool, tag = "91234")]
        pub(crate) repository: bool,
        #[prost(bool, tag = "91235")]
        pub(crate) target_repository: bool,
        #[prost(bool, tag = "91236")]
        pub(crate) additional_repository: bool,
        #[prost(bool, tag = "91237")]
        pub(crate) partition_id: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct ServiceDescriptorProto {
        #[prost(string, tag = "1")]
        pub(crate) name: String,
        #[prost(message, repeated, tag = "2")]
        pub(crate) method: Vec<MethodDescriptorProto>,
        #[prost(message, optional, tag = "3")]
        pub(crate) options: Option<ServiceOptions>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct ServiceOptions {
        #[prost(bool, tag = "82302")]
        pub(crate) intercepted: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct MethodDescriptorProto {
        #[prost(string, tag = "1")]
        pub(crate) name: String,
        #[prost(string, tag = "2")]
        pub(crate) input_type: String,
        #[prost(message, optional, tag = "4")]
        pub(crate) options: Option<MethodOptions>,
        #[prost(bool, tag = "5")]
        pub(crate) client_streaming: bool,
        #[prost(bool, tag = "6")]
        pub(crate) server_streaming: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct MethodOptions {
        #[prost(message, optional, tag = "82303")]
        pub(crate) op_type: Option<OperationMsg>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct OperationMsg {
        #[prost(int32, tag = "1")]
        pub(crate) op: i32,
        #[prost(int32, tag = "2")]
        pub(crate) scope_level: i32,
    }
}

const TYPE_MESSAGE: i32 = 11;
const LABEL_REPEATED: i32 = 3;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let proto_dir = manifest.join("gitaly");
    let mut protos: Vec<PathBuf> = std::fs::read_dir(&proto_dir)
        .expect("proto directory exists")
        .map(|e| e.expect("readable proto directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    protos.push(proto_dir.join("raftpb/raft.proto"));
    protos.sort();
    println!("cargo:rerun-if-changed={}", proto_dir.display());
    for p in &protos {
        println!("cargo:rerun-if-changed={}", p.display());
    }

    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc for this platform");
    let wkt = protoc_bin_vendored::include_path().expect("vendored protobuf include path");
    let descriptor_path = out.join("gitaly_descriptor.bin");

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(&protoc);
    // prost::Name impls give the type URLs of structured error details.
    config.enable_type_names();
    config.type_name_domain(["."], "type.googleapis.com");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .generate_default_stubs(true)
        .file_descriptor_set_path(&descriptor_path)
        .compile_with_config(config, &protos, &[proto_dir.clone(), wkt])
        .expect("compile gitaly protos");

    let bytes = std::fs::read(&descriptor_path).expect("read descriptor set");
    let set = <desc::FileDescriptorSet as prost::Message>::decode(bytes.as_slice()).expect("decode descriptor set");
    let facts = generate_facts(&set);
    write_if_changed(&out.join("facts.rs"), &facts);
}

fn write_if_changed(path: &Path, contents: &str) {
    if std::fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return;
    }
    std::fs::write(path, contents).expect("write generated facts");
}

struct Messages<'a> {
    by_name: HashMap<String, &'a desc::DescriptorProto>,
}

impl<'a> Messages<'a> {
    fn new(set: &'a desc::FileDescriptorSet) -> Self {
        fn add<'a>(map: &mut HashMap<String, &'a desc::DescriptorProto>, prefix: &str, m: &'a desc::DescriptorProto) {
            let name = format!("{prefix}.{}", m.name);
            for n in &m.nested_type {
                add(map, &name, n);
            }
            map.insert(name, m);
        }
        let mut by_name = HashMap::new();
        for f in &set.file {
            for m in &f.message_type {
                add(&mut by_name, &format!(".{}", f.package), m);
            }
        }
        Self { by_name }
    }

    fn get(&self, name: &str) -> &'a desc::DescriptorProto {
        self.by_name.get(name).unwrap_or_else(|| panic!("message {name} not in descriptor set"))
    }

    /// Finds the field carrying `want` anywhere below `msg` (depth first, not
    /// through repeated fields), returning the path of (name, number) pairs.
    /// When the marked field is a wrapper such as ObjectPool rather than a
    /// Repository, the path continues to the wrapper's `repository` field.
    fn find(
        &self,
        msg: &desc::DescriptorProto,
        want: fn(&desc::FieldOptions) -> bool,
        depth: usize,
    ) -> Option<Vec<(String, i32)>> {
        if depth > 4 {
            return None;
        }
        for f in &msg.field {
            let opts = f.options.clone().unwrap_or_default();
            if want(&opts) {
                let mut path = vec![(f.name.clone(), f.number)];
                if f.r#type == TYPE_MESSAGE && f.type_name != ".gitaly.Repository" {
                    let inner = self.get(&f.type_name);
                    let rest = self
                        .find(inner, |o| o.repository, depth + 1)
                        .unwrap_or_else(|| panic!("{} wraps no repository field", f.type_name));
                    path.extend(rest);
                }
                return Some(path);
            }
        }
        for f in &msg.field {
            if f.r#type == TYPE_MESSAGE && f.label != LABEL_REPEATED && !f.type_name.starts_with(".google.") {
                let inner = self.get(&f.type_name);
                if let Some(rest) = self.find(inner, want, depth + 1) {
                    let mut path = vec![(f.name.clone(), f.number)];
                    path.extend(rest);
                    return Some(path);
                }
            }
        }
        None
    }
}

fn path_literal(path: Option<Vec<(String, i32)>>) -> String {
    match path {
        None => "None".to_owned(),
        Some(p) => {
            let names: Vec<String> = p.iter().map(|(n, _)| format!("{n:?}")).collect();
            let numbers: Vec<String> = p.iter().map(|(_, n)| n.to_string()).collect();
            format!("Some(FieldPath {{ names: &[{}], numbers: &[{}] }})", names.join(", "), numbers.join(", "))
        }
    }
}

fn generate_facts(set: &desc::FileDescriptorSet) -> String {
    let messages = Messages::new(set);
    let mut rows = Vec::new();
    for file in &set.file {
        for svc in &file.service {
            let intercepted = svc.options.as_ref().is_some_and(|o| o.intercepted);
            let service = format!("{}.{}", file.package, svc.name);
            for m in &svc.method {
                let full = format!("/{service}/{}", m.name);
                let input = messages.get(&m.input_type);
                let (op, scope) = match (&m.options.as_ref().and_then(|o| o.op_type.clone()), intercepted) {
                    (_, true) => ("None".to_owned(), "None".to_owned()),
                    (Some(o), false) => {
                        let op = match o.op {
                            1 => "Mutator",
                            2 => "Accessor",
                            3 => "Maintenance",
                            _ => panic!("{full}: op_type UNKNOWN"),
                        };
                        let scope = match o.scope_level {
                            0 => "Repository",
                            2 => "Storage",
                            3 => "Partition",
                            s => panic!("{full}: unknown scope {s}"),
                        };
                        (format!("Some(Operation::{op})"), format!("Some(Scope::{scope})"))
                    }
                    (None, false) => panic!("{full}: no op_type and service not intercepted"),
                };
                let target = messages.find(input, |o| o.target_repository, 0);
                let additional = messages.find(input, |o| o.additional_repository, 0);
                let storage = messages.find(input, |o| o.storage, 0);
                let partition = messages.find(input, |o| o.partition_id, 0);
                // Routing cannot work for a repository-scoped RPC that names no
                // repository field. (Storage scope is not checked: the Raft RPCs
                // carry their storage inside raft messages, unannotated.)
                if scope.contains("Repository") && target.is_none() {
                    panic!("{full}: repository scope without target_repository");
                }
                rows.push((
                    full.clone(),
                    format!(
                        "RpcFacts {{ full_method: {full:?}, service: {service:?}, method: {method:?}, op: {op}, scope: {scope}, \
                         intercepted: {intercepted}, client_streaming: {cs}, server_streaming: {ss}, \
                         target_repository: {target}, additional_repository: {additional}, storage: {storage}, partition_id: {partition} }}",
                        method = m.name,
                        cs = m.client_streaming,
                        ss = m.server_streaming,
                        target = path_literal(target),
                        additional = path_literal(additional),
                        storage = path_literal(storage),
                        partition = path_literal(partition),
                    ),
                ));
            }
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut s = String::new();
    writeln!(s, "/// Every RPC of the protocol, sorted by full method path.").expect("write to string");
    writeln!(s, "pub static RPCS: &[RpcFacts] = &[").expect("write to string");
    for (_, row) in &rows {
        writeln!(s, "    {row},").expect("write to string");
    }
    writeln!(s, "];").expect("write to string");
    s
}
