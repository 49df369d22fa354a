//! BlobService against the fixture repositories (and repositories built
//! here), compared with what the git CLI says about the same objects:
//! GetBlob, GetBlobs, ListBlobs, ListAllBlobs and the LFS pointer RPCs, in
//! SHA-1 and SHA-256, plus a real `gitaly` process streaming a 200 MiB blob
//! in bounded memory.

#![allow(clippy::disallowed_methods, reason = "tests compare with the real git CLI")]

use crate::support::fixture::{self, fgit, rel};
use crate::support::git::{Format, TestRepo, git_stdin};
use crate::support::{Node, snapshot};
use cairn_proto::gitaly::blob_service_client::BlobServiceClient;
use cairn_proto::gitaly::*;
use std::collections::BTreeSet;
use std::path::Path;
use tonic::Code;

const FORMATS: [Format; 2] = [Format::Sha1, Format::Sha256];
const CHUNK: usize = 128 * 1024;
const LFS_POINTER: &str = "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n";

fn repo(format: Format, name: &str) -> Option<Repository> {
    Some(Repository { storage_name: "default".into(), relative_path: rel(format, name), ..Default::default() })
}

/// Raw stdout of git (the support helper trims, which binary data cannot take).
fn git_bytes(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("git")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// All messages of a server stream, or the status it ended with.
async fn all<T>(r: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>) -> Result<Vec<T>, tonic::Status> {
    let mut s = r?.into_inner();
    let mut out = Vec::new();
    while let Some(m) = s.message().await? {
        out.push(m);
    }
    Ok(out)
}

async fn client(node: &Node) -> BlobServiceClient<tonic::transport::Channel> {
    BlobServiceClient::new(node.channel().await)
}

#[tokio::test]
async fn get_blob_matches_git() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let dir = fixture::path(format, "fixture");
        for path in ["README.md", "files/large.bin", "link", "bin/run.sh", "files/lfs.bin", "LICENSE"] {
            let oid = fgit(format, "fixture", &["rev-parse", &format!("main:{path}")]);
            let want = git_bytes(&dir, &["cat-file", "blob", &oid]);
            let msgs = all(c
                .get_blob(GetBlobRequest { repository: repo(format, "fixture"), oid: oid.clone(), limit: -1 })
                .await)
            .await
            .expect("get blob");
            assert_eq!((msgs[0].size as usize, msgs[0].oid.as_str()), (want.len(), oid.as_str()), "{path}");
            assert!(msgs[1..].iter().all(|m| m.size == 0 && m.oid.is_empty()), "size and oid only come first");
            assert!(msgs.iter().all(|m| m.data.len() <= CHUNK && !m.data.is_empty()));
            assert_eq!(msgs.len(), want.len().div_ceil(CHUNK), "{path}: full chunks");
            assert_eq!(msgs.iter().flat_map(|m| m.data.clone()).collect::<Vec<_>>(), want, "{path}");

            // limit 0: only the header; a positive limit truncates.
            let header = all(c
                .get_blob(GetBlobRequest { repository: repo(format, "fixture"), oid: oid.clone(), limit: 0 })
                .await)
            .await
            .expect("header");
            assert_eq!(header.len(), 1);
            assert_eq!((header[0].size as usize, &header[0].oid, header[0].data.is_empty()), (want.len(), &oid, true));
            let ten = all(c
                .get_blob(GetBlobRequest { repository: repo(format, "fixture"), oid: oid.clone(), limit: 10 })
                .await)
            .await
            .expect("ten");
            assert_eq!(ten.iter().flat_map(|m| m.data.clone()).collect::<Vec<_>>(), want[..10.min(want.len())]);
            assert_eq!(ten[0].size as usize, want.len());
        }
        // Any revision git's object reader takes, as upstream passes it on.
        let by_path = all(c
            .get_blob(GetBlobRequest { repository: repo(format, "fixture"), oid: "v1.0:CHANGELOG".into(), limit: -1 })
            .await)
        .await
        .expect("by revision:path");
        assert_eq!(by_path[0].oid, fgit(format, "fixture", &["rev-parse", "v1.0:CHANGELOG"]));
        assert_eq!(by_path[0].data, git_bytes(&dir, &["cat-file", "blob", "v1.0:CHANGELOG"]));

        // Missing objects, non-blobs and option-like input: one empty message.
        let tree = fgit(format, "fixture", &["rev-parse", "main^{tree}"]);
        let missing = format.zero_oid_like();
        for oid in [missing.as_str(), tree.as_str(), "main", "v1.0", "does-not-exist", "--output=/tmp/cairn-x", "-n1"] {
            let msgs = all(c
                .get_blob(GetBlobRequest { repository: repo(format, "fixture"), oid: oid.into(), limit: -1 })
                .await)
            .await
            .expect("empty answer");
            assert_eq!(msgs, vec![GetBlobResponse::default()], "{oid}");
        }
    }
    assert!(!Path::new("/tmp/cairn-x").exists());
    let e = all(c
        .get_blob(GetBlobRequest { repository: repo(Format::Sha1, "fixture"), oid: String::new(), limit: -1 })
        .await)
    .await
    .expect_err("empty oid");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "empty Oid"));
    let e = all(c.get_blob(GetBlobRequest { repository: None, oid: "x".into(), limit: -1 }).await)
        .await
        .expect_err("no repo");
    assert_eq!(e.code(), Code::InvalidArgument);
    let e =
        all(c.get_blob(GetBlobRequest { repository: repo(Format::Sha1, "nope"), oid: "x".into(), limit: -1 }).await)
            .await
            .expect_err("missing repo");
    assert_eq!(e.code(), Code::NotFound);
    let e = all(c
        .get_blob(GetBlobRequest {
            repository: Some(Repository {
                storage_name: "default".into(),
                relative_path: "../etc".into(),
                ..Default::default()
            }),
            oid: "x".into(),
            limit: -1,
        })
        .await)
    .await
    .expect_err("escaping path");
    assert_eq!(e.code(), Code::InvalidArgument);
}

