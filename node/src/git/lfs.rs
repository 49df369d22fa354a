//! Git LFS pointers: small text blobs that stand in for large files.
//!
//! Detection follows upstream exactly (a `version https://git-lfs.github.com/spec`
//! prefix, an `oid sha256:<64 hex>` line and a `size <digits>` line), and only
//! blobs below [`MAX_POINTER_SIZE`] are ever considered, so reading one whole
//! is always cheap.

/// Blobs at least this large (in bytes) are never LFS pointers when listing
/// by revision; upstream's `ListAll`/`Get` variants accept exactly this size
/// too (they skip only larger blobs).
pub const MAX_POINTER_SIZE: u64 = 200;

const VERSION_PREFIX: &[u8] = b"version https://git-lfs.github.com/spec";

/// What a pointer says about the file it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    /// The LFS object id: the SHA-256 of the file, in hex.
    pub oid: Vec<u8>,
    /// The file's size in bytes.
    pub size: i64,
}

/// Parses `data` as an LFS pointer; `None` when it is not one.
pub fn parse(data: &[u8]) -> Option<Pointer> {
    if !data.starts_with(VERSION_PREFIX) {
        return None;
    }
    let mut oid = None;
    let mut size = None;
    // Lines as Go's multi-line `^...$` sees them: split on `\n` only.
    for line in data.split(|b| *b == b'\n') {
        if oid.is_none()
            && let Some(hex) = line.strip_prefix(b"oid sha256:")
            && hex.len() == 64
            && hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            oid = Some(hex.to_vec());
        }
        if size.is_none()
            && let Some(digits) = line.strip_prefix(b"size ")
            && !digits.is_empty()
            && digits.iter().all(u8::is_ascii_digit)
        {
            // Absurdly long sizes still make a valid pointer; they saturate.
            size = Some(std::str::from_utf8(digits).ok().and_then(|s| s.parse::<i64>().ok()).unwrap_or(i64::MAX));
        }
    }
    Some(Pointer { oid: oid?, size: size? })
}

/// Whether `data` is an LFS pointer.
pub fn is_pointer(data: &[u8]) -> bool {
    parse(data).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OID: &str = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";

    #[test]
    fn pointers_as_upstream_recognises_them() {
        let good = format!("version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize 12345\n");
        let p = parse(good.as_bytes()).expect("pointer");
        assert_eq!((p.oid.as_slice(), p.size), (OID.as_bytes(), 12345));
        // Order of oid and size does not matter, nor does a missing final newline.
        assert!(is_pointer(format!("version https://git-lfs.github.com/spec/v1\nsize 1\noid sha256:{OID}").as_bytes()));
        for bad in [
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\n"),
            "version https://git-lfs.github.com/spec/v1\nsize 12\n".to_owned(),
            format!("version https://hawser.github.com/spec/v1\noid sha256:{OID}\nsize 12\n"),
            format!(" version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize 12\n"),
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 12\n", OID.to_uppercase()),
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\r\nsize 12\n"),
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize 12a\n"),
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize \n"),
        ] {
            assert!(!is_pointer(bad.as_bytes()), "{bad:?}");
        }
    }
}
