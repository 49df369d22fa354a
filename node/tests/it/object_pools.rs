//! ObjectPoolService against a real node: pools created from real
//! repositories, members linked and disconnected, pools fetched into and
//! housekept, with every effect checked through the git CLI.

use crate::support::git::{Format, TestRepo, git, has_object};
use crate::support::{Node, STORAGE};
use cairn_proto::gitaly::object_pool_service_client::ObjectPoolServiceClient;
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::*;
use std::path::Path;
use tonic::Code;
use tonic::transport::Channel;

const POOL: &str = "@pools/ab/cd/abcd000000000000000000000000000000000000000000000000000000000000.git";
const OTHER_POOL: &str = "@pools/12/34/1234000000000000000000000000000000000000000000000000000000000000.git";

async fn client(node: &Node) -> ObjectPoolServiceClient<Channel> {
    ObjectPoolServiceClient::new(node.channel().await)
}

fn pool(node: &Node, relative: &str) -> Option<ObjectPool> {
    Some(ObjectPool { repository: Some(node.repo(relative)) })
}

fn fsck(repo: &Path) {
    git(Some(repo), &["fsck", "--no-dangling", "--connectivity-only"]);
}

fn refs(repo: &Path, prefix: &str) -> String {
    git(Some(repo), &["for-each-ref", "--format=%(objectname) %(refname)", prefix])
}

async fn create_pool(c: &mut ObjectPoolServiceClient<Channel>, node: &Node, relative: &str, origin: &str) {
    c.create_object_pool(CreateObjectPoolRequest {
        object_pool: pool(node, relative),
        origin: Some(node.repo(origin)),
    })
    .await
    .expect("create pool");
}

