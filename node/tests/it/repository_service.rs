//! RepositoryService RPCs against a real node and real git repositories,
//! for SHA-1 and SHA-256.

use crate::support::git::{Format, TestRepo, git};
use crate::support::{Node, STORAGE, snapshot};
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::*;
use sha1::Digest as _;
use tonic::Code;
use tonic::transport::Channel;

const FORMATS: [Format; 2] = [Format::Sha1, Format::Sha256];

async fn client(node: &Node) -> RepositoryServiceClient<Channel> {
    RepositoryServiceClient::new(node.channel().await)
}

fn tmp_leftovers(node: &Node) -> usize {
    std::fs::read_dir(node.storage.join("+gitaly/tmp")).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn repository_exists() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    node.create_repo("a.git", Format::Sha1);
    std::fs::create_dir_all(node.storage.join("half.git/objects")).expect("mkdir");
    let exists = |r: Repository| {
        let mut c = c.clone();
        async move { c.repository_exists(RepositoryExistsRequest { repository: Some(r) }).await }
    };
    assert!(exists(node.repo("a.git")).await.expect("ok").into_inner().exists);
    assert!(!exists(node.repo("missing.git")).await.expect("ok").into_inner().exists);
    assert!(!exists(node.repo("half.git")).await.expect("ok").into_inner().exists);
    let mut bad = node.repo("a.git");
    bad.storage_name = "nope".into();
    let e = exists(bad).await.expect_err("unknown storage");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "storage name not found"));
    let e = c.repository_exists(RepositoryExistsRequest { repository: None }).await.expect_err("no repository");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "repository not set"));
}

#[tokio::test]
async fn create_repository_with_branch_and_format() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let rel = format!("@hashed/aa/bb/{}.git", format.name());
        let object_format = match format {
            Format::Sha1 => ObjectFormat::Sha1,
            Format::Sha256 => ObjectFormat::Sha256,
        };
        c.create_repository(CreateRepositoryRequest {
            repository: Some(node.repo(&rel)),
            default_branch: b"develop".to_vec(),
            object_format: object_format.into(),
        })
        .await
        .expect("create");
        let path = node.storage.join(&rel);
        assert_eq!(git(Some(&path), &["rev-parse", "--show-object-format"]), format.name());
        assert_eq!(git(Some(&path), &["symbolic-ref", "HEAD"]), "refs/heads/develop");
        assert_eq!(git(Some(&path), &["rev-parse", "--is-bare-repository"]), "true");
        let got = c.object_format(ObjectFormatRequest { repository: Some(node.repo(&rel)) }).await.expect("format");
        assert_eq!(got.into_inner().format, i32::from(object_format));

        let e = c
            .create_repository(CreateRepositoryRequest { repository: Some(node.repo(&rel)), ..Default::default() })
            .await
            .expect_err("exists");
        assert_eq!(e.code(), Code::AlreadyExists);
    }
    assert_eq!(tmp_leftovers(&node), 0, "no staging directories left behind");

    let before = snapshot(&node.storage);
    for (branch, code) in
        [(&b"a..b"[..], Code::InvalidArgument), (b"-x", Code::InvalidArgument), (b"x y", Code::InvalidArgument)]
    {
        let e = c
            .create_repository(CreateRepositoryRequest {
                repository: Some(node.repo("bad.git")),
                default_branch: branch.to_vec(),
                object_format: 0,
            })
            .await
            .expect_err("bad branch");
        assert_eq!(e.code(), code, "{branch:?}");
    }
    let e = c
        .create_repository(CreateRepositoryRequest {
            repository: Some(node.repo("bad.git")),
            object_format: 9,
            ..Default::default()
        })
        .await
        .expect_err("bad format");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(snapshot(&node.storage), before, "failed creates wrote nothing");
}