trait ZeroLike {
    fn zero_oid_like(&self) -> String;
}

impl ZeroLike for Format {
    /// A well-formed id no object has.
    fn zero_oid_like(&self) -> String {
        "ab".repeat(if *self == Format::Sha1 { 20 } else { 32 })
    }
}

/// Two blob contents whose ids share their first four hex digits, found by
/// hashing in-process (git's shortest abbreviation is four digits).
fn colliding_blobs(format: Format) -> (String, Vec<u8>, Vec<u8>) {
    use sha1::Digest as _;
    let id = |data: &[u8]| -> String {
        let header = format!("blob {}\0", data.len());
        match format {
            Format::Sha1 => hex::encode(sha1::Sha1::new().chain_update(header).chain_update(data).finalize()),
            Format::Sha256 => hex::encode(sha2::Sha256::new().chain_update(header).chain_update(data).finalize()),
        }
    };
    let mut seen = std::collections::HashMap::new();
    for i in 0u32.. {
        let data = format!("ambiguous {i}\n").into_bytes();
        let prefix = id(&data)[..4].to_owned();
        if let Some(other) = seen.insert(prefix.clone(), data.clone()) {
            return (prefix, other, data);
        }
    }
    unreachable!("the birthday bound is a few hundred")
}

#[tokio::test]
async fn ambiguous_short_ids_fail_like_upstream() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let name = format!("ambiguous-{}.git", format.name());
        let r = node.create_repo(&name, format);
        let (prefix, a, b) = colliding_blobs(format);
        for data in [&a, &b] {
            let id = git_stdin(Some(&r.path), &["hash-object", "-w", "--stdin"], Some(data));
            assert!(id.starts_with(&prefix), "{id} starts with {prefix}");
        }
        let before = snapshot(&r.path);
        // git's object reader cannot answer an ambiguous name: upstream fails.
        let e = all(c
            .get_blob(GetBlobRequest { repository: Some(node.repo(&name)), oid: prefix.clone(), limit: -1 })
            .await)
        .await
        .expect_err("ambiguous");
        assert_eq!(e.code(), Code::Internal, "{}", e.message());
        // A longer, unique prefix works.
        let unique = git_stdin(Some(&r.path), &["hash-object", "--stdin"], Some(&a));
        let msgs = all(c
            .get_blob(GetBlobRequest { repository: Some(node.repo(&name)), oid: unique[..12].into(), limit: -1 })
            .await)
        .await
        .expect("unique prefix");
        assert_eq!((msgs[0].oid.as_str(), msgs[0].data.as_slice()), (unique.as_str(), a.as_slice()));
        assert_eq!(snapshot(&r.path), before, "nothing written");
    }
}

