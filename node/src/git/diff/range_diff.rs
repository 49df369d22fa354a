//! Reading `git range-diff --no-color` output as upstream does: each
//! commit pair line (`1:  abc ! 1:  def Subject`) becomes a pair; the
//! indented diff-of-diffs that follows a `!` pair is its patch, with the
//! four columns of indentation removed.

use crate::git::GitError;
use std::io::BufRead;

/// How two commits compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `=`: the patches are the same.
    Equal,
    /// `>`: only in the second range.
    GreaterThan,
    /// `<`: only in the first range.
    LessThan,
    /// `!`: the patches differ.
    NotEqual,
}

/// One line of the range-diff and its patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPair {
    /// The commit id, or dashes when the commit is only in the other range.
    pub from_commit: String,
    pub to_commit: String,
    pub comparison: Comparison,
    pub title: Vec<u8>,
    pub patch: Vec<u8>,
}

/// Width of the indentation in front of patch lines.
const PATCH_INDENT: usize = 4;

/// Splits `<n>:` or `-:` followed by spaces, then an id (hex or dashes).
fn side(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = if s.first() == Some(&b'-') { 1 } else { s.iter().take_while(|b| b.is_ascii_digit()).count() };
    if n == 0 || s.get(n) != Some(&b':') {
        return None;
    }
    let s = &s[n + 1..];
    let spaces = s.iter().take_while(|b| **b == b' ').count();
    if spaces == 0 {
        return None;
    }
    let s = &s[spaces..];
    let id_len = if s.first() == Some(&b'-') {
        s.iter().take_while(|b| **b == b'-').count()
    } else {
        s.iter().take_while(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')).count()
    };
    (id_len > 0).then(|| (&s[..id_len], &s[id_len..]))
}

/// Parses a commit pair line (without its newline).
pub fn parse_pair_line(line: &[u8]) -> Option<CommitPair> {
    let line = &line[line.iter().take_while(|b| **b == b' ').count()..];
    let (from, rest) = side(line)?;
    let rest = rest.strip_prefix(b" ")?;
    let (&symbol, rest) = rest.split_first()?;
    let comparison = match symbol {
        b'=' => Comparison::Equal,
        b'>' => Comparison::GreaterThan,
        b'<' => Comparison::LessThan,
        b'!' => Comparison::NotEqual,
        _ => return None,
    };
    let spaces = rest.iter().take_while(|b| **b == b' ').count();
    if spaces == 0 {
        return None;
    }
    let (to, rest) = side(&rest[spaces..])?;
    let title = rest.strip_prefix(b" ")?;
    if title.contains(&b'\n') {
        return None;
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Some(CommitPair {
        from_commit: text(from),
        to_commit: text(to),
        comparison,
        title: title.to_vec(),
        patch: Vec::new(),
    })
}

/// Pairs read one at a time from the output.
#[derive(Debug)]
pub struct Pairs<R> {
    reader: R,
    next: Option<CommitPair>,
    finished: bool,
}

impl<R: BufRead> Pairs<R> {
    pub fn new(reader: R) -> Self {
        Self { reader, next: None, finished: false }
    }

    /// The underlying reader, for finishing the command.
    pub fn into_inner(self) -> R {
        self.reader
    }

    /// The next pair with its patch; `None` at the end.
    pub fn next_pair(&mut self) -> Result<Option<CommitPair>, GitError> {
        let mut current = self.next.take();
        if self.finished {
            return Ok(current);
        }
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut line)
                .map_err(|e| GitError::Io { step: "read git range-diff output", source: e })?;
            if n == 0 {
                self.finished = true;
                return Ok(current);
            }
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            if let Some(pair) = parse_pair_line(text) {
                if current.is_some() {
                    self.next = Some(pair);
                    return Ok(current);
                }
                let complete = pair.comparison != Comparison::NotEqual;
                current = Some(pair);
                if complete {
                    return Ok(current);
                }
                continue;
            }
            let Some(pair) = current.as_mut() else {
                return Err(GitError::Invalid("range-diff commit pair not found".into()));
            };
            if text.len() < PATCH_INDENT {
                return Err(GitError::Invalid(format!("range-diff patch data too short, line size: {}", text.len())));
            }
            pair.patch.extend_from_slice(&text[PATCH_INDENT..]);
            pair.patch.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_patches() {
        let out = b"1:  aaa = 1:  aaa Same\n2:  bbb ! 2:  ccc Changed\n    @@ Metadata\n     Author: A\n    \n3:  ddd < -:  --- Gone\n-:  --- > 3:  eee New: with colon\n";
        let mut pairs = Pairs::new(&out[..]);
        let all: Vec<CommitPair> = std::iter::from_fn(|| pairs.next_pair().expect("parses")).collect();
        assert_eq!(all.len(), 4);
        assert_eq!((all[0].comparison, all[0].title.as_slice()), (Comparison::Equal, &b"Same"[..]));
        assert_eq!(all[1].patch, b"@@ Metadata\n Author: A\n\n");
        assert_eq!((all[2].to_commit.as_str(), all[2].comparison), ("---", Comparison::LessThan));
        assert_eq!((all[3].from_commit.as_str(), all[3].title.as_slice()), ("---", &b"New: with colon"[..]));
        assert!(parse_pair_line(b"not a pair").is_none());
    }
}
