//! Commit signatures as git splits them for verification: the signature
//! is the `gpgsig` (or `gpgsig-sha256`) header with its continuation
//! lines unfolded, and the signed payload is the commit object without
//! that header.

/// A commit's signatures and the bytes they sign.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signed {
    /// Every signature header found; git only considers the first.
    pub signatures: Vec<Vec<u8>>,
    /// The commit without its signature headers.
    pub payload: Vec<u8>,
}

/// Whether commit `id` of `repo` carries a good SSH signature by the key
/// whose public half is `public_key` (`ssh-ed25519 AAAA...`), as `git
/// verify-commit` (with `ssh-keygen`) checks it; `scratch` holds the
/// allowed-signers file it needs.
pub async fn verified_by(
    factory: &super::CommandFactory,
    repo: &std::path::Path,
    id: &str,
    public_key: &[u8],
    scratch: &std::path::Path,
    correlation_id: Option<&str>,
) -> Result<bool, super::GitError> {
    let signers = scratch.join("allowed_signers");
    std::fs::write(&signers, [b"* ".as_slice(), public_key, b"\n"].concat())
        .map_err(super::GitError::io("write allowed signers"))?;
    let cmd = super::GitCommand::new(super::Subcommand::VerifyCommit)
        .git_dir(repo)
        .config("gpg.ssh.allowedSignersFile", &signers.to_string_lossy())
        .arg(id);
    match factory.run(cmd, correlation_id).await {
        Ok(_) => Ok(true),
        Err(super::CommandError::Failed { code: Some(1), .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Splits a raw commit object into signatures and signed payload.
pub fn extract(commit: &[u8]) -> Signed {
    let mut out = Signed::default();
    let mut in_signature = false;
    let mut pos = 0;
    while pos < commit.len() {
        let end = commit[pos..].iter().position(|b| *b == b'\n').map_or(commit.len(), |i| pos + i + 1);
        let line = &commit[pos..end];
        if line == b"\n" {
            // End of the headers: the rest is the message.
            out.payload.extend_from_slice(&commit[pos..]);
            break;
        }
        if in_signature && line.starts_with(b" ") {
            if let Some(sig) = out.signatures.last_mut() {
                sig.extend_from_slice(&line[1..]);
                if !line.ends_with(b"\n") {
                    sig.push(b'\n');
                }
            }
            pos = end;
            continue;
        }
        in_signature = false;
        let value = line.strip_prefix(b"gpgsig ").or_else(|| line.strip_prefix(b"gpgsig-sha256 "));
        match value {
            Some(v) => {
                let mut sig = v.to_vec();
                if !sig.ends_with(b"\n") {
                    sig.push(b'\n');
                }
                out.signatures.push(sig);
                in_signature = true;
            }
            None => out.payload.extend_from_slice(line),
        }
        pos = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_signature_from_payload() {
        let raw = b"tree 1\nparent 2\nauthor A <a> 1 +0000\ncommitter C <c> 1 +0000\ngpgsig -----BEGIN PGP SIGNATURE-----\n \n abc\n -----END PGP SIGNATURE-----\n\nmessage\n";
        let s = extract(raw);
        assert_eq!(s.signatures, vec![b"-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n".to_vec()]);
        assert_eq!(s.payload, b"tree 1\nparent 2\nauthor A <a> 1 +0000\ncommitter C <c> 1 +0000\n\nmessage\n");
        let unsigned = extract(b"tree 1\n\nm");
        assert!(unsigned.signatures.is_empty());
        assert_eq!(unsigned.payload, b"tree 1\n\nm");
    }
}
