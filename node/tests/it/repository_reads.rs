//! RepositoryService reads (GetArchive, SearchFilesByName/Content,
//! FindLicense, GetFileAttributes, GetRawChanges, CreateBundle,
//! ObjectsSize) against the fixture repositories, compared with what the
//! git CLI says about the same repositories, in both object formats.

#![allow(clippy::disallowed_methods, reason = "tests compare with the real git CLI")]

use crate::support::fixture::{self, fgit, rel};
use crate::support::git::{Format, git_stdin};
use crate::support::{Node, snapshot};
use cairn_proto::gitaly::get_archive_request::Format as ArchiveFormat;
use cairn_proto::gitaly::get_raw_changes_response::raw_change::Operation;
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::*;
use std::io::Read as _;
use std::path::Path;
use tonic::Code;
use tonic::transport::Channel;

const FORMATS: [Format; 2] = [Format::Sha1, Format::Sha256];
const CHUNK: usize = 128 * 1024;

fn repo(format: Format, name: &str) -> Option<Repository> {
    Some(Repository { storage_name: "default".into(), relative_path: rel(format, name), ..Default::default() })
}

async fn client(node: &Node) -> RepositoryServiceClient<Channel> {
    RepositoryServiceClient::new(node.channel().await)
}

/// Runs git in `dir` and returns raw stdout, whatever the exit code.
fn git_raw(dir: &Path, args: &[&str]) -> (Vec<u8>, bool) {
    let out = std::process::Command::new("git")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git runs");
    (out.stdout, out.status.success())
}

// ---------------------------------------------------------------- archives

/// One archive member: name, kind (d, f, l, g for pax global header),
/// mode, link target or contents, mtime (tar only).
#[derive(Clone, PartialEq, Eq)]
struct Member {
    name: Vec<u8>,
    kind: char,
    mode: u32,
    data: Vec<u8>,
    mtime: u64,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Contents as length and a short digest keep failures readable.
        let digest = self.data.iter().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b)));
        write!(
            f,
            "{} {} {:o} {}B#{digest:x} t{}",
            String::from_utf8_lossy(&self.name),
            self.kind,
            self.mode,
            self.data.len(),
            self.mtime
        )
    }
}

fn tar_members(data: &[u8]) -> Vec<Member> {
    let mut archive = tar::Archive::new(data);
    let mut out = Vec::new();
    for entry in archive.entries().expect("tar") {
        let mut entry = entry.expect("tar entry");
        let header = entry.header().clone();
        let kind = match header.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Regular => 'f',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::XGlobalHeader => 'g',
            other => panic!("unexpected tar entry {other:?}"),
        };
        let name = entry.path_bytes().into_owned();
        let mut data = Vec::new();
        if kind == 'l' {
            data = entry.link_name_bytes().expect("link").into_owned();
        } else {
            entry.read_to_end(&mut data).expect("read entry");
        }
        out.push(Member {
            name,
            kind,
            mode: header.mode().expect("mode"),
            data,
            mtime: header.mtime().expect("mtime"),
        });
    }
    out
}

/// A minimal zip reader (central directory + inflate), enough to compare
/// members; returns them with the archive comment.
fn zip_members(data: &[u8]) -> (Vec<Member>, Vec<u8>) {
    let u16_at = |p: usize| u16::from_le_bytes([data[p], data[p + 1]]) as usize;
    let u32_at = |p: usize| u32::from_le_bytes(data[p..p + 4].try_into().expect("4 bytes")) as usize;
    let eocd = (0..=data.len() - 22).rev().find(|&p| data[p..p + 4] == [0x50, 0x4b, 0x05, 0x06]).expect("eocd");
    let count = u16_at(eocd + 10);
    let comment = data[eocd + 22..eocd + 22 + u16_at(eocd + 20)].to_vec();
    let mut p = u32_at(eocd + 16);
    let mut out = Vec::new();
    for _ in 0..count {
        assert_eq!(&data[p..p + 4], &[0x50, 0x4b, 0x01, 0x02]);
        let method = u16_at(p + 10);
        let csize = u32_at(p + 20);
        let (nlen, xlen, clen) = (u16_at(p + 28), u16_at(p + 30), u16_at(p + 32));
        let external = u32_at(p + 38) as u32;
        let local = u32_at(p + 42);
        let name = data[p + 46..p + 46 + nlen].to_vec();
        let start = local + 30 + u16_at(local + 26) + u16_at(local + 28);
        let stored = &data[start..start + csize];
        let contents = match method {
            0 => stored.to_vec(),
            8 => {
                let mut v = Vec::new();
                flate2::read::DeflateDecoder::new(stored).read_to_end(&mut v).expect("inflate");
                v
            }
            m => panic!("method {m}"),
        };
        let mode = external >> 16;
        let kind = if external & 0x10 != 0 {
            'd'
        } else if mode & 0o170000 == 0o120000 {
            'l'
        } else {
            'f'
        };
        out.push(Member { name, kind, mode, data: contents, mtime: 0 });
        p += 46 + nlen + xlen + clen;
    }
    (out, comment)
}

/// Collects an archive stream, checking message sizes: every message but
/// the last is exactly 128 KiB.
async fn archive(c: &mut RepositoryServiceClient<Channel>, req: GetArchiveRequest) -> Result<Vec<u8>, tonic::Status> {
    let mut stream = c.get_archive(req).await?.into_inner();
    let mut sizes = Vec::new();
    let mut out = Vec::new();
    while let Some(m) = stream.message().await? {
        sizes.push(m.data.len());
        out.extend_from_slice(&m.data);
    }
    if let Some((_, init)) = sizes.split_last() {
        assert!(init.iter().all(|s| *s == CHUNK), "chunk sizes {sizes:?}");
    }
    Ok(out)
}

fn decompress(format: ArchiveFormat, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match format {
        ArchiveFormat::TarGz => {
            flate2::read::GzDecoder::new(data).read_to_end(&mut out).expect("gunzip");
        }
        ArchiveFormat::TarBz2 => {
            bzip2::read::BzDecoder::new(data).read_to_end(&mut out).expect("bunzip2");
        }
        _ => out = data.to_vec(),
    }
    out
}

