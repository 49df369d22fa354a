//! protojson (lowerCamelCase names, defaults left out; either name form
//! accepted on input) for the messages that travel as JSON: the hooks
//! payload's repository and gitaly-ssh's request payloads.
//!
//! Descriptors are built only for the .proto file declaring the message and
//! its imports: building them for the whole protocol costs about 12 ms of
//! CPU, which every gitaly-hooks and gitaly-ssh process would pay.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};

/// Why a message could not be converted.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProtojsonError(String);

/// The descriptor of `T`, built once per process.
fn descriptor<T: prost::Name>() -> Result<MessageDescriptor, ProtojsonError> {
    static CACHE: LazyLock<Mutex<HashMap<String, MessageDescriptor>>> = LazyLock::new(Default::default);
    let name = T::full_name();
    let mut cache = CACHE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(d) = cache.get(&name) {
        return Ok(d.clone());
    }
    let set = prost_types::FileDescriptorSet::decode(cairn_proto::FILE_DESCRIPTOR_SET)
        .map_err(|e| ProtojsonError(format!("decode descriptors: {e}")))?;
    let declares = |f: &prost_types::FileDescriptorProto| {
        f.package() == T::PACKAGE && f.message_type.iter().any(|m| m.name() == T::NAME)
    };
    let file =
        set.file.iter().find(|f| declares(f)).ok_or_else(|| ProtojsonError(format!("unknown message {name}")))?;
    // The file and, transitively, what it imports.
    let mut wanted = vec![file.name().to_owned()];
    let mut i = 0;
    while let Some(current) = wanted.get(i).cloned() {
        if let Some(f) = set.file.iter().find(|f| f.name() == current) {
            for dep in &f.dependency {
                if !wanted.contains(dep) {
                    wanted.push(dep.clone());
                }
            }
        }
        i += 1;
    }
    let files = set.file.into_iter().filter(|f| wanted.iter().any(|w| w == f.name())).collect();
    let pool = DescriptorPool::from_file_descriptor_set(prost_types::FileDescriptorSet { file: files })
        .map_err(|e| ProtojsonError(format!("build descriptors: {e}")))?;
    let desc = pool.get_message_by_name(&name).ok_or_else(|| ProtojsonError(format!("unknown message {name}")))?;
    cache.insert(name, desc.clone());
    Ok(desc)
}

/// `msg` as protojson.
pub fn encode<T: prost::Message + prost::Name>(msg: &T) -> Result<String, ProtojsonError> {
    let mut dynamic = DynamicMessage::new(descriptor::<T>()?);
    dynamic.transcode_from(msg).map_err(|e| ProtojsonError(format!("transcode: {e}")))?;
    serde_json::to_string(&dynamic).map_err(|e| ProtojsonError(format!("marshal: {e}")))
}

/// A message from protojson, as upstream's `protojson.Unmarshal`.
pub fn decode<T: prost::Message + prost::Name + Default>(json: &str) -> Result<T, ProtojsonError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let dynamic =
        DynamicMessage::deserialize(descriptor::<T>()?, &mut de).map_err(|e| ProtojsonError(e.to_string()))?;
    de.end().map_err(|e| ProtojsonError(e.to_string()))?;
    dynamic.transcode_to().map_err(|e| ProtojsonError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::gitaly::{Repository, SshUploadPackWithSidechannelRequest};

    #[test]
    fn round_trips_with_either_name_form() {
        let repo = Repository {
            storage_name: "default".into(),
            relative_path: "a/b.git".into(),
            git_alternate_object_directories: vec!["x".into()],
            ..Default::default()
        };
        let json = encode(&repo).expect("encodes");
        assert_eq!(json, r#"{"storageName":"default","relativePath":"a/b.git","gitAlternateObjectDirectories":["x"]}"#);
        assert_eq!(decode::<Repository>(&json).expect("decodes"), repo);
        let snake: Repository = decode(r#"{"storage_name":"default","relative_path":"a/b.git"}"#).expect("proto names");
        assert_eq!(snake.relative_path, "a/b.git");
        assert!(decode::<Repository>(r#"{"nope":1}"#).is_err(), "unknown fields are refused like protojson");
        // A message from another file, importing shared.proto.
        let req: SshUploadPackWithSidechannelRequest =
            decode(r#"{"repository":{"storageName":"s"},"gitProtocol":"version=2"}"#).expect("ssh request");
        assert_eq!(req.repository.expect("repository").storage_name, "s");
    }
}
