//! RemoteService against a real node: remotes are repositories of the
//! same node served over loopback HTTP by its smart-HTTP front door
//! (request-supplied URLs may only use network transports).

use crate::support::git::{Format, TestRepo, git};
use crate::support::wire::HttpFrontDoor;
use crate::support::{Node, STORAGE};
use cairn_proto::gitaly::remote_service_client::RemoteServiceClient;
use cairn_proto::gitaly::update_remote_mirror_request::Remote;
use cairn_proto::gitaly::*;
use tonic::Code;
use tonic::transport::Channel;

const FORMATS: [Format; 2] = [Format::Sha1, Format::Sha256];

async fn client(node: &Node) -> RemoteServiceClient<Channel> {
    RemoteServiceClient::new(node.channel().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_remote_repository_over_http() {
    let node = Node::start().await;
    let front = tokio::task::block_in_place(|| HttpFrontDoor::start(&node, STORAGE));
    let c = client(&node).await;
    let exists = |remote: String| {
        let mut c = c.clone();
        async move {
            c.find_remote_repository(FindRemoteRepositoryRequest { remote, storage_name: STORAGE.into() })
                .await
                .map(|r| r.into_inner().exists)
        }
    };
    for format in FORMATS {
        let name = format!("r-{}.git", format.name());
        let repo = node.create_repo(&name, format);
        repo.commit_on("main", &[("a", "a\n")], "one");
        assert!(exists(front.url(&name)).await.expect("ok"), "{format:?}");
    }
    assert!(!exists(front.url("missing.git")).await.expect("ok"));
    // Local paths are refused like any other unreachable remote.
    let local = node.storage.join("r-sha1.git");
    assert!(!exists(local.display().to_string()).await.expect("ok"));
    assert!(!exists(format!("file://{}", local.display())).await.expect("ok"));
    let e = exists(String::new()).await.expect_err("empty remote");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "empty remote can't be checked."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_remote_root_ref_over_http() {
    let node = Node::start().await;
    let front = tokio::task::block_in_place(|| HttpFrontDoor::start(&node, STORAGE));
    node.create_repo("local.git", Format::Sha1);
    let mut c = client(&node).await;
    let req = |url: String| FindRemoteRootRefRequest {
        repository: Some(node.repo("local.git")),
        remote_url: url,
        http_authorization_header: "secret".into(),
        ..Default::default()
    };
    for format in FORMATS {
        let name = format!("r-{}.git", format.name());
        let repo = node.create_repo(&name, format);
        repo.commit_on("trunk", &[("a", "a\n")], "one");
        repo.commit_on("other", &[("b", "b\n")], "two");
        repo.git(&["symbolic-ref", "HEAD", "refs/heads/trunk"]);
        let r = c.find_remote_root_ref(req(front.url(&name))).await.expect("root ref").into_inner();
        assert_eq!(r.r#ref, "trunk", "{format:?}");
    }
    node.create_repo("empty.git", Format::Sha1);
    let e = c.find_remote_root_ref(req(front.url("empty.git"))).await.expect_err("unborn HEAD");
    assert_eq!((e.code(), e.message()), (Code::NotFound, "no remote HEAD found"));
    let e = c.find_remote_root_ref(req(front.url("missing.git"))).await.expect_err("no repository there");
    assert_eq!(e.code(), Code::Internal, "{e:?}");
    let e = c.find_remote_root_ref(req(String::new())).await.expect_err("no URL");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "missing remote URL"));
    let mut bad = req(front.url("r-sha1.git"));
    bad.resolved_address = "not-an-ip".into();
    let e = c.find_remote_root_ref(bad).await.expect_err("bad resolved address");
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "couldn't get curloptResolve config: resolved address has invalid IPv4/IPv6 address")
    );
    let mut none = req(front.url("r-sha1.git"));
    none.repository = None;
    let e = c.find_remote_root_ref(none).await.expect_err("no repository");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "repository not set"));
}

fn heads_and_tags(repo: &TestRepo) -> String {
    git(Some(&repo.path), &["for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/", "refs/tags/"])
}

