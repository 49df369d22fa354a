//! Read-only fixture repositories shared by the read-path tests, built with
//! `git fast-import` in a sealed environment, in SHA-1 and SHA-256:
//!
//! - `<format>/fixture.git`: merges, renames, annotated, lightweight, nested
//!   and signed tags, a signed commit, unicode and space-containing paths,
//!   binary and >1 MiB files, a symlink, a submodule (gitlink), an LFS
//!   pointer, `.gitattributes`, a license, trailers, and hidden refs
//!   (merge requests, keep-around, environments, remotes).
//! - `<format>/long.git`: 10,500 commits (with a merge) over 100 files,
//!   tagged every 500 commits.
//! - `<format>/empty.git`: no objects, no refs.
//!
//! The fixture is built once into cargo's test temp dir and reused across
//! test processes and runs (its directory name carries a version); building
//! goes to a temporary name and is renamed into place, so concurrent test
//! processes never see a half-built fixture. Tests must not write to it:
//! copy a repository first (`copy_repo`).

#![allow(clippy::disallowed_methods, reason = "tests build fixtures with the real git CLI")]

use super::git::{Format, git, git_stdin};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Bump when the fixture's content changes.
const VERSION: u32 = 1;

/// Commits in `long.git`.
pub const LONG_COMMITS: usize = 10_500;

/// Where the fixture lives: a storage directory holding `sha1/` and `sha256/`.
pub fn storage() -> &'static Path {
    static STORAGE: OnceLock<PathBuf> = OnceLock::new();
    STORAGE.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("read-fixture-v{VERSION}"));
        if !root.join("complete").exists() {
            build(&root);
        }
        root
    })
}

/// The relative path of a fixture repository, e.g. `rel(Format::Sha1, "fixture")`.
pub fn rel(format: Format, name: &str) -> String {
    format!("{}/{name}.git", format.name())
}

/// Absolute path of a fixture repository.
pub fn path(format: Format, name: &str) -> PathBuf {
    storage().join(rel(format, name))
}

/// Runs git in a fixture repository (for expected values).
pub fn fgit(format: Format, name: &str, args: &[&str]) -> String {
    git(Some(&path(format, name)), args)
}

/// Copies a fixture repository into `storage` under the same relative path,
/// for tests that write.
pub fn copy_repo(storage: &Path, format: Format, name: &str) -> PathBuf {
    let dest = storage.join(rel(format, name));
    std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    let status = std::process::Command::new("cp").arg("-a").arg(path(format, name)).arg(&dest).status().expect("cp");
    assert!(status.success());
    dest
}

fn build(root: &Path) {
    let parent = root.parent().expect("parent");
    std::fs::create_dir_all(parent).expect("mkdir");
    let staging = tempfile::Builder::new().prefix(".fixture-build-").tempdir_in(parent).expect("staging dir");
    for format in [Format::Sha1, Format::Sha256] {
        let dir = staging.path().join(format.name());
        build_fixture(&dir.join("fixture.git"), format);
        build_long(&dir.join("long.git"), format);
        init(&dir.join("empty.git"), format);
    }
    std::fs::write(staging.path().join("complete"), b"").expect("marker");
    let staged = staging.keep();
    if std::fs::rename(&staged, root).is_err() {
        // Another test process finished first; its fixture is identical.
        let _ = std::fs::remove_dir_all(&staged);
    }
}

fn init(path: &Path, format: Format) {
    std::fs::create_dir_all(path).expect("mkdir");
    git(Some(path), &["init", "--bare", "--quiet", &format!("--object-format={}", format.name())]);
}

/// A `git fast-import` stream under construction.
#[derive(Default)]
struct Stream {
    out: Vec<u8>,
    mark: u32,
}

impl Stream {
    fn data(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(format!("data {}\n", bytes.len()).as_bytes());
        self.out.extend_from_slice(bytes);
        self.out.push(b'\n');
    }

    fn blob(&mut self, bytes: &[u8]) -> u32 {
        self.mark += 1;
        self.out.extend_from_slice(format!("blob\nmark :{}\n", self.mark).as_bytes());
        self.data(bytes);
        self.mark
    }

