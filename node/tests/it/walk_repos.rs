//! InternalGitaly/WalkRepos against a real node: every repository of the
//! storage (at any depth, not descending into repositories, skipping the
//! node's `+gitaly` directory) with its directory's modification time.

use crate::support::git::Format;
use crate::support::{Node, STORAGE};
use cairn_proto::gitaly::internal_gitaly_client::InternalGitalyClient;
use cairn_proto::gitaly::{WalkReposRequest, WalkReposResponse};
use std::path::Path;
use std::time::{Duration, SystemTime};
use tonic::Code;

async fn walk(node: &Node, storage: &str) -> Result<Vec<WalkReposResponse>, tonic::Status> {
    let mut client = InternalGitalyClient::new(node.channel().await);
    let mut stream = client.walk_repos(WalkReposRequest { storage_name: storage.into() }).await?.into_inner();
    let mut out = Vec::new();
    while let Some(msg) = stream.message().await? {
        out.push(msg);
    }
    Ok(out)
}

fn set_mtime(path: &Path, t: SystemTime) {
    let dir = std::fs::File::open(path).expect("open directory");
    dir.set_modified(t).expect("set mtime");
}

#[tokio::test]
async fn lists_exactly_the_repositories_with_their_mtimes() {
    let node = Node::start().await;
    let repos = ["a.git", "group/b.git", "@cluster/repositories/6b/86/1", "@hashed/aa/bb/x.git"];
    for (i, rel) in repos.iter().enumerate() {
        let format = if i % 2 == 0 { Format::Sha1 } else { Format::Sha256 };
        let repo = node.create_repo(rel, format);
        repo.commit(&[("README", "hi\n")], &[], "initial");
    }
    // Not repositories: plain directories, files, a directory missing
    // `objects`, a symbolic link to a repository, and whatever is under
    // the node's private directory or inside a repository.
    let s = &node.storage;
    std::fs::create_dir_all(s.join("empty/dir")).expect("mkdir");
    std::fs::write(s.join("group/file.txt"), "x").expect("file");
    std::fs::write(s.join("@hashed/aa/not-a-repo.git"), "x").expect("file");
    std::fs::create_dir_all(s.join("broken.git/refs")).expect("mkdir");
    std::fs::write(s.join("broken.git/HEAD"), "ref: refs/heads/main\n").expect("HEAD");
    std::os::unix::fs::symlink(s.join("a.git"), s.join("link.git")).expect("symlink");
    node.create_repo("+gitaly/tmp/hidden.git", Format::Sha1);
    node.create_repo("a.git/nested.git", Format::Sha1);
    assert!(s.join("+gitaly").is_dir());

    // Distinct times per repository, set after all writes into them.
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let mut expected = Vec::new();
    for (i, rel) in repos.iter().enumerate() {
        let t = base + Duration::from_secs(3600 * i as u64) + Duration::from_nanos(123_456_789);
        set_mtime(&s.join(rel), t);
        expected.push((rel.to_string(), t));
    }

    let got = walk(&node, STORAGE).await.expect("walk repos");
    let mut got: Vec<(String, SystemTime)> = got
        .into_iter()
        .map(|r| {
            let ts = r.modification_time.expect("modification time");
            (r.relative_path, SystemTime::try_from(ts).expect("valid timestamp"))
        })
        .collect();
    // Upstream walks in byte order of names; so does the node.
    let mut sorted = got.clone();
    sorted.sort_by(|a, b| a.0.split('/').cmp(b.0.split('/')));
    assert_eq!(got, sorted, "walk order");
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn mtime_is_the_repository_directory_s() {
    let node = Node::start().await;
    let repo = node.create_repo("r.git", Format::Sha1);
    repo.commit(&[("f", "1\n")], &[], "one");
    let before = SystemTime::now() - Duration::from_secs(1);
    // Touching the directory itself (a new entry) moves the time; the walk
    // reports the directory's, not HEAD's or refs'.
    std::fs::write(node.storage.join("r.git/new-file"), "x").expect("write");
    let got = walk(&node, STORAGE).await.expect("walk repos");
    assert_eq!(got.len(), 1);
    let t = SystemTime::try_from(got[0].modification_time.expect("time")).expect("timestamp");
    let on_disk = std::fs::metadata(node.storage.join("r.git")).and_then(|m| m.modified()).expect("mtime");
    assert_eq!(t, on_disk);
    assert!(t >= before, "{t:?} {before:?}");
}

#[tokio::test]
async fn unknown_or_missing_storage_name_is_invalid_argument() {
    let node = Node::start().await;
    let err = walk(&node, "invalid storage name").await.expect_err("unknown storage");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(err.message(), "looking up storage: storage name not found");
    let err = walk(&node, "").await.expect_err("no storage");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(err.message(), "looking up storage: storage name not set");
}

#[tokio::test]
async fn empty_storage_has_no_repositories() {
    let node = Node::start().await;
    std::fs::create_dir_all(node.storage.join("group/sub")).expect("mkdir");
    assert!(walk(&node, STORAGE).await.expect("walk repos").is_empty());
    // A storage directory that has gone away reads as empty, as upstream
    // (its walk ignores directories that do not exist).
    std::fs::rename(&node.storage, node.dir.path().join("gone")).expect("move storage away");
    assert!(walk(&node, STORAGE).await.expect("walk repos").is_empty());
}

#[tokio::test]
async fn many_repositories_stream_in_order() {
    let node = Node::start().await;
    // More than the node's channel depth, so the producer waits on the
    // client; created without git to keep the test fast.
    let mut expected = Vec::new();
    for i in 0..300 {
        let rel = format!("@hashed/{:02x}/{:02x}/{i:03}.git", i % 7, i % 5);
        let path = node.storage.join(&rel);
        std::fs::create_dir_all(path.join("objects")).expect("objects");
        std::fs::create_dir_all(path.join("refs")).expect("refs");
        std::fs::write(path.join("HEAD"), "ref: refs/heads/main\n").expect("HEAD");
        expected.push(rel);
    }
    expected.sort();
    let got: Vec<String> =
        walk(&node, STORAGE).await.expect("walk repos").into_iter().map(|r| r.relative_path).collect();
    assert_eq!(got, expected);
}