async fn mirror(
    node: &Node,
    source: &str,
    url: String,
    patterns: &[&str],
    keep_divergent_refs: bool,
) -> Result<Vec<String>, tonic::Status> {
    let first = UpdateRemoteMirrorRequest {
        repository: Some(node.repo(source)),
        remote: Some(Remote { url, ..Default::default() }),
        keep_divergent_refs,
        ..Default::default()
    };
    // Patterns come in a second message, as clients may send them.
    let second = UpdateRemoteMirrorRequest {
        only_branches_matching: patterns.iter().map(|p| p.as_bytes().to_vec()).collect(),
        ..Default::default()
    };
    let r = client(node).await.update_remote_mirror(futures::stream::iter(vec![first, second])).await?;
    Ok(r.into_inner().divergent_refs.into_iter().map(|r| String::from_utf8_lossy(&r).into_owned()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_remote_mirror_pushes_branches_and_tags() {
    let node = Node::start().await;
    let front = tokio::task::block_in_place(|| HttpFrontDoor::start(&node, STORAGE));
    for format in FORMATS {
        let (src_name, dst_name) = (format!("src-{}.git", format.name()), format!("mirror-{}.git", format.name()));
        let src = node.create_repo(&src_name, format);
        let one = src.commit_on("main", &[("a", "a\n")], "one");
        let two = src.commit_on("main", &[("a", "b\n")], "two");
        src.git(&["update-ref", "refs/heads/feature", &one]);
        src.git(&["tag", "-a", "-m", "t", "v1", &one]);
        src.git(&["update-ref", "refs/merge-requests/1/head", &two]);
        let dst = node.create_repo(&dst_name, format);

        assert!(mirror(&node, &src_name, front.url(&dst_name), &[], false).await.expect("mirror").is_empty());
        assert_eq!(heads_and_tags(&dst), heads_and_tags(&src), "{format:?}");
        let internal = git(Some(&dst.path), &["for-each-ref", "refs/merge-requests/"]);
        assert!(internal.is_empty(), "only branches and tags are mirrored: {internal}");

        // The mirror gained branches: one merged into main (deleted), one
        // with work only there (kept). A local branch went away and a new
        // one appeared.
        dst.git(&["update-ref", "refs/heads/merged", &one]);
        let unmerged = dst.commit(&[("u", "u\n")], &[&two], "only on the mirror");
        dst.git(&["update-ref", "refs/heads/unmerged", &unmerged]);
        src.git(&["update-ref", "-d", "refs/heads/feature"]);
        let three = src.commit_on("topic", &[("t", "t\n")], "three");
        mirror(&node, &src_name, front.url(&dst_name), &[], false).await.expect("mirror again");
        let mirrored = heads_and_tags(&dst);
        assert!(!mirrored.contains("refs/heads/merged"), "{mirrored}");
        assert!(!mirrored.contains("refs/heads/feature"), "{mirrored}");
        assert!(mirrored.contains(&format!("{unmerged} refs/heads/unmerged")), "{mirrored}");
        assert!(mirrored.contains(&format!("{three} refs/heads/topic")), "{mirrored}");

        // Divergence: the mirror's main moved elsewhere; kept and reported.
        let theirs = dst.commit(&[("x", "x\n")], &[&one], "diverged");
        dst.git(&["update-ref", "refs/heads/main", &theirs]);
        let four = src.commit_on("main", &[("a", "c\n")], "four");
        let divergent = mirror(&node, &src_name, front.url(&dst_name), &[], true).await.expect("keep divergent");
        assert_eq!(divergent, vec!["refs/heads/main".to_owned()]);
        assert_eq!(dst.git(&["rev-parse", "refs/heads/main"]), theirs);
        // Without keeping, the push is forced.
        mirror(&node, &src_name, front.url(&dst_name), &[], false).await.expect("force");
        assert_eq!(dst.git(&["rev-parse", "refs/heads/main"]), four);

        // Only matching branches move (tags always do).
        let five = src.commit_on("release-1", &[("r", "r\n")], "five");
        src.commit_on("topic", &[("t", "u\n")], "six");
        src.git(&["tag", "v2", &five]);
        mirror(&node, &src_name, front.url(&dst_name), &["release-*"], false).await.expect("patterns");
        assert_eq!(dst.git(&["rev-parse", "refs/heads/release-1"]), five);
        assert_eq!(dst.git(&["rev-parse", "refs/heads/topic"]), three, "not matched");
        assert_eq!(dst.git(&["rev-parse", "refs/tags/v2"]), five);
        git(Some(&dst.path), &["fsck", "--strict", "--no-dangling"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_remote_mirror_rejects_bad_requests() {
    let node = Node::start().await;
    node.create_repo("src.git", Format::Sha1).commit_on("main", &[("a", "a\n")], "one");
    let c = client(&node).await;
    let send = |msg: UpdateRemoteMirrorRequest| {
        let mut c = c.clone();
        async move { c.update_remote_mirror(futures::stream::iter(vec![msg])).await }
    };
    let base = UpdateRemoteMirrorRequest { repository: Some(node.repo("src.git")), ..Default::default() };
    let e = send(base.clone()).await.expect_err("no remote");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "missing Remote"));
    let e =
        send(UpdateRemoteMirrorRequest { remote: Some(Remote::default()), ..base.clone() }).await.expect_err("no URL");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "remote is missing URL"));
    let remote = Some(Remote { url: "https://example.invalid/x.git".into(), ..Default::default() });
    let e = send(UpdateRemoteMirrorRequest { repository: None, remote: remote.clone(), ..Default::default() })
        .await
        .expect_err("no repository");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "repository not set"));
    // A local path as mirror is refused: it would write into the node's
    // own repositories.
    node.create_repo("victim.git", Format::Sha1);
    let local = Some(Remote { url: node.storage.join("victim.git").display().to_string(), ..Default::default() });
    let e = send(UpdateRemoteMirrorRequest { remote: local, ..base }).await.expect_err("local path");
    assert_eq!(e.code(), Code::Internal, "{e:?}");
    assert!(git(Some(&node.storage.join("victim.git")), &["for-each-ref"]).is_empty());
}