fn ls_tree(format: Format, rev: &str, path: &str) -> Option<(i32, String, String)> {
    let out = fgit(format, "fixture", &["ls-tree", rev, "--", path]);
    let line = out.lines().next()?;
    let (meta, _) = line.split_once('\t')?;
    let mut f = meta.split(' ');
    let mode = i32::from_str_radix(f.next()?, 8).ok()?;
    let kind = f.next()?.to_owned();
    Some((mode, kind, f.next()?.to_owned()))
}

#[tokio::test]
async fn get_blobs_matches_git() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    let rp = |revision: &str, path: &str| get_blobs_request::RevisionPath {
        revision: revision.into(),
        path: path.as_bytes().to_vec(),
    };
    for format in FORMATS {
        let dir = fixture::path(format, "fixture");
        let asks = vec![
            rp("main", "README.md"),
            rp("main", "files/large.bin"),
            rp("main", "link"),
            rp("main", "bin/run.sh"),
            rp("main", "dir with space/fïlé ünicode.txt"),
            rp("main", "deep/a"),
            rp("main", "deep/a/"),
            rp("feature", "vendor/sub"),
            rp("v1.0", "CHANGELOG"),
            rp("main", "does/not/exist"),
            rp("does-not-exist", "README.md"),
            rp("main", "../README.md"),
            rp("main", "deep/../README.md"),
            rp("main", "./README.md"),
            rp("main", "/README.md"),
            rp("main", ""),
            rp("main", "README.md/x"),
        ];
        let msgs = all(c
            .get_blobs(GetBlobsRequest { repository: repo(format, "fixture"), revision_paths: asks.clone(), limit: -1 })
            .await)
        .await
        .expect("get blobs");
        // Group continuation messages (no revision) with their entry.
        let mut entries: Vec<GetBlobsResponse> = Vec::new();
        for m in msgs {
            if m.revision.is_empty() {
                assert!(m.oid.is_empty() && m.path.is_empty() && m.size == 0);
                entries.last_mut().expect("an entry first").data.extend(m.data);
            } else {
                entries.push(m);
            }
        }
        assert_eq!(entries.len(), asks.len());
        for (ask, got) in asks.iter().zip(&entries) {
            let path = String::from_utf8(ask.path.clone()).expect("utf-8");
            assert_eq!(got.revision, ask.revision);
            let trimmed = if path.len() > 1 { path.trim_end_matches('/') } else { path.as_str() };
            assert_eq!(got.path, trimmed.as_bytes(), "path echoed, trailing slash trimmed");
            let clean = !trimmed.is_empty() && trimmed.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
            let want =
                if clean && ask.revision != "does-not-exist" { ls_tree(format, &ask.revision, trimmed) } else { None };
            let Some((mode, kind, oid)) = want else {
                assert_eq!(got.oid, "", "{path}: not found");
                assert_eq!((got.mode, got.size, got.data.len(), got.r#type), (0, 0, 0, 0), "{path}");
                continue;
            };
            assert_eq!((got.mode, got.oid.as_str()), (mode, oid.as_str()), "{path}");
            match kind.as_str() {
                "commit" => {
                    assert!(got.is_submodule);
                    assert_eq!((got.r#type(), got.size), (ObjectType::Commit, 0));
                }
                "tree" => {
                    assert_eq!(got.r#type(), ObjectType::Tree);
                    assert_eq!(got.size.to_string(), fgit(format, "fixture", &["cat-file", "-s", &oid]));
                    assert!(got.data.is_empty());
                }
                _ => {
                    assert_eq!(got.r#type(), ObjectType::Blob);
                    assert_eq!(got.data, git_bytes(&dir, &["cat-file", "blob", &oid]), "{path}");
                    assert_eq!(got.size as usize, got.data.len());
                }
            }
        }
        // Limits: 0 sends no data, a positive limit truncates.
        for (limit, want) in [(0usize, 0usize), (5, 5), (100_000_000, 1_572_864)] {
            let msgs = all(c
                .get_blobs(GetBlobsRequest {
                    repository: repo(format, "fixture"),
                    revision_paths: vec![rp("main", "files/large.bin")],
                    limit: limit as i64,
                })
                .await)
            .await
            .expect("limited");
            assert_eq!(msgs[0].size, 1_572_864);
            assert_eq!(msgs.iter().map(|m| m.data.len()).sum::<usize>(), want);
            assert!(msgs.iter().all(|m| m.data.len() <= CHUNK));
        }
    }
    let before = snapshot(&fixture::path(Format::Sha1, "fixture"));
    for bad in ["--output=/tmp/cairn-blobs", "-n1", "", "main:README.md", "a b"] {
        let e = all(c
            .get_blobs(GetBlobsRequest {
                repository: repo(Format::Sha1, "fixture"),
                revision_paths: vec![rp(bad, "README.md")],
                limit: -1,
            })
            .await)
        .await
        .expect_err("invalid revision");
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}");
    }
    let e = all(c
        .get_blobs(GetBlobsRequest { repository: repo(Format::Sha1, "fixture"), revision_paths: vec![], limit: -1 })
        .await)
    .await
    .expect_err("no paths");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "empty RevisionPaths"));
    assert_eq!(snapshot(&fixture::path(Format::Sha1, "fixture")), before);
    assert!(!Path::new("/tmp/cairn-blobs").exists());
}

/// What `git rev-list --objects` says the blobs of `revisions` are, with
/// their paths, in order.
fn rev_list_blobs(dir: &Path, revisions: &[&str]) -> Vec<(String, String)> {
    let mut args = vec![
        "rev-list",
        "--objects",
        "--in-commit-order",
        "--object-names",
        "--filter=object:type=blob",
        "--filter-provided-objects",
    ];
    args.extend_from_slice(revisions);
    String::from_utf8(git_bytes(dir, &args))
        .expect("utf-8")
        .lines()
        .map(|l| {
            let (oid, path) = l.split_once(' ').unwrap_or((l, ""));
            (oid.to_owned(), path.to_owned())
        })
        .collect()
}

async fn list_blobs(
    c: &mut BlobServiceClient<tonic::transport::Channel>,
    repository: Option<Repository>,
    revisions: &[&str],
    limit: u32,
    bytes_limit: i64,
) -> Result<Vec<list_blobs_response::Blob>, tonic::Status> {
    let req = ListBlobsRequest {
        repository,
        revisions: revisions.iter().map(|s| (*s).to_owned()).collect(),
        limit,
        bytes_limit,
        with_paths: true,
    };
    Ok(all(c.list_blobs(req).await).await?.into_iter().flat_map(|m| m.blobs).collect())
}

#[tokio::test]
async fn list_blobs_walks_like_rev_list() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    let revision_sets: &[&[&str]] = &[
        &["main"],
        &["--all"],
        &["feature"],
        &["main", "--not", "feature"],
        &["feature..main"],
        &["main...feature"],
        &["^feature", "main"],
        &["--not", "feature", "--not", "main"],
        &["main:deep"],
        &["main:README.md", "main"],
        &["main^{tree}"],
        &["v1.0"],
        &["blob-tag"],
        &["v1.0-nested", "signed"],
        &["--branches=fea*"],
        &["--branches=unicode-ß"],
        &["--tags"],
        &["--glob=heads/*"],
        &["--glob=refs/merge-requests"],
        &["main^@"],
        &["main^!"],
        &["main", "^main:deep"],
        &["main~2", "--not", "--all"],
        &["HEAD"],
    ];
    for format in FORMATS {
        let dir = fixture::path(format, "fixture");
        for revisions in revision_sets {
            let want = rev_list_blobs(&dir, revisions);
            let got = list_blobs(&mut c, repo(format, "fixture"), revisions, 0, 0).await.expect("list blobs");
            let got_pairs: Vec<(String, String)> =
                got.iter().map(|b| (b.oid.clone(), String::from_utf8(b.path.clone()).expect("utf-8"))).collect();
            assert_eq!(got_pairs, want, "{format:?} {revisions:?}");
            for b in &got {
                assert!(b.data.is_empty());
                assert_eq!(b.size.to_string(), fgit(format, "fixture", &["cat-file", "-s", &b.oid]));
            }
        }
        // Without with_paths no paths are sent.
        let req = ListBlobsRequest {
            repository: repo(format, "fixture"),
            revisions: vec!["main".into()],
            limit: 3,
            bytes_limit: 0,
            with_paths: false,
        };
        let got: Vec<_> = all(c.list_blobs(req).await).await.expect("list").into_iter().flat_map(|m| m.blobs).collect();
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|b| b.path.is_empty()));

        // Limits and contents.
        let want = rev_list_blobs(&dir, &["main"]);
        let got = list_blobs(&mut c, repo(format, "fixture"), &["main"], 2, 4).await.expect("limited");
        assert_eq!(got.len(), 2);
        for (b, (oid, _)) in got.iter().zip(&want) {
            assert_eq!(&b.oid, oid);
            let data = git_bytes(&dir, &["cat-file", "blob", oid]);
            assert_eq!(b.data, data[..4.min(data.len())]);
        }
        let got = list_blobs(&mut c, repo(format, "fixture"), &["main:files/large.bin", "main:README.md"], 0, -1)
            .await
            .expect("whole");
        let large = git_bytes(&dir, &["cat-file", "blob", "main:files/large.bin"]);
        let readme = git_bytes(&dir, &["cat-file", "blob", "main:README.md"]);
        // The large blob is split over entries, only the first carries id and size.
        assert_eq!(got.len(), large.len().div_ceil(CHUNK) + 1);
        assert_eq!(got[0].size as usize, large.len());
        assert!(got[1..got.len() - 1].iter().all(|b| b.oid.is_empty() && b.size == 0));
        assert_eq!(got[..got.len() - 1].iter().flat_map(|b| b.data.clone()).collect::<Vec<_>>(), large);
        assert_eq!(got.last().expect("readme").data, readme);
        assert_eq!(got.last().expect("readme").path, b"README.md");
    }
    // A long history: order over 10,500 commits with a merge.
    for format in FORMATS {
        let want = rev_list_blobs(&fixture::path(format, "long"), &["main"]);
        let got = list_blobs(&mut c, repo(format, "long"), &["main"], 0, 0).await.expect("long");
        assert_eq!(got.len(), want.len());
        assert!(got.iter().zip(&want).all(|(g, (oid, path))| &g.oid == oid && g.path == path.as_bytes()));
        let want = rev_list_blobs(&fixture::path(format, "long"), &["main", "^r5000"]);
        let got = list_blobs(&mut c, repo(format, "long"), &["main", "^r5000"], 0, 0).await.expect("range");
        assert_eq!(
            got.iter().map(|b| b.oid.clone()).collect::<Vec<_>>(),
            want.into_iter().map(|w| w.0).collect::<Vec<_>>()
        );
    }
    // Bad input.
    let before = snapshot(&fixture::path(Format::Sha1, "fixture"));
    for bad in [&["--output=/tmp/cairn-list"][..], &["-n1"], &[], &["--foobar"], &["main", ""], &["a b"]] {
        let e = list_blobs(&mut c, repo(Format::Sha1, "fixture"), bad, 0, 0).await.expect_err("invalid");
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}");
    }
    let e = list_blobs(&mut c, repo(Format::Sha1, "fixture"), &["does-not-exist"], 0, 0).await.expect_err("unknown");
    assert_eq!(e.code(), Code::Internal);
    assert_eq!(snapshot(&fixture::path(Format::Sha1, "fixture")), before);
    assert!(!Path::new("/tmp/cairn-list").exists());
    let empty = list_blobs(&mut c, repo(Format::Sha1, "empty"), &["--all"], 0, 0).await.expect("empty repository");
    assert!(empty.is_empty());
}