/// `git archive` arguments equivalent to a request.
fn git_archive_args(req: &GetArchiveRequest, git_format: &str) -> Vec<String> {
    let mut args = vec!["archive".to_owned(), format!("--format={git_format}"), format!("--prefix={}/", req.prefix)];
    let path = String::from_utf8(req.path.clone()).expect("utf-8 path").trim_end_matches('/').to_owned();
    if req.elide_path && !path.is_empty() {
        args.push(format!("{}:{path}", req.commit_id));
        args.push("--".into());
    } else {
        args.push(req.commit_id.clone());
        args.push("--".into());
        if !req.elide_path {
            args.push(if path.is_empty() { ".".into() } else { path.clone() });
        }
    }
    for ex in &req.exclude {
        let ex = String::from_utf8(ex.clone()).expect("utf-8");
        let ex = if req.elide_path { ex.strip_prefix(&format!("{path}/")).expect("below path").to_owned() } else { ex };
        args.push(format!(":(exclude){ex}"));
    }
    args
}

fn archive_cases(format: Format) -> Vec<GetArchiveRequest> {
    let base = GetArchiveRequest { repository: repo(format, "fixture"), ..Default::default() };
    vec![
        GetArchiveRequest { commit_id: "main".into(), prefix: "my-prefix".into(), ..base.clone() },
        // Submodule, LFS pointer and the rename live on `feature`.
        GetArchiveRequest { commit_id: "feature".into(), ..base.clone() },
        GetArchiveRequest { commit_id: "v1.0".into(), prefix: "a/b".into(), ..base.clone() },
        GetArchiveRequest { commit_id: "main".into(), path: b"deep/a".to_vec(), prefix: "p".into(), ..base.clone() },
        GetArchiveRequest { commit_id: "main".into(), path: b"README.md".to_vec(), ..base.clone() },
        GetArchiveRequest {
            commit_id: "main".into(),
            exclude: vec![b"files".to_vec(), "dir with space/fïlé ünicode.txt".as_bytes().to_vec()],
            ..base.clone()
        },
        GetArchiveRequest {
            commit_id: "main".into(),
            path: b"deep/".to_vec(),
            elide_path: true,
            exclude: vec![b"deep/a/b/c".to_vec()],
            prefix: "elided".into(),
            ..base.clone()
        },
        GetArchiveRequest { commit_id: "main".into(), path: b"deep".to_vec(), elide_path: true, ..base.clone() },
    ]
}

#[tokio::test]
async fn get_archive_matches_git_archive() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let dir = fixture::path(format, "fixture");
        for case in archive_cases(format) {
            let (want_tar, ok) =
                git_raw(&dir, &git_archive_args(&case, "tar").iter().map(String::as_str).collect::<Vec<_>>());
            assert!(ok, "git archive {case:?}");
            let want = tar_members(&want_tar);
            // Members stamped with "now" (tree archives) are compared without time.
            let timeless = case.elide_path && !case.path.is_empty();
            let strip = |mut m: Vec<Member>| {
                if timeless {
                    m.iter_mut().for_each(|m| m.mtime = 0);
                }
                m
            };
            for archive_format in [ArchiveFormat::Tar, ArchiveFormat::TarGz, ArchiveFormat::TarBz2] {
                let req = GetArchiveRequest { format: archive_format.into(), ..case.clone() };
                let got = archive(&mut c, req).await.unwrap_or_else(|e| panic!("{case:?}: {e}"));
                assert_eq!(
                    strip(tar_members(&decompress(archive_format, &got))),
                    strip(want.clone()),
                    "{case:?} {archive_format:?}"
                );
            }
            let (want_zip, ok) =
                git_raw(&dir, &git_archive_args(&case, "zip").iter().map(String::as_str).collect::<Vec<_>>());
            assert!(ok);
            let got = archive(&mut c, GetArchiveRequest { format: ArchiveFormat::Zip.into(), ..case.clone() })
                .await
                .expect("zip archive");
            let (got_members, got_comment) = zip_members(&got);
            let (want_members, want_comment) = zip_members(&want_zip);
            assert_eq!(got_members, want_members, "{case:?} zip");
            assert_eq!(got_comment, want_comment, "{case:?} zip comment");
        }
        // What the cases cover: symlink, submodule, unicode path, large file.
        let feature = tar_members(&git_raw(&dir, &["archive", "--format=tar", "--prefix=/", "feature"]).0);
        let find = |name: &str| feature.iter().find(|m| m.name == name.as_bytes()).unwrap_or_else(|| panic!("{name}"));
        assert_eq!((find("/link").kind, find("/link").data.as_slice()), ('l', &b"README.md"[..]));
        assert_eq!(find("/vendor/sub/").kind, 'd');
        assert_eq!(find("/files/large.bin").data.len(), 1_572_864);
        assert_eq!(find("/bin/run.sh").mode, 0o775);
        find("/dir with space/fïlé ünicode.txt");
    }
}

