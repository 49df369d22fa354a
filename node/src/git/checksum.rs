//! The repository checksum GitLab and the router compare across replicas:
//! for every line `<oid> <refname>` that `git show-ref --head` would print,
//! SHA-1 of the line, all XORed together. Only lines naming HEAD or
//! branches, tags, keep-around, merge-request, environment or note refs
//! count, matched anywhere in the line as upstream does. The result is the
//! big-endian number in hex without leading zero bytes, or forty zeros when
//! no line counts.

use sha1::{Digest as _, Sha1};

/// Checksum of a repository without matching references.
pub const ZERO: &str = "0000000000000000000000000000000000000000";

const ALLOWED: [&str; 6] =
    ["refs/heads/", "refs/tags/", "refs/keep-around/", "refs/merge-requests/", "refs/environments/", "refs/notes/"];

fn counts(line: &str) -> bool {
    line.contains("HEAD") || ALLOWED.iter().any(|p| line.contains(p))
}

/// XOR-accumulated checksum over reference lines.
#[derive(Debug, Default, Clone)]
pub struct Checksum {
    sum: [u8; 20],
    any: bool,
}

impl Checksum {
    /// Adds one `<oid> <refname>` line (without newline).
    pub fn add_line(&mut self, line: &str) {
        if !counts(line) {
            return;
        }
        let digest = Sha1::digest(line.as_bytes());
        for (s, d) in self.sum.iter_mut().zip(digest.iter()) {
            *s ^= d;
        }
        self.any = true;
    }

    /// Adds a reference.
    pub fn add(&mut self, oid_hex: &str, name: &str) {
        self.add_line(&format!("{oid_hex} {name}"));
    }

    /// Whether nothing counted (or everything cancelled out).
    pub fn is_zero(&self) -> bool {
        self.sum.iter().all(|b| *b == 0)
    }

    /// The hex form GitLab expects.
    pub fn to_hex(&self) -> String {
        let first = self.sum.iter().position(|b| *b != 0);
        match first {
            None => ZERO.to_owned(),
            Some(i) => hex::encode(&self.sum[i..]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_xors() {
        let mut c = Checksum::default();
        assert!(c.is_zero());
        assert_eq!(c.to_hex(), ZERO);
        c.add("1111111111111111111111111111111111111111", "refs/remotes/origin/feature");
        assert!(c.is_zero(), "remote branches do not count");
        c.add("1111111111111111111111111111111111111111", "refs/heads/main");
        let one = c.to_hex();
        let expected = hex::encode(Sha1::digest(b"1111111111111111111111111111111111111111 refs/heads/main"));
        assert_eq!(one, expected.trim_start_matches("00"));
        c.add("1111111111111111111111111111111111111111", "refs/remotes/origin/HEAD");
        c.add("1111111111111111111111111111111111111111", "refs/remotes/origin/HEAD");
        assert_eq!(c.to_hex(), one, "a line added twice cancels out");
    }

    #[test]
    fn leading_zero_bytes_are_dropped() {
        let mut c = Checksum { sum: [0; 20], any: true };
        c.sum[2] = 0xab;
        c.sum[19] = 1;
        assert_eq!(c.to_hex(), format!("ab{}01", "00".repeat(16)));
    }
}
