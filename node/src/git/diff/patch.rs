//! Reading `git diff --raw --patch -z` output the way upstream's parser
//! reads it: the raw list first (every changed file, with modes and ids),
//! then one patch section per file, paired with its raw entry by the
//! header's `a/` path. A file without a section (a whitespace-only change
//! under `-w`) has an empty patch. A type change is one raw entry but two
//! sections, so it becomes a deletion followed by an addition.
//!
//! Of each section only the hunks are kept (`@@` lines and the lines that
//! follow) or git's `Binary files ... differ` line; headers (`index`,
//! `---`/`+++`, modes, similarity) are dropped, as upstream drops them.

use super::quote::quote_c_style;
use crate::git::GitError;
use std::collections::VecDeque;
use std::io::BufRead;

/// One entry of the raw list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub old_mode: u32,
    pub new_mode: u32,
    /// Full hex ids, as git printed them (all zeros for a missing side).
    pub old_id: String,
    pub new_id: String,
    /// git's status letter (`A`, `D`, `M`, `T`, `R`, `C`, ...).
    pub status: u8,
    /// Similarity of a rename or copy, in percent.
    pub score: u32,
    pub old_path: Vec<u8>,
    pub new_path: Vec<u8>,
}

fn invalid(what: &str) -> GitError {
    GitError::Invalid(format!("unexpected git diff output: {what}"))
}

fn io(e: std::io::Error) -> GitError {
    GitError::Io { step: "read git diff output", source: e }
}

/// Reads one NUL-terminated field; `None` at the end of the output.
fn read_field(r: &mut impl BufRead, buf: &mut Vec<u8>) -> Result<Option<()>, GitError> {
    buf.clear();
    let n = r.read_until(0, buf).map_err(io)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&0) {
        buf.pop();
    }
    Ok(Some(()))
}

fn parse_mode(s: &[u8]) -> Result<u32, GitError> {
    std::str::from_utf8(s).ok().and_then(|s| u32::from_str_radix(s, 8).ok()).ok_or_else(|| invalid("raw mode"))
}

/// Parses the head of a raw entry, `:<mode> <mode> <id> <id> <status>`.
fn parse_raw_head(head: &[u8]) -> Result<RawEntry, GitError> {
    let head = head.strip_prefix(b":").ok_or_else(|| invalid("raw line"))?;
    let fields: Vec<&[u8]> = head.split(|b| *b == b' ').collect();
    let [old_mode, new_mode, old_id, new_id, status] = fields[..] else { return Err(invalid("raw line fields")) };
    let (&letter, score) = status.split_first().ok_or_else(|| invalid("raw status"))?;
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| invalid("raw object id"));
    Ok(RawEntry {
        old_mode: parse_mode(old_mode)?,
        new_mode: parse_mode(new_mode)?,
        old_id: text(old_id)?,
        new_id: text(new_id)?,
        status: letter,
        score: std::str::from_utf8(score).ok().and_then(|s| s.parse().ok()).unwrap_or(0),
        old_path: Vec::new(),
        new_path: Vec::new(),
    })
}

/// Reads the raw list of `git diff --raw -z` (and the separator that
/// precedes a patch, if any).
pub fn read_raw(r: &mut impl BufRead) -> Result<Vec<RawEntry>, GitError> {
    let mut entries = Vec::new();
    let mut field = Vec::new();
    loop {
        let next = r.fill_buf().map_err(io)?.first().copied();
        match next {
            Some(b':') => {}
            Some(0) => {
                r.consume(1);
                break;
            }
            _ => break,
        }
        read_field(r, &mut field)?.ok_or_else(|| invalid("truncated raw line"))?;
        let mut entry = parse_raw_head(&field)?;
        read_field(r, &mut field)?.ok_or_else(|| invalid("raw line without path"))?;
        entry.old_path = field.clone();
        if matches!(entry.status, b'R' | b'C') {
            read_field(r, &mut field)?.ok_or_else(|| invalid("rename without destination"))?;
        }
        entry.new_path = field.clone();
        entries.push(entry);
    }
    Ok(entries)
}

/// One file's patch as upstream's parser accounts for it.
#[derive(Debug, Default, Clone)]
pub struct FilePatch {
    /// git printed `Binary files ... differ` instead of hunks.
    pub binary: bool,
    /// The kept patch bytes (hunk headers and lines).
    pub patch: Vec<u8>,
    /// Bytes upstream would have collected; more than `patch.len()` when
    /// the caller capped what is kept because the patch is dropped anyway.
    pub patch_len: usize,
    /// Patch lines counted towards limits (hunk headers are not).
    pub line_count: usize,
    /// Bytes of the counted lines.
    pub byte_count: usize,
    pub lines_added: i32,
    pub lines_removed: i32,
}