#[tokio::test]
async fn pool_lifecycle_keeps_members_whole() {
    for format in [Format::Sha1, Format::Sha256] {
        let node = Node::start().await;
        let mut c = client(&node).await;
        let mut repos = RepositoryServiceClient::new(node.channel().await);
        let origin = node.create_repo("@hashed/11/22/origin.git", format);
        let base = origin.commit_on("main", &[("README", "hello\n")], "base");

        create_pool(&mut c, &node, POOL, "@hashed/11/22/origin.git").await;
        let pool_path = node.storage.join(POOL);
        fsck(&pool_path);
        assert_eq!(refs(&pool_path, "refs/"), refs(&origin.path, "refs/"), "{format:?}");
        let config = std::fs::read_to_string(pool_path.join("config")).expect("config");
        assert!(!config.contains("[remote"), "no remote left: {config}");
        assert!(!pool_path.join("hooks").exists());
        assert_eq!(git(Some(&pool_path), &["rev-parse", "--show-object-format"]), format.name());

        // No pool yet.
        let got = c.get_object_pool(GetObjectPoolRequest { repository: Some(node.repo("@hashed/11/22/origin.git")) });
        assert_eq!(got.await.expect("get").into_inner().object_pool, None);

        // A branch pushed after the pool was made reaches it by a fetch.
        let feature = origin.commit_on("feature", &[("README", "hello\n"), ("f", "feature\n")], "feature");
        let fetch = FetchIntoObjectPoolRequest {
            origin: Some(node.repo("@hashed/11/22/origin.git")),
            object_pool: pool(&node, POOL),
        };
        c.fetch_into_object_pool(fetch.clone()).await.expect("fetch into pool");
        let pool_refs = refs(&pool_path, "refs/remotes/origin/");
        assert!(pool_refs.contains(&format!("{feature} refs/remotes/origin/heads/feature")), "{pool_refs}");

        // A fork whose only commit lives in the pool.
        let member = node.create_repo("@hashed/33/44/member.git", format);
        for _ in 0..2 {
            c.link_repository_to_object_pool(LinkRepositoryToObjectPoolRequest {
                object_pool: pool(&node, POOL),
                repository: Some(node.repo("@hashed/33/44/member.git")),
            })
            .await
            .expect("link (twice: idempotent)");
        }
        let alternates = std::fs::read_to_string(member.path.join("objects/info/alternates")).expect("alternates");
        assert_eq!(alternates, format!("../../../../../{POOL}/objects"));
        member.git(&["update-ref", "refs/heads/main", &feature]);
        fsck(&member.path);
        let got = c.get_object_pool(GetObjectPoolRequest { repository: Some(node.repo("@hashed/33/44/member.git")) });
        let got = got.await.expect("get").into_inner().object_pool.and_then(|p| p.repository);
        assert_eq!(got.map(|r| (r.storage_name, r.relative_path)), Some((STORAGE.to_owned(), POOL.to_owned())));

        // The origin drops the feature branch and moves on; the pool keeps
        // the feature commit alive for the member.
        origin.git(&["update-ref", "-d", "refs/heads/feature"]);
        let next = origin.commit_on("main", &[("README", "hello again\n")], "next");
        c.fetch_into_object_pool(fetch).await.expect("fetch into pool");
        let pool_refs = refs(&pool_path, "refs/remotes/origin/");
        assert!(pool_refs.contains(&format!("{next} refs/remotes/origin/heads/main")), "{pool_refs}");
        assert!(!pool_refs.contains("refs/remotes/origin/heads/feature"), "pruned: {pool_refs}");
        let dangling = refs(&pool_path, "refs/dangling/");
        assert!(dangling.contains(&format!("{feature} refs/dangling/{feature}")), "{dangling}");

        // Full housekeeping of the pool never loses the member's objects.
        for strategy in
            [optimize_repository_request::Strategy::Eager, optimize_repository_request::Strategy::Heuristical]
        {
            repos
                .optimize_repository(OptimizeRepositoryRequest {
                    repository: Some(node.repo(POOL)),
                    strategy: strategy.into(),
                })
                .await
                .expect("optimize pool");
        }
        assert_eq!(git(Some(&pool_path), &["count-objects", "-v"]).lines().next(), Some("count: 0"));
        fsck(&member.path);
        assert!(has_object(&pool_path, &feature) && has_object(&pool_path, &base));
        let e = repos
            .prune_unreachable_objects(PruneUnreachableObjectsRequest { repository: Some(node.repo(POOL)) })
            .await
            .expect_err("pools are never pruned");
        assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "pruning objects for object pool"));

        // Disconnected, the member stands alone.
        c.disconnect_git_alternates(DisconnectGitAlternatesRequest {
            repository: Some(node.repo("@hashed/33/44/member.git")),
        })
        .await
        .expect("disconnect");
        assert!(!member.path.join("objects/info/alternates").exists());
        fsck(&member.path);
        c.disconnect_git_alternates(DisconnectGitAlternatesRequest {
            repository: Some(node.repo("@hashed/33/44/member.git")),
        })
        .await
        .expect("no alternates: nothing to do");

        // Deleted, twice.
        for _ in 0..2 {
            c.delete_object_pool(DeleteObjectPoolRequest { object_pool: pool(&node, POOL) }).await.expect("delete");
        }
        assert!(!pool_path.exists());
        assert!(member.path.exists(), "members stay");
        fsck(&member.path);
    }
}

#[tokio::test]
async fn router_pool_paths_are_pools_too() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    let origin = node.create_repo("@cluster/repositories/6b/86/1", Format::Sha1);
    origin.commit_on("main", &[("a", "a\n")], "a");
    create_pool(&mut c, &node, "@cluster/pools/d4/73/2", "@cluster/repositories/6b/86/1").await;
    c.link_repository_to_object_pool(LinkRepositoryToObjectPoolRequest {
        object_pool: pool(&node, "@cluster/pools/d4/73/2"),
        repository: Some(node.repo("@cluster/repositories/6b/86/1")),
    })
    .await
    .expect("link");
    let got = c.get_object_pool(GetObjectPoolRequest { repository: Some(node.repo("@cluster/repositories/6b/86/1")) });
    let got = got.await.expect("get").into_inner().object_pool.and_then(|p| p.repository).map(|r| r.relative_path);
    assert_eq!(got.as_deref(), Some("@cluster/pools/d4/73/2"));
}

