//! `git patch-id` computed in-process over a streamed `git diff` (the same
//! line rules, so the same ids, without a second process or holding the
//! diff in memory). Upstream runs `git patch-id --verbatim` outside any
//! repository, so the id is always SHA-1 based, and every file's hash is
//! summed (the stable flavour, which verbatim implies).

use sha1::{Digest as _, Sha1};

/// Patch-id state over the lines of one patch.
#[derive(Debug)]
pub struct PatchId {
    /// Hash lines as they are (`--verbatim`) instead of without whitespace
    /// (`--stable`).
    verbatim: bool,
    ctx: Sha1,
    result: [u8; 20],
    patch_len: usize,
    before: i64,
    after: i64,
    binary: bool,
    pre_id: Vec<u8>,
    post_id: Vec<u8>,
    done: bool,
}

fn is_hex_id(s: &[u8]) -> bool {
    s.len() >= 40 && s[..40].iter().all(u8::is_ascii_hexdigit)
}

/// Parses a hunk header's line counts as git does (a missing count is 1;
/// a malformed header leaves what was parsed so far).
fn scan_hunk_header(line: &[u8], before: &mut i64, after: &mut i64) {
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let number = |s: &[u8]| -> i64 {
        let n = digits(s);
        std::str::from_utf8(&s[..n]).ok().and_then(|t| t.parse().ok()).unwrap_or(0)
    };
    let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    let mut q = &line[4.min(line.len())..];
    let mut n = digits(q);
    if at(q, n) == b',' {
        q = &q[n + 1..];
        *before = number(q);
        n = digits(q);
    } else {
        *before = 1;
    }
    if n == 0 || at(q, n) != b' ' || at(q, n + 1) != b'+' {
        return;
    }
    let mut r = &q[n + 2..];
    n = digits(r);
    if at(r, n) == b',' {
        r = &r[n + 1..];
        *after = number(r);
    } else {
        *after = 1;
    }
}

/// Up to git's longest hex id, as `strlcpy` into its buffer keeps it.
fn id_text(s: &[u8]) -> Vec<u8> {
    s[..s.len().min(64)].to_vec()
}

impl PatchId {
    pub fn new(verbatim: bool) -> Self {
        Self {
            verbatim,
            ctx: Sha1::new(),
            result: [0; 20],
            patch_len: 0,
            before: -1,
            after: -1,
            binary: false,
            pre_id: Vec::new(),
            post_id: Vec::new(),
            done: false,
        }
    }

    fn flush_hunk(&mut self) {
        let hash = std::mem::take(&mut self.ctx).finalize();
        let mut carry = 0u16;
        for (r, h) in self.result.iter_mut().zip(hash.iter()) {
            carry += u16::from(*r) + u16::from(*h);
            *r = carry as u8;
            carry >>= 8;
        }
    }

    /// Feeds one line (with its newline). Returns `false` once the patch
    /// ended; the line that ended it belongs to no patch.
    pub fn push(&mut self, line: &[u8]) -> bool {
        if self.done {
            return false;
        }
        // git handles lines as C strings.
        let line = &line[..line.iter().position(|b| *b == 0).unwrap_or(line.len())];
        let (prefixed, rest) = match (line.strip_prefix(b"commit "), line.strip_prefix(b"From ")) {
            (Some(rest), _) | (None, Some(rest)) => (true, rest),
            (None, None) => (false, line),
        };
        if !prefixed && line.starts_with(b"\\ ") && line.len() > 12 {
            if self.verbatim {
                self.ctx.update(line);
            }
            return true;
        }
        if is_hex_id(rest) {
            return self.end();
        }
        if self.patch_len == 0 && !line.starts_with(b"diff ") {
            return true;
        }
        if self.before == -1 {
            if line.starts_with(b"GIT binary patch") || line.starts_with(b"Binary files") {
                self.binary = true;
                self.before = 0;
                self.ctx.update(&self.pre_id);
                self.ctx.update(&self.post_id);
                self.flush_hunk();
                return true;
            } else if let Some(ids) = line.strip_prefix(b"index ") {
                if let Some(dots) = ids.windows(2).position(|w| w == b"..") {
                    let post = &ids[dots + 2..];
                    let post_end = post.iter().position(|b| *b == b' ').unwrap_or_else(|| post.len().saturating_sub(1));
                    self.pre_id = id_text(&ids[..dots]);
                    self.post_id = id_text(&post[..post_end]);
                }
                return true;
            } else if line.starts_with(b"--- ") {
                self.before = 1;
                self.after = 1;
            } else if !line.first().is_some_and(u8::is_ascii_alphabetic) {
                return self.end();
            }
        }
        if self.binary {
            if line.starts_with(b"diff ") {
                self.binary = false;
                self.before = -1;
            }
            return true;
        }
        if self.before == 0 && self.after == 0 {
            if line.starts_with(b"@@ -") {
                scan_hunk_header(line, &mut self.before, &mut self.after);
                return true;
            }
            if !line.starts_with(b"diff ") {
                return self.end();
            }
            self.flush_hunk();
            self.before = -1;
            self.after = -1;
        }
        match line.first() {
            Some(b'-') => self.before -= 1,
            Some(b'+') => self.after -= 1,
            Some(b' ') => {
                self.before -= 1;
                self.after -= 1;
            }
            _ => {}
        }
        if self.verbatim {
            self.patch_len += line.len();
            self.ctx.update(line);
        } else {
            let kept: Vec<u8> = line.iter().copied().filter(|b| !b.is_ascii_whitespace() && *b != 0x0b).collect();
            self.patch_len += kept.len();
            self.ctx.update(&kept);
        }
        true
    }

    fn end(&mut self) -> bool {
        self.done = true;
        false
    }

    /// The patch id in hex, or `None` for a patch without content (git
    /// prints nothing for it).
    pub fn finish(mut self) -> Option<String> {
        self.flush_hunk();
        (self.patch_len > 0).then(|| hex::encode(self.result))
    }
}

/// The first patch id of `lines`, as the first line `git patch-id` prints.
pub fn first_patch_id<'a>(verbatim: bool, lines: impl IntoIterator<Item = &'a [u8]>) -> Option<String> {
    let mut current = PatchId::new(verbatim);
    for line in lines {
        if !current.push(line)
            && let Some(id) = std::mem::replace(&mut current, PatchId::new(verbatim)).finish()
        {
            return Some(id);
        }
    }
    current.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunk_headers_parse_like_git() {
        let (mut b, mut a) = (-1, -1);
        scan_hunk_header(b"@@ -1,3 +1,4 @@ fn x\n", &mut b, &mut a);
        assert_eq!((b, a), (3, 4));
        scan_hunk_header(b"@@ -5 +7 @@\n", &mut b, &mut a);
        assert_eq!((b, a), (1, 1));
        scan_hunk_header(b"@@ -0,0 +1,2 @@\n", &mut b, &mut a);
        assert_eq!((b, a), (0, 2));
    }

    #[test]
    fn empty_diff_has_no_id() {
        assert_eq!(first_patch_id(true, Vec::<&[u8]>::new()), None);
    }
}