#[tokio::test]
async fn get_archive_rejects_bad_requests_like_upstream() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    let before = snapshot(fixture::storage());
    let base =
        GetArchiveRequest { repository: repo(Format::Sha1, "fixture"), commit_id: "main".into(), ..Default::default() };
    let cases: Vec<(GetArchiveRequest, Code, &str)> = vec![
        (GetArchiveRequest { repository: None, ..base.clone() }, Code::InvalidArgument, ""),
        (
            GetArchiveRequest { commit_id: String::new(), ..base.clone() },
            Code::InvalidArgument,
            "invalid commitId: empty revision",
        ),
        (
            GetArchiveRequest { commit_id: "--output=/tmp/x".into(), ..base.clone() },
            Code::InvalidArgument,
            "invalid commitId",
        ),
        (GetArchiveRequest { commit_id: "-n1".into(), ..base.clone() }, Code::InvalidArgument, "invalid commitId"),
        (GetArchiveRequest { format: 17, ..base.clone() }, Code::InvalidArgument, "invalid format"),
        (GetArchiveRequest { path: b"../../etc".to_vec(), ..base.clone() }, Code::InvalidArgument, "escapes root"),
        (
            GetArchiveRequest { exclude: vec![b"a/../../x".to_vec()], ..base.clone() },
            Code::InvalidArgument,
            "escapes root",
        ),
        (
            GetArchiveRequest { path: b"missing".to_vec(), ..base.clone() },
            Code::FailedPrecondition,
            "path doesn't exist",
        ),
        (
            GetArchiveRequest { exclude: vec![b"missing".to_vec()], ..base.clone() },
            Code::FailedPrecondition,
            "exclude[0] doesn't exist",
        ),
        (
            GetArchiveRequest {
                path: b"deep/a/b/c/d.txt".to_vec(),
                elide_path: true,
                exclude: vec![b"deep/a".to_vec()],
                ..base.clone()
            },
            Code::InvalidArgument,
            "is not a subdirectory of",
        ),
        (
            GetArchiveRequest { commit_id: "does-not-exist".into(), path: b"src".to_vec(), ..base.clone() },
            Code::FailedPrecondition,
            "path doesn't exist",
        ),
        (GetArchiveRequest { commit_id: "does-not-exist".into(), ..base.clone() }, Code::Unknown, ""),
        (GetArchiveRequest { repository: repo(Format::Sha1, "empty"), ..base.clone() }, Code::Unknown, ""),
    ];
    for (req, code, message) in cases {
        let err = archive(&mut c, req.clone()).await.expect_err("refused");
        assert_eq!(err.code(), code, "{req:?}: {err:?}");
        assert!(err.message().contains(message), "{req:?}: {}", err.message());
    }
    // LFS smudging needs GitLab's API, which the node does not have: the
    // archive fails where the pointer is, as upstream's smudge filter does
    // without an API to ask; without the option the pointer is archived.
    let lfs = GetArchiveRequest {
        commit_id: "feature".into(),
        include_lfs_blobs: true,
        format: ArchiveFormat::Tar.into(),
        ..base.clone()
    };
    assert_eq!(archive(&mut c, lfs.clone()).await.expect_err("no LFS API").code(), Code::Internal);
    let plain = archive(&mut c, GetArchiveRequest { include_lfs_blobs: false, ..lfs.clone() }).await.expect("archive");
    let members = tar_members(&plain);
    let pointer = members.iter().find(|m| m.name == b"/files/lfs.bin").expect("pointer archived");
    assert!(pointer.data.starts_with(b"version https://git-lfs.github.com/spec/v1"));
    // Without LFS pointers in the archived part, the option changes nothing.
    archive(&mut c, GetArchiveRequest { path: b"src".to_vec(), ..lfs }).await.expect("no pointer below src");
    assert_eq!(snapshot(fixture::storage()), before, "nothing written");
}

#[tokio::test]
async fn get_archive_honours_export_ignore() {
    let node = Node::start().await;
    let r = node.create_repo("ignore.git", Format::Sha1);
    let blob = |content: &str| git_stdin(Some(&r.path), &["hash-object", "-w", "--stdin"], Some(content.as_bytes()));
    let tree = |entries: &str| git_stdin(Some(&r.path), &["mktree"], Some(entries.as_bytes()));
    let attrs = blob("*.secret export-ignore\nhidden/ export-ignore\nkeep/sub export-ignore\n");
    let (a, s) = (blob("a\n"), blob("s\n"));
    let hidden = tree(&format!("100644 blob {a}\th.txt\n"));
    let sub = tree(&format!("100644 blob {s}\ts.txt\n"));
    let keep = tree(&format!("100644 blob {a}\tk.txt\n100644 blob {s}\tk.secret\n040000 tree {sub}\tsub\n"));
    let root = tree(&format!(
        "100644 blob {attrs}\t.gitattributes\n100644 blob {a}\ta.txt\n100644 blob {s}\tx.secret\n040000 tree {hidden}\thidden\n040000 tree {keep}\tkeep\n"
    ));
    let commit = r.git(&["commit-tree", &root, "-m", "ignore"]);
    let mut c = client(&node).await;
    for path in ["", "keep"] {
        let req = GetArchiveRequest {
            repository: Some(node.repo("ignore.git")),
            commit_id: commit.clone(),
            path: path.as_bytes().to_vec(),
            format: ArchiveFormat::Tar.into(),
            ..Default::default()
        };
        let got = tar_members(&archive(&mut c, req.clone()).await.expect("archive"));
        let args = git_archive_args(&req, "tar");
        let (want, ok) = git_raw(&r.path, &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(ok);
        assert_eq!(got, tar_members(&want), "{path:?}");
        assert!(!got.iter().any(|m| m.name.ends_with(b".secret") || m.name.starts_with(b"/hidden")));
    }
}

/// Resident memory of this (test) process in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm.split_whitespace().nth(1).expect("rss field").parse().expect("number");
    pages * 4096
}

#[tokio::test]
async fn get_archive_streams_with_bounded_memory() {
    let node = Node::start().await;
    let r = node.create_repo("big.git", Format::Sha1);
    // 48 incompressible 2 MiB files: a 96 MiB archive.
    let mut stream = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..48 {
        let mut blob = vec![0u8; 2 << 20];
        for b in blob.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 24) as u8;
        }
        stream.extend_from_slice(format!("blob\nmark :{}\ndata {}\n", i + 1, blob.len()).as_bytes());
        stream.extend_from_slice(&blob);
        stream.push(b'\n');
    }
    stream.extend_from_slice(b"commit refs/heads/main\ncommitter C <c@c> 1600000000 +0000\ndata 4\nbig\n");
    for i in 0..48 {
        stream.extend_from_slice(format!("M 100644 :{} f{i:02}.bin\n", i + 1).as_bytes());
    }
    stream.extend_from_slice(b"\ndone\n");
    git_stdin(Some(&r.path), &["fast-import", "--quiet", "--done"], Some(&stream));
    drop(stream);

    let mut c = client(&node).await;
    let req = GetArchiveRequest {
        repository: Some(node.repo("big.git")),
        commit_id: "main".into(),
        format: ArchiveFormat::Tar.into(),
        ..Default::default()
    };
    let mut s = c.get_archive(req).await.expect("archive").into_inner();
    let first = s.message().await.expect("message").expect("data");
    let base = rss();
    let mut total = first.data.len() as u64;
    let mut peak = base;
    while let Some(m) = s.message().await.expect("message") {
        assert!(m.data.len() <= CHUNK);
        total += m.data.len() as u64;
        peak = peak.max(rss());
    }
    assert!(total > 96 << 20, "archive of {total} bytes");
    // Building the archive in memory would grow by ~96 MiB; streaming
    // holds about one blob and a few messages.
    assert!(peak.saturating_sub(base) < 40 << 20, "memory grew by {} bytes", peak - base);
}

