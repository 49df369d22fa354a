//! The node keeps repositories open between requests; these tests change a
//! repository behind its back with the git CLI (as a push, a repack or a
//! maintenance run would) and check that the next read sees the change.
//! They also cover objects reached only through `objects/info/alternates`.

use crate::support::Node;
use crate::support::git::Format;
use cairn_proto::gitaly::commit_service_client::CommitServiceClient;
use cairn_proto::gitaly::*;
use tonic::transport::Channel;

async fn find(c: &mut CommitServiceClient<Channel>, node: &Node, rel: &str, revision: &str) -> Option<String> {
    c.find_commit(FindCommitRequest { repository: Some(node.repo(rel)), revision: revision.into(), trailers: false })
        .await
        .expect("FindCommit answers")
        .into_inner()
        .commit
        .map(|commit| commit.id)
}

#[tokio::test]
async fn cached_repositories_see_out_of_band_changes() {
    for format in [Format::Sha1, Format::Sha256] {
        let node = Node::start().await;
        let rel = "fresh.git";
        let repo = node.create_repo(rel, format);
        let mut c = CommitServiceClient::new(node.channel().await);

        let first = repo.commit_on("main", &[("a", "1")], "first");
        assert_eq!(find(&mut c, &node, rel, "main").await.as_deref(), Some(first.as_str()));

        // A new loose object and a moved loose ref.
        let second = repo.commit_on("main", &[("a", "2")], "second");
        assert_eq!(find(&mut c, &node, rel, "main").await.as_deref(), Some(second.as_str()), "{format:?}");

        // Everything packed, loose objects gone: the open handle must find
        // the new pack and the packed ref.
        repo.git(&["repack", "-adq"]);
        repo.git(&["prune-packed"]);
        repo.git(&["pack-refs", "--all"]);
        assert!(std::fs::read_dir(repo.path.join("objects")).expect("objects").all(|e| {
            let name = e.expect("entry").file_name();
            let name = name.to_string_lossy();
            name == "pack" || name == "info"
        }));
        assert_eq!(find(&mut c, &node, rel, "main").await.as_deref(), Some(second.as_str()));
        assert_eq!(find(&mut c, &node, rel, &first).await.as_deref(), Some(first.as_str()));

        // A ref updated inside packed-refs only, then a second repack that
        // replaces the pack the handle knew.
        let third = repo.commit_on("main", &[("a", "3")], "third");
        repo.git(&["pack-refs", "--all"]);
        repo.git(&["repack", "-adq"]);
        repo.git(&["prune-packed"]);
        assert_eq!(find(&mut c, &node, rel, "main").await.as_deref(), Some(third.as_str()));

        // A deleted branch is gone for the next request.
        repo.git(&["branch", "side", &first]);
        assert_eq!(find(&mut c, &node, rel, "side").await.as_deref(), Some(first.as_str()));
        repo.git(&["update-ref", "-d", "refs/heads/side"]);
        assert_eq!(find(&mut c, &node, rel, "side").await, None);

        // A commit-graph written after the handle was opened is used, and
        // the answers do not change.
        repo.git(&["commit-graph", "write", "--reachable"]);
        assert_eq!(find(&mut c, &node, rel, "main~2").await.as_deref(), Some(first.as_str()));
    }
}

#[tokio::test]
async fn objects_in_alternates_are_read() {
    for format in [Format::Sha1, Format::Sha256] {
        let node = Node::start().await;
        let pool = node.create_repo("@pools/ab/cd/pool.git", format);
        let base = pool.commit_on("main", &[("shared", "from the pool")], "in the pool");
        pool.git(&["repack", "-adq"]);

        // A member whose own object directory is empty at first: its only
        // commit's parent lives in the pool.
        let member = node.create_repo("member.git", format);
        std::fs::write(
            member.path.join("objects/info/alternates"),
            format!("{}\n", pool.path.join("objects").display()),
        )
        .expect("write alternates");
        let own = member.commit(&[("own", "only here")], &[&base], "in the member");
        member.git(&["update-ref", "refs/heads/main", &own]);

        let mut c = CommitServiceClient::new(node.channel().await);
        assert_eq!(find(&mut c, &node, "member.git", "main").await.as_deref(), Some(own.as_str()));
        assert_eq!(find(&mut c, &node, "member.git", "main~1").await.as_deref(), Some(base.as_str()), "{format:?}");
        assert_eq!(find(&mut c, &node, "member.git", &base).await.as_deref(), Some(base.as_str()));

        // Without the alternates file the pool's commit is unknown again.
        node.create_repo("lone.git", format);
        assert_eq!(find(&mut c, &node, "lone.git", &base).await, None);
    }
}