#[tokio::test]
async fn concurrent_creates_of_one_repository() {
    let node = Node::start().await;
    let c = client(&node).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut c = c.clone();
        let repo = node.repo("race.git");
        tasks.push(tokio::spawn(async move {
            c.create_repository(CreateRepositoryRequest { repository: Some(repo), ..Default::default() }).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("join") {
            Ok(_) => ok += 1,
            Err(e) => assert!(matches!(e.code(), Code::AlreadyExists | Code::FailedPrecondition), "{e:?}"),
        }
    }
    assert_eq!(ok, 1);
    git(Some(&node.storage.join("race.git")), &["fsck", "--no-progress"]);
}

#[tokio::test]
async fn remove_repository() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    let repo = node.create_repo("group/gone.git", Format::Sha1);
    repo.commit_on("main", &[("README", "hi")], "first");
    c.remove_repository(RemoveRepositoryRequest { repository: Some(node.repo("group/gone.git")) })
        .await
        .expect("remove");
    assert!(!repo.path.exists());
    let e = c
        .remove_repository(RemoveRepositoryRequest { repository: Some(node.repo("group/gone.git")) })
        .await
        .expect_err("already gone");
    assert_eq!((e.code(), e.message()), (Code::NotFound, "repository does not exist"));
    // Deletion of the staged copy finishes in the background.
    for _ in 0..100 {
        if tmp_leftovers(&node) == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(tmp_leftovers(&node), 0);
    assert!(!node.storage.join("group/gone.git.lock").exists());
}

#[tokio::test]
async fn has_local_branches_and_sizes() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let rel = format!("{}.git", format.name());
        let repo = node.create_repo(&rel, format);
        let has = c.has_local_branches(HasLocalBranchesRequest { repository: Some(node.repo(&rel)) }).await;
        assert!(!has.expect("ok").into_inner().value);
        let tagged = repo.commit(&[("a", "a")], &[], "tagged only");
        repo.git(&["update-ref", "refs/tags/v1", &tagged]);
        let has = c.has_local_branches(HasLocalBranchesRequest { repository: Some(node.repo(&rel)) }).await;
        assert!(!has.expect("ok").into_inner().value, "tags are not branches");
        repo.commit_on("main", &[("big", &"x".repeat(300 * 1024))], "big file");
        let has = c.has_local_branches(HasLocalBranchesRequest { repository: Some(node.repo(&rel)) }).await;
        assert!(has.expect("ok").into_inner().value);

        let size = c.repository_size(RepositorySizeRequest { repository: Some(node.repo(&rel)) }).await.expect("size");
        assert!(size.into_inner().size > 0);
        let objects = c
            .get_object_directory_size(GetObjectDirectorySizeRequest { repository: Some(node.repo(&rel)) })
            .await
            .expect("object size")
            .into_inner()
            .size;
        assert!(objects > 0);
    }
}

#[tokio::test]
async fn repository_info_reads_the_on_disk_state() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    let repo = node.create_repo("info.git", Format::Sha1);
    let first = repo.commit_on("main", &[("a", "1")], "one");
    repo.commit_on("main", &[("a", "2")], "two");
    repo.git(&["update-ref", "refs/heads/feature", &first]);
    let info = c.repository_info(RepositoryInfoRequest { repository: Some(node.repo("info.git")) }).await;
    let info = info.expect("info").into_inner();
    let objects = info.objects.expect("objects");
    assert!(objects.loose_objects_count >= 6, "{objects:?}");
    assert_eq!(objects.packfile_count, 0);
    assert_eq!(info.references.as_ref().expect("refs").loose_count, 2);
    assert!(info.size > 0);
    assert!(!info.is_object_pool);
    assert!(info.alternates.is_none());

    repo.git(&["pack-refs", "--all"]);
    repo.git(&["repack", "-a", "-d", "-q", "--write-bitmap-index"]);
    repo.git(&["commit-graph", "write", "--reachable", "--changed-paths", "--split", "--no-progress"]);
    std::fs::write(repo.path.join("objects/info/alternates"), "/somewhere/objects\n").expect("alternates");
    let info = c.repository_info(RepositoryInfoRequest { repository: Some(node.repo("info.git")) }).await;
    let info = info.expect("info").into_inner();
    let objects = info.objects.expect("objects");
    assert_eq!(objects.packfile_count, 1, "{objects:?}");
    assert_eq!(objects.loose_objects_count, 0);
    assert_eq!(info.references.as_ref().expect("refs").loose_count, 0);
    assert!(info.references.as_ref().expect("refs").packed_size > 0);
    let bitmap = info.bitmap.expect("bitmap");
    assert_eq!(bitmap.version, 1);
    let graph = info.commit_graph.expect("commit graph");
    assert_eq!(graph.commit_graph_chain_length, 1);
    assert!(graph.has_bloom_filters && graph.has_generation_data, "{graph:?}");
    assert_eq!(info.alternates.expect("alternates").object_directories, vec!["/somewhere/objects"]);
}