// ----------------------------------------------------------- file searches

async fn by_name(
    c: &mut RepositoryServiceClient<Channel>,
    req: SearchFilesByNameRequest,
) -> Result<Vec<String>, tonic::Status> {
    let mut s = c.search_files_by_name(req).await?.into_inner();
    let mut files = Vec::new();
    let mut messages = 0;
    while let Some(m) = s.message().await? {
        messages += 1;
        files.extend(m.files.into_iter().map(|f| String::from_utf8(f).expect("utf-8")));
    }
    assert_eq!(messages, 1, "upstream answers with exactly one message");
    Ok(files)
}

fn git_ls_files(format: Format, rev: &str, query: &str) -> Vec<String> {
    let (out, _) = git_raw(
        &fixture::path(format, "fixture"),
        &["ls-tree", "--full-tree", "-r", "--name-only", "-z", rev, "--", query],
    );
    out.split(|b| *b == 0).filter(|p| !p.is_empty()).map(|p| String::from_utf8(p.to_vec()).expect("utf-8")).collect()
}

#[tokio::test]
async fn search_files_by_name_matches_git_ls_tree() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let req = |query: &str, reference: &str| SearchFilesByNameRequest {
            repository: repo(format, "fixture"),
            query: query.into(),
            r#ref: reference.as_bytes().to_vec(),
            ..Default::default()
        };
        for (query, reference) in [
            (".", "main"),
            (".", "feature"),
            ("deep", "main"),
            ("deep/", "main"),
            ("dir with space", "main"),
            ("src/core.rs", "main"),
            ("de", "main"),
            ("vendor", "feature"),
            ("docs", "v1.1"),
            ("a/b", "main:deep"),
            ("./deep/../src", "main"),
            (":/src", "main"),
            (":(top)deep", "main"),
            (":/", "main"),
        ] {
            let got = by_name(&mut c, req(query, reference)).await.expect("search");
            assert_eq!(got, git_ls_files(format, reference, query), "{query} at {reference}");
        }
        let all = git_ls_files(format, "main", ".");
        let filtered: Vec<String> = all.iter().filter(|p| p.ends_with(".rs") || p.ends_with(".md")).cloned().collect();
        let got = by_name(&mut c, SearchFilesByNameRequest { filter: r"\.(rs|md)$".into(), ..req(".", "main") })
            .await
            .expect("filter");
        assert_eq!(got, filtered);
        // Pagination over the filtered list, as upstream counts it.
        for (offset, limit) in [(0, 2), (1, 2), (2, 0), (3, 100), (100, 1)] {
            let got = by_name(
                &mut c,
                SearchFilesByNameRequest { filter: r"\.(rs|md)$".into(), offset, limit, ..req(".", "main") },
            )
            .await
            .expect("page");
            let want: Vec<String> = filtered
                .iter()
                .skip(offset as usize)
                .take(if limit == 0 { usize::MAX } else { limit as usize })
                .cloned()
                .collect();
            assert_eq!(got, want, "offset {offset} limit {limit}");
        }
        // Nothing found, not an error.
        assert!(by_name(&mut c, req(".", "does-not-exist")).await.expect("missing ref").is_empty());
        assert!(by_name(&mut c, req("../..", "main")).await.expect("escaping query").is_empty());
        assert!(by_name(&mut c, req("-dashed", "main")).await.expect("dashed query").is_empty());
        // Pathspec magic ls-tree refuses makes git fail: nothing found.
        for query in [":!src", ":(glob)src/*.rs", ":(icase)SRC"] {
            assert!(by_name(&mut c, req(query, "main")).await.expect("refused magic").is_empty(), "{query}");
        }
    }
    let req = |query: &str, reference: &str, filter: &str| SearchFilesByNameRequest {
        repository: repo(Format::Sha1, "fixture"),
        query: query.into(),
        r#ref: reference.as_bytes().to_vec(),
        filter: filter.into(),
        ..Default::default()
    };
    for (r, message) in [
        (req("", "main", ""), "no query given"),
        (req(".", "", ""), "no ref given"),
        (req(".", "--output=/tmp/x", ""), "invalid ref argument"),
        (req(".", "-n1", ""), "invalid ref argument"),
        (req(".", "main", "+"), "filter did not compile"),
        (req(".", "main", "(unclosed"), "filter did not compile"),
        (req(".", "main", &"a".repeat(1001)), "filter exceeds maximum length"),
        (SearchFilesByNameRequest { repository: None, ..req(".", "main", "") }, ""),
    ] {
        let e = by_name(&mut c, r).await.expect_err("invalid");
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains(message), "{}", e.message());
    }
}

/// Matches as upstream's clients reassemble them: data up to end_of_match.
async fn by_content(
    c: &mut RepositoryServiceClient<Channel>,
    req: SearchFilesByContentRequest,
) -> Result<Vec<Vec<u8>>, tonic::Status> {
    let mut s = c.search_files_by_content(req).await?.into_inner();
    let mut out = Vec::new();
    let mut current = Vec::new();
    while let Some(m) = s.message().await? {
        assert!(m.match_data.len() <= CHUNK);
        assert!(!m.end_of_match || m.match_data.is_empty(), "end marker carries no data");
        current.extend_from_slice(&m.match_data);
        if m.end_of_match {
            out.push(std::mem::take(&mut current));
        }
    }
    assert!(current.is_empty(), "unterminated match");
    Ok(out)
}

/// git grep's output split where it prints `--`, as upstream splits it.
fn git_grep(dir: &Path, query: &str, rev: &str) -> Vec<Vec<u8>> {
    let (out, _) = git_raw(
        dir,
        &[
            "grep",
            "--ignore-case",
            "-I",
            "--line-number",
            "--null",
            "--before-context",
            "2",
            "--after-context",
            "2",
            "--perl-regexp",
            "-e",
            query,
            rev,
        ],
    );
    let mut blocks = Vec::new();
    let mut current = Vec::new();
    for line in out.split_inclusive(|b| *b == b'\n') {
        if line == b"--\n" {
            blocks.push(std::mem::take(&mut current));
        } else {
            current.extend_from_slice(line);
        }
    }
    if !current.is_empty() {
        blocks.push(current);
    }
    blocks
}