#[tokio::test]
async fn link_refuses_foreign_alternates_and_invalid_pools() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    let origin = node.create_repo("origin.git", Format::Sha1);
    origin.commit_on("main", &[("a", "a\n")], "a");
    create_pool(&mut c, &node, POOL, "origin.git").await;
    let alternates = origin.path.join("objects/info/alternates");
    std::fs::write(&alternates, "mock/objects").expect("write");
    let e = c
        .link_repository_to_object_pool(LinkRepositoryToObjectPoolRequest {
            object_pool: pool(&node, POOL),
            repository: Some(node.repo("origin.git")),
        })
        .await
        .expect_err("foreign alternates");
    assert_eq!((e.code(), e.message()), (Code::Internal, "unexpected alternates content: \"mock/objects\""));
    assert_eq!(std::fs::read_to_string(&alternates).expect("read"), "mock/objects", "left alone");

    let e = c
        .link_repository_to_object_pool(LinkRepositoryToObjectPoolRequest {
            object_pool: pool(&node, OTHER_POOL),
            repository: Some(node.repo("origin.git")),
        })
        .await
        .expect_err("no such pool");
    assert_eq!((e.code(), e.message()), (Code::FailedPrecondition, "object pool is not a valid git repository"));
    let e = c
        .link_repository_to_object_pool(LinkRepositoryToObjectPoolRequest {
            object_pool: pool(&node, POOL),
            repository: None,
        })
        .await
        .expect_err("no repository");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "repository not set"));
    let e = c
        .link_repository_to_object_pool(LinkRepositoryToObjectPoolRequest {
            object_pool: None,
            repository: Some(node.repo("origin.git")),
        })
        .await
        .expect_err("no pool");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "repository not set"));
}

#[tokio::test]
async fn create_rejects_bad_requests() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    node.create_repo("origin.git", Format::Sha1).commit_on("main", &[("a", "a\n")], "a");
    let shared = c.clone();
    let create = move |object_pool: Option<ObjectPool>, origin: Option<Repository>| {
        let mut c = shared.clone();
        async move {
            let e = c.create_object_pool(CreateObjectPoolRequest { object_pool, origin }).await.expect_err("refused");
            (e.code(), e.message().to_owned())
        }
    };
    let origin = || Some(node.repo("origin.git"));
    let invalid = (Code::InvalidArgument, "invalid object pool directory".to_owned());
    assert_eq!(create(pool(&node, POOL), None).await, (Code::InvalidArgument, "no origin repository".into()));
    assert_eq!(create(None, origin()).await, (Code::InvalidArgument, "no object pool repository".into()));
    assert_eq!(create(pool(&node, "outside-pools"), origin()).await, invalid);
    assert_eq!(create(pool(&node, &POOL.to_uppercase()), origin()).await, invalid);
    let mismatch = "@pools/aa/bb/ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff.git";
    assert_eq!(create(pool(&node, mismatch), origin()).await, invalid);
    assert_eq!(create(pool(&node, &format!("{POOL}/..")), origin()).await, invalid);
    assert!(!node.storage.join("@pools").exists(), "nothing created");

    create_pool(&mut c, &node, POOL, "origin.git").await;
    assert_eq!(
        create(pool(&node, POOL), origin()).await,
        (Code::FailedPrecondition, "creating object pool: repository exists already".into())
    );
    let missing = Some(node.repo("missing.git"));
    assert_eq!(create(pool(&node, OTHER_POOL), missing).await.0, Code::NotFound);
}

