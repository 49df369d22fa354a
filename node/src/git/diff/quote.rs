//! git's C-style quoting of path names (`core.quotePath=true`, git's
//! default), as it appears in patch headers: a name with control bytes,
//! `"`, `\` or bytes above 0x7f is written between double quotes with
//! escapes.

/// How git writes byte `b` inside a quoted name: `None` when it stands for
/// itself, `Some(letter)` for `\letter`, `Some(0)` for a three-digit octal
/// escape.
fn escape(b: u8) -> Option<u8> {
    match b {
        0x07 => Some(b'a'),
        0x08 => Some(b'b'),
        b'\t' => Some(b't'),
        b'\n' => Some(b'n'),
        0x0b => Some(b'v'),
        0x0c => Some(b'f'),
        b'\r' => Some(b'r'),
        b'"' => Some(b'"'),
        b'\\' => Some(b'\\'),
        0..0x20 | 0x7f.. => Some(0),
        _ => None,
    }
}

/// `name` as git prints it in a patch header: verbatim, or quoted.
pub fn quote_c_style(name: &[u8]) -> Vec<u8> {
    if name.iter().all(|b| escape(*b).is_none()) {
        return name.to_vec();
    }
    let mut out = Vec::with_capacity(name.len() + 8);
    out.push(b'"');
    for &b in name {
        match escape(b) {
            None => out.push(b),
            Some(0) => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
            Some(letter) => out.extend_from_slice(&[b'\\', letter]),
        }
    }
    out.push(b'"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_git() {
        assert_eq!(quote_c_style(b"a/plain name.txt"), b"a/plain name.txt");
        assert_eq!(quote_c_style(b"a/tab\there"), b"\"a/tab\\there\"");
        assert_eq!(quote_c_style("a/fïlé".as_bytes()), b"\"a/f\\303\\257l\\303\\251\"");
        assert_eq!(quote_c_style(b"a/q\"b\\"), b"\"a/q\\\"b\\\\\"");
        assert_eq!(quote_c_style(b"a/\x01\x7f"), b"\"a/\\001\\177\"");
    }
}
