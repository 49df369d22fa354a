//! Reading `git diff --numstat -z`: `added<TAB>deleted<TAB>path<NUL>`, or
//! for a rename `added<TAB>deleted<TAB><NUL>old<NUL>new<NUL>`. Binary files
//! show `-` counts, which upstream reports as zero.

use crate::git::GitError;
use std::io::BufRead;

/// Line counts of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumStat {
    pub path: Vec<u8>,
    /// The source of a rename; empty otherwise.
    pub old_path: Vec<u8>,
    pub additions: i32,
    pub deletions: i32,
}

fn invalid(what: &str) -> GitError {
    GitError::Invalid(format!("unexpected git diff --numstat output: {what}"))
}

fn read_field(r: &mut impl BufRead) -> Result<Option<Vec<u8>>, GitError> {
    let mut buf = Vec::new();
    let n = r.read_until(0, &mut buf).map_err(|e| GitError::Io { step: "read git diff output", source: e })?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&0) {
        buf.pop();
    }
    Ok(Some(buf))
}

fn count(field: &[u8]) -> Result<i32, GitError> {
    if field == b"-" {
        return Ok(0);
    }
    std::str::from_utf8(field).ok().and_then(|s| s.parse().ok()).ok_or_else(|| invalid("count"))
}

/// The next file's counts; `None` at the end of the output.
pub fn next(r: &mut impl BufRead) -> Result<Option<NumStat>, GitError> {
    let Some(field) = read_field(r)? else { return Ok(None) };
    let mut parts = field.splitn(3, |b| *b == b'\t');
    let (Some(added), Some(deleted), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid("line"));
    };
    let mut stat =
        NumStat { path: path.to_vec(), old_path: Vec::new(), additions: count(added)?, deletions: count(deleted)? };
    if stat.path.is_empty() {
        stat.old_path = read_field(r)?.ok_or_else(|| invalid("rename source"))?;
        stat.path = read_field(r)?.ok_or_else(|| invalid("rename destination"))?;
    }
    Ok(Some(stat))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_binary_and_renamed_files() {
        let mut r: &[u8] = b"1\t2\ta b.txt\0-\t-\tbin\0\x30\t0\t\0old\0new\0";
        let all: Vec<NumStat> = std::iter::from_fn(|| next(&mut r).expect("parses")).collect();
        assert_eq!(all.len(), 3);
        assert_eq!((all[0].path.as_slice(), all[0].additions, all[0].deletions), (&b"a b.txt"[..], 1, 2));
        assert_eq!((all[1].additions, all[1].deletions), (0, 0));
        assert_eq!((all[2].old_path.as_slice(), all[2].path.as_slice()), (&b"old"[..], &b"new"[..]));
    }
}