/// Every blob of a repository (reachable or not) with its size, per
/// `git cat-file --batch-all-objects`.
fn all_blobs(dir: &Path) -> BTreeSet<(String, i64)> {
    String::from_utf8(git_bytes(
        dir,
        &["cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype) %(objectsize)"],
    ))
    .expect("utf-8")
    .lines()
    .filter_map(|l| {
        let mut f = l.split(' ');
        let (oid, kind, size) = (f.next()?, f.next()?, f.next()?);
        (kind == "blob").then(|| (oid.to_owned(), size.parse().expect("size")))
    })
    .collect()
}

#[tokio::test]
async fn list_all_blobs_lists_the_object_database() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let dir = fixture::path(format, "fixture");
        let req = |limit, bytes_limit| ListAllBlobsRequest { repository: repo(format, "fixture"), limit, bytes_limit };
        let got: Vec<_> =
            all(c.list_all_blobs(req(0, 0)).await).await.expect("all").into_iter().flat_map(|m| m.blobs).collect();
        let got_set: BTreeSet<(String, i64)> = got.iter().map(|b| (b.oid.clone(), b.size)).collect();
        assert_eq!(got.len(), got_set.len(), "each blob once");
        assert_eq!(got_set, all_blobs(&dir));
        let limited: Vec<_> =
            all(c.list_all_blobs(req(3, 5)).await).await.expect("limited").into_iter().flat_map(|m| m.blobs).collect();
        assert_eq!(limited.len(), 3);
        for b in &limited {
            let data = git_bytes(&dir, &["cat-file", "blob", &b.oid]);
            assert_eq!(b.data, data[..5.min(data.len())]);
        }
        let whole: Vec<_> =
            all(c.list_all_blobs(req(0, -1)).await).await.expect("whole").into_iter().flat_map(|m| m.blobs).collect();
        assert_eq!(
            whole.iter().map(|b| b.data.len()).sum::<usize>(),
            all_blobs(&dir).iter().map(|b| b.1 as usize).sum::<usize>()
        );
    }
    let empty = all(c
        .list_all_blobs(ListAllBlobsRequest { repository: repo(Format::Sha1, "empty"), limit: 0, bytes_limit: 0 })
        .await)
    .await
    .expect("empty");
    assert!(empty.iter().all(|m| m.blobs.is_empty()));
    let e = all(c.list_all_blobs(ListAllBlobsRequest { repository: None, limit: 0, bytes_limit: 0 }).await)
        .await
        .expect_err("no repository");
    assert_eq!(e.code(), Code::InvalidArgument);
}

