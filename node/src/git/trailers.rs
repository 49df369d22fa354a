//! Commit message trailers (`Signed-off-by: ...`), found the way
//! `git interpret-trailers --parse` finds them: the last paragraph of the
//! message is a trailer block when every line in it is a trailer, or when at
//! least a quarter are and one of them is git-generated.

/// Trailers of `message`, as (key, value) pairs in order.
pub fn parse(message: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let text = message.strip_suffix(b"\n").unwrap_or(message);
    // The last paragraph, after the last blank line; a message that is one
    // paragraph (the subject) has no trailers.
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    let Some(blank) = lines.iter().rposition(|l| l.iter().all(u8::is_ascii_whitespace)) else { return Vec::new() };
    let block = &lines[blank + 1..];
    if block.is_empty() {
        return Vec::new();
    }
    let mut trailers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let (mut trailer_lines, mut other_lines, mut git_generated) = (0usize, 0usize, false);
    for line in block {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t')
            && let Some(last) = trailers.last_mut()
        {
            last.1.push(b' ');
            last.1.extend_from_slice(trim(line));
            continue;
        }
        match split_trailer(line) {
            Some((k, v)) => {
                trailer_lines += 1;
                git_generated |= k.eq_ignore_ascii_case(b"Signed-off-by");
                trailers.push((k.to_vec(), v.to_vec()));
            }
            None => {
                git_generated |= line.starts_with(b"(cherry picked from commit ");
                other_lines += 1;
            }
        }
    }
    let is_block = trailer_lines > 0 && (other_lines == 0 || (git_generated && trailer_lines * 3 >= other_lines));
    if is_block { trailers } else { Vec::new() }
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

/// `Key: value` with a token key (letters, digits, `-`).
fn split_trailer(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|b| *b == b':')?;
    let key = trim(&line[..colon]);
    if key.is_empty() || !key.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-') {
        return None;
    }
    Some((key, trim(&line[colon + 1..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_trailer_block() {
        let m = b"Subject\n\nBody text.\n\nSigned-off-by: A <a@b>\nCo-authored-by: B <b@c>\n  continued\n";
        assert_eq!(
            parse(m),
            vec![
                (b"Signed-off-by".to_vec(), b"A <a@b>".to_vec()),
                (b"Co-authored-by".to_vec(), b"B <b@c> continued".to_vec())
            ]
        );
        assert!(parse(b"Subject: with colon\n").is_empty());
        assert!(parse(b"Subject\n\nJust prose here.\nKey: value\n").is_empty());
        assert_eq!(parse(b"S\n\nsome prose\nmore prose\nSigned-off-by: x\n").len(), 1);
    }
}