#[tokio::test]
async fn search_files_by_content_matches_git_grep() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let dir = fixture::path(format, "fixture");
        let req = |query: &str, reference: &str| SearchFilesByContentRequest {
            repository: repo(format, "fixture"),
            query: query.into(),
            r#ref: reference.as_bytes().to_vec(),
        };
        for (query, reference) in [
            ("one", "main"),
            ("FIXTURE", "main"),
            ("two", "feature"),
            ("köln", "main"),
            ("[0-9]", "main"),
            ("^#", "main"),
            ("answer", "v1.0"),
            ("readme", "main"),
            ("(*LIMIT_MATCH=1)fixture", "main"),
            ("nothing matches this", "main"),
            ("a", "main:deep"),
        ] {
            let got = by_content(&mut c, req(query, reference)).await.expect("search");
            assert_eq!(got, git_grep(&dir, query, reference), "{query} at {reference}");
        }
        assert!(by_content(&mut c, req("one", "does-not-exist")).await.expect("missing ref").is_empty());
        // A pattern git grep would refuse prints nothing upstream.
        assert!(by_content(&mut c, req("a(", "main")).await.expect("bad pattern").is_empty());
    }
    // Long matching runs come in 128 KiB pieces with one end marker.
    let node2 = Node::start().await;
    let r = node2.create_repo("grep.git", Format::Sha1);
    let huge = "abcdefghi\n".repeat(60_000);
    let commit = r.commit_on("main", &[("huge-file", huge.as_str()), ("-dashed", "-dashed\n")], "big");
    let mut c2 = client(&node2).await;
    let req = |query: &str| SearchFilesByContentRequest {
        repository: Some(node2.repo("grep.git")),
        query: query.into(),
        r#ref: commit.as_bytes().to_vec(),
    };
    let got = by_content(&mut c2, req("abcdefg")).await.expect("huge");
    assert_eq!(got, git_grep(&r.path, "abcdefg", &commit));
    assert_eq!(got.len(), 1);
    let got = by_content(&mut c2, req("-dashed")).await.expect("dashed query");
    assert_eq!(got, vec![format!("{commit}:-dashed\x001\x00-dashed\n").into_bytes()]);
    for (r, message) in [
        (SearchFilesByContentRequest { query: String::new(), ..req("x") }, "no query given"),
        (SearchFilesByContentRequest { r#ref: Vec::new(), ..req("x") }, "no ref given"),
        (SearchFilesByContentRequest { r#ref: b"--output=/tmp/x".to_vec(), ..req("x") }, "invalid ref argument"),
    ] {
        let e = by_content(&mut c2, r).await.expect_err("invalid");
        assert_eq!((e.code(), e.message()), (Code::InvalidArgument, message));
    }
}

// ------------------------------------------------------------------ license

async fn license(c: &mut RepositoryServiceClient<Channel>, repository: Repository) -> FindLicenseResponse {
    c.find_license(FindLicenseRequest { repository: Some(repository) }).await.expect("find license").into_inner()
}

#[tokio::test]
async fn find_license_detects_common_licenses() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let got = license(&mut c, repo(format, "fixture").expect("repo")).await;
        assert_eq!(
            got,
            FindLicenseResponse {
                license_short_name: "mit".into(),
                license_name: "MIT License".into(),
                license_url: "https://opensource.org/licenses/MIT".into(),
                license_path: "LICENSE".into(),
                license_nickname: String::new(),
            }
        );
        assert_eq!(license(&mut c, repo(format, "empty").expect("repo")).await, FindLicenseResponse::default());
        // long.git has no license file.
        assert_eq!(license(&mut c, repo(format, "long").expect("repo")).await, FindLicenseResponse::default());
    }
    let e = c.find_license(FindLicenseRequest { repository: None }).await.expect_err("no repository");
    assert_eq!(e.code(), Code::InvalidArgument);

    let node = Node::start().await;
    let mut c = client(&node).await;
    let licenses = Path::new("/usr/share/common-licenses");
    let mit = String::from_utf8(fgit(Format::Sha1, "fixture", &["show", "main:LICENSE"]).into_bytes()).expect("mit");
    let bsd3 = "Copyright (c) 2020, Someone\nAll rights reserved.\n\nRedistribution and use in source and binary forms, with or without\nmodification, are permitted provided that the following conditions are met:\n\n* Redistributions of source code must retain the above copyright notice, this\n  list of conditions and the following disclaimer.\n\n* Redistributions in binary form must reproduce the above copyright notice,\n  this list of conditions and the following disclaimer in the documentation\n  and/or other materials provided with the distribution.\n\n* Neither the name of the copyright holder nor the names of its\n  contributors may be used to endorse or promote products derived from\n  this software without specific prior written permission.\n\nTHIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS \"AS IS\"\nAND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE\nIMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE\nDISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE\nFOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL\nDAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR\nSERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER\nCAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,\nOR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE\nOF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.\n";
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, FindLicenseResponse);
    let mut cases: Vec<Case<'_>> = vec![
        ("none", vec![("README.md", "readme content".into())], FindLicenseResponse::default()),
        (
            "unknown",
            vec![("LICENSE.md", "this doesn't match any known license".into())],
            FindLicenseResponse {
                license_short_name: "other".into(),
                license_name: "Other".into(),
                license_path: "LICENSE.md".into(),
                license_nickname: "LICENSE".into(),
                ..Default::default()
            },
        ),
        (
            "pointer",
            vec![("mit.txt", mit.clone()), ("LICENSE", "mit.txt".into())],
            FindLicenseResponse {
                license_short_name: "mit".into(),
                license_name: "MIT License".into(),
                license_url: "https://opensource.org/licenses/MIT".into(),
                license_path: "mit.txt".into(),
                ..Default::default()
            },
        ),
        ("subdir", vec![("legal/LICENSE", mit.clone())], FindLicenseResponse::default()),
        (
            "readme",
            vec![("README", "This project is released under MIT license".into())],
            FindLicenseResponse::default(),
        ),
        (
            "bsd3",
            vec![("LICENSE.txt", bsd3.into())],
            FindLicenseResponse {
                license_short_name: "bsd-3-clause".into(),
                license_name: "BSD 3-Clause \"New\" or \"Revised\" License".into(),
                license_url: "https://opensource.org/licenses/BSD-3-Clause".into(),
                license_path: "LICENSE.txt".into(),
                ..Default::default()
            },
        ),
    ];
    // The system's copies of the long licenses, where present.
    for (file, id, name, url, nickname) in [
        (
            "GPL-2",
            "gpl-2.0",
            "GNU General Public License v2.0 only",
            "https://www.gnu.org/licenses/old-licenses/gpl-2.0-standalone.html",
            "GNU GPLv2",
        ),
        (
            "GPL-3",
            "gpl-3.0",
            "GNU General Public License v3.0 only",
            "https://www.gnu.org/licenses/gpl-3.0-standalone.html",
            "GNU GPLv3",
        ),
        ("Apache-2.0", "apache-2.0", "Apache License 2.0", "https://www.apache.org/licenses/LICENSE-2.0", ""),
        (
            "LGPL-2.1",
            "lgpl-2.1",
            "GNU Lesser General Public License v2.1 only",
            "https://www.gnu.org/licenses/old-licenses/lgpl-2.1-standalone.html",
            "GNU LGPLv2.1",
        ),
        ("MPL-2.0", "mpl-2.0", "Mozilla Public License 2.0", "https://www.mozilla.org/MPL/2.0/", ""),
    ] {
        let Ok(text) = std::fs::read_to_string(licenses.join(file)) else { continue };
        cases.push((
            id,
            vec![("COPYING", text)],
            FindLicenseResponse {
                license_short_name: id.into(),
                license_name: name.into(),
                license_url: url.into(),
                license_path: "COPYING".into(),
                license_nickname: nickname.into(),
            },
        ));
    }
    for (name, files, want) in cases {
        let relative = format!("{name}.git");
        let r = node.create_repo(&relative, Format::Sha1);
        if name == "subdir" {
            let blob = git_stdin(Some(&r.path), &["hash-object", "-w", "--stdin"], Some(mit.as_bytes()));
            let sub = git_stdin(Some(&r.path), &["mktree"], Some(format!("100644 blob {blob}\tLICENSE\n").as_bytes()));
            let tree = git_stdin(Some(&r.path), &["mktree"], Some(format!("040000 tree {sub}\tlegal\n").as_bytes()));
            let commit = r.git(&["commit-tree", &tree, "-m", "subdir"]);
            r.git(&["update-ref", "refs/heads/main", &commit]);
        } else {
            let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
            r.commit_on("main", &files, name);
        }
        r.git(&["symbolic-ref", "HEAD", "refs/heads/main"]);
        assert_eq!(license(&mut c, node.repo(&relative)).await, want, "{name}");
    }
}

