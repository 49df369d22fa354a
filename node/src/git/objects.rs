//! Objects read in-process: raw object access, revision resolution with
//! peeling, and parsers for commit and tag objects that read headers the
//! way upstream does (unknown headers ignored, continuation lines skipped,
//! malformed dates replaced by a fixed fallback).

use super::{GitError, Repo, object_cache};
use gix::bstr::ByteSlice as _;
use std::sync::Arc;

pub use gix::ObjectId;
pub use gix::object::Kind;

/// An object's kind and bytes.
#[derive(Debug, Clone)]
pub struct RawObject {
    pub id: ObjectId,
    pub kind: Kind,
    pub data: Vec<u8>,
}

/// Reads an object; `None` when it does not exist.
pub fn read(repo: &Repo, id: ObjectId) -> Result<Option<RawObject>, GitError> {
    if let Some((kind, data)) = object_cache::get(repo.serial(), &id) {
        return Ok(Some(RawObject { id, kind, data: data.to_vec() }));
    }
    match repo.gix().try_find_object(id) {
        Ok(Some(o)) => {
            let o = o.detach();
            if object_cache::cacheable(o.kind, o.data.len()) {
                object_cache::put(repo.serial(), id, o.kind, Arc::from(o.data.as_slice()));
            }
            Ok(Some(RawObject { id, kind: o.kind, data: o.data }))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(GitError::gix("read object", e)),
    }
}

/// An object's kind and size without its contents; `None` when missing.
pub fn header(repo: &Repo, id: ObjectId) -> Result<Option<(Kind, u64)>, GitError> {
    match repo.gix().try_find_header(id) {
        Ok(Some(h)) => Ok(Some((h.kind(), h.size()))),
        Ok(None) => Ok(None),
        Err(e) => Err(GitError::gix("read object header", e)),
    }
}

/// Parses a full hex object id of the repository's format.
pub fn parse_oid(repo: &Repo, hex: &[u8]) -> Option<ObjectId> {
    if hex.len() != repo.gix().object_hash().len_in_hex() {
        return None;
    }
    ObjectId::from_hex(hex).ok()
}

/// Resolves a revision (`main`, `v1.0^{commit}`, `HEAD~2`, an id or a
/// unique id prefix) to the object it names. `None` when it names nothing,
/// is ambiguous, or is malformed. Callers validate the revision first
/// (`refs::validate_revision`) so option-like input never gets here.
pub fn resolve(repo: &Repo, revision: &[u8]) -> Option<ObjectId> {
    // A full object id names that object, as in git (a ref of the same
    // name only draws a warning there). gix would treat it as a prefix and
    // rescan the pack directory to rule out ambiguity on every call.
    if let Some(id) = parse_oid(repo, revision)
        && repo.gix().has_object(id)
    {
        return Some(id);
    }
    let parsed = repo.gix().rev_parse_single(revision.as_bstr()).ok().map(gix::Id::detach);
    // gix 0.90 turns a short hex revision into a SHA-1-sized prefix, and its
    // loose-object scan then skips every 64-character name: in SHA-256
    // repositories loose objects would never match. A reference of that
    // name still wins, as in git.
    if let Some(prefix) = sha256_prefix(repo, revision)
        && parsed.is_none_or(|id| id.to_hex().to_string().as_bytes().starts_with(revision))
    {
        return match repo.gix().objects.lookup_prefix(prefix, None) {
            Ok(Some(Ok(id))) => Some(id),
            // Missing, ambiguous or unreadable.
            _ => None,
        };
    }
    parsed
}

/// A SHA-256 id prefix for a short hex revision (4 to 63 digits, git's
/// minimum abbreviation up to one short of a full id).
fn sha256_prefix(repo: &Repo, revision: &[u8]) -> Option<gix::hash::Prefix> {
    const FULL: usize = 64;
    if repo.gix().object_hash() != gix::hash::Kind::Sha256
        || !(4..FULL).contains(&revision.len())
        || !revision.iter().all(u8::is_ascii_hexdigit)
    {
        return None;
    }
    let mut padded = revision.to_ascii_lowercase();
    padded.resize(FULL, b'0');
    let id = ObjectId::from_hex(&padded).ok()?;
    gix::hash::Prefix::new(&id, revision.len()).ok()
}

/// Follows tags from `id` until an object of `kind` (or `None` if the chain
/// ends elsewhere or an object is missing).
pub fn peel_to(repo: &Repo, id: ObjectId, kind: Kind) -> Result<Option<ObjectId>, GitError> {
    let mut current = id;
    // Tag chains are short in practice; the bound stops cycles in corrupt data.
    for _ in 0..64 {
        let Some(obj) = read(repo, current)? else { return Ok(None) };
        if obj.kind == kind {
            return Ok(Some(current));
        }
        if obj.kind != Kind::Tag {
            return Ok(None);
        }
        match tag_target(&obj.data) {
            Some(target) => match ObjectId::from_hex(target) {
                Ok(t) => current = t,
                Err(_) => return Ok(None),
            },
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// Resolves a revision and peels it to a commit.
pub fn resolve_commit(repo: &Repo, revision: &[u8]) -> Result<Option<ObjectId>, GitError> {
    match resolve(repo, revision) {
        Some(id) => peel_to(repo, id, Kind::Commit),
        None => Ok(None),
    }
}

/// A signature line: `Name <email> 1700000000 +0100`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signature {
    pub name: Vec<u8>,
    pub email: Vec<u8>,
    /// Seconds since the epoch; `None` when the line had no time at all.
    pub seconds: Option<i64>,
    pub timezone: Vec<u8>,
}

/// Largest date upstream accepts; anything else becomes [`FALLBACK_DATE`].
const MAX_DATE: i64 = 1 << 53;
/// The date upstream substitutes for unparseable ones (Go's maximum time).
pub const FALLBACK_DATE: i64 = 9_223_371_974_719_179_007;

/// Parses the value of an `author`/`committer`/`tagger` header.
pub fn parse_signature(line: &[u8]) -> Signature {
    let mut sig = Signature::default();
    let Some(lt) = line.find_byte(b'<') else {
        sig.name = line.trim_end_with(|c| c == ' ').to_vec();
        return sig;
    };
    let name = &line[..lt];
    sig.name = name.strip_suffix(b" ").unwrap_or(name).to_vec();
    let rest = &line[lt + 1..];
    let Some(gt) = rest.find_byte(b'>') else { return sig };
    sig.email = rest[..gt].to_vec();
    let mut fields = rest[gt + 1..].fields();
    let Some(secs) = fields.next() else { return sig };
    let seconds = secs.to_str().ok().and_then(|s| s.parse::<i64>().ok()).filter(|s| (0..=MAX_DATE).contains(s));
    sig.seconds = Some(seconds.unwrap_or(FALLBACK_DATE));
    if let (Some(tz), None) = (fields.next(), fields.next()) {
        sig.timezone = tz.to_vec();
    }
    sig
}

/// The kind of signature on a commit or tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignatureKind {
    #[default]
    None,
    Pgp,
    X509,
    Ssh,
}

/// Recognises a signature by its armor header line.
pub fn signature_kind(first_line: &[u8]) -> SignatureKind {
    match first_line.trim_end_with(|c| c == '\n') {
        b"-----BEGIN SIGNED MESSAGE-----" => SignatureKind::X509,
        b"-----BEGIN PGP MESSAGE-----" | b"-----BEGIN PGP SIGNATURE-----" => SignatureKind::Pgp,
        b"-----BEGIN SSH SIGNATURE-----" => SignatureKind::Ssh,
        _ => SignatureKind::None,
    }
}

/// A parsed commit.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    pub id: String,
    pub tree: String,
    pub parents: Vec<String>,
    pub author: Option<Signature>,
    pub committer: Option<Signature>,
    pub signature: SignatureKind,
    pub encoding: String,
    /// The whole message (everything after the blank line).
    pub message: Vec<u8>,
}

/// An object header line split at its first space: (key, value).
type Header<'a> = (&'a [u8], &'a [u8]);

/// Splits an object into header lines and the message after the first
/// blank line. Continuation lines (starting with a space) are skipped.
fn headers_and_message(data: &[u8]) -> (Vec<Header<'_>>, Option<&[u8]>) {
    let mut headers = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let end = data[pos..].find_byte(b'\n').map_or(data.len(), |i| pos + i);
        let line = &data[pos..end];
        let next = (end + 1).min(data.len());
        if line.is_empty() && end < data.len() {
            return (headers, Some(&data[next..]));
        }
        if !line.starts_with(b" ")
            && let Some(sp) = line.find_byte(b' ')
        {
            headers.push((&line[..sp], &line[sp + 1..]));
        }
        pos = end + 1;
    }
    (headers, None)
}