/// A copy of the fixture with one new blob in a quarantine directory, as
/// receive-pack leaves it during a push.
fn quarantined(node: &Node, format: Format) -> (String, String) {
    let copy = fixture::copy_repo(&node.storage, format, "fixture");
    let scratch = TestRepo::create(node.dir.path(), &format!("scratch-{}.git", format.name()), format);
    let blob = git_stdin(
        Some(&scratch.path),
        &["hash-object", "-w", "--stdin"],
        Some(LFS_POINTER.replace("12345", "777").as_bytes()),
    );
    let quarantine = copy.join("objects/incoming-test");
    std::fs::create_dir_all(quarantine.join(&blob[..2])).expect("mkdir");
    std::fs::copy(
        scratch.path.join("objects").join(&blob[..2]).join(&blob[2..]),
        quarantine.join(&blob[..2]).join(&blob[2..]),
    )
    .expect("copy object");
    (rel(format, "fixture"), blob)
}

#[tokio::test]
async fn list_all_in_a_quarantine() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let (relative, blob) = quarantined(&node, format);
        let mut q = node.repo(&relative);
        q.git_object_directory = "objects/incoming-test".into();
        let got: Vec<_> =
            all(c.list_all_blobs(ListAllBlobsRequest { repository: Some(q.clone()), limit: 0, bytes_limit: 0 }).await)
                .await
                .expect("quarantine only")
                .into_iter()
                .flat_map(|m| m.blobs)
                .collect();
        assert_eq!(got.iter().map(|b| b.oid.as_str()).collect::<Vec<_>>(), vec![blob.as_str()]);
        let pointers: Vec<_> =
            all(c.list_all_lfs_pointers(ListAllLfsPointersRequest { repository: Some(q.clone()), limit: 0 }).await)
                .await
                .expect("pointers")
                .into_iter()
                .flat_map(|m| m.lfs_pointers)
                .collect();
        assert_eq!(pointers.len(), 1);
        assert_eq!((pointers[0].oid.as_str(), pointers[0].file_size), (blob.as_str(), 777));
        q.git_alternate_object_directories = vec!["objects".into()];
        let with_main: Vec<_> =
            all(c.list_all_blobs(ListAllBlobsRequest { repository: Some(q), limit: 0, bytes_limit: 0 }).await)
                .await
                .expect("with alternates")
                .into_iter()
                .flat_map(|m| m.blobs)
                .collect();
        assert_eq!(with_main.len(), all_blobs(&fixture::path(format, "fixture")).len() + 1);
    }
}