#[tokio::test]
async fn write_ref_updates_references_atomically() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let rel = format!("w-{}.git", format.name());
        let repo = node.create_repo(&rel, format);
        let one = repo.commit_on("main", &[("f", "1")], "one");
        let two = repo.commit_on("main", &[("f", "2")], "two");
        let write = |r: &str, rev: &str, old: &str| WriteRefRequest {
            repository: Some(node.repo(&rel)),
            r#ref: r.as_bytes().to_vec(),
            revision: rev.as_bytes().to_vec(),
            old_revision: old.as_bytes().to_vec(),
        };
        c.write_ref(write("refs/heads/copy", "main~1", "")).await.expect("create by revision");
        assert_eq!(repo.git(&["rev-parse", "refs/heads/copy"]), one);
        c.write_ref(write("refs/heads/copy", &two, &one)).await.expect("update with matching old value");
        assert_eq!(repo.git(&["rev-parse", "refs/heads/copy"]), two);
        let e = c.write_ref(write("refs/heads/copy", &one, &one)).await.expect_err("stale old value");
        assert_eq!(e.code(), Code::Internal, "{e:?}");
        assert_eq!(repo.git(&["rev-parse", "refs/heads/copy"]), two, "a failed update changes nothing");
        let zero = "0".repeat(two.len());
        c.write_ref(write("refs/heads/copy", &zero, "")).await.expect("delete with zero oid");
        assert!(!repo.git(&["for-each-ref", "--format=%(refname)"]).contains("refs/heads/copy"));
        c.write_ref(write("HEAD", "refs/heads/other", "")).await.expect("move HEAD");
        assert_eq!(repo.git(&["symbolic-ref", "HEAD"]), "refs/heads/other");

        let before = snapshot(&repo.path);
        for (r, rev, old, why) in [
            ("main", "main", "", "not a full reference"),
            ("refs/heads/a..b", "main", "", "invalid name"),
            ("refs/heads/x", "-main", "", "revision looks like an option"),
            ("refs/heads/x", "ma in", "", "whitespace"),
            ("refs/heads/x", "main", "-old", "old revision looks like an option"),
            ("HEAD", "main", "", "HEAD needs a full reference"),
            ("", "main", "", "empty ref"),
        ] {
            let e = c.write_ref(write(r, rev, old)).await.expect_err(why);
            assert_eq!(e.code(), Code::InvalidArgument, "{why}: {e:?}");
        }
        let e = c.write_ref(write("refs/heads/x", "nosuchrev", "")).await.expect_err("unknown revision");
        assert_eq!(e.code(), Code::Internal);
        assert_eq!(snapshot(&repo.path), before, "rejected writes touched nothing");
    }
}