/// Parses a commit object's bytes.
pub fn parse_commit(id: &ObjectId, data: &[u8]) -> Commit {
    let (headers, message) = headers_and_message(data);
    let mut c = Commit { id: id.to_string(), ..Default::default() };
    for (key, value) in headers {
        match key {
            b"tree" => c.tree = value.to_str_lossy().into_owned(),
            b"parent" => c.parents.push(value.to_str_lossy().into_owned()),
            b"author" => c.author = Some(parse_signature(value)),
            b"committer" => c.committer = Some(parse_signature(value)),
            b"gpgsig" | b"gpgsig-sha256" => c.signature = signature_kind(value),
            b"encoding" => c.encoding = value.to_str_lossy().into_owned(),
            _ => {}
        }
    }
    c.message = message.unwrap_or_default().to_vec();
    c
}

/// A parsed annotated tag.
#[derive(Debug, Clone, Default)]
pub struct Tag {
    pub id: String,
    pub name: Vec<u8>,
    pub target: String,
    pub target_kind: String,
    pub tagger: Option<Signature>,
    /// The message without an appended signature.
    pub message: Vec<u8>,
    pub signature: SignatureKind,
    /// The armored signature appended to the message, if any.
    pub signature_block: Vec<u8>,
}

fn tag_target(data: &[u8]) -> Option<&[u8]> {
    headers_and_message(data).0.into_iter().find(|(k, _)| *k == b"object").map(|(_, v)| v)
}