#[tokio::test]
async fn lfs_pointers_as_upstream_detects_them() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let pointer = fgit(format, "fixture", &["rev-parse", "feature:files/lfs.bin"]);
        let readme = fgit(format, "fixture", &["rev-parse", "main:README.md"]);
        let tree = fgit(format, "fixture", &["rev-parse", "main^{tree}"]);
        let check = |p: &LfsPointer| {
            assert_eq!(p.oid, pointer);
            assert_eq!(p.data, LFS_POINTER.as_bytes());
            assert_eq!(p.size as usize, LFS_POINTER.len());
            assert_eq!(p.file_size, 12345);
            assert_eq!(p.file_oid, b"4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393");
        };
        let got: Vec<_> = all(c
            .get_lfs_pointers(GetLfsPointersRequest {
                repository: repo(format, "fixture"),
                blob_ids: vec![readme.clone(), pointer.clone(), tree.clone()],
            })
            .await)
        .await
        .expect("get")
        .into_iter()
        .flat_map(|m| m.lfs_pointers)
        .collect();
        assert_eq!(got.len(), 1);
        check(&got[0]);
        let e = all(c
            .get_lfs_pointers(GetLfsPointersRequest {
                repository: repo(format, "fixture"),
                blob_ids: vec![format.zero_oid_like()],
            })
            .await)
        .await
        .expect_err("missing blob");
        assert_eq!(e.code(), Code::Internal);

        for revisions in [vec!["--all"], vec!["feature"], vec!["main"], vec!["main", "--not", "feature"]] {
            let got: Vec<_> = all(c
                .list_lfs_pointers(ListLfsPointersRequest {
                    repository: repo(format, "fixture"),
                    revisions: revisions.iter().map(|s| (*s).to_owned()).collect(),
                    limit: 0,
                })
                .await)
            .await
            .expect("list")
            .into_iter()
            .flat_map(|m| m.lfs_pointers)
            .collect();
            if revisions.contains(&"--not") {
                assert!(got.is_empty(), "{revisions:?}");
            } else {
                assert_eq!(got.len(), 1, "{revisions:?}");
                check(&got[0]);
            }
        }
        let got: Vec<_> = all(c
            .list_all_lfs_pointers(ListAllLfsPointersRequest { repository: repo(format, "fixture"), limit: 0 })
            .await)
        .await
        .expect("all")
        .into_iter()
        .flat_map(|m| m.lfs_pointers)
        .collect();
        assert_eq!(got.len(), 1);
        check(&got[0]);
    }
    // Several pointers, a limit, and pointers too large to count.
    let node = Node::start().await;
    let mut c = client(&node).await;
    let r = node.create_repo("lfs.git", Format::Sha1);
    let mut files = Vec::new();
    for i in 0..5 {
        files.push((format!("p{i}"), LFS_POINTER.replace("12345", &i.to_string())));
    }
    files.push(("big".into(), format!("{LFS_POINTER}{}\n", "x".repeat(200))));
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    r.commit_on("main", &refs, "pointers");
    let list = |limit| ListLfsPointersRequest {
        repository: Some(node.repo("lfs.git")),
        revisions: vec!["main".into()],
        limit,
    };
    let got: Vec<_> =
        all(c.list_lfs_pointers(list(0)).await).await.expect("list").into_iter().flat_map(|m| m.lfs_pointers).collect();
    assert_eq!(got.len(), 5, "the 200+ byte one is no pointer");
    let got: Vec<_> =
        all(c.list_lfs_pointers(list(2)).await).await.expect("list").into_iter().flat_map(|m| m.lfs_pointers).collect();
    assert_eq!(got.len(), 2);
    let got: Vec<_> = all(c
        .list_all_lfs_pointers(ListAllLfsPointersRequest { repository: Some(node.repo("lfs.git")), limit: 3 })
        .await)
    .await
    .expect("all")
    .into_iter()
    .flat_map(|m| m.lfs_pointers)
    .collect();
    assert_eq!(got.len(), 3);
    for (bad, code) in
        [(vec![], Code::InvalidArgument), (vec!["-n1"], Code::InvalidArgument), (vec!["nope"], Code::Internal)]
    {
        let e = all(c
            .list_lfs_pointers(ListLfsPointersRequest {
                repository: Some(node.repo("lfs.git")),
                revisions: bad.iter().map(|s| (*s).to_owned()).collect(),
                limit: 0,
            })
            .await)
        .await
        .expect_err("bad revisions");
        assert_eq!(e.code(), code, "{bad:?}");
    }
    let e = all(c
        .get_lfs_pointers(GetLfsPointersRequest { repository: Some(node.repo("lfs.git")), blob_ids: vec![] })
        .await)
    .await
    .expect_err("no ids");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "empty BlobIds"));
}

