//! File-system facts about storage directories.

use std::path::Path;

/// Whether the directory can be read, and whether a file can be written and
/// removed in it (the probe file is `+testWrite`, as upstream uses).
pub fn probe(path: &Path) -> (bool, bool) {
    let readable = std::fs::read_dir(path).is_ok();
    let probe = path.join("+testWrite");
    let writeable = std::fs::write(&probe, b"testWrite").is_ok();
    let _ = std::fs::remove_file(&probe);
    (readable, writeable && readable)
}

/// Available and used bytes of the file system holding `path`.
pub fn usage(path: &Path) -> std::io::Result<(i64, i64)> {
    let s = rustix::fs::statfs(path).map_err(std::io::Error::from)?;
    #[allow(clippy::useless_conversion, reason = "f_bsize is not i64 on every target")]
    let bsize = i64::try_from(s.f_bsize).unwrap_or(0);
    let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let available = to_i64(s.f_bavail as u64).saturating_mul(bsize);
    let used = to_i64((s.f_blocks as u64).saturating_sub(s.f_bfree as u64)).saturating_mul(bsize);
    Ok((available, used))
}

/// The file system type by its statfs magic number, named as upstream
/// names them (`EXT_2_3_4`, `XFS`, `NFS`, ...), or `unknown`.
pub fn fs_type(path: &Path) -> String {
    let Ok(s) = rustix::fs::statfs(path) else { return "unknown".to_owned() };
    #[allow(clippy::unnecessary_cast, reason = "f_type's width differs between targets")]
    let magic = s.f_type as i64 as u32;
    fs_name(magic).to_owned()
}

/// Magic numbers from statfs(2).
fn fs_name(magic: u32) -> &'static str {
    match magic {
        0xef53 => "EXT_2_3_4",
        0x5846_5342 => "XFS",
        0x9123_683e => "BTRFS",
        0x0102_1994 => "TMPFS",
        0x6969 => "NFS",
        0x794c_7630 => "OVERLAYFS",
        0x2fc1_2fc1 => "ZFS",
        0x00c3_6400 => "CEPH",
        0x6573_5546 => "FUSE",
        0xff53_4d42 => "CIFS_NUMBER",
        0xfe53_4d42 => "SMB2",
        0x517b => "SMB",
        0x5346_544e => "NTFS_SB",
        0xf2f5_2010 => "F2FS",
        0x7371_7368 => "SQUASHFS",
        0x8584_58f6 => "RAMFS",
        0x0116_1970 => "GFS2",
        0x7461_636f => "OCFS2",
        0x3434 => "NILFS",
        0x5265_4973 => "REISERFS",
        0x3153_464a => "JFS",
        0xf15f => "ECRYPTFS",
        0x4d44 => "MSDOS",
        0x2011_bab0 => "EXFAT",
        0x9fa0 => "PROC",
        0x6265_6572 => "SYSFS",
        0x0bd0_0bd0 => "LUSTRE",
        0x4750_4653 => "GPFS",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_a_temp_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(probe(dir.path()), (true, true));
        assert!(!dir.path().join("+testWrite").exists());
        assert_eq!(probe(&dir.path().join("missing")), (false, false));
        let (avail, used) = usage(dir.path()).expect("statfs");
        assert!(avail > 0 && used >= 0);
        assert_ne!(fs_type(dir.path()), "");
        assert_eq!(fs_name(0xef53), "EXT_2_3_4");
    }
}