#[tokio::test]
async fn find_merge_base() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let rel = format!("mb-{}.git", format.name());
        let repo = node.create_repo(&rel, format);
        let base = repo.commit_on("main", &[("f", "base")], "base");
        repo.commit_on("main", &[("f", "main")], "main");
        repo.git(&["update-ref", "refs/heads/feature", &base]);
        let feature = repo.commit_on("feature", &[("f", "feature")], "feature");
        let unrelated = repo.commit(&[("g", "x")], &[], "root");
        let ask = |revs: Vec<&str>| FindMergeBaseRequest {
            repository: Some(node.repo(&rel)),
            revisions: revs.into_iter().map(|r| r.as_bytes().to_vec()).collect(),
        };
        let got = c.find_merge_base(ask(vec!["main", &feature])).await.expect("merge base").into_inner();
        assert_eq!(got.base, base);
        assert_eq!(got.base, repo.git(&["merge-base", "main", "feature"]));
        let got = c.find_merge_base(ask(vec!["main", "feature", "main"])).await.expect("three").into_inner();
        assert_eq!(got.base, repo.git(&["merge-base", "main", "feature", "main"]));
        let got = c.find_merge_base(ask(vec!["main", &unrelated])).await.expect("unrelated").into_inner();
        assert_eq!(got.base, "");
        let got = c.find_merge_base(ask(vec!["main", "nope"])).await.expect("unknown").into_inner();
        assert_eq!(got.base, "");
        let e = c.find_merge_base(ask(vec!["main"])).await.expect_err("one revision");
        assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "at least 2 revisions are required"));
    }
}

#[tokio::test]
async fn get_config_streams_the_file() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    let repo = node.create_repo("cfg.git", Format::Sha256);
    repo.git(&["config", "gitlab.fullpath", "group/project"]);
    let mut stream =
        c.get_config(GetConfigRequest { repository: Some(node.repo("cfg.git")) }).await.expect("config").into_inner();
    let mut data = Vec::new();
    while let Some(msg) = stream.message().await.expect("message") {
        data.extend(msg.data);
    }
    assert_eq!(data, std::fs::read(repo.path.join("config")).expect("read config"));
    let e = c.get_config(GetConfigRequest { repository: Some(node.repo("missing.git")) }).await.expect_err("missing");
    assert_eq!(e.code(), Code::NotFound);
}

/// The checksum as upstream defines it, computed independently from
/// `git show-ref --head` output.
fn expected_checksum(repo: &TestRepo) -> String {
    let out = git(Some(&repo.path), &["show-ref", "--head"]);
    let mut sum = [0u8; 20];
    for line in out.lines() {
        let counts = line.contains("HEAD")
            || ["heads", "tags", "keep-around", "merge-requests", "environments", "notes"]
                .iter()
                .any(|p| line.contains(&format!("refs/{p}/")));
        if counts {
            for (s, d) in sum.iter_mut().zip(sha1::Sha1::digest(line.as_bytes())) {
                *s ^= d;
            }
        }
    }
    match sum.iter().position(|b| *b != 0) {
        Some(i) => hex::encode(&sum[i..]),
        None => "0".repeat(40),
    }
}

#[tokio::test]
async fn calculate_checksum_matches_upstream_definition() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let rel = format!("sum-{}.git", format.name());
        let repo = node.create_repo(&rel, format);
        let sum = |c: &mut RepositoryServiceClient<Channel>| {
            let mut c = c.clone();
            let r = node.repo(&rel);
            async move { c.calculate_checksum(CalculateChecksumRequest { repository: Some(r) }).await }
        };
        assert_eq!(sum(&mut c).await.expect("empty").into_inner().checksum, "0".repeat(40));
        let tip = repo.commit_on("main", &[("f", "1")], "one");
        repo.git(&["tag", "-a", "-m", "annotated", "v1", &tip]);
        repo.git(&["update-ref", "refs/keep-around/x", &tip]);
        repo.git(&["update-ref", "refs/remotes/origin/main", &tip]);
        repo.git(&["symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main"]);
        repo.git(&["update-ref", "refs/merge-requests/1/head", &tip]);
        let got = sum(&mut c).await.expect("checksum").into_inner().checksum;
        assert_eq!(got, expected_checksum(&repo));
        assert_ne!(got, "0".repeat(40));
    }
    // A directory that only looks like a repository is data loss.
    let fake = node.storage.join("fake.git");
    for d in ["objects", "refs"] {
        std::fs::create_dir_all(fake.join(d)).expect("mkdir");
    }
    std::fs::write(fake.join("HEAD"), "garbage").expect("HEAD");
    let e = c
        .calculate_checksum(CalculateChecksumRequest { repository: Some(node.repo("fake.git")) })
        .await
        .expect_err("fake");
    assert_eq!(e.code(), Code::DataLoss, "{e:?}");
}