/// The patch part of the output, line by line.
#[derive(Debug)]
pub struct Sections<R> {
    reader: R,
    line: Vec<u8>,
    /// A `diff --git` line read but not yet paired with a raw entry.
    header: Option<Vec<u8>>,
}

impl<R: BufRead> Sections<R> {
    pub fn new(reader: R) -> Self {
        Self { reader, line: Vec::new(), header: None }
    }

    /// The underlying reader, for draining or finishing the command.
    pub fn into_inner(self) -> R {
        self.reader
    }

    fn read_line(&mut self) -> Result<bool, GitError> {
        self.line.clear();
        Ok(self.reader.read_until(b'\n', &mut self.line).map_err(io)? > 0)
    }

    /// Whether the next section belongs to a file whose old path is
    /// `from_path`. A section that does not stays pending for a later file.
    pub fn next_is_for(&mut self, from_path: &[u8]) -> Result<bool, GitError> {
        if self.header.is_none() {
            if !self.read_line()? {
                return Ok(false);
            }
            if !self.line.starts_with(b"diff --git ") {
                return Err(invalid("diff header expected"));
            }
            self.header = Some(std::mem::take(&mut self.line));
        }
        let header = self.header.as_deref().unwrap_or_default();
        let mut expected = b"diff --git ".to_vec();
        expected.extend_from_slice(&quote_c_style(&[b"a/", from_path].concat()));
        expected.push(b' ');
        Ok(header.starts_with(&expected))
    }

    /// Reads the section whose header [`Self::next_is_for`] matched, up to
    /// the next header. `skip` collects no bytes (upstream after its
    /// overflow); `keep` caps the bytes kept.
    pub fn read_patch(&mut self, skip: bool, keep: usize, out: &mut FilePatch) -> Result<(), GitError> {
        self.header = None;
        while self.read_line()? {
            let line = &self.line;
            if line.starts_with(b"diff --git") {
                self.header = Some(std::mem::take(&mut self.line));
                break;
            }
            let counted = if (line.starts_with(b"---") || line.starts_with(b"+++")) && out.patch_len == 0 {
                // File headers come before the first hunk.
                continue;
            } else if line.starts_with(b"@@") {
                false
            } else if line.starts_with(b"Binary") {
                out.binary = true;
                true
            } else if line.starts_with(b"-")
                || line.starts_with(b"+")
                || line.starts_with(b" ")
                || line.starts_with(b"\\")
                || line.starts_with(b"~\n")
            {
                true
            } else {
                continue;
            };
            if counted {
                match line[0] {
                    b'+' => out.lines_added += 1,
                    b'-' => out.lines_removed += 1,
                    _ => {}
                }
                out.line_count += 1;
                out.byte_count += line.len();
            }
            if !skip {
                out.patch_len += line.len();
                let room = keep.saturating_sub(out.patch.len());
                out.patch.extend_from_slice(&line[..line.len().min(room)]);
            }
        }
        Ok(())
    }
}

/// The files of a `git diff --raw --patch -z` output, in order, each with
/// whether a patch section follows for it.
#[derive(Debug)]
pub struct Files<R> {
    pub sections: Sections<R>,
    raw: VecDeque<RawEntry>,
    zero_id: String,
}

impl<R: BufRead> Files<R> {
    /// Reads the raw list; `zero_id` is the repository's all-zero id.
    pub fn new(mut reader: R, zero_id: String) -> Result<Self, GitError> {
        let raw = read_raw(&mut reader)?.into();
        Ok(Self { sections: Sections::new(reader), raw, zero_id })
    }

    /// Files left in the raw list.
    pub fn remaining(&self) -> usize {
        self.raw.len()
    }

    /// The next file and whether its patch section follows (then call
    /// [`Sections::read_patch`] before asking for the next file).
    pub fn next_file(&mut self) -> Result<Option<(RawEntry, bool)>, GitError> {
        let Some(mut entry) = self.raw.pop_front() else { return Ok(None) };
        if entry.status == b'T' {
            // git shows a type change as a deletion and an addition.
            let addition = RawEntry {
                old_mode: 0,
                old_id: self.zero_id.clone(),
                status: b'A',
                new_path: entry.old_path.clone(),
                ..entry.clone()
            };
            entry.new_mode = 0;
            entry.new_id = self.zero_id.clone();
            entry.status = b'D';
            entry.new_path = entry.old_path.clone();
            self.raw.push_front(addition);
        }
        let has_patch = self.sections.next_is_for(&entry.old_path)?;
        Ok(Some((entry, has_patch)))
    }
}

/// `git diff-tree --stdin` output with the tree pair lines it echoes
/// before each pair's diff (`<tree> <tree>`) removed, so the sections of
/// many pairs read as one patch. No patch line has that shape: every line
/// of a section starts with a marker or a header word.
#[derive(Debug)]
pub struct WithoutTreePairLines<R> {
    inner: R,
    line: Vec<u8>,
    pos: usize,
}