// --------------------------------------------------------------- attributes

#[tokio::test]
async fn get_file_attributes_matches_git_check_attr() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    let attributes = ["binary", "diff", "text", "filter", "merge", "eol"];
    let paths =
        ["files/binary.bin", "files/lfs.bin", "x.lfs", "README.md", "sub/dir/y.bin", "dir with space/fïlé ünicode.txt"];
    for format in FORMATS {
        for revision in ["main", "feature", "v1.0"] {
            let got = c
                .get_file_attributes(GetFileAttributesRequest {
                    repository: repo(format, "fixture"),
                    revision: revision.as_bytes().to_vec(),
                    attributes: attributes.iter().map(|a| (*a).to_owned()).collect(),
                    paths: paths.iter().map(|p| (*p).to_owned()).collect(),
                })
                .await
                .expect("attributes")
                .into_inner()
                .attribute_infos;
            let mut args = vec!["check-attr", "-z"];
            let source = format!("--source={revision}");
            args.push(&source);
            args.extend(attributes);
            args.push("--");
            args.extend(paths);
            let (out, ok) = git_raw(&fixture::path(format, "fixture"), &args);
            assert!(ok, "check-attr");
            let fields: Vec<String> =
                out.split(|b| *b == 0).map(|f| String::from_utf8(f.to_vec()).expect("utf-8")).collect();
            let want: Vec<(String, String, String)> = fields
                .chunks(3)
                .filter(|c| c.len() == 3 && c[2] != "unspecified")
                .map(|c| (c[0].clone(), c[1].clone(), c[2].clone()))
                .collect();
            let got: Vec<(String, String, String)> = got.into_iter().map(|a| (a.path, a.attribute, a.value)).collect();
            assert_eq!(got, want, "{revision}");
            assert!(!got.is_empty());
        }
    }
    let base = GetFileAttributesRequest {
        repository: repo(Format::Sha1, "fixture"),
        revision: b"main".to_vec(),
        attributes: vec!["diff".into()],
        paths: vec!["a.bin".into()],
    };
    for (req, message) in [
        (GetFileAttributesRequest { revision: Vec::new(), ..base.clone() }, "revision is required"),
        (GetFileAttributesRequest { paths: Vec::new(), ..base.clone() }, "file paths are required"),
        (GetFileAttributesRequest { attributes: Vec::new(), ..base.clone() }, "attributes are required"),
        (GetFileAttributesRequest { revision: b"--output=/tmp/x".to_vec(), ..base.clone() }, ""),
        (GetFileAttributesRequest { revision: b"does-not-exist".to_vec(), ..base.clone() }, ""),
        (GetFileAttributesRequest { repository: None, ..base.clone() }, ""),
        (GetFileAttributesRequest { paths: vec!["../x".into()], ..base.clone() }, "outside repository"),
        (GetFileAttributesRequest { paths: vec!["a/../../x".into()], ..base.clone() }, "outside repository"),
        (
            GetFileAttributesRequest { attributes: vec!["bad name!".into()], ..base.clone() },
            "not a valid attribute name",
        ),
    ] {
        let e = c.get_file_attributes(req).await.expect_err("invalid");
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains(message), "{}", e.message());
    }
}

// -------------------------------------------------------------- raw changes