/// Parses a tag object's bytes. Tag signatures are appended to the message;
/// they are split off as git does (at the last armor start line).
pub fn parse_tag(id: &ObjectId, data: &[u8]) -> Tag {
    let (headers, message) = headers_and_message(data);
    let mut t = Tag { id: id.to_string(), ..Default::default() };
    for (key, value) in headers {
        match key {
            b"object" => t.target = value.to_str_lossy().into_owned(),
            b"type" => t.target_kind = value.to_str_lossy().into_owned(),
            b"tag" if t.name.is_empty() => t.name = value.to_vec(),
            b"tagger" => t.tagger = Some(parse_signature(value)),
            _ => {}
        }
    }
    let message = message.unwrap_or_default();
    let mut split = None;
    let mut pos = 0;
    while pos < message.len() {
        let end = message[pos..].find_byte(b'\n').map_or(message.len(), |i| pos + i);
        if signature_kind(&message[pos..end]) != SignatureKind::None {
            split = Some(pos);
        }
        pos = end + 1;
    }
    match split {
        Some(at) => {
            let line_end = message[at..].find_byte(b'\n').map_or(message.len(), |i| at + i);
            t.signature = signature_kind(&message[at..line_end]);
            t.message = message[..at].to_vec();
            t.signature_block = message[at..].to_vec();
        }
        None => t.message = message.to_vec(),
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid() -> ObjectId {
        ObjectId::from_hex(b"1111111111111111111111111111111111111111").expect("hex")
    }

    #[test]
    fn commit_headers_and_message() {
        let raw = b"tree 2222222222222222222222222222222222222222\n\
parent 3333333333333333333333333333333333333333\n\
parent 4444444444444444444444444444444444444444\n\
author Ann Author <ann@example.com> 1572776879 +0100\n\
committer C O <c@o> notanumber +0000\n\
gpgsig -----BEGIN SSH SIGNATURE-----\n continued\n -----END SSH SIGNATURE-----\n\
encoding ISO-8859-1\n\
\n\
Subject line\n\nBody\n";
        let c = parse_commit(&oid(), raw);
        assert_eq!(c.parents.len(), 2);
        assert_eq!(c.tree, "2222222222222222222222222222222222222222");
        let a = c.author.expect("author");
        assert_eq!(
            (a.name.as_slice(), a.email.as_slice(), a.seconds, a.timezone.as_slice()),
            (&b"Ann Author"[..], &b"ann@example.com"[..], Some(1572776879), &b"+0100"[..])
        );
        assert_eq!(c.committer.expect("committer").seconds, Some(FALLBACK_DATE));
        assert_eq!(c.signature, SignatureKind::Ssh);
        assert_eq!(c.encoding, "ISO-8859-1");
        assert_eq!(c.message, b"Subject line\n\nBody\n");
    }

    #[test]
    fn signatures_without_time_or_email() {
        assert_eq!(parse_signature(b"Only Name").name, b"Only Name");
        let s = parse_signature(b"N <e>");
        assert_eq!((s.email.as_slice(), s.seconds), (&b"e"[..], None));
        assert_eq!(parse_signature(b"N <e> 1 +0100 extra").timezone, b"");
    }

    #[test]
    fn tag_with_signature() {
        let raw = b"object 2222222222222222222222222222222222222222\ntype commit\ntag v1\ntagger T <t@t> 1 +0000\n\nRelease\n-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n";
        let t = parse_tag(&oid(), raw);
        assert_eq!(t.name, b"v1");
        assert_eq!(t.target_kind, "commit");
        assert_eq!(t.message, b"Release\n");
        assert_eq!(t.signature, SignatureKind::Pgp);
        assert!(t.signature_block.starts_with(b"-----BEGIN PGP SIGNATURE-----"));
        assert_eq!(tag_target(raw), Some(&b"2222222222222222222222222222222222222222"[..]));
    }
}