    /// A commit on `branch` at time `t` with file operations `ops`
    /// (fast-import lines such as `M 100644 :3 path`).
    fn commit(
        &mut self,
        branch: &str,
        t: u64,
        message: &str,
        from: Option<u32>,
        merges: &[u32],
        ops: &[String],
    ) -> u32 {
        self.mark += 1;
        let mut head = format!("commit refs/heads/{branch}\nmark :{}\n", self.mark);
        writeln!(head, "author Ann Author <ann@example.com> {t} +0100").expect("write");
        writeln!(head, "committer Con Mitter <con@example.com> {t} +0200").expect("write");
        self.out.extend_from_slice(head.as_bytes());
        self.data(message.as_bytes());
        if let Some(f) = from {
            self.out.extend_from_slice(format!("from :{f}\n").as_bytes());
        }
        for m in merges {
            self.out.extend_from_slice(format!("merge :{m}\n").as_bytes());
        }
        for op in ops {
            self.out.extend_from_slice(op.as_bytes());
            self.out.push(b'\n');
        }
        self.out.push(b'\n');
        self.mark
    }

    fn reset(&mut self, reference: &str, from: u32) {
        self.out.extend_from_slice(format!("reset {reference}\nfrom :{from}\n\n").as_bytes());
    }

    fn tag(&mut self, name: &str, from: u32, t: u64, message: &str) {
        self.out.extend_from_slice(
            format!("tag {name}\nfrom :{from}\ntagger Tim Tagger <tim@example.com> {t} +0000\n").as_bytes(),
        );
        self.data(message.as_bytes());
    }

    fn import(self, repo: &Path) {
        let mut input = self.out;
        input.extend_from_slice(b"done\n");
        git_stdin(Some(repo), &["fast-import", "--quiet", "--done"], Some(&input));
    }
}

/// Deterministic bytes that do not compress away.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

const LICENSE: &str = "MIT License\n\nCopyright (c) 2026 Example\n\nPermission is hereby granted, free of charge, to any person obtaining a copy\nof this software and associated documentation files (the \"Software\"), to deal\nin the Software without restriction, including without limitation the rights\nto use, copy, modify, merge, publish, distribute, sublicense, and/or sell\ncopies of the Software, and to permit persons to whom the Software is\nfurnished to do so, subject to the following conditions:\n\nThe above copyright notice and this permission notice shall be included in all\ncopies or substantial portions of the Software.\n\nTHE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR\nIMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,\nFITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE\nAUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER\nLIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,\nOUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE\nSOFTWARE.\n";

const LFS_POINTER: &str = "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n";