/// Resident set figures of a process, in KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in {status}"))
}

/// Kills the spawned node when the test ends, even when it fails.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn get_blob_streams_200_mib_in_bounded_memory() {
    const SIZE: usize = 200 * 1024 * 1024;
    // The temporary directory (repository, config, socket) goes when the
    // test ends; the node process is killed before it by `Child`'s drop.
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().join("storage");
    std::fs::create_dir_all(&storage).expect("mkdir");
    let r = TestRepo::create(&storage, "big.git", Format::Sha1);
    // Incompressible deterministic data, written in pieces (never whole in
    // this process either).
    let file = dir.path().join("big.bin");
    {
        use std::io::Write as _;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).expect("create"));
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..SIZE / buf.len() {
            for b in buf.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.copy_from_slice(&x.to_le_bytes());
            }
            out.write_all(&buf).expect("write");
        }
    }
    let oid = r.git(&["hash-object", "-w", file.to_str().expect("utf-8")]);
    std::fs::remove_file(&file).expect("remove");
    // A reference keeps the blob reachable, so `git repack -a -d` packs it.
    r.git(&["update-ref", "refs/keep/big", &oid]);

    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "socket_path = \"{d}/gitaly.socket\"\n[logging]\nlevel = \"warn\"\n[[storage]]\nname = \"default\"\npath = \"{s}\"\n",
            d = dir.path().display(),
            s = storage.display()
        ),
    )
    .expect("config");
    // The real binary in its own process: the harness's `Node` runs in this
    // test process, whose memory would include the client's.
    let child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_gitaly"))
            .args(["serve", config.to_str().expect("utf-8")])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn gitaly"),
    );
    let socket = dir.path().join("gitaly.socket");
    for _ in 0..200 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let channel = crate::support::unix_channel(&socket).await;
    let mut c = BlobServiceClient::new(channel).max_decoding_message_size(4 << 20);
    let request = || GetBlobRequest {
        repository: Some(Repository {
            storage_name: "default".into(),
            relative_path: "big.git".into(),
            ..Default::default()
        }),
        oid: oid.clone(),
        limit: -1,
    };
    // Warm up (repository cache, thread pools), then measure from here.
    let small = all(c.get_blob(GetBlobRequest { limit: 16, ..request() }).await).await.expect("warm up");
    assert_eq!(small[0].size as usize, SIZE);
    let pid = child.0.id();
    for stage in ["loose", "packed"] {
        if stage == "packed" {
            r.git(&["repack", "-adq"]);
            assert!(!r.path.join("objects").join(&oid[..2]).join(&oid[2..]).exists(), "packed now");
        }
        let before = memory_kib(pid, "VmHWM:");
        let mut stream = c.get_blob(request()).await.expect("get blob").into_inner();
        // The received bytes hashed as git hashes a blob must give the id
        // `git hash-object` printed.
        let mut got = <sha1::Sha1 as sha1::Digest>::new();
        sha1::Digest::update(&mut got, format!("blob {SIZE}\0").as_bytes());
        let mut total = 0usize;
        let mut first = true;
        while let Some(m) = stream.message().await.expect("message") {
            if first {
                assert_eq!((m.size as usize, m.oid.as_str()), (SIZE, oid.as_str()));
                first = false;
            }
            assert!(m.data.len() <= CHUNK);
            total += m.data.len();
            sha1::Digest::update(&mut got, &m.data);
        }
        assert_eq!(total, SIZE, "{stage}");
        assert_eq!(hex::encode(sha1::Digest::finalize(got)), oid, "{stage}: same bytes as git hash-object");
        let after = memory_kib(pid, "VmHWM:");
        let rss = memory_kib(pid, "VmRSS:");
        eprintln!(
            "{stage}: node VmHWM {before} KiB before, {after} KiB after (grew {} KiB), VmRSS {rss} KiB",
            after - before
        );
        assert!(
            after.saturating_sub(before) < 32 * 1024,
            "{stage}: peak resident memory grew by {} KiB (before {before} KiB, after {after} KiB, now {rss} KiB)",
            after - before
        );
    }
}