fn hooks_tar(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_cksum();
        b.append_data(&mut h, path, *data).expect("append");
    }
    b.into_inner().expect("tar")
}

#[tokio::test]
#[allow(deprecated, reason = "the deprecated hook RPCs are served and must be checked too")]
async fn custom_hooks_round_trip() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    let repo = node.create_repo("hooks.git", Format::Sha1);
    let archive = hooks_tar(&[
        ("custom_hooks/pre-receive", b"#!/bin/sh\necho pre\n", 0o755),
        ("custom_hooks/post-receive.d/notify", b"#!/bin/sh\n", 0o700),
    ]);
    // Several messages, the first naming the repository.
    let mut msgs = vec![SetCustomHooksRequest { repository: Some(node.repo("hooks.git")), data: Vec::new() }];
    msgs.extend(archive.chunks(700).map(|c| SetCustomHooksRequest { repository: None, data: c.to_vec() }));
    c.set_custom_hooks(futures::stream::iter(msgs)).await.expect("set hooks");
    assert_eq!(std::fs::read(repo.path.join("custom_hooks/pre-receive")).expect("hook"), b"#!/bin/sh\necho pre\n");

    let mut stream = c
        .get_custom_hooks(GetCustomHooksRequest { repository: Some(node.repo("hooks.git")) })
        .await
        .expect("get")
        .into_inner();
    let mut data = Vec::new();
    while let Some(m) = stream.message().await.expect("msg") {
        data.extend(m.data);
    }
    let mut names: Vec<(String, u32)> = tar::Archive::new(data.as_slice())
        .entries()
        .expect("entries")
        .map(|e| e.expect("entry"))
        .filter(|e| e.header().entry_type() == tar::EntryType::Regular)
        .map(|e| (e.path().expect("path").display().to_string(), e.header().mode().expect("mode") & 0o777))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![("custom_hooks/post-receive.d/notify".to_owned(), 0o700), ("custom_hooks/pre-receive".to_owned(), 0o755)]
    );

    // The deprecated names behave the same; an empty archive clears hooks.
    c.restore_custom_hooks(futures::stream::iter(vec![RestoreCustomHooksRequest {
        repository: Some(node.repo("hooks.git")),
        data: Vec::new(),
    }]))
    .await
    .expect("restore empty");
    assert!(!repo.path.join("custom_hooks/pre-receive").exists());
    let mut stream = c
        .backup_custom_hooks(BackupCustomHooksRequest { repository: Some(node.repo("hooks.git")) })
        .await
        .expect("backup")
        .into_inner();
    let mut n = 0;
    while stream.message().await.expect("msg").is_some() {
        n += 1;
    }
    assert!(n <= 1);

    // A hostile archive is refused and changes nothing.
    c.set_custom_hooks(futures::stream::iter(vec![SetCustomHooksRequest {
        repository: Some(node.repo("hooks.git")),
        data: archive.clone(),
    }]))
    .await
    .expect("set again");
    let before = snapshot(node.dir.path());
    let mut evil = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    h.set_cksum();
    evil.append_link(&mut h, "custom_hooks/pre-receive", "/etc/passwd").expect("link");
    let e = c
        .set_custom_hooks(futures::stream::iter(vec![SetCustomHooksRequest {
            repository: Some(node.repo("hooks.git")),
            data: evil.into_inner().expect("tar"),
        }]))
        .await
        .expect_err("symlink refused");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(snapshot(node.dir.path()), before);
    let e =
        c.set_custom_hooks(futures::stream::iter(Vec::<SetCustomHooksRequest>::new())).await.expect_err("empty stream");
    assert_eq!(e.code(), Code::InvalidArgument);
    let _ = STORAGE;
}