async fn raw_changes(
    c: &mut RepositoryServiceClient<Channel>,
    format: Format,
    from: &str,
    to: &str,
) -> Result<Vec<get_raw_changes_response::RawChange>, tonic::Status> {
    let mut s = c
        .get_raw_changes(GetRawChangesRequest {
            repository: repo(format, "fixture"),
            from_revision: from.into(),
            to_revision: to.into(),
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(m) = s.message().await? {
        out.extend(m.raw_changes);
    }
    Ok(out)
}

/// `git diff --raw -z` turned into upstream's answer.
fn git_raw_changes(dir: &Path, from: &str, to: &str) -> Vec<get_raw_changes_response::RawChange> {
    let (out, ok) = git_raw(dir, &["diff", "--raw", "-z", "--no-abbrev", from, to]);
    assert!(ok);
    let fields: Vec<&[u8]> = out.split(|b| *b == 0).collect();
    let mut i = 0;
    let mut changes = Vec::new();
    while i + 1 < fields.len() {
        let meta = String::from_utf8(fields[i].to_vec()).expect("meta");
        let parts: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
        let (old_mode, new_mode, old_id, new_id, status) = (parts[0], parts[1], parts[2], parts[3], parts[4]);
        let src = fields[i + 1].to_vec();
        let two = status.starts_with('R') || status.starts_with('C');
        let dst = if two { fields[i + 2].to_vec() } else { Vec::new() };
        i += if two { 3 } else { 2 };
        let (operation, new_path, old_path) = match &status[..1] {
            "A" => (Operation::Added, src, Vec::new()),
            "D" => (Operation::Deleted, Vec::new(), src),
            "M" => (Operation::Modified, src.clone(), src),
            "T" => (Operation::TypeChanged, src.clone(), src),
            "R" => (Operation::Renamed, dst, src),
            other => panic!("status {other}"),
        };
        let zero = new_id.bytes().all(|b| b == b'0');
        let (id, mode) = if zero { (old_id, old_mode) } else { (new_id, new_mode) };
        let (blob_id, size) = if mode == "160000" {
            (String::new(), 0)
        } else {
            let (size, _) = git_raw(dir, &["cat-file", "-s", id]);
            (id.to_owned(), String::from_utf8(size).expect("utf-8").trim().parse().expect("size"))
        };
        changes.push(get_raw_changes_response::RawChange {
            blob_id,
            size,
            operation: operation.into(),
            old_mode: i32::from_str_radix(old_mode, 8).expect("mode"),
            new_mode: i32::from_str_radix(new_mode, 8).expect("mode"),
            new_path_bytes: new_path,
            old_path_bytes: old_path,
        });
    }
    changes
}

#[tokio::test]
async fn get_raw_changes_matches_git_diff_raw() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let dir = fixture::path(format, "fixture");
        let zero = "0".repeat(if format == Format::Sha1 { 40 } else { 64 });
        let empty_tree = fgit(format, "fixture", &["hash-object", "-t", "tree", "/dev/null"]);
        for (from, to) in [
            ("v1.0-light", "feature"),
            ("v1.0-light", "main"),
            ("main~1", "main"),
            ("main~2", "main~1"),
            ("feature", "main"),
            ("main", "v1.0-light"),
            ("v1.1", "v1.0"),
        ] {
            let got = raw_changes(&mut c, format, from, to).await.expect("changes");
            assert_eq!(got, git_raw_changes(&dir, from, to), "{from}..{to}");
            assert!(!got.is_empty());
        }
        let renamed = raw_changes(&mut c, format, "v1.0-light", "feature").await.expect("changes");
        assert!(
            renamed.iter().any(|r| r.operation == i32::from(Operation::Renamed) && r.new_path_bytes == b"src/core.rs")
        );
        assert!(renamed.iter().any(|r| r.new_mode == 0o160000 && r.blob_id.is_empty()));
        // The zero id stands for nothing on either side.
        let from_nothing = raw_changes(&mut c, format, &zero, "v1.0-light").await.expect("from zero");
        assert_eq!(from_nothing, git_raw_changes(&dir, &empty_tree, "v1.0-light"));
        assert!(raw_changes(&mut c, format, "main", &zero).await.expect("to zero").is_empty());
        for (from, to, message) in [
            ("", "main", "invalid 'from' revision: \"\""),
            ("main", "", "invalid 'to' revision: \"\""),
            ("does-not-exist", "main", "invalid 'from' revision"),
            ("--output=/tmp/x", "main", "invalid 'from' revision"),
            ("main", "-n1", "invalid 'to' revision"),
        ] {
            let e = raw_changes(&mut c, format, from, to).await.expect_err("invalid");
            assert_eq!(e.code(), Code::InvalidArgument);
            assert!(e.message().contains(message), "{}", e.message());
        }
    }
}

#[tokio::test]
async fn get_raw_changes_reports_type_changes() {
    let node = Node::start().await;
    let r = node.create_repo("types.git", Format::Sha1);
    let blob = git_stdin(Some(&r.path), &["hash-object", "-w", "--stdin"], Some(b"target"));
    let t1 = git_stdin(Some(&r.path), &["mktree"], Some(format!("100644 blob {blob}\tx\n").as_bytes()));
    let t2 = git_stdin(Some(&r.path), &["mktree"], Some(format!("120000 blob {blob}\tx\n").as_bytes()));
    let c1 = r.git(&["commit-tree", &t1, "-m", "file"]);
    let c2 = r.git(&["commit-tree", &t2, "-p", &c1, "-m", "link"]);
    // A symlink replaced by a directory: a deletion and an addition.
    let sub = git_stdin(Some(&r.path), &["mktree"], Some(format!("100755 blob {blob}\ty\n").as_bytes()));
    let t3 = git_stdin(Some(&r.path), &["mktree"], Some(format!("040000 tree {sub}\tx\n").as_bytes()));
    let c3 = r.git(&["commit-tree", &t3, "-p", &c2, "-m", "dir"]);
    let mut c = client(&node).await;
    for (from, to) in [(&c1, &c2), (&c2, &c3), (&c3, &c1)] {
        let mut s = c
            .get_raw_changes(GetRawChangesRequest {
                repository: Some(node.repo("types.git")),
                from_revision: from.clone(),
                to_revision: to.clone(),
            })
            .await
            .expect("changes")
            .into_inner();
        let mut got = Vec::new();
        while let Some(m) = s.message().await.expect("message") {
            got.extend(m.raw_changes);
        }
        assert_eq!(got, git_raw_changes(&r.path, from, to));
    }
    let changes = c
        .get_raw_changes(GetRawChangesRequest {
            repository: Some(node.repo("types.git")),
            from_revision: c1.clone(),
            to_revision: c2.clone(),
        })
        .await
        .expect("changes")
        .into_inner()
        .message()
        .await
        .expect("message")
        .expect("one batch")
        .raw_changes;
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].operation, changes[0].old_mode, changes[0].new_mode),
        (i32::from(Operation::TypeChanged), 0o100644, 0o120000)
    );
}

