//! The public key of the node's commit signing key, and the key inside an
//! SSH signature (to tell the node's own signatures apart).

use base64::Engine as _;

/// The public key of an OpenSSH private key, in `authorized_keys` form
/// (`ssh-ed25519 AAAA...`). OpenSSH stores the public key unencrypted in the
/// private key file, so no passphrase or crypto is needed. OpenPGP keys are
/// not supported yet and give `None`.
pub fn public_key(private_key: &str) -> Option<Vec<u8>> {
    let body: String = private_key
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let raw = base64::engine::general_purpose::STANDARD.decode(body.trim()).ok()?;
    let rest = raw.strip_prefix(b"openssh-key-v1\0")?;
    let mut r = Reader(rest);
    r.string()?; // cipher
    r.string()?; // kdf
    r.string()?; // kdf options
    if r.u32()? < 1 {
        return None;
    }
    authorized_key(r.string()?)
}

/// The public key (as [`public_key`] gives it) inside an armored SSH
/// signature (`-----BEGIN SSH SIGNATURE-----`, the SSHSIG format), without
/// checking the signature.
pub fn signature_public_key(armored: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(armored).ok()?;
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN SSH SIGNATURE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let raw = base64::engine::general_purpose::STANDARD.decode(body.trim()).ok()?;
    let mut r = Reader(raw.strip_prefix(b"SSHSIG")?);
    r.u32()?; // version
    authorized_key(r.string()?)
}

/// The public key of the signing key file at `path` (see [`public_key`]);
/// `None` when it is not an OpenSSH key, the kind git signs commits with
/// through `ssh-keygen` (`gpg.format = ssh`).
pub fn read_public_key(path: &std::path::Path) -> std::io::Result<Option<Vec<u8>>> {
    Ok(public_key(&std::fs::read_to_string(path)?))
}

/// `<type> <base64 blob>` of an SSH public key blob.
fn authorized_key(blob: &[u8]) -> Option<Vec<u8>> {
    let key_type = Reader(blob).string()?;
    let mut out = key_type.to_vec();
    out.push(b' ');
    out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(blob).as_bytes());
    Some(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (head, tail) = self.0.split_at_checked(4)?;
        self.0 = tail;
        Some(u32::from_be_bytes(head.try_into().ok()?))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        let (head, tail) = self.0.split_at_checked(len)?;
        self.0 = tail;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway ed25519 key made with `ssh-keygen -t ed25519 -N ''`.
    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACA+u8ZzQe786ose5rYYy7OUsg5kAYpF5lpSCFNiRX03rQAAAJA71D3iO9Q9
4gAAAAtzc2gtZWQyNTUxOQAAACA+u8ZzQe786ose5rYYy7OUsg5kAYpF5lpSCFNiRX03rQ
AAAEB14bXENJs/5p9Y09wEW9xsJTs4dkQ7PF3GvYSEZPzPtj67xnNB7vzqix7mthjLs5Sy
DmQBikXmWlIIU2JFfTetAAAAB2NhaXJuQHgBAgMEBQY=
-----END OPENSSH PRIVATE KEY-----
";

    #[test]
    fn derives_authorized_keys_line() {
        let pk = String::from_utf8(public_key(KEY).expect("parses")).expect("utf-8");
        assert_eq!(pk, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID67xnNB7vzqix7mthjLs5SyDmQBikXmWlIIU2JFfTet");
        assert!(public_key("-----BEGIN PGP PRIVATE KEY BLOCK-----\nxx\n").is_none());
        assert!(public_key("garbage").is_none());
    }
}