#[tokio::test]
async fn delete_get_fetch_and_disconnect_reject_bad_requests() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    node.create_repo("origin.git", Format::Sha1).commit_on("main", &[("a", "a\n")], "a");
    let (inside, traversal) = (format!("{POOL}/objects"), format!("{POOL}/../../../../.."));
    for (relative, message) in [
        ("@pools/ab", "invalid object pool directory"),
        ("@pools/ab/cd", "invalid object pool directory"),
        ("origin.git", "invalid object pool directory"),
        (inside.as_str(), "invalid object pool directory"),
        (traversal.as_str(), "relative path escapes root directory"),
    ] {
        let e = c
            .delete_object_pool(DeleteObjectPoolRequest { object_pool: pool(&node, relative) })
            .await
            .expect_err(relative);
        assert_eq!((e.code(), e.message()), (Code::InvalidArgument, message), "{relative}");
    }
    assert!(node.storage.join("origin.git").exists());
    let e = c.delete_object_pool(DeleteObjectPoolRequest { object_pool: None }).await.expect_err("no pool");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "repository not set"));

    let e = c.get_object_pool(GetObjectPoolRequest { repository: None }).await.expect_err("no repository");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "repository not set"));
    // Alternates that name no pool answer empty.
    std::fs::write(node.storage.join("origin.git/objects/info/alternates"), "not-a-directory").expect("write");
    let got = c.get_object_pool(GetObjectPoolRequest { repository: Some(node.repo("origin.git")) });
    assert_eq!(got.await.expect("get").into_inner().object_pool, None);
    std::fs::remove_file(node.storage.join("origin.git/objects/info/alternates")).expect("rm");

    let e = c.disconnect_git_alternates(DisconnectGitAlternatesRequest { repository: None }).await.expect_err("unset");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "repository not set"));

    let fetch = |origin: Option<Repository>, object_pool: Option<ObjectPool>| {
        let mut c = c.clone();
        async move {
            let e = c.fetch_into_object_pool(FetchIntoObjectPoolRequest { origin, object_pool }).await.expect_err("no");
            (e.code(), e.message().to_owned())
        }
    };
    let origin = || Some(node.repo("origin.git"));
    assert_eq!(fetch(None, pool(&node, POOL)).await, (Code::InvalidArgument, "origin is empty".into()));
    assert_eq!(fetch(origin(), None).await, (Code::InvalidArgument, "object pool is empty".into()));
    let mut elsewhere = node.repo("origin.git");
    elsewhere.storage_name = "other".into();
    assert_eq!(
        fetch(Some(elsewhere), pool(&node, POOL)).await,
        (Code::InvalidArgument, "origin has different storage than object pool".into())
    );
    assert_eq!(
        fetch(origin(), pool(&node, POOL)).await,
        (Code::InvalidArgument, "object pool invalid: object pool is not a valid git repository".into())
    );
}

#[tokio::test]
async fn disconnect_restores_alternates_when_objects_are_missing() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    // The member's commit lives in a repository only the pool's own
    // alternates reach, so migrating the pool's files is not enough.
    let deep = node.create_repo("deep.git", Format::Sha1);
    let commit = deep.commit_on("main", &[("a", "a\n")], "a");
    let pool_repo = TestRepo::create(&node.storage, "middle.git", Format::Sha1);
    std::fs::write(
        pool_repo.path.join("objects/info/alternates"),
        node.storage.join("deep.git/objects").to_string_lossy().as_bytes(),
    )
    .expect("write");
    let member = node.create_repo("member.git", Format::Sha1);
    let alternates = member.path.join("objects/info/alternates");
    std::fs::write(&alternates, "../../middle.git/objects").expect("write");
    member.git(&["update-ref", "refs/heads/main", &commit]);

    let e = c
        .disconnect_git_alternates(DisconnectGitAlternatesRequest { repository: Some(node.repo("member.git")) })
        .await
        .expect_err("objects missing without the alternate");
    assert_eq!(e.code(), Code::Internal);
    assert!(e.message().starts_with("git connectivity error while disconnected"), "{}", e.message());
    assert_eq!(std::fs::read_to_string(&alternates).expect("restored"), "../../middle.git/objects");
    fsck(&member.path);

    std::fs::write(&alternates, "../../middle.git/objects\n../../deep.git/objects\n").expect("write");
    let e = c
        .disconnect_git_alternates(DisconnectGitAlternatesRequest { repository: Some(node.repo("member.git")) })
        .await
        .expect_err("two alternates");
    assert_eq!((e.code(), e.message()), (Code::Internal, "multiple alternate object directories"));
}