impl<R: BufRead> WithoutTreePairLines<R> {
    pub fn new(inner: R) -> Self {
        Self { inner, line: Vec::new(), pos: 0 }
    }

    /// The underlying reader, for finishing the command.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn is_tree_pair(line: &[u8]) -> bool {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let mut parts = line.split(|b| *b == b' ');
        let hex =
            |p: Option<&[u8]>| p.is_some_and(|p| matches!(p.len(), 40 | 64) && p.iter().all(u8::is_ascii_hexdigit));
        hex(parts.next()) && hex(parts.next()) && parts.next().is_none()
    }
}

impl<R: BufRead> std::io::Read for WithoutTreePairLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let data = self.fill_buf()?;
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for WithoutTreePairLines<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.pos >= self.line.len() {
            self.line.clear();
            self.pos = 0;
            if self.inner.read_until(b'\n', &mut self.line)? == 0 {
                break;
            }
            if Self::is_tree_pair(&self.line) {
                self.line.clear();
            }
        }
        Ok(&self.line[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.line.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &[u8] = b":100644 100644 aaaa bbbb M\0f.txt\0:100644 100644 cccc cccc R100\0old\0new\0\
:100644 120000 dddd eeee T\0t\0:100644 100644 1111 2222 M\0ws\0\0\
diff --git a/f.txt b/f.txt\nindex aaaa..bbbb 100644\n--- a/f.txt\n+++ b/f.txt\n@@ -1,2 +1,2 @@\n--- x\n+y\n z\n\\ No newline at end of file\n\
diff --git a/old b/new\nsimilarity index 100%\nrename from old\nrename to new\n\
diff --git a/t b/t\ndeleted file mode 100644\n--- a/t\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n\
diff --git a/t b/t\nnew file mode 120000\nBinary files /dev/null and b/t differ\n";

    #[test]
    fn pairs_sections_with_raw_entries() {
        let mut files = Files::new(OUT, "0000".into()).expect("raw");
        let mut seen = Vec::new();
        while let Some((entry, has_patch)) = files.next_file().expect("next") {
            let mut p = FilePatch::default();
            if has_patch {
                files.sections.read_patch(false, usize::MAX, &mut p).expect("patch");
            }
            seen.push((entry.status, entry.new_path.clone(), has_patch, p));
        }
        assert_eq!(seen.len(), 5);
        let (_, _, _, f) = &seen[0];
        assert_eq!(f.patch, b"@@ -1,2 +1,2 @@\n--- x\n+y\n z\n\\ No newline at end of file\n");
        assert_eq!((f.line_count, f.lines_added, f.lines_removed), (4, 1, 1));
        assert_eq!(f.patch_len, f.patch.len());
        assert_eq!((seen[1].0, seen[1].1.as_slice(), seen[1].2), (b'R', &b"new"[..], true));
        assert!(seen[1].3.patch.is_empty());
        assert_eq!((seen[2].0, seen[2].3.lines_removed), (b'D', 1));
        assert_eq!(seen[3].0, b'A');
        assert!(seen[3].3.binary);
        assert_eq!(seen[3].3.patch, b"Binary files /dev/null and b/t differ\n");
        assert_eq!((seen[4].1.as_slice(), seen[4].2), (&b"ws"[..], false));
    }

    #[test]
    fn tree_pair_lines_are_dropped() {
        let a = "a".repeat(40);
        let out = format!("{a} {a}\ndiff --git a/x b/x\n@@ -1 +1 @@\n-{a} {a}\n+y\n{a} {a}\n");
        let mut r = WithoutTreePairLines::new(out.as_bytes());
        let mut text = String::new();
        std::io::Read::read_to_string(&mut r, &mut text).expect("reads");
        assert_eq!(text, format!("diff --git a/x b/x\n@@ -1 +1 @@\n-{a} {a}\n+y\n"));
    }

    #[test]
    fn capped_and_skipped_patches_still_count() {
        let mut files = Files::new(OUT, "0000".into()).expect("raw");
        let (_, has_patch) = files.next_file().expect("next").expect("file");
        assert!(has_patch);
        let mut p = FilePatch::default();
        files.sections.read_patch(false, 4, &mut p).expect("patch");
        assert_eq!((p.patch.as_slice(), p.patch_len, p.line_count), (&b"@@ -"[..], 56, 4));
        let mut files = Files::new(OUT, "0000".into()).expect("raw");
        files.next_file().expect("next");
        let mut p = FilePatch::default();
        files.sections.read_patch(true, usize::MAX, &mut p).expect("patch");
        // Without collected bytes, upstream takes `---` hunk lines for file headers.
        assert_eq!((p.patch_len, p.line_count, p.lines_removed), (0, 3, 0));
    }
}