#[tokio::test]
async fn ambiguous_short_ids_resolve_to_nothing() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        // A copy of the fixture with enough extra blobs that two objects
        // share a four-digit prefix.
        let path = fixture::copy_repo(&node.storage, format, "fixture");
        let mut stream = Vec::new();
        for i in 0..1500 {
            let data = format!("blob number {i}\n");
            stream.extend_from_slice(format!("blob\ndata {}\n{data}\n", data.len()).as_bytes());
        }
        stream.extend_from_slice(b"done\n");
        git_stdin(Some(&path), &["fast-import", "--quiet", "--done"], Some(&stream));
        let all = git_stdin(Some(&path), &["cat-file", "--batch-all-objects", "--batch-check=%(objectname)"], None);
        let mut ids: Vec<&str> = all.lines().collect();
        ids.sort_unstable();
        let prefix = ids
            .windows(2)
            .find_map(|w| (w[0][..4] == w[1][..4]).then(|| w[0][..4].to_owned()))
            .expect("a shared prefix");
        let repository = Some(node.repo(&rel(format, "fixture")));
        let e = c
            .get_raw_changes(GetRawChangesRequest {
                repository: repository.clone(),
                from_revision: prefix.clone(),
                to_revision: "main".into(),
            })
            .await
            .expect_err("ambiguous");
        assert_eq!(e.code(), Code::InvalidArgument);
        let e = archive(
            &mut c,
            GetArchiveRequest {
                repository: repository.clone(),
                commit_id: prefix.clone(),
                path: b"src".to_vec(),
                ..Default::default()
            },
        )
        .await
        .expect_err("ambiguous");
        assert_eq!(e.code(), Code::FailedPrecondition);
        let files = by_name(
            &mut c,
            SearchFilesByNameRequest {
                repository,
                query: ".".into(),
                r#ref: prefix.into_bytes(),
                ..Default::default()
            },
        )
        .await
        .expect("nothing found");
        assert!(files.is_empty());
    }
}

// ------------------------------------------------------------------ bundles

#[tokio::test]
async fn create_bundle_holds_every_reference() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    let before = snapshot(fixture::storage());
    for format in FORMATS {
        let mut s = c
            .create_bundle(CreateBundleRequest { repository: repo(format, "fixture") })
            .await
            .expect("bundle")
            .into_inner();
        let mut data = Vec::new();
        let mut sizes = Vec::new();
        while let Some(m) = s.message().await.expect("message") {
            sizes.push(m.data.len());
            data.extend_from_slice(&m.data);
        }
        let (_, init) = sizes.split_last().expect("some data");
        assert!(init.iter().all(|s| *s == CHUNK), "{sizes:?}");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("b.bundle");
        std::fs::write(&file, &data).expect("write bundle");
        let heads = fgit(format, "fixture", &["bundle", "list-heads", file.to_str().expect("utf-8")]);
        let mut got: Vec<&str> = heads.lines().filter(|l| !l.ends_with(" HEAD")).collect();
        got.sort_unstable();
        let refs = fgit(format, "fixture", &["for-each-ref", "--format=%(objectname) %(refname)"]);
        let mut want: Vec<&str> = refs.lines().collect();
        want.sort_unstable();
        assert_eq!(got, want);
        let (_, ok) =
            git_raw(&fixture::path(format, "fixture"), &["bundle", "verify", "-q", file.to_str().expect("utf-8")]);
        assert!(ok, "bundle verifies");
    }
    let e = c
        .create_bundle(CreateBundleRequest { repository: repo(Format::Sha1, "empty") })
        .await
        .expect("stream")
        .into_inner()
        .message()
        .await
        .expect_err("empty repository");
    assert_eq!(e.code(), Code::FailedPrecondition);
    let e = c.create_bundle(CreateBundleRequest { repository: None }).await.expect_err("no repository");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(snapshot(fixture::storage()), before, "nothing written");
}

// ------------------------------------------------------------- objects size

async fn objects_size(
    c: &mut RepositoryServiceClient<Channel>,
    messages: Vec<ObjectsSizeRequest>,
) -> Result<u64, tonic::Status> {
    Ok(c.objects_size(futures::stream::iter(messages)).await?.into_inner().size)
}

#[tokio::test]
async fn objects_size_matches_git_rev_list_disk_usage() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let want = |revs: &[&str]| -> u64 {
            let mut args = vec!["rev-list", "--disk-usage", "--objects"];
            args.extend(revs);
            fgit(format, "fixture", &args).parse().expect("size")
        };
        let msg = |repository: Option<Repository>, revs: &[&str]| ObjectsSizeRequest {
            repository,
            revisions: revs.iter().map(|r| r.as_bytes().to_vec()).collect(),
        };
        let r = repo(format, "fixture");
        assert_eq!(objects_size(&mut c, vec![msg(r.clone(), &["main"])]).await.expect("size"), want(&["main"]));
        assert_eq!(
            objects_size(&mut c, vec![msg(r.clone(), &["main"]), msg(None, &["--not", "v1.0"])]).await.expect("size"),
            want(&["main", "--not", "v1.0"])
        );
        assert_eq!(objects_size(&mut c, vec![msg(r.clone(), &["--all"])]).await.expect("size"), want(&["--all"]));
        assert_eq!(
            objects_size(&mut c, vec![msg(r.clone(), &["feature", "^main~2"])]).await.expect("size"),
            want(&["feature", "^main~2"])
        );
        let e = objects_size(&mut c, vec![msg(r.clone(), &["does-not-exist"])]).await.expect_err("missing");
        assert_eq!(e.code(), Code::NotFound);
        for messages in [
            vec![msg(r.clone(), &[])],
            vec![msg(r.clone(), &["--output=/tmp/x"])],
            vec![msg(r.clone(), &["-n1"])],
            vec![msg(r.clone(), &["main"]), msg(r.clone(), &["main"])],
            vec![msg(r.clone(), &["main"]), msg(None, &[])],
            vec![msg(None, &["main"])],
        ] {
            let e = objects_size(&mut c, messages.clone()).await.expect_err("invalid");
            assert_eq!(e.code(), Code::InvalidArgument, "{messages:?}");
        }
    }
}
