//! Just enough of the protobuf wire format to find a nested field in an
//! encoded message without knowing its type, so middleware and the router
//! can read (and later rewrite) the repository of any request generically.

/// Wire types of the protobuf encoding.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// One field occurrence in an encoded message.
#[derive(Debug, Clone, Copy)]
pub struct RawField<'a> {
    /// Field number.
    pub number: u32,
    /// Wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
    pub wire_type: u8,
    /// Payload bytes (for length-delimited fields, without the length).
    pub payload: &'a [u8],
    /// Byte range of the whole field (key, length and payload) in the message.
    pub span: (usize, usize),
}

/// Reads a base-128 varint at `pos`, returning the value and the position after it.
pub fn read_varint(buf: &[u8], mut pos: usize) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(pos)?;
        pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some((value, pos));
        }
    }
    None
}

/// Iterates over the top-level fields of an encoded message. Iteration stops
/// at the first malformed field.
pub fn fields(buf: &[u8]) -> impl Iterator<Item = RawField<'_>> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos >= buf.len() {
            return None;
        }
        let start = pos;
        let (key, after_key) = read_varint(buf, pos)?;
        let number = u32::try_from(key >> 3).ok()?;
        let wire_type = (key & 7) as u8;
        let (payload_start, payload_end) = match wire_type {
            VARINT => {
                let (_, end) = read_varint(buf, after_key)?;
                (after_key, end)
            }
            FIXED64 => (after_key, after_key.checked_add(8)?),
            LEN => {
                let (len, p) = read_varint(buf, after_key)?;
                (p, p.checked_add(usize::try_from(len).ok()?)?)
            }
            FIXED32 => (after_key, after_key.checked_add(4)?),
            _ => return None,
        };
        if payload_end > buf.len() {
            pos = buf.len();
            return None;
        }
        pos = payload_end;
        Some(RawField { number, wire_type, payload: &buf[payload_start..payload_end], span: (start, payload_end) })
    })
}

/// Follows `path` (field numbers) through nested messages and returns the
/// payload of the last length-delimited occurrence of the final field, which
/// is what a decoder would keep for a singular field.
pub fn find_bytes<'a>(buf: &'a [u8], path: &[u32]) -> Option<&'a [u8]> {
    let (first, rest) = path.split_first()?;
    let found = fields(buf).filter(|f| f.number == *first && f.wire_type == LEN).last()?;
    if rest.is_empty() { Some(found.payload) } else { find_bytes(found.payload, rest) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitaly::{LinkRepositoryToObjectPoolRequest, UserCommitFilesRequestHeader};
    use crate::gitaly::{ObjectPool, Repository, UserCommitFilesRequest, user_commit_files_request};
    use prost::Message;

    fn repo(path: &str) -> Repository {
        Repository { storage_name: "default".into(), relative_path: path.into(), ..Default::default() }
    }

    #[test]
    fn finds_nested_repository_in_oneof_header() {
        let req = UserCommitFilesRequest {
            user_commit_files_request_payload: Some(user_commit_files_request::UserCommitFilesRequestPayload::Header(
                UserCommitFilesRequestHeader {
                    repository: Some(repo("a.git")),
                    branch_name: b"main".to_vec(),
                    ..Default::default()
                },
            )),
        };
        let facts = crate::facts::lookup("/gitaly.OperationService/UserCommitFiles").expect("known RPC");
        assert_eq!(facts.target_repository.expect("has target").dotted(), "header.repository");
        assert_eq!(facts.target_repository_in(&req.encode_to_vec()), Some(repo("a.git")));
    }

    #[test]
    fn finds_target_and_additional_repositories() {
        let req = LinkRepositoryToObjectPoolRequest {
            object_pool: Some(ObjectPool { repository: Some(repo("@pools/aa/bb/pool.git")) }),
            repository: Some(repo("member.git")),
        };
        let facts = crate::facts::lookup("/gitaly.ObjectPoolService/LinkRepositoryToObjectPool").expect("known RPC");
        let bytes = req.encode_to_vec();
        assert_eq!(facts.target_repository_in(&bytes), Some(repo("member.git")));
        assert_eq!(facts.additional_repository_in(&bytes), Some(repo("@pools/aa/bb/pool.git")));
    }

    #[test]
    fn truncated_input_is_not_a_panic() {
        let bytes = Repository { storage_name: "x".repeat(300), ..Default::default() }.encode_to_vec();
        for cut in 0..bytes.len() {
            let _ = find_bytes(&bytes[..cut], &[2]);
        }
        assert!(find_bytes(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], &[1]).is_none());
    }
}