fn build_fixture(repo: &Path, format: Format) {
    init(repo, format);
    let mut s = Stream::default();
    let readme1 = s.blob(b"# Fixture\n\nA repository for tests.\n");
    let lib = s.blob(b"pub fn answer() -> u32 {\n    42\n}\n");
    let license = s.blob(LICENSE.as_bytes());
    let attributes = s.blob(
        b"*.bin binary\n*.lfs filter=lfs diff=lfs merge=lfs -text\nfiles/lfs.bin filter=lfs diff=lfs merge=lfs -text\n",
    );
    let changelog1 = s.blob(b"one\ntwo\nthree\nfour\nfive\n");
    let unicode = s.blob("Grüße aus Köln — ünïcödé\n".as_bytes());
    let mut bin = noise(4096, 1);
    bin[10] = 0;
    bin[100] = 0;
    let binary = s.blob(&bin);
    let c1 = s.commit(
        "main",
        1_600_000_000,
        "Initial commit\n\nLays out the fixture.\n",
        None,
        &[],
        &[
            format!("M 100644 :{readme1} README.md"),
            format!("M 100644 :{lib} src/lib.rs"),
            format!("M 100644 :{license} LICENSE"),
            format!("M 100644 :{attributes} .gitattributes"),
            format!("M 100644 :{changelog1} CHANGELOG"),
            format!("M 100644 :{unicode} \"dir with space/fïlé ünicode.txt\""),
            format!("M 100644 :{binary} files/binary.bin"),
        ],
    );
    let readme2 = s.blob(b"# Fixture\n\nA repository for tests.\n\nSecond paragraph.\n");
    let large = s.blob(&noise(1_572_864, 2));
    let link = s.blob(b"README.md");
    let deep = s.blob(b"deep file\n");
    let script = s.blob(b"#!/bin/sh\necho run\n");
    let c2 = s.commit(
        "main",
        1_600_000_100,
        "Add large file, symlink and deep tree\n",
        Some(c1),
        &[],
        &[
            format!("M 100644 :{readme2} README.md"),
            format!("M 100644 :{large} files/large.bin"),
            format!("M 120000 :{link} link"),
            format!("M 100644 :{deep} deep/a/b/c/d.txt"),
            format!("M 100755 :{script} bin/run.sh"),
        ],
    );
    // The feature branch: a rename, a submodule and an LFS pointer.
    let changelog2 = s.blob(b"one\nTWO\nthree\nfour\nfive\n");
    let c3 = s.commit(
        "feature",
        1_600_000_200,
        "Rename lib.rs to core.rs\n",
        Some(c2),
        &[],
        &["R src/lib.rs src/core.rs".to_owned(), format!("M 100644 :{changelog2} CHANGELOG")],
    );
    let gitmodules = s.blob(b"[submodule \"vendor/sub\"]\n\tpath = vendor/sub\n\turl = https://example.com/sub.git\n");
    let lfs = s.blob(LFS_POINTER.as_bytes());
    let gitlink = "1".repeat(if format == Format::Sha1 { 40 } else { 64 });
    let c4 = s.commit(
        "feature",
        1_600_000_300,
        "Add submodule and LFS object\n\nSigned-off-by: Ann Author <ann@example.com>\nReviewed-by: Rev Iewer <rev@example.com>\n",
        Some(c3),
        &[],
        &[
            format!("M 100644 :{gitmodules} .gitmodules"),
            format!("M 160000 {gitlink} vendor/sub"),
            format!("M 100644 :{lfs} files/lfs.bin"),
        ],
    );
    let readme3 = s.blob(b"# Fixture\n\nA repository for tests, on main.\n\nSecond paragraph.\n");
    let changelog3 = s.blob(b"one\ntwo\nthree\nFOUR\nfive\n");
    let c5 = s.commit(
        "main",
        1_600_000_400,
        "Edit README and CHANGELOG on main\n",
        Some(c2),
        &[],
        &[format!("M 100644 :{readme3} README.md"), format!("M 100644 :{changelog3} CHANGELOG")],
    );
    let changelog_merged = s.blob(b"one\nTWO\nthree\nFOUR\nfive\n");
    let c6 = s.commit(
        "main",
        1_600_000_500,
        "Merge branch 'feature' into main\n",
        Some(c5),
        &[c4],
        &[
            "D src/lib.rs".to_owned(),
            format!("M 100644 :{lib} src/core.rs"),
            format!("M 100644 :{changelog_merged} CHANGELOG"),
            format!("M 100644 :{gitmodules} .gitmodules"),
            format!("M 160000 {gitlink} vendor/sub"),
            format!("M 100644 :{lfs} files/lfs.bin"),
        ],
    );
    let notes = s.blob(b"Release notes\n");
    let c7 = s.commit(
        "main",
        1_600_000_600,
        "Remove binary, add notes\n\nA longer body explaining the change.\n\nSigned-off-by: Con Mitter <con@example.com>\n",
        Some(c6),
        &[],
        &["D files/binary.bin".to_owned(), format!("M 100644 :{notes} \"docs/release notes.md\"")],
    );
    s.reset("refs/heads/unicode-ß", c5);
    s.reset("refs/tags/v1.0-light", c2);
    s.tag("v1.0", c5, 1_600_000_450, "Version 1.0\n\nFirst release.\n");
    s.tag("v1.1", c7, 1_600_000_650, "Version 1.1\n");
    s.reset("refs/merge-requests/1/head", c4);
    s.reset("refs/keep-around/fixture", c3);
    s.reset("refs/environments/production/deployments/1", c6);
    s.reset("refs/remotes/origin/main", c5);
    s.reset("refs/pipelines/7", c7);
    s.import(repo);

    // What fast-import cannot write: a tag of a tag, a tag of a blob, a
    // signed commit and a signed tag (signatures are well-formed armor
    // blocks; nothing here verifies them).
    let v10 = git(Some(repo), &["rev-parse", "refs/tags/v1.0"]);
    let nested = git_stdin(
        Some(repo),
        &["mktag"],
        Some(format!("object {v10}\ntype tag\ntag v1.0-nested\ntagger Tim Tagger <tim@example.com> 1600000460 +0000\n\nA tag of a tag\n").as_bytes()),
    );
    git(Some(repo), &["update-ref", "refs/tags/v1.0-nested", &nested]);
    let readme_blob = git(Some(repo), &["rev-parse", "main:README.md"]);
    let blob_tag = git_stdin(
        Some(repo),
        &["mktag"],
        Some(format!("object {readme_blob}\ntype blob\ntag blob-tag\ntagger Tim Tagger <tim@example.com> 1600000470 +0000\n\nA tag of a blob\n").as_bytes()),
    );
    git(Some(repo), &["update-ref", "refs/tags/blob-tag", &blob_tag]);
    let main = git(Some(repo), &["rev-parse", "main"]);
    let tree = git(Some(repo), &["rev-parse", "main^{tree}"]);
    let signed = format!(
        "tree {tree}\nparent {main}\nauthor Ann Author <ann@example.com> 1600000700 +0100\ncommitter Con Mitter <con@example.com> 1600000700 +0200\ngpgsig -----BEGIN PGP SIGNATURE-----\n \n iQEzBAABCAAdFiEEfixturesignaturefixturesignature\n =abcd\n -----END PGP SIGNATURE-----\n\nSigned commit\n"
    );
    let signed_id = git_stdin(Some(repo), &["hash-object", "-t", "commit", "-w", "--stdin"], Some(signed.as_bytes()));
    git(Some(repo), &["update-ref", "refs/heads/signed", &signed_id]);
    let signed_tag = git_stdin(
        Some(repo),
        &["mktag"],
        Some(format!("object {main}\ntype commit\ntag v1.2-signed\ntagger Tim Tagger <tim@example.com> 1600000710 +0000\n\nSigned tag\n-----BEGIN PGP SIGNATURE-----\n\niQEzBAABCAAdFiEEfixturetagsignature\n=wxyz\n-----END PGP SIGNATURE-----\n").as_bytes()),
    );
    git(Some(repo), &["update-ref", "refs/tags/v1.2-signed", &signed_tag]);
    git(Some(repo), &["symbolic-ref", "HEAD", "refs/heads/main"]);
    git(Some(repo), &["pack-refs", "--all"]);
    // One loose reference next to the packed ones.
    git(Some(repo), &["update-ref", "refs/heads/loose-branch", &main]);
}

fn build_long(repo: &Path, format: Format) {
    init(repo, format);
    let mut s = Stream::default();
    let mut prev = None;
    let mut side_tip = None;
    for i in 0..LONG_COMMITS {
        let file = i % 100;
        let blob = s.blob(format!("file {file}\nrevision {i}\n").as_bytes());
        let message = format!("Commit {i}\n\nTouches file-{file:02}.txt.\n");
        let t = 1_500_000_000 + i as u64 * 60;
        // A side branch forks at 5000 and is merged back at 5010.
        let (branch, from, merges) = match i {
            5_001..=5_005 => ("side", if i == 5_001 { prev } else { side_tip }, vec![]),
            5_010 => ("main", prev, side_tip.into_iter().collect()),
            _ => ("main", prev, vec![]),
        };
        let mark = s.commit(branch, t, &message, from, &merges, &[format!("M 100644 :{blob} file-{file:02}.txt")]);
        if branch == "side" {
            side_tip = Some(mark);
        } else {
            prev = Some(mark);
        }
        if i % 500 == 0 && branch == "main" {
            s.reset(&format!("refs/tags/r{i}"), mark);
        }
    }
    s.import(repo);
    git(Some(repo), &["symbolic-ref", "HEAD", "refs/heads/main"]);
}
