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

/// Appends `value` as a base-128 varint.
pub fn write_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The payload of a singular length-delimited field at `path` as a decoder
/// sees it: protobuf merges repeated occurrences of a message field, so the
/// payloads of every occurrence are concatenated at each level.
pub fn merged_bytes(buf: &[u8], path: &[u32]) -> Option<Vec<u8>> {
    let (first, rest) = path.split_first()?;
    let mut merged = Vec::new();
    let mut found = false;
    for f in fields(buf).filter(|f| f.number == *first && f.wire_type == LEN) {
        merged.extend_from_slice(f.payload);
        found = true;
    }
    if !found {
        return None;
    }
    if rest.is_empty() { Some(merged) } else { merged_bytes(&merged, rest) }
}

/// Rewrites the field at `path` so that a decoder sees exactly `payload`
/// there: every occurrence of each field on the path is folded into one,
/// written where the last occurrence was (so oneof members keep their
/// order). `None` when the path is absent or the message is malformed.
pub fn replace_merged(buf: &[u8], path: &[u32], payload: &[u8]) -> Option<Vec<u8>> {
    let (first, rest) = path.split_first()?;
    let occurrences: Vec<RawField<'_>> = fields(buf).filter(|f| f.number == *first && f.wire_type == LEN).collect();
    let last = occurrences.last()?;
    // A truncated message must not be silently shortened.
    let parsed_len: usize = fields(buf).map(|f| f.span.1 - f.span.0).sum();
    if parsed_len != buf.len() {
        return None;
    }
    let new_payload = if rest.is_empty() {
        payload.to_vec()
    } else {
        let merged: Vec<u8> = occurrences.iter().flat_map(|f| f.payload.iter().copied()).collect();
        replace_merged(&merged, rest, payload)?
    };
    let mut out = Vec::with_capacity(buf.len() + new_payload.len());
    let mut pos = 0;
    for f in &occurrences {
        out.extend_from_slice(&buf[pos..f.span.0]);
        if f.span == last.span {
            write_varint((u64::from(*first) << 3) | u64::from(LEN), &mut out);
            write_varint(new_payload.len() as u64, &mut out);
            out.extend_from_slice(&new_payload);
        }
        pos = f.span.1;
    }
    out.extend_from_slice(&buf[pos..]);
    Some(out)
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

    #[test]
    fn replace_merged_folds_repeated_occurrences() {
        let header = |r: Repository| UserCommitFilesRequest {
            user_commit_files_request_payload: Some(user_commit_files_request::UserCommitFilesRequestPayload::Header(
                UserCommitFilesRequestHeader { repository: Some(r), ..Default::default() },
            )),
        };
        // Two occurrences of the repository: a decoder merges them.
        let mut bytes = header(repo("first.git")).encode_to_vec();
        bytes.extend(header(Repository { gl_repository: "project-1".into(), ..Default::default() }).encode_to_vec());
        let merged = merged_bytes(&bytes, &[1, 1]).expect("present");
        let decoded = Repository::decode(merged.as_slice()).expect("decodes");
        assert_eq!((decoded.relative_path.as_str(), decoded.gl_repository.as_str()), ("first.git", "project-1"));

        let replacement = Repository { storage_name: "node-1".into(), relative_path: "@cluster/x".into(), ..decoded };
        let out = replace_merged(&bytes, &[1, 1], &replacement.encode_to_vec()).expect("rewritten");
        let req = UserCommitFilesRequest::decode(out.as_slice()).expect("decodes");
        let Some(user_commit_files_request::UserCommitFilesRequestPayload::Header(h)) =
            req.user_commit_files_request_payload
        else {
            panic!("header expected")
        };
        assert_eq!(h.repository, Some(replacement));
    }

    #[test]
    fn replace_merged_keeps_other_fields_and_rejects_truncation() {
        let req = LinkRepositoryToObjectPoolRequest {
            object_pool: Some(ObjectPool { repository: Some(repo("@pools/aa/bb/pool.git")) }),
            repository: Some(repo("member.git")),
        };
        let bytes = req.encode_to_vec();
        let out = replace_merged(&bytes, &[2], &repo("moved.git").encode_to_vec()).expect("rewritten");
        let back = LinkRepositoryToObjectPoolRequest::decode(out.as_slice()).expect("decodes");
        assert_eq!(back.repository, Some(repo("moved.git")));
        assert_eq!(back.object_pool, req.object_pool);
        assert!(replace_merged(&bytes[..bytes.len() - 1], &[2], b"").is_none());
        assert!(replace_merged(&bytes, &[9], b"").is_none());
    }
}
