//! Git layer types to protocol messages, with upstream's rules: a commit's
//! subject is its first line, its body is capped at 10 KiB with the full
//! size in `body_size`, and tag messages are capped the same way.

use crate::git::objects::{Commit, Signature, SignatureKind, Tag};
use cairn_proto::gitaly::{CommitAuthor, GitCommit, SignatureType};

/// Largest commit body or tag message sent in a message (upstream's
/// `MaxCommitOrTagMessageSize`); callers that need all of it ask for it.
pub(crate) const MAX_MESSAGE_SIZE: usize = 10 * 1024;

pub(crate) fn author(s: &Signature) -> CommitAuthor {
    CommitAuthor {
        name: s.name.clone(),
        email: s.email.clone(),
        date: s.seconds.map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
        timezone: s.timezone.clone(),
    }
}

pub(crate) fn signature_type(k: SignatureKind) -> SignatureType {
    match k {
        SignatureKind::None => SignatureType::None,
        SignatureKind::Pgp => SignatureType::Pgp,
        SignatureKind::X509 => SignatureType::X509,
        SignatureKind::Ssh => SignatureType::Ssh,
    }
}

/// The first line of a message, without its line ending.
pub(crate) fn subject(message: &[u8]) -> Vec<u8> {
    let line = message.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    line[..end].to_vec()
}

/// A commit as GitLab sees it.
pub(crate) fn git_commit(c: &Commit) -> GitCommit {
    let (subject, body) = if c.message.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        (subject(&c.message), c.message[..c.message.len().min(MAX_MESSAGE_SIZE)].to_vec())
    };
    GitCommit {
        id: c.id.clone(),
        subject,
        body,
        author: c.author.as_ref().map(author),
        committer: c.committer.as_ref().map(author),
        parent_ids: c.parents.clone(),
        body_size: c.message.len() as i64,
        signature_type: signature_type(c.signature).into(),
        tree_id: c.tree.clone(),
        encoding: c.encoding.clone(),
        ..Default::default()
    }
}

/// A commit with its message trailers parsed (requests with `trailers`).
pub(crate) fn git_commit_with_trailers(c: &Commit) -> GitCommit {
    let mut g = git_commit(c);
    g.trailers = crate::git::trailers::parse(&c.message)
        .into_iter()
        .map(|(key, value)| cairn_proto::gitaly::CommitTrailer { key, value })
        .collect();
    g
}

/// A tag as GitLab sees it, without its target commit (callers add it).
pub(crate) fn tag(t: &Tag) -> cairn_proto::gitaly::Tag {
    cairn_proto::gitaly::Tag {
        name: t.name.clone(),
        id: t.id.clone(),
        target_commit: None,
        message: t.message[..t.message.len().min(MAX_MESSAGE_SIZE)].to_vec(),
        message_size: t.message.len() as i64,
        tagger: t.tagger.as_ref().map(author),
        signature_type: signature_type(t.signature).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_capped_but_sized() {
        let c = Commit { message: [b"subject\r\n\n".as_slice(), &vec![b'x'; 20_000]].concat(), ..Default::default() };
        let g = git_commit(&c);
        assert_eq!(g.subject, b"subject");
        assert_eq!(g.body.len(), MAX_MESSAGE_SIZE);
        assert_eq!(g.body_size, 20_010);
        assert!(git_commit(&Commit::default()).subject.is_empty());
    }
}
