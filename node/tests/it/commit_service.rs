//! CommitService against the fixture repositories, compared with what the
//! git CLI says about the same repositories, in SHA-1 and SHA-256.

#![allow(clippy::disallowed_methods, reason = "tests compare with the real git CLI")]

use crate::support::fixture::{self, fgit, rel};
use crate::support::git::{Format, git};
use crate::support::{Node, snapshot};
use cairn_proto::gitaly::commit_service_client::CommitServiceClient;
use cairn_proto::gitaly::*;
use prost::Message as _;
use tonic::Code;
use tonic::transport::Channel;

const FORMATS: [Format; 2] = [Format::Sha1, Format::Sha256];

fn repo(format: Format, name: &str) -> Option<Repository> {
    Some(Repository { storage_name: "default".into(), relative_path: rel(format, name), ..Default::default() })
}

async fn client(node: &Node) -> CommitServiceClient<Channel> {
    CommitServiceClient::new(node.channel().await).max_decoding_message_size(64 << 20)
}

fn lines(s: &str) -> Vec<String> {
    s.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// Runs git in a fixture repository and returns its output lines.
fn glines(format: Format, name: &str, args: &[&str]) -> Vec<String> {
    lines(&fgit(format, name, args))
}

/// Every message of a server stream, or the status it ended with.
async fn all<T>(r: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>) -> Result<Vec<T>, tonic::Status> {
    let mut s = r?.into_inner();
    let mut out = Vec::new();
    while let Some(m) = s.message().await? {
        out.push(m);
    }
    Ok(out)
}

/// The first structured detail of a status, decoded.
fn detail<M: prost::Message + Default>(status: &tonic::Status) -> M {
    let details = cairn_node::error::status_details(status);
    M::decode(details.first().expect("a detail").value.as_slice()).expect("decodes")
}

async fn list_commits(
    c: &mut CommitServiceClient<Channel>,
    req: ListCommitsRequest,
) -> Result<Vec<String>, tonic::Status> {
    let msgs = all(c.list_commits(req).await).await?;
    Ok(msgs.into_iter().flat_map(|m| m.commits).map(|c| c.id).collect())
}

#[tokio::test]
async fn find_commit_matches_git() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        for revision in ["main", "main~1", "feature", "v1.0", "v1.0-nested", "signed", "main~1^2"] {
            let got = c
                .find_commit(FindCommitRequest {
                    repository: repo(format, "fixture"),
                    revision: revision.into(),
                    trailers: true,
                })
                .await
                .expect("find commit")
                .into_inner()
                .commit
                .unwrap_or_else(|| panic!("{revision} found"));
            let want = |fmt: &str| {
                fgit(format, "fixture", &["log", "-1", &format!("--format={fmt}"), &format!("{revision}^{{commit}}")])
            };
            assert_eq!(got.id, want("%H"), "{revision}");
            assert_eq!(got.tree_id, want("%T"));
            assert_eq!(got.parent_ids.join(" "), want("%P"));
            assert_eq!(String::from_utf8_lossy(&got.subject), want("%s"));
            let author = got.author.expect("author");
            assert_eq!(String::from_utf8_lossy(&author.name), want("%an"));
            assert_eq!(String::from_utf8_lossy(&author.email), want("%ae"));
            assert_eq!(author.date.expect("date").seconds.to_string(), want("%at"));
            assert_eq!(String::from_utf8_lossy(&author.timezone), want("%ad").rsplit(' ').next().expect("tz"));
            assert_eq!(
                got.body_size as usize,
                fgit(format, "fixture", &["cat-file", "commit", &got.id])
                    .split_once("\n\n")
                    .map_or(0, |(_, b)| b.len() + 1)
            );
            let expected_sig = if revision == "signed" { SignatureType::Pgp } else { SignatureType::None };
            assert_eq!(got.signature_type, i32::from(expected_sig), "{revision}");
        }
        let with_trailers = c
            .find_commit(FindCommitRequest {
                repository: repo(format, "fixture"),
                revision: "feature".into(),
                trailers: true,
            })
            .await
            .expect("find")
            .into_inner()
            .commit
            .expect("commit");
        let keys: Vec<String> =
            with_trailers.trailers.iter().map(|t| String::from_utf8_lossy(&t.key).into_owned()).collect();
        assert_eq!(keys, vec!["Signed-off-by", "Reviewed-by"]);
        let none = c
            .find_commit(FindCommitRequest {
                repository: repo(format, "fixture"),
                revision: "does-not-exist".into(),
                trailers: false,
            })
            .await
            .expect("missing revision is not an error");
        assert!(none.into_inner().commit.is_none());
        let blob = c
            .find_commit(FindCommitRequest {
                repository: repo(format, "fixture"),
                revision: "blob-tag".into(),
                trailers: false,
            })
            .await
            .expect("a tag of a blob names no commit");
        assert!(blob.into_inner().commit.is_none());
    }
    let empty = c
        .find_commit(FindCommitRequest {
            repository: repo(Format::Sha1, "empty"),
            revision: "HEAD".into(),
            trailers: false,
        })
        .await
        .expect("empty repository");
    assert!(empty.into_inner().commit.is_none());
    for bad in ["--output=/tmp/x", "-n1", "", "a b", "main:README.md"] {
        let e = c
            .find_commit(FindCommitRequest {
                repository: repo(Format::Sha1, "fixture"),
                revision: bad.into(),
                trailers: false,
            })
            .await
            .expect_err("invalid revision");
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}");
    }
}

/// ListCommits with each option against `git rev-list` with the same
/// options.
#[tokio::test]
async fn list_commits_matches_rev_list() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let base = || ListCommitsRequest { repository: repo(format, "fixture"), ..Default::default() };
        let revs = |r: &[&str]| r.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let cases: Vec<(ListCommitsRequest, Vec<&str>)> = vec![
            (ListCommitsRequest { revisions: revs(&["main"]), ..base() }, vec!["main"]),
            (ListCommitsRequest { revisions: revs(&["--all"]), ..base() }, vec!["--all"]),
            (ListCommitsRequest { revisions: revs(&["main", "^feature"]), ..base() }, vec!["main", "^feature"]),
            (ListCommitsRequest { revisions: revs(&["feature..main"]), ..base() }, vec!["feature..main"]),
            (ListCommitsRequest { revisions: revs(&["main...feature~1"]), ..base() }, vec!["main...feature~1"]),
            (
                ListCommitsRequest { revisions: revs(&["main", "--not", "feature"]), ..base() },
                vec!["main", "--not", "feature"],
            ),
            (
                ListCommitsRequest { revisions: revs(&["--branches", "--not", "--tags"]), ..base() },
                vec!["--branches", "--not", "--tags"],
            ),
            (ListCommitsRequest { revisions: revs(&["--tags=v1.0*"]), ..base() }, vec!["--tags=v1.0*"]),
            (ListCommitsRequest { revisions: revs(&["--glob=heads/f*"]), ..base() }, vec!["--glob=heads/f*"]),
            (ListCommitsRequest { revisions: revs(&["main^@"]), ..base() }, vec!["main^@"]),
            (ListCommitsRequest { revisions: revs(&["main~1^!"]), ..base() }, vec!["main~1^!"]),
            (ListCommitsRequest { revisions: revs(&["--all"]), order: 1, ..base() }, vec!["--topo-order", "--all"]),
            (ListCommitsRequest { revisions: revs(&["--all"]), order: 2, ..base() }, vec!["--date-order", "--all"]),
            (ListCommitsRequest { revisions: revs(&["main"]), reverse: true, ..base() }, vec!["--reverse", "main"]),
            (
                ListCommitsRequest { revisions: revs(&["--all"]), max_parents: 1, ..base() },
                vec!["--max-parents=1", "--all"],
            ),
            (
                ListCommitsRequest { revisions: revs(&["main", "feature"]), disable_walk: true, ..base() },
                vec!["--no-walk", "main", "feature"],
            ),
            (
                ListCommitsRequest { revisions: revs(&["main"]), first_parent: true, ..base() },
                vec!["--first-parent", "main"],
            ),
            (
                ListCommitsRequest { revisions: revs(&["--all"]), author: b"ann@".to_vec(), ..base() },
                vec!["--author=ann@", "--all"],
            ),
            (
                ListCommitsRequest {
                    revisions: revs(&["--all"]),
                    commit_message_patterns: vec![b"^merge".to_vec(), b"README\\|notes".to_vec()],
                    ignore_case: true,
                    ..base()
                },
                vec!["--regexp-ignore-case", "--grep=^merge", "--grep=README\\|notes", "--all"],
            ),
            (
                ListCommitsRequest {
                    revisions: revs(&["--all"]),
                    after: Some(prost_types::Timestamp { seconds: 1_600_000_100, nanos: 0 }),
                    before: Some(prost_types::Timestamp { seconds: 1_600_000_500, nanos: 0 }),
                    ..base()
                },
                vec!["--since=1600000100", "--until=1600000500", "--all"],
            ),
            (ListCommitsRequest { revisions: revs(&["main"]), skip: 2, ..base() }, vec!["--skip=2", "main"]),
            (
                ListCommitsRequest { revisions: revs(&["--all"]), paths: vec![b"CHANGELOG".to_vec()], ..base() },
                vec!["--all", "--", "CHANGELOG"],
            ),
            (
                ListCommitsRequest {
                    revisions: revs(&["main"]),
                    paths: vec![b"src".to_vec(), b"*.md".to_vec()],
                    ..base()
                },
                vec!["main", "--", "src", "*.md"],
            ),
            (
                ListCommitsRequest { revisions: revs(&["main"]), reverse: true, skip: 1, ..base() },
                vec!["--reverse", "--skip=1", "main"],
            ),
        ];
        for (req, args) in cases {
            let mut git_args = vec!["rev-list"];
            git_args.extend(args.iter().copied());
            let want = glines(format, "fixture", &git_args);
            let got = list_commits(&mut c, req).await.unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(got, want, "{format:?} {args:?}");
        }
        // Full commit data, as FindCommit gives it.
        let first = all(c.list_commits(ListCommitsRequest { revisions: revs(&["main"]), ..base() }).await)
            .await
            .expect("list")
            .remove(0)
            .commits
            .remove(0);
        let found = c
            .find_commit(FindCommitRequest {
                repository: repo(format, "fixture"),
                revision: b"main".to_vec(),
                trailers: false,
            })
            .await
            .expect("find")
            .into_inner()
            .commit
            .expect("commit");
        assert_eq!(first, found);
    }
}

#[tokio::test]
async fn list_commits_paginates_long_history() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let want = glines(format, "long", &["rev-list", "main"]);
        assert_eq!(want.len(), fixture::LONG_COMMITS);
        let mut got: Vec<String> = Vec::new();
        let mut token = String::new();
        loop {
            let msgs = all(c
                .list_commits(ListCommitsRequest {
                    repository: repo(format, "long"),
                    revisions: vec!["main".into()],
                    pagination_params: Some(PaginationParameter { page_token: token.clone(), limit: 3000 }),
                    ..Default::default()
                })
                .await)
            .await
            .expect("page");
            let page: Vec<String> = msgs.iter().flat_map(|m| m.commits.iter().map(|c| c.id.clone())).collect();
            if page.is_empty() {
                break;
            }
            // Upstream's cursor: the id last handed to the batcher when the
            // first message went out.
            let cursor = msgs[0].pagination_cursor.as_ref().expect("cursor").next_cursor.clone();
            if msgs.len() == 1 {
                assert_eq!(&cursor, page.last().expect("last"));
            } else {
                assert_eq!(cursor, page[msgs[0].commits.len()]);
            }
            assert!(page.len() <= 3000);
            token = page.last().expect("last").clone();
            got.extend(page);
        }
        assert_eq!(got, want, "{format:?}");
        let topo = list_commits(
            &mut c,
            ListCommitsRequest {
                repository: repo(format, "long"),
                revisions: vec!["--all".into()],
                order: 1,
                ..Default::default()
            },
        )
        .await
        .expect("topo");
        assert_eq!(topo, glines(format, "long", &["rev-list", "--topo-order", "--all"]));
        let range = list_commits(
            &mut c,
            ListCommitsRequest {
                repository: repo(format, "long"),
                revisions: vec!["r9000..main".into()],
                paths: vec![b"file-07.txt".to_vec()],
                ..Default::default()
            },
        )
        .await
        .expect("range");
        assert_eq!(range, glines(format, "long", &["rev-list", "r9000..main", "--", "file-07.txt"]));
    }
}

#[tokio::test]
async fn list_commits_rejects_bad_input() {
    let node = Node::start().await;
    let format = Format::Sha1;
    let storage = node.storage.clone();
    fixture::copy_repo(&storage, format, "fixture");
    let mut c = client(&node).await;
    let before = snapshot(&storage);
    let req = |revisions: &[&str]| ListCommitsRequest {
        repository: repo(format, "fixture"),
        revisions: revisions.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    };
    let out = node.dir.path().join("written");
    let option = format!("--output={}", out.display());
    for bad in [&option[..], "-n1", "main\0x", "a b", "main:README.md"] {
        let e = list_commits(&mut c, req(&["main", bad])).await.expect_err("invalid");
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}");
    }
    assert_eq!(list_commits(&mut c, req(&[])).await.expect_err("empty").code(), Code::InvalidArgument);
    assert_eq!(list_commits(&mut c, req(&["does-not-exist"])).await.expect_err("missing").code(), Code::Internal);
    let missing_oid = "1".repeat(40);
    assert_eq!(list_commits(&mut c, req(&[&missing_oid])).await.expect_err("bad object").code(), Code::Internal);
    let e = list_commits(&mut c, ListCommitsRequest { repository: None, ..req(&["main"]) }).await.expect_err("repo");
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = list_commits(&mut c, ListCommitsRequest { repository: repo(format, "nope"), ..req(&["main"]) })
        .await
        .expect_err("repo");
    assert_eq!(e.code(), Code::NotFound);
    assert!(!out.exists());
    assert_eq!(snapshot(&storage), before, "nothing written");
}

/// Short object ids that name several commits resolve to nothing.
#[tokio::test]
async fn ambiguous_short_ids() {
    let node = Node::start().await;
    for format in FORMATS {
        let path = fixture::copy_repo(&node.storage, format, "fixture");
        let tree = git(Some(&path), &["rev-parse", "main^{tree}"]);
        let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        let mut prefix = None;
        for i in 0..5000 {
            let id = git(Some(&path), &["commit-tree", &tree, "-m", &format!("collide {i}")]);
            if let Some(other) = seen.insert(id[..4].to_owned(), id.clone()) {
                git(Some(&path), &["update-ref", &format!("refs/collide/a{i}"), &other]);
                git(Some(&path), &["update-ref", &format!("refs/collide/b{i}"), &id]);
                prefix = Some(id[..4].to_owned());
                break;
            }
        }
        let prefix = prefix.expect("a 4-character collision among 5000 commits");
        let mut c = client(&node).await;
        let r = repo(format, "fixture");
        let e = list_commits(
            &mut c,
            ListCommitsRequest { repository: r.clone(), revisions: vec![prefix.clone()], ..Default::default() },
        )
        .await
        .expect_err("ambiguous");
        assert_eq!(e.code(), Code::Internal);
        let found = c
            .find_commit(FindCommitRequest { repository: r.clone(), revision: prefix.clone().into(), trailers: false })
            .await
            .expect("find")
            .into_inner();
        assert!(found.commit.is_none());
        let e = all(c
            .find_commits(FindCommitsRequest {
                repository: r.clone(),
                revision: prefix.clone().into(),
                limit: 10,
                ..Default::default()
            })
            .await)
        .await
        .expect_err("ambiguous");
        assert_eq!(e.code(), Code::NotFound);
        let d: FindCommitsError = detail(&e);
        assert!(
            matches!(d.error, Some(find_commits_error::Error::AmbiguousRef(ref a)) if a.reference == prefix.as_bytes())
        );
        let ancestor = c
            .commit_is_ancestor(CommitIsAncestorRequest {
                repository: r.clone(),
                ancestor_id: prefix.clone(),
                child_id: "main".into(),
            })
            .await
            .expect("is ancestor")
            .into_inner();
        assert!(!ancestor.value);
        let exists = all(c
            .check_objects_exist(futures::stream::iter(vec![CheckObjectsExistRequest {
                repository: r.clone(),
                revisions: vec![prefix.clone().into_bytes()],
            }]))
            .await)
        .await
        .expect("check");
        assert!(!exists[0].revisions[0].exists);
    }
}

#[tokio::test]
async fn list_all_commits_lists_the_object_database() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let mut want: Vec<String> = glines(
            format,
            "fixture",
            &["cat-file", "--batch-all-objects", "--batch-check=%(objecttype) %(objectname)"],
        )
        .into_iter()
        .filter_map(|l| l.strip_prefix("commit ").map(str::to_owned))
        .collect();
        want.sort();
        let req = |token: &str, limit: i32| ListAllCommitsRequest {
            repository: repo(format, "fixture"),
            pagination_params: Some(PaginationParameter { page_token: token.into(), limit }),
        };
        let ids = |msgs: Vec<ListAllCommitsResponse>| {
            msgs.into_iter().flat_map(|m| m.commits).map(|c| c.id).collect::<Vec<_>>()
        };
        assert_eq!(ids(all(c.list_all_commits(req("", 0)).await).await.expect("all")), want);
        let first = ids(all(c.list_all_commits(req("", 3)).await).await.expect("page"));
        assert_eq!(first, want[..3]);
        let rest = ids(all(c.list_all_commits(req(&first[2], 0)).await).await.expect("rest"));
        assert_eq!(rest, want[3..]);
        let empty = ids(all(c
            .list_all_commits(ListAllCommitsRequest { repository: repo(format, "empty"), pagination_params: None })
            .await)
        .await
        .expect("empty"));
        assert!(empty.is_empty());
    }
}

#[tokio::test]
async fn count_commits_matches_rev_list() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        for (name, req, args) in [
            ("long", CountCommitsRequest { revision: b"main".to_vec(), ..Default::default() }, vec!["main"]),
            (
                "long",
                CountCommitsRequest { revision: b"main".to_vec(), max_count: 100, ..Default::default() },
                vec!["--max-count=100", "main"],
            ),
            ("long", CountCommitsRequest { all: true, ..Default::default() }, vec!["--all"]),
            (
                "long",
                CountCommitsRequest { revision: b"main".to_vec(), path: b"file-07.txt".to_vec(), ..Default::default() },
                vec!["main", "--", "file-07.txt"],
            ),
            (
                "long",
                CountCommitsRequest {
                    revision: b"main".to_vec(),
                    path: b"file-0*".to_vec(),
                    max_count: 250,
                    ..Default::default()
                },
                vec!["--max-count=250", "main", "--", "file-0*"],
            ),
            (
                "long",
                CountCommitsRequest {
                    revision: b"main".to_vec(),
                    after: Some(prost_types::Timestamp { seconds: 1_500_300_000, nanos: 0 }),
                    before: Some(prost_types::Timestamp { seconds: 1_500_400_000, nanos: 0 }),
                    ..Default::default()
                },
                vec!["--since=1500300000", "--until=1500400000", "main"],
            ),
            (
                "long",
                CountCommitsRequest { revision: b"main".to_vec(), first_parent: true, ..Default::default() },
                vec!["--first-parent", "main"],
            ),
            (
                "long",
                CountCommitsRequest { revision: b"r5000..main".to_vec(), ..Default::default() },
                vec!["r5000..main"],
            ),
            (
                "fixture",
                CountCommitsRequest {
                    revision: b"main".to_vec(),
                    path: b"*.md".to_vec(),
                    global_options: Some(GlobalOptions { literal_pathspecs: true }),
                    ..Default::default()
                },
                vec!["--literal-pathspecs", "main", "--", "*.md"],
            ),
            (
                "fixture",
                CountCommitsRequest { revision: b"main".to_vec(), path: b"*.md".to_vec(), ..Default::default() },
                vec!["main", "--", "*.md"],
            ),
        ] {
            let mut git_args = vec!["rev-list", "--count"];
            if args.first() == Some(&"--literal-pathspecs") {
                git_args.insert(0, "--literal-pathspecs");
            }
            git_args.extend(args.iter().filter(|a| **a != "--literal-pathspecs"));
            let want: i32 = fgit(format, name, &git_args).parse().expect("count");
            let got = c
                .count_commits(CountCommitsRequest { repository: repo(format, name), ..req })
                .await
                .expect("count")
                .into_inner()
                .count;
            assert_eq!(got, want, "{format:?} {args:?}");
        }
        let missing = c
            .count_commits(CountCommitsRequest {
                repository: repo(format, "long"),
                revision: b"nope".to_vec(),
                ..Default::default()
            })
            .await
            .expect("missing revisions count nothing")
            .into_inner();
        assert_eq!(missing.count, 0);
    }
    let e = c
        .count_commits(CountCommitsRequest { repository: repo(Format::Sha1, "long"), ..Default::default() })
        .await
        .expect_err("no revision");
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .count_commits(CountCommitsRequest {
            repository: repo(Format::Sha1, "long"),
            revision: b"--all".to_vec(),
            ..Default::default()
        })
        .await
        .expect_err("option-like");
    assert_eq!(e.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn count_diverging_commits_matches_rev_list() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        for (name, from, to, max) in [
            ("fixture", "main", "feature", 0),
            ("fixture", "feature~1", "unicode-ß", 0),
            ("long", "side", "r5000", 0),
            ("long", "r2000", "main", 0),
            ("long", "r2000", "main", 100),
            ("fixture", "main", "main", 0),
        ] {
            let mut args =
                vec!["rev-list".to_owned(), "--count".into(), "--left-right".into(), format!("{from}...{to}")];
            if max != 0 {
                args.push(format!("--max-count={max}"));
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let want = fgit(format, name, &args);
            let got = c
                .count_diverging_commits(CountDivergingCommitsRequest {
                    repository: repo(format, name),
                    from: from.into(),
                    to: to.into(),
                    max_count: max,
                })
                .await
                .expect("count")
                .into_inner();
            assert_eq!(format!("{}\t{}", got.left_count, got.right_count), want, "{from}...{to}");
        }
        let e = c
            .count_diverging_commits(CountDivergingCommitsRequest {
                repository: repo(format, "fixture"),
                from: b"main".to_vec(),
                ..Default::default()
            })
            .await
            .expect_err("to missing");
        assert_eq!(e.code(), Code::InvalidArgument);
        let e = c
            .count_diverging_commits(CountDivergingCommitsRequest {
                repository: repo(format, "fixture"),
                from: b"main".to_vec(),
                to: b"nope".to_vec(),
                max_count: 0,
            })
            .await
            .expect_err("unknown");
        assert_eq!(e.code(), Code::Internal);
    }
}

#[tokio::test]
async fn commit_is_ancestor_matches_merge_base() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let path = fixture::path(format, "fixture");
        for (a, b) in [
            ("main~2", "main"),
            ("main", "main~2"),
            ("feature", "main"),
            ("v1.0", "v1.1"),
            ("main", "main"),
            ("unicode-ß", "feature"),
            ("nope", "main"),
            ("main", "HEAD"),
        ] {
            let want = std::process::Command::new("git")
                .args(["-C"])
                .arg(&path)
                .args(["merge-base", "--is-ancestor", a, b])
                .status()
                .expect("git")
                .success();
            let got = c
                .commit_is_ancestor(CommitIsAncestorRequest {
                    repository: repo(format, "fixture"),
                    ancestor_id: a.into(),
                    child_id: b.into(),
                })
                .await
                .expect("is ancestor")
                .into_inner()
                .value;
            assert_eq!(got, want, "{a} {b}");
        }
        let tree = fgit(format, "fixture", &["rev-parse", "main^{tree}"]);
        let got = c
            .commit_is_ancestor(CommitIsAncestorRequest {
                repository: repo(format, "fixture"),
                ancestor_id: tree,
                child_id: "main".into(),
            })
            .await
            .expect("tree")
            .into_inner();
        assert!(!got.value);
        let r5 = fgit(format, "long", &["rev-parse", "r500"]);
        let got = c
            .commit_is_ancestor(CommitIsAncestorRequest {
                repository: repo(format, "long"),
                ancestor_id: r5,
                child_id: "main".into(),
            })
            .await
            .expect("long")
            .into_inner();
        assert!(got.value);
    }
    for (a, b) in [("", "main"), ("main", "")] {
        let e = c
            .commit_is_ancestor(CommitIsAncestorRequest {
                repository: repo(Format::Sha1, "fixture"),
                ancestor_id: a.into(),
                child_id: b.into(),
            })
            .await
            .expect_err("empty");
        assert_eq!(e.code(), Code::InvalidArgument);
    }
}

fn log_ids(format: Format, name: &str, args: &[&str]) -> Vec<String> {
    let mut a = vec!["log", "--format=%H"];
    a.extend_from_slice(args);
    glines(format, name, &a)
}

async fn find_commits(
    c: &mut CommitServiceClient<Channel>,
    req: FindCommitsRequest,
) -> Result<Vec<GitCommit>, tonic::Status> {
    Ok(all(c.find_commits(req).await).await?.into_iter().flat_map(|m| m.commits).collect())
}

#[tokio::test]
async fn find_commits_matches_git_log() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let base =
            |name: &str| FindCommitsRequest { repository: repo(format, name), limit: 1000, ..Default::default() };
        let cases: Vec<(&str, FindCommitsRequest, Vec<&str>)> = vec![
            ("fixture", FindCommitsRequest { revision: b"main".to_vec(), ..base("fixture") }, vec!["main"]),
            ("fixture", base("fixture"), vec!["main"]),
            (
                "fixture",
                FindCommitsRequest { revision: b"main".to_vec(), limit: 2, offset: 1, ..base("fixture") },
                vec!["--skip=1", "--max-count=2", "main"],
            ),
            (
                "fixture",
                FindCommitsRequest {
                    revision: b"main".to_vec(),
                    paths: vec![b"CHANGELOG".to_vec()],
                    ..base("fixture")
                },
                vec!["main", "--", "CHANGELOG"],
            ),
            (
                "fixture",
                FindCommitsRequest {
                    revision: b"main".to_vec(),
                    paths: vec![b"src/core.rs".to_vec()],
                    follow: true,
                    ..base("fixture")
                },
                vec!["--follow", "main", "--", "src/core.rs"],
            ),
            (
                "fixture",
                FindCommitsRequest { revision: b"main".to_vec(), skip_merges: true, ..base("fixture") },
                vec!["--no-merges", "main"],
            ),
            ("fixture", FindCommitsRequest { all: true, ..base("fixture") }, vec!["--all", "--reverse"]),
            (
                "fixture",
                FindCommitsRequest { revision: b"main".to_vec(), first_parent: true, ..base("fixture") },
                vec!["--first-parent", "main"],
            ),
            (
                "fixture",
                FindCommitsRequest { revision: b"main".to_vec(), order: 1, ..base("fixture") },
                vec!["--topo-order", "main"],
            ),
            (
                "fixture",
                FindCommitsRequest { revision: b"main".to_vec(), author: b"Ann".to_vec(), ..base("fixture") },
                vec!["--author=Ann", "main"],
            ),
            (
                "fixture",
                FindCommitsRequest {
                    revision: b"main".to_vec(),
                    message_regex: "readme|NOTES".into(),
                    ..base("fixture")
                },
                vec!["--grep=readme|NOTES", "--regexp-ignore-case", "main"],
            ),
            (
                "fixture",
                FindCommitsRequest {
                    revision: b"main".to_vec(),
                    paths: vec![b"*.md".to_vec()],
                    global_options: Some(GlobalOptions { literal_pathspecs: true }),
                    ..base("fixture")
                },
                vec!["--literal-pathspecs", "main", "--", "*.md"],
            ),
            (
                "fixture",
                FindCommitsRequest { revision: b"main".to_vec(), paths: vec![b"*.md".to_vec()], ..base("fixture") },
                vec!["main", "--", "*.md"],
            ),
            (
                "long",
                FindCommitsRequest {
                    revision: b"main".to_vec(),
                    paths: vec![b"file-42.txt".to_vec()],
                    offset: 20,
                    limit: 30,
                    before: Some(prost_types::Timestamp { seconds: 1_500_500_000, nanos: 0 }),
                    ..base("long")
                },
                vec!["--skip=20", "--max-count=30", "--before=1500500000", "main", "--", "file-42.txt"],
            ),
            (
                "long",
                FindCommitsRequest { revision: b"main".to_vec(), limit: 50, offset: 5000, ..base("long") },
                vec!["--skip=5000", "--max-count=50", "main"],
            ),
            (
                "long",
                FindCommitsRequest {
                    revision: b"main".to_vec(),
                    limit: 20,
                    offset: 5,
                    follow: true,
                    paths: vec![b"file-03.txt".to_vec()],
                    ..base("long")
                },
                vec!["--follow", "main", "--", "file-03.txt"],
            ),
        ];
        for (name, req, args) in cases {
            let follow_offset = if req.follow { Some((req.offset as usize, req.limit as usize)) } else { None };
            let literal = args.first() == Some(&"--literal-pathspecs");
            let git_args: Vec<&str> = args.iter().copied().filter(|a| *a != "--literal-pathspecs").collect();
            let mut want = if literal {
                let mut a = vec!["--literal-pathspecs", "log", "--format=%H"];
                a.extend(git_args);
                glines(format, name, &a)
            } else {
                log_ids(format, name, &git_args)
            };
            if let Some((offset, limit)) = follow_offset {
                want = want.into_iter().skip(offset).take(limit).collect();
            }
            let got: Vec<String> = find_commits(&mut c, req)
                .await
                .unwrap_or_else(|e| panic!("{args:?}: {e}"))
                .into_iter()
                .map(|c| c.id)
                .collect();
            assert_eq!(got, want, "{format:?} {args:?}");
        }
    }
}

#[tokio::test]
async fn find_commits_extras_and_errors() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let base = FindCommitsRequest {
            repository: repo(format, "fixture"),
            revision: b"--all".to_vec(),
            limit: 100,
            ..Default::default()
        };
        let all_refs = FindCommitsRequest { revision: Vec::new(), all: true, ..base.clone() };
        // Short stats as `git log --shortstat` prints them.
        let got = find_commits(&mut c, FindCommitsRequest { include_shortstat: true, ..all_refs.clone() })
            .await
            .expect("stats");
        for commit in &got {
            let stat = fgit(format, "fixture", &["log", "-1", "--format=", "--shortstat", &commit.id]);
            let want = (!stat.trim().is_empty()).then(|| {
                let n = |word: &str| {
                    stat.split(", ")
                        .find(|p| p.contains(word))
                        .and_then(|p| p.trim().split(' ').next())
                        .map_or(0, |n| n.parse().expect("number"))
                };
                CommitStatInfo { changed_files: n("changed"), additions: n("insertion"), deletions: n("deletion") }
            });
            assert_eq!(commit.short_stats, want, "{}", commit.id);
        }
        // Referencing refs as `git log --decorate=full --decorate-refs` shows them.
        let patterns = ["refs/heads/", "refs/tags", "HEAD"];
        let got = find_commits(
            &mut c,
            FindCommitsRequest {
                include_referenced_by: patterns.iter().map(|p| p.as_bytes().to_vec()).collect(),
                ..all_refs.clone()
            },
        )
        .await
        .expect("refs");
        let want = glines(
            format,
            "fixture",
            &[
                "log",
                "--all",
                "--reverse",
                "--decorate=full",
                "--decorate-refs=refs/heads/",
                "--decorate-refs=refs/tags",
                "--decorate-refs=HEAD",
                "--format=%H %D",
            ],
        );
        for (commit, line) in got.iter().zip(&want) {
            let (id, refs) = line.split_once(' ').unwrap_or((line, ""));
            assert_eq!(commit.id, id);
            let want_refs: Vec<String> = refs
                .split(", ")
                .filter(|r| !r.is_empty())
                .flat_map(|r| {
                    let r = r.trim_start_matches("tag: ");
                    match r.split_once(" -> ") {
                        Some((a, b)) => vec![a.to_owned(), b.to_owned()],
                        None => vec![r.to_owned()],
                    }
                })
                .collect();
            let got_refs: Vec<String> =
                commit.referenced_by.iter().map(|r| String::from_utf8_lossy(r).into_owned()).collect();
            assert_eq!(got_refs, want_refs, "{id}");
        }
        // Trailers.
        let got =
            find_commits(&mut c, FindCommitsRequest { revision: b"main".to_vec(), trailers: true, ..base.clone() })
                .await
                .expect("trailers");
        let feature = got.iter().find(|g| g.subject == b"Add submodule and LFS object").expect("feature commit");
        assert_eq!(feature.trailers.len(), 2);
        // Limit 0 answers nothing.
        assert!(
            find_commits(&mut c, FindCommitsRequest { revision: b"main".to_vec(), limit: 0, ..base.clone() })
                .await
                .expect("none")
                .is_empty()
        );
        // Errors with details.
        let missing_oid = "1".repeat(if format == Format::Sha1 { 40 } else { 64 });
        let range = format!("{missing_oid}..main");
        for (revision, code) in [("nope", 0), (&missing_oid[..], 1), (&range[..], 2), ("nope..main", 0)] {
            let e = find_commits(&mut c, FindCommitsRequest { revision: revision.into(), ..base.clone() })
                .await
                .expect_err("unknown");
            assert_eq!(e.code(), Code::NotFound, "{revision}");
            let d: FindCommitsError = detail(&e);
            match (code, d.error) {
                (0, Some(find_commits_error::Error::AmbiguousRef(a))) => assert_eq!(a.reference, revision.as_bytes()),
                (1, Some(find_commits_error::Error::BadObject(b))) => assert_eq!(b.bad_oid, revision.as_bytes()),
                (2, Some(find_commits_error::Error::InvalidRange(r))) => assert_eq!(r.range, revision.as_bytes()),
                (_, other) => panic!("{revision}: {other:?}"),
            }
        }
        for bad in ["--output=/tmp/find-commits", "-n1"] {
            let e = find_commits(&mut c, FindCommitsRequest { revision: bad.into(), ..base.clone() })
                .await
                .expect_err("bad");
            assert_eq!(e.code(), Code::InvalidArgument);
        }
        let e = find_commits(
            &mut c,
            FindCommitsRequest { revision: b"main".to_vec(), paths: vec![Vec::new()], ..base.clone() },
        )
        .await
        .expect_err("empty path");
        assert_eq!(e.code(), Code::InvalidArgument);
    }
}

#[tokio::test]
async fn find_all_commits_and_commits_by_message() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let ids = |msgs: Vec<FindAllCommitsResponse>| {
            msgs.into_iter().flat_map(|m| m.commits).map(|c| c.id).collect::<Vec<_>>()
        };
        let branches = glines(format, "fixture", &["for-each-ref", "--format=%(refname)", "refs/heads/"]);
        let mut args: Vec<&str> = branches.iter().map(String::as_str).collect();
        for (req, extra) in [
            (FindAllCommitsRequest::default(), vec![]),
            (FindAllCommitsRequest { max_count: 3, skip: 1, ..Default::default() }, vec!["--max-count=3", "--skip=1"]),
            (FindAllCommitsRequest { order: 2, ..Default::default() }, vec!["--date-order"]),
            (FindAllCommitsRequest { order: 1, ..Default::default() }, vec!["--topo-order"]),
        ] {
            let mut a = extra.clone();
            a.append(&mut args.clone());
            let got = ids(all(c
                .find_all_commits(FindAllCommitsRequest { repository: repo(format, "fixture"), ..req })
                .await)
            .await
            .expect("all"));
            assert_eq!(got, log_ids(format, "fixture", &a), "{extra:?}");
        }
        args.clear();
        let got = ids(all(c
            .find_all_commits(FindAllCommitsRequest {
                repository: repo(format, "long"),
                revision: b"r3000".to_vec(),
                max_count: 10,
                ..Default::default()
            })
            .await)
        .await
        .expect("rev"));
        assert_eq!(got, log_ids(format, "long", &["--max-count=10", "r3000"]));
        let none = ids(all(c
            .find_all_commits(FindAllCommitsRequest {
                repository: repo(format, "long"),
                revision: b"nope".to_vec(),
                ..Default::default()
            })
            .await)
        .await
        .expect("nope"));
        assert!(none.is_empty());

        let by_msg = |msgs: Vec<CommitsByMessageResponse>| {
            msgs.into_iter().flat_map(|m| m.commits).map(|c| c.id).collect::<Vec<_>>()
        };
        for (req, want_args) in [
            (
                CommitsByMessageRequest { query: "commit 10\\+$".into(), ..Default::default() },
                vec!["--grep=commit 10\\+$", "-i", "main"],
            ),
            (
                CommitsByMessageRequest { query: "touches file-07".into(), limit: 5, offset: 3, ..Default::default() },
                vec!["--grep=touches file-07", "-i", "--skip=3", "--max-count=5", "main"],
            ),
            (
                CommitsByMessageRequest {
                    query: "commit".into(),
                    path: b"file-99.txt".to_vec(),
                    limit: 7,
                    revision: b"r6000".to_vec(),
                    ..Default::default()
                },
                vec!["--grep=commit", "-i", "--max-count=7", "r6000", "--", "file-99.txt"],
            ),
        ] {
            let got = by_msg(
                all(c.commits_by_message(CommitsByMessageRequest { repository: repo(format, "long"), ..req }).await)
                    .await
                    .expect("by message"),
            );
            assert_eq!(got, log_ids(format, "long", &want_args), "{want_args:?}");
        }
        let none = by_msg(
            all(c
                .commits_by_message(CommitsByMessageRequest {
                    repository: repo(format, "long"),
                    revision: b"nope".to_vec(),
                    query: "x".into(),
                    ..Default::default()
                })
                .await)
            .await
            .expect("nope"),
        );
        assert!(none.is_empty());
        let e = all(c
            .commits_by_message(CommitsByMessageRequest { repository: repo(format, "long"), ..Default::default() })
            .await)
        .await
        .expect_err("no query");
        assert_eq!(e.code(), Code::InvalidArgument);
    }
}

#[tokio::test]
async fn last_commits_match_git_log() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        for (name, revision, path, literal) in [
            ("fixture", "main", "README.md", false),
            ("fixture", "main", "src", false),
            ("fixture", "main", "", false),
            ("fixture", "main", "*.md", false),
            ("fixture", "main", "*.md", true),
            ("fixture", "feature", "src/lib.rs", false),
            ("fixture", "main", "files/binary.bin", false),
            ("fixture", "main", "does-not-exist", false),
            ("long", "main", "file-00.txt", false),
            ("long", "r500", "file-99.txt", false),
        ] {
            let mut args = vec!["log", "-1", "--format=%H", revision, "--"];
            args.push(if path.is_empty() { "." } else { path });
            if literal {
                args.insert(0, "--literal-pathspecs");
            }
            let want = fgit(format, name, &args);
            let got = c
                .last_commit_for_path(LastCommitForPathRequest {
                    repository: repo(format, name),
                    revision: revision.into(),
                    path: path.into(),
                    literal_pathspec: literal,
                    global_options: None,
                })
                .await
                .expect("last commit")
                .into_inner()
                .commit
                .map(|c| c.id)
                .unwrap_or_default();
            assert_eq!(got, want, "{format:?} {revision} {path}");
        }
        for bad in ["../x", "/etc/passwd", "a/../../b"] {
            let e = c
                .last_commit_for_path(LastCommitForPathRequest {
                    repository: repo(format, "fixture"),
                    revision: b"main".to_vec(),
                    path: bad.into(),
                    ..Default::default()
                })
                .await
                .expect_err("escaping path");
            assert_eq!(e.code(), Code::InvalidArgument, "{bad}");
        }
        let e = c
            .last_commit_for_path(LastCommitForPathRequest {
                repository: repo(format, "fixture"),
                revision: b"nope".to_vec(),
                path: b"README.md".to_vec(),
                ..Default::default()
            })
            .await
            .expect_err("unknown revision");
        assert_eq!(e.code(), Code::Internal);

        // ListLastCommitsForTree: every ls-tree entry with its last commit.
        for (name, revision, path, offset, limit) in [
            ("fixture", "main", "/", 0, 100),
            ("fixture", "main", "deep/", 0, 10),
            ("fixture", "main", "files", 0, 10),
            ("fixture", "main", "", 3, 4),
            ("long", "main", "/", 10, 25),
            ("long", "r1000", "", 95, 25),
        ] {
            let ls_path = if path.is_empty() || path == "/" { "." } else { path };
            let mut entries: Vec<(u8, String)> = glines(format, name, &["ls-tree", revision, "--", ls_path])
                .into_iter()
                .map(|l| {
                    let (meta, p) = l.split_once('\t').expect("tab");
                    let kind = match meta.split(' ').nth(1) {
                        Some("tree") => 0,
                        Some("blob") => 1,
                        _ => 2,
                    };
                    (kind, p.trim_matches('"').to_owned())
                })
                .collect();
            entries.sort_by_key(|e| e.0);
            let want: Vec<(String, String)> = entries
                .into_iter()
                .skip(offset)
                .take(limit)
                .map(|(_, p)| {
                    let id = fgit(format, name, &["log", "-1", "--format=%H", revision, "--", &p]);
                    (p, id)
                })
                .collect();
            let msgs = all(c
                .list_last_commits_for_tree(ListLastCommitsForTreeRequest {
                    repository: repo(format, name),
                    revision: revision.into(),
                    path: path.into(),
                    offset: offset as i32,
                    limit: limit as i32,
                    ..Default::default()
                })
                .await)
            .await
            .expect("last commits");
            assert!(msgs.iter().all(|m| m.commits.len() <= 10));
            let got: Vec<(String, String)> = msgs
                .into_iter()
                .flat_map(|m| m.commits)
                .map(|c| (String::from_utf8_lossy(&c.path_bytes).into_owned(), c.commit.expect("commit").id))
                .collect();
            assert_eq!(got, want, "{format:?} {name} {path}");
        }
        let e = all(c
            .list_last_commits_for_tree(ListLastCommitsForTreeRequest {
                repository: repo(format, "fixture"),
                revision: "main".into(),
                offset: -1,
                ..Default::default()
            })
            .await)
        .await
        .expect_err("negative offset");
        assert_eq!(e.code(), Code::InvalidArgument);
        let e = all(c
            .list_last_commits_for_tree(ListLastCommitsForTreeRequest {
                repository: repo(format, "fixture"),
                revision: "--output=x".into(),
                ..Default::default()
            })
            .await)
        .await
        .expect_err("option-like");
        assert_eq!(e.code(), Code::InvalidArgument);
    }
}

async fn tree_entry(
    c: &mut CommitServiceClient<Channel>,
    req: TreeEntryRequest,
) -> Result<(TreeEntryResponse, Vec<u8>, usize), tonic::Status> {
    let msgs = all(c.tree_entry(req).await).await?;
    let n = msgs.len();
    let data: Vec<u8> = msgs.iter().flat_map(|m| m.data.clone()).collect();
    Ok((msgs.into_iter().next().expect("a message"), data, n))
}

#[tokio::test]
async fn tree_entry_matches_cat_file() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let req = |path: &str| TreeEntryRequest {
            repository: repo(format, "fixture"),
            revision: b"main".to_vec(),
            path: path.into(),
            ..Default::default()
        };
        let fixture_path = fixture::path(format, "fixture");
        let cat = |rev: &str| {
            std::process::Command::new("git")
                .arg("-C")
                .arg(&fixture_path)
                .args(["cat-file", "-p", rev])
                .output()
                .expect("git")
                .stdout
        };
        for path in ["README.md", "files/large.bin", "link", "dir with space/fïlé ünicode.txt", "bin/run.sh"] {
            let (first, data, n) = tree_entry(&mut c, req(path)).await.expect("blob");
            let want = cat(&format!("main:{path}"));
            assert_eq!(first.r#type, tree_entry_response::ObjectType::Blob as i32);
            assert_eq!(first.oid, fgit(format, "fixture", &["rev-parse", &format!("main:{path}")]));
            assert_eq!(first.size as usize, want.len());
            assert_eq!(data, want, "{path}");
            assert_eq!(n, want.len().div_ceil(128 * 1024).max(1));
            let mode = fgit(format, "fixture", &["ls-tree", "main", "--", path]);
            assert_eq!(format!("{:o}", first.mode), mode.split(' ').next().expect("mode"));
        }
        let (first, data, _) =
            tree_entry(&mut c, TreeEntryRequest { limit: 10, ..req("files/large.bin") }).await.expect("limited");
        assert_eq!((data.len(), first.size as usize), (10, 1_572_864));
        let e = tree_entry(&mut c, TreeEntryRequest { max_size: 100, ..req("files/large.bin") })
            .await
            .expect_err("too big");
        assert_eq!(e.code(), Code::FailedPrecondition);
        let (tree, data, _) = tree_entry(&mut c, req("deep/")).await.expect("tree");
        assert_eq!(tree.r#type, tree_entry_response::ObjectType::Tree as i32);
        assert_eq!(tree.size.to_string(), fgit(format, "fixture", &["cat-file", "-s", "main:deep"]));
        assert!(data.is_empty());
        let (sub, _, _) = tree_entry(&mut c, req("vendor/sub")).await.expect("submodule");
        assert_eq!(sub.r#type, tree_entry_response::ObjectType::Commit as i32);
        assert_eq!(sub.mode, 0o160000);
        for missing in ["nope", "../README.md", "./README.md", "deep/../README.md", "deep//a", "/", ".", "vendor/sub/x"]
        {
            let e = tree_entry(&mut c, req(missing)).await.expect_err("missing");
            assert_eq!(e.code(), Code::NotFound, "{missing}");
        }
        let e = tree_entry(&mut c, TreeEntryRequest { revision: b"nope".to_vec(), ..req("README.md") })
            .await
            .expect_err("revision");
        assert_eq!(e.code(), Code::NotFound);
        for bad in [
            TreeEntryRequest { limit: -1, ..req("README.md") },
            TreeEntryRequest { path: Vec::new(), ..req("x") },
            TreeEntryRequest { revision: b"-n1".to_vec(), ..req("README.md") },
        ] {
            let e = tree_entry(&mut c, bad).await.expect_err("invalid");
            assert_eq!(e.code(), Code::InvalidArgument);
        }
    }
}

async fn tree_entries(
    c: &mut CommitServiceClient<Channel>,
    req: GetTreeEntriesRequest,
) -> Result<(Vec<TreeEntry>, Option<PaginationCursor>), tonic::Status> {
    let msgs = all(c.get_tree_entries(req).await).await?;
    let cursor = msgs.first().and_then(|m| m.pagination_cursor.clone());
    assert!(msgs.iter().skip(1).all(|m| m.pagination_cursor.is_none()));
    Ok((msgs.into_iter().flat_map(|m| m.entries).collect(), cursor))
}

/// `git ls-tree [-r -t]` as (mode, type, oid, path).
fn ls_tree(format: Format, args: &[&str]) -> Vec<(String, String, String, String)> {
    let mut a = vec!["-c", "core.quotePath=false", "ls-tree"];
    a.extend_from_slice(args);
    glines(format, "fixture", &a)
        .into_iter()
        .map(|l| {
            let (meta, p) = l.split_once('\t').expect("tab");
            let m: Vec<&str> = meta.split(' ').collect();
            (m[0].to_owned(), m[1].to_owned(), m[2].to_owned(), p.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn get_tree_entries_matches_ls_tree() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let req = |path: &str, recursive: bool| GetTreeEntriesRequest {
            repository: repo(format, "fixture"),
            revision: b"main".to_vec(),
            path: path.into(),
            recursive,
            ..Default::default()
        };
        let as_tuple = |e: &TreeEntry| {
            let kind = match tree_entry::EntryType::try_from(e.r#type).expect("type") {
                tree_entry::EntryType::Blob => "blob",
                tree_entry::EntryType::Tree => "tree",
                tree_entry::EntryType::Commit => "commit",
            };
            (format!("{:06o}", e.mode), kind.to_owned(), e.oid.clone(), String::from_utf8_lossy(&e.path).into_owned())
        };
        for (path, recursive, args) in [
            (".", false, vec!["main"]),
            (".", true, vec!["-r", "-t", "main"]),
            ("deep", true, vec!["-r", "-t", "main", "--", "deep/"]),
            ("dir with space", false, vec!["main", "--", "dir with space/"]),
        ] {
            let (entries, cursor) = tree_entries(&mut c, req(path, recursive)).await.expect("entries");
            let mut want = ls_tree(format, &args);
            if path == "deep" {
                want.retain(|e| e.3 != "deep");
            }
            assert_eq!(entries.iter().map(as_tuple).collect::<Vec<_>>(), want, "{path} {recursive}");
            assert!(entries.iter().all(|e| e.commit_oid == "main"));
            assert_eq!(cursor, Some(PaginationCursor::default()));
            for e in &entries {
                if recursive {
                    assert!(e.flat_path.is_empty());
                } else if e.path == b"deep" {
                    assert_eq!(e.flat_path, b"deep/a/b/c");
                } else {
                    assert_eq!(e.flat_path, e.path);
                }
            }
        }
        let (entries, _) = tree_entries(&mut c, GetTreeEntriesRequest { skip_flat_paths: true, ..req(".", false) })
            .await
            .expect("no flat");
        assert!(entries.iter().all(|e| e.flat_path.is_empty()));
        // Sorting.
        let (entries, _) =
            tree_entries(&mut c, GetTreeEntriesRequest { sort: 1, ..req(".", true) }).await.expect("trees first");
        let kinds: Vec<i32> = entries.iter().map(|e| e.r#type).collect();
        let mut sorted = kinds.clone();
        sorted.sort_by_key(|t| match *t {
            1 => 0,
            0 => 1,
            _ => 2,
        });
        assert_eq!(kinds, sorted);
        let (entries, _) =
            tree_entries(&mut c, GetTreeEntriesRequest { sort: 2, ..req(".", true) }).await.expect("filesystem");
        let paths: Vec<Vec<u8>> = entries.iter().map(|e| e.path.clone()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        // Pagination across pages gives the whole listing.
        let (everything, _) =
            tree_entries(&mut c, GetTreeEntriesRequest { sort: 1, ..req(".", true) }).await.expect("all");
        let mut pages = Vec::new();
        let mut token = String::new();
        loop {
            let (page, cursor) = tree_entries(
                &mut c,
                GetTreeEntriesRequest {
                    sort: 1,
                    pagination_params: Some(PaginationParameter { page_token: token.clone(), limit: 4 }),
                    ..req(".", true)
                },
            )
            .await
            .expect("page");
            assert!(page.len() <= 4);
            pages.extend(page);
            token = cursor.map(|c| c.next_cursor).unwrap_or_default();
            if token.is_empty() {
                break;
            }
        }
        assert_eq!(pages, everything);
        let (none, _) = tree_entries(
            &mut c,
            GetTreeEntriesRequest {
                pagination_params: Some(PaginationParameter { page_token: String::new(), limit: 0 }),
                ..req(".", false)
            },
        )
        .await
        .expect("zero");
        assert!(none.is_empty());
        let e = tree_entries(
            &mut c,
            GetTreeEntriesRequest {
                pagination_params: Some(PaginationParameter { page_token: "nope".into(), limit: 2 }),
                ..req(".", false)
            },
        )
        .await
        .expect_err("unknown token");
        assert_eq!(e.code(), Code::Internal);
        // Errors with details.
        let check = |e: tonic::Status, code: Code, revision: &str| {
            assert_eq!(e.code(), code, "{e:?}");
            let d: GetTreeEntriesError = detail(&e);
            match d.error {
                Some(get_tree_entries_error::Error::ResolveTree(r)) => assert_eq!(r.revision, revision.as_bytes()),
                other => panic!("{other:?}"),
            }
        };
        for path in ["README.md", "link"] {
            for recursive in [false, true] {
                check(
                    tree_entries(&mut c, req(path, recursive)).await.expect_err("blob"),
                    Code::InvalidArgument,
                    "main",
                );
            }
        }
        for path in ["nope", "./deep", "deep/..", "../x", "/deep", "vendor/sub/x"] {
            check(tree_entries(&mut c, req(path, false)).await.expect_err("missing"), Code::InvalidArgument, "main");
            check(tree_entries(&mut c, req(path, true)).await.expect_err("missing"), Code::NotFound, "main");
        }
        check(tree_entries(&mut c, req("vendor/sub", false)).await.expect_err("submodule"), Code::NotFound, "main");
        check(
            tree_entries(&mut c, GetTreeEntriesRequest { revision: b"nope".to_vec(), ..req(".", false) })
                .await
                .expect_err("rev"),
            Code::InvalidArgument,
            "nope",
        );
        check(
            tree_entries(&mut c, GetTreeEntriesRequest { revision: b"nope".to_vec(), ..req(".", true) })
                .await
                .expect_err("rev"),
            Code::NotFound,
            "nope",
        );
        let e = tree_entries(&mut c, req("", false)).await.expect_err("empty path");
        assert_eq!(e.code(), Code::InvalidArgument);
        let d: GetTreeEntriesError = detail(&e);
        assert!(
            matches!(d.error, Some(get_tree_entries_error::Error::Path(p)) if p.error_type == path_error::ErrorType::EmptyPath as i32)
        );
        let e = tree_entries(&mut c, GetTreeEntriesRequest { revision: b"--output=x".to_vec(), ..req(".", false) })
            .await
            .expect_err("option");
        assert_eq!(e.code(), Code::InvalidArgument);
    }
}

#[tokio::test]
async fn list_files_matches_ls_tree() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        for revision in ["", "main", "feature", "v1.0"] {
            let rev = if revision.is_empty() { "main" } else { revision };
            let want: Vec<String> =
                ls_tree(format, &["-r", rev]).into_iter().filter(|e| e.1 == "blob").map(|e| e.3).collect();
            let got: Vec<String> = all(c
                .list_files(ListFilesRequest { repository: repo(format, "fixture"), revision: revision.into() })
                .await)
            .await
            .expect("files")
            .into_iter()
            .flat_map(|m| m.paths)
            .map(|p| String::from_utf8_lossy(&p).into_owned())
            .collect();
            assert_eq!(got, want, "{revision}");
        }
        let msgs = all(c
            .list_files(ListFilesRequest { repository: repo(format, "fixture"), revision: b"nope".to_vec() })
            .await)
        .await
        .expect("unknown");
        assert_eq!(msgs, vec![ListFilesResponse::default()]);
        let e = all(c.list_files(ListFilesRequest { repository: repo(format, "empty"), revision: Vec::new() }).await)
            .await
            .expect_err("no default branch");
        assert_eq!(e.code(), Code::FailedPrecondition);
        let long: usize =
            all(c.list_files(ListFilesRequest { repository: repo(format, "long"), revision: Vec::new() }).await)
                .await
                .expect("long")
                .iter()
                .map(|m| m.paths.len())
                .sum();
        assert_eq!(long, 100);
    }
}

#[tokio::test]
async fn commit_stats_match_numstat() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        for id in glines(format, "fixture", &["rev-list", "--all"]) {
            let parent = fgit(format, "fixture", &["log", "-1", "--format=%P", &id]);
            let base = parent
                .split(' ')
                .next()
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .unwrap_or_else(|| fgit(format, "fixture", &["hash-object", "-t", "tree", "/dev/null"]));
            let numstat = glines(format, "fixture", &["diff", "--numstat", &base, &id]);
            let (mut add, mut del) = (0, 0);
            for l in &numstat {
                let f: Vec<&str> = l.split('\t').collect();
                add += f[0].parse::<i32>().unwrap_or(0);
                del += f[1].parse::<i32>().unwrap_or(0);
            }
            let got = c
                .commit_stats(CommitStatsRequest { repository: repo(format, "fixture"), revision: id.clone().into() })
                .await
                .expect("stats")
                .into_inner();
            assert_eq!(
                (got.oid.as_str(), got.additions, got.deletions, got.files as usize),
                (id.as_str(), add, del, numstat.len()),
                "{id}"
            );
        }
        let e = c
            .commit_stats(CommitStatsRequest { repository: repo(format, "fixture"), revision: b"nope".to_vec() })
            .await
            .expect_err("missing");
        assert_eq!(e.code(), Code::Internal);
        let e = c
            .commit_stats(CommitStatsRequest { repository: repo(format, "fixture"), revision: b"--stat".to_vec() })
            .await
            .expect_err("option");
        assert_eq!(e.code(), Code::InvalidArgument);
    }
}

#[tokio::test]
async fn lookups_by_name() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let main = fgit(format, "fixture", &["rev-parse", "main"]);
        let feature = fgit(format, "fixture", &["rev-parse", "feature"]);
        let got: Vec<String> = all(c
            .list_commits_by_oid(ListCommitsByOidRequest {
                repository: repo(format, "fixture"),
                oid: vec![
                    main.clone(),
                    feature[..10].to_owned(),
                    "nope".into(),
                    String::new(),
                    fgit(format, "fixture", &["rev-parse", "main^{tree}"]),
                ],
            })
            .await)
        .await
        .expect("by oid")
        .into_iter()
        .flat_map(|m| m.commits)
        .map(|c| c.id)
        .collect();
        assert_eq!(got, vec![main.clone(), feature.clone()], "{format:?}");
        let got: Vec<(Vec<u8>, String)> = all(c
            .list_commits_by_ref_name(ListCommitsByRefNameRequest {
                repository: repo(format, "fixture"),
                ref_names: vec![
                    b"refs/heads/main".to_vec(),
                    b"feature".to_vec(),
                    b"HEAD".to_vec(),
                    "refs/heads/unicode-ß".into(),
                    b"refs/heads/nope".to_vec(),
                ],
            })
            .await)
        .await
        .expect("by name")
        .into_iter()
        .flat_map(|m| m.commit_refs)
        .map(|r| (r.ref_name, r.commit.expect("commit").id))
        .collect();
        let unicode = fgit(format, "fixture", &["rev-parse", "refs/heads/unicode-ß"]);
        assert_eq!(
            got,
            vec![
                (b"refs/heads/main".to_vec(), main.clone()),
                (b"feature".to_vec(), feature.clone()),
                (b"HEAD".to_vec(), main.clone()),
                ("refs/heads/unicode-ß".into(), unicode)
            ]
        );
        // Messages, whole and in order.
        let msgs = all(c
            .get_commit_messages(GetCommitMessagesRequest {
                repository: repo(format, "fixture"),
                commit_ids: vec![main.clone(), feature.clone()],
            })
            .await)
        .await
        .expect("messages");
        let mut got: Vec<(String, Vec<u8>)> = Vec::new();
        for m in msgs {
            if !m.commit_id.is_empty() {
                got.push((m.commit_id, m.message));
            } else {
                got.last_mut().expect("header first").1.extend(m.message);
            }
        }
        let message = |id: &str| {
            let raw = fgit(format, "fixture", &["cat-file", "commit", id]);
            format!("{}\n", raw.split_once("\n\n").expect("message").1).into_bytes()
        };
        assert_eq!(got, vec![(main.clone(), message(&main)), (feature.clone(), message(&feature))]);
        let e = all(c
            .get_commit_messages(GetCommitMessagesRequest {
                repository: repo(format, "fixture"),
                commit_ids: vec!["nope".into()],
            })
            .await)
        .await
        .expect_err("missing");
        assert_eq!(e.code(), Code::Internal);
    }
}

#[tokio::test]
async fn check_objects_exist_streams_answers() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let blob = fgit(format, "fixture", &["rev-parse", "main:README.md"]);
        let missing = "1".repeat(if format == Format::Sha1 { 40 } else { 64 });
        let requests = vec![
            CheckObjectsExistRequest {
                repository: repo(format, "fixture"),
                revisions: vec![b"main".to_vec(), blob.clone().into_bytes(), missing.clone().into_bytes()],
            },
            CheckObjectsExistRequest {
                repository: None,
                revisions: vec![b"main:README.md".to_vec(), b"main:nope".to_vec(), b"v1.0".to_vec(), b"nope".to_vec()],
            },
        ];
        let got: Vec<(Vec<u8>, bool)> = all(c.check_objects_exist(futures::stream::iter(requests)).await)
            .await
            .expect("exists")
            .into_iter()
            .flat_map(|m| m.revisions)
            .map(|r| (r.name, r.exists))
            .collect();
        let want: Vec<(Vec<u8>, bool)> = vec![
            (b"main".to_vec(), true),
            (blob.into_bytes(), true),
            (missing.into_bytes(), false),
            (b"main:README.md".to_vec(), true),
            (b"main:nope".to_vec(), false),
            (b"v1.0".to_vec(), true),
            (b"nope".to_vec(), false),
        ];
        assert_eq!(got, want);
        let e = all(c
            .check_objects_exist(futures::stream::iter(vec![CheckObjectsExistRequest {
                repository: repo(format, "fixture"),
                revisions: vec![b"-all".to_vec()],
            }]))
            .await)
        .await
        .expect_err("invalid");
        assert_eq!(e.code(), Code::InvalidArgument);
        let e = all(c
            .check_objects_exist(futures::stream::iter(vec![CheckObjectsExistRequest {
                repository: None,
                revisions: vec![],
            }]))
            .await)
        .await
        .expect_err("repo");
        assert_eq!(e.code(), Code::InvalidArgument);
    }
}

#[tokio::test]
async fn signatures_split_like_git() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let signed = fgit(format, "fixture", &["rev-parse", "signed"]);
        let main = fgit(format, "fixture", &["rev-parse", "main"]);
        let msgs = all(c
            .get_commit_signatures(GetCommitSignaturesRequest {
                repository: repo(format, "fixture"),
                commit_ids: vec![signed.clone(), main.clone()],
            })
            .await)
        .await
        .expect("signatures");
        assert_eq!(msgs[0].commit_id, signed);
        assert_eq!(msgs[0].signer, get_commit_signatures_response::Signer::User as i32);
        assert_eq!(msgs[0].author.as_ref().expect("author").name, b"Ann Author");
        let text: Vec<u8> = msgs.iter().skip(1).flat_map(|m| m.signed_text.clone()).collect();
        assert!(msgs.iter().skip(1).all(|m| m.commit_id.is_empty()));
        // What git verifies: the object without the gpgsig header; the
        // signature unfolded.
        let raw = fgit(format, "fixture", &["cat-file", "commit", &signed]) + "\n";
        let mut payload = String::new();
        let mut signature = String::new();
        let mut in_sig = false;
        let (headers, message) = raw.split_once("\n\n").expect("headers");
        for line in headers.lines() {
            if let Some(v) = line.strip_prefix("gpgsig ") {
                signature.push_str(v);
                signature.push('\n');
                in_sig = true;
            } else if in_sig && line.starts_with(' ') {
                signature.push_str(&line[1..]);
                signature.push('\n');
            } else {
                in_sig = false;
                payload.push_str(line);
                payload.push('\n');
            }
        }
        payload.push('\n');
        payload.push_str(message);
        assert_eq!(String::from_utf8_lossy(&text), payload);
        assert_eq!(String::from_utf8_lossy(&msgs[0].signature), signature);
        assert!(signature.starts_with("-----BEGIN PGP SIGNATURE-----\n\n"));
        for bad in [vec![], vec!["main".to_owned()], vec![main[..10].to_owned()]] {
            let e = all(c
                .get_commit_signatures(GetCommitSignaturesRequest {
                    repository: repo(format, "fixture"),
                    commit_ids: bad,
                })
                .await)
            .await
            .expect_err("invalid ids");
            assert_eq!(e.code(), Code::InvalidArgument);
        }
        let shas = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        let got: Vec<Vec<Vec<u8>>> = all(c
            .filter_shas_with_signatures(futures::stream::iter(vec![
                FilterShasWithSignaturesRequest {
                    repository: repo(format, "fixture"),
                    shas: shas(&[&main, &signed, "nope"]),
                },
                FilterShasWithSignaturesRequest { repository: None, shas: shas(&[&main]) },
            ]))
            .await)
        .await
        .expect("filter")
        .into_iter()
        .map(|m| m.shas)
        .collect();
        assert_eq!(got, vec![shas(&[&signed]), vec![]]);
    }
}

#[tokio::test]
async fn raw_blame_matches_git_blame() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let blame = |revision: &str, path: &str, range: &str| RawBlameRequest {
            repository: repo(format, "fixture"),
            revision: revision.into(),
            path: path.into(),
            range: range.into(),
            ignore_revisions_blob: Vec::new(),
        };
        let fixture_path = fixture::path(format, "fixture");
        let git_blame = |args: &[&str]| {
            std::process::Command::new("git")
                .arg("-C")
                .arg(&fixture_path)
                .arg("blame")
                .arg("-p")
                .args(args)
                .output()
                .expect("git")
                .stdout
        };
        for (revision, path, range) in [
            ("main", "CHANGELOG", ""),
            ("main", "src/core.rs", ""),
            ("main", "README.md", "2,4"),
            ("feature", "dir with space/fïlé ünicode.txt", ""),
            ("main", "LICENSE", ""),
        ] {
            let got: Vec<u8> = all(c.raw_blame(blame(revision, path, range)).await)
                .await
                .expect("blame")
                .into_iter()
                .flat_map(|m| m.data)
                .collect();
            let mut args = vec![];
            if !range.is_empty() {
                args.extend(["-L", range]);
            }
            args.extend([revision, "--", path]);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&git_blame(&args)),
                "{revision} {path} {range}"
            );
        }
        let e = all(c.raw_blame(blame("main", "nope", "")).await).await.expect_err("missing path");
        assert_eq!(e.code(), Code::NotFound);
        let d: RawBlameError = detail(&e);
        assert!(matches!(d.error, Some(raw_blame_error::Error::PathNotFound(p)) if p.path == b"nope"));
        let e = all(c.raw_blame(blame("main", "README.md", "10,12")).await).await.expect_err("out of range");
        assert_eq!(e.code(), Code::InvalidArgument);
        let d: RawBlameError = detail(&e);
        assert!(matches!(d.error, Some(raw_blame_error::Error::OutOfRange(r)) if r.actual_lines == 5));
        for (rev, path, range) in [
            ("main", "../x", ""),
            ("main", "/etc/passwd", ""),
            ("main", "", ""),
            ("main", "README.md", "1-2"),
            ("-n1", "README.md", ""),
            ("--output=x", "README.md", ""),
        ] {
            let e = all(c.raw_blame(blame(rev, path, range)).await).await.expect_err("invalid");
            assert_eq!(e.code(), Code::InvalidArgument, "{rev} {path} {range}");
        }
        // Ignoring revisions listed in a blob.
        let e = all(c
            .raw_blame(RawBlameRequest {
                ignore_revisions_blob: b"main:nope".to_vec(),
                ..blame("main", "CHANGELOG", "")
            })
            .await)
        .await
        .expect_err("no blob");
        assert_eq!(e.code(), Code::NotFound);
        let d: RawBlameError = detail(&e);
        assert!(matches!(d.error, Some(raw_blame_error::Error::ResolveIgnoreRevs(_))));
        let e = all(c
            .raw_blame(RawBlameRequest {
                ignore_revisions_blob: b"main^{tree}".to_vec(),
                ..blame("main", "CHANGELOG", "")
            })
            .await)
        .await
        .expect_err("a tree");
        assert_eq!(e.code(), Code::InvalidArgument);
        let e = all(c
            .raw_blame(RawBlameRequest {
                ignore_revisions_blob: b"main:README.md".to_vec(),
                ..blame("main", "CHANGELOG", "")
            })
            .await)
        .await
        .expect_err("bad list");
        assert_eq!(e.code(), Code::NotFound);
        let d: RawBlameError = detail(&e);
        assert!(matches!(d.error, Some(raw_blame_error::Error::InvalidIgnoreRevsFormat(_))), "{d:?}");
    }
}

#[tokio::test]
async fn raw_blame_honours_ignore_revs() {
    let node = Node::start().await;
    let format = Format::Sha1;
    let path = fixture::copy_repo(&node.storage, format, "fixture");
    // Ignore the commit that edited CHANGELOG on main.
    let ignored = git(Some(&path), &["rev-parse", "main~2"]);
    let blob = crate::support::git::git_stdin(
        Some(&path),
        &["hash-object", "-w", "--stdin"],
        Some(format!("{ignored}\n").as_bytes()),
    );
    let mut c = client(&node).await;
    let got: Vec<u8> = all(c
        .raw_blame(RawBlameRequest {
            repository: repo(format, "fixture"),
            revision: b"main".to_vec(),
            path: b"CHANGELOG".to_vec(),
            range: Vec::new(),
            ignore_revisions_blob: blob.clone().into_bytes(),
        })
        .await)
    .await
    .expect("blame")
    .into_iter()
    .flat_map(|m| m.data)
    .collect();
    let file = node.dir.path().join("ignore");
    std::fs::write(&file, format!("{ignored}\n")).expect("write");
    let want = std::process::Command::new("git")
        .arg("-C")
        .arg(&path)
        .args(["blame", "-p", "--ignore-revs-file"])
        .arg(&file)
        .args(["main", "--", "CHANGELOG"])
        .output()
        .expect("git")
        .stdout;
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
}

#[tokio::test]
async fn commit_languages_by_extension() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let got = c
            .commit_languages(CommitLanguagesRequest { repository: repo(format, "fixture"), revision: Vec::new() })
            .await
            .expect("languages")
            .into_inner();
        let size = |path: &str| {
            fgit(format, "fixture", &["cat-file", "-s", &format!("main:{path}")]).parse::<u64>().expect("size")
        };
        let (rust, shell) = (size("src/core.rs"), size("bin/run.sh"));
        let names: Vec<(&str, u64, &str)> =
            got.languages.iter().map(|l| (l.name.as_str(), l.bytes, l.color.as_str())).collect();
        assert_eq!(names, vec![("Rust", rust, "#dea584"), ("Shell", shell, "#89e051")]);
        let share = got.languages[0].share;
        assert!((share - 100.0 * rust as f32 / (rust + shell) as f32).abs() < 0.01);
        let e = c
            .commit_languages(CommitLanguagesRequest {
                repository: repo(format, "fixture"),
                revision: b"nope".to_vec(),
            })
            .await
            .expect_err("missing");
        assert_eq!(e.code(), Code::Internal);
    }
}

/// Revisions that look like options are rejected by every RPC taking one,
/// and nothing gets written.
#[tokio::test]
async fn option_like_revisions_are_rejected_everywhere() {
    let node = Node::start().await;
    let format = Format::Sha1;
    let storage = node.storage.clone();
    fixture::copy_repo(&storage, format, "fixture");
    let before = snapshot(&storage);
    let out = node.dir.path().join("out");
    let bad = format!("--output={}", out.display());
    let mut c = client(&node).await;
    let r = || repo(format, "fixture");
    let codes = vec![
        c.count_commits(CountCommitsRequest { repository: r(), revision: bad.clone().into(), ..Default::default() })
            .await
            .map(|_| ()),
        c.commit_stats(CommitStatsRequest { repository: r(), revision: bad.clone().into() }).await.map(|_| ()),
        c.last_commit_for_path(LastCommitForPathRequest {
            repository: r(),
            revision: bad.clone().into(),
            ..Default::default()
        })
        .await
        .map(|_| ()),
        c.commit_languages(CommitLanguagesRequest { repository: r(), revision: bad.clone().into() }).await.map(|_| ()),
        all(c
            .find_all_commits(FindAllCommitsRequest {
                repository: r(),
                revision: bad.clone().into(),
                ..Default::default()
            })
            .await)
        .await
        .map(|_| ()),
        all(c
            .commits_by_message(CommitsByMessageRequest {
                repository: r(),
                revision: bad.clone().into(),
                query: "x".into(),
                ..Default::default()
            })
            .await)
        .await
        .map(|_| ()),
        all(c.list_files(ListFilesRequest { repository: r(), revision: bad.clone().into() }).await).await.map(|_| ()),
        all(c
            .tree_entry(TreeEntryRequest {
                repository: r(),
                revision: bad.clone().into(),
                path: b"README.md".to_vec(),
                ..Default::default()
            })
            .await)
        .await
        .map(|_| ()),
        all(c
            .raw_blame(RawBlameRequest {
                repository: r(),
                revision: bad.clone().into(),
                path: b"README.md".to_vec(),
                ..Default::default()
            })
            .await)
        .await
        .map(|_| ()),
    ];
    for (i, r) in codes.into_iter().enumerate() {
        assert_eq!(r.expect_err("rejected").code(), Code::InvalidArgument, "call {i}");
    }
    assert!(!out.exists());
    assert_eq!(snapshot(&storage), before);
}

#[tokio::test]
async fn find_commits_streams_long_history_in_batches() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    let format = Format::Sha256;
    let msgs = all(c
        .find_commits(FindCommitsRequest {
            repository: repo(format, "long"),
            revision: b"main".to_vec(),
            limit: 20_000,
            ..Default::default()
        })
        .await)
    .await
    .expect("all of it");
    assert!(msgs.len() > 1, "batched");
    assert!(msgs.iter().all(|m| m.encoded_len() <= 1024 * 1024 + 64 * 1024));
    let got: Vec<String> = msgs.into_iter().flat_map(|m| m.commits).map(|c| c.id).collect();
    assert_eq!(got, log_ids(format, "long", &["main"]));
}

/// Orders, limits and ranges over `long.git` (10,500 commits) against `git
/// rev-list`/`git log`, once on plain loose objects and once more after
/// `git commit-graph write`, so walks reading headers from the
/// commit-graph are checked too.
#[tokio::test]
async fn long_history_orders_and_limits_match_rev_list() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let path = fixture::copy_repo(&node.storage, format, "long");
        let rl = |args: &[&str]| {
            let mut a = vec!["rev-list"];
            a.extend_from_slice(args);
            lines(&git(Some(&path), &a))
        };
        for graph in [false, true] {
            if graph {
                git(Some(&path), &["commit-graph", "write", "--reachable"]);
                assert!(path.join("objects/info/commit-graph").exists());
            }
            let ctx = format!("{format:?} graph={graph}");
            let req = |revisions: &[&str]| ListCommitsRequest {
                repository: repo(format, "long"),
                revisions: revisions.iter().map(|s| (*s).to_owned()).collect(),
                ..Default::default()
            };
            let date = Some(prost_types::Timestamp { seconds: 1_500_300_000, nanos: 0 });
            let cases: Vec<(ListCommitsRequest, Vec<&str>)> = vec![
                (ListCommitsRequest { reverse: true, ..req(&["main"]) }, vec!["--reverse", "main"]),
                (ListCommitsRequest { order: 2, ..req(&["--all"]) }, vec!["--date-order", "--all"]),
                (
                    ListCommitsRequest { order: 1, reverse: true, ..req(&["--all"]) },
                    vec!["--topo-order", "--reverse", "--all"],
                ),
                (
                    ListCommitsRequest { skip: 100, max_parents: 1, ..req(&["main", "^r5000"]) },
                    vec!["--skip=100", "--max-parents=1", "main", "^r5000"],
                ),
                (req(&["main", "--not", "side"]), vec!["main", "--not", "side"]),
                (
                    ListCommitsRequest { first_parent: true, ..req(&["--branches"]) },
                    vec!["--first-parent", "--branches"],
                ),
                (ListCommitsRequest { before: date, ..req(&["main"]) }, vec!["--until=1500300000", "main"]),
                (ListCommitsRequest { after: date, ..req(&["main"]) }, vec!["--since=1500300000", "main"]),
            ];
            for (r, args) in cases {
                let want = rl(&args);
                assert!(!want.is_empty(), "{ctx} {args:?} selects something");
                assert_eq!(list_commits(&mut c, r.clone()).await.expect("list"), want, "{ctx} {args:?}");
                // A page of 250 is the first 250 of the same answer.
                let paged = ListCommitsRequest {
                    pagination_params: Some(PaginationParameter { page_token: String::new(), limit: 250 }),
                    ..r
                };
                let page = list_commits(&mut c, paged).await.expect("page");
                assert_eq!(page, want[..want.len().min(250)], "{ctx} {args:?} page");
            }
            for (revision, all, args) in [
                ("main", false, vec!["main"]),
                ("", true, vec!["--all"]),
                ("r5000..main", false, vec!["r5000..main"]),
                ("side", false, vec!["side"]),
            ] {
                let want: i32 = rl(&[&["--count"][..], &args].concat())[0].parse().expect("count");
                let got = c
                    .count_commits(CountCommitsRequest {
                        repository: repo(format, "long"),
                        revision: revision.into(),
                        all,
                        ..Default::default()
                    })
                    .await
                    .expect("count")
                    .into_inner()
                    .count;
                assert_eq!(got, want, "{ctx} {args:?}");
            }
            let diverging = c
                .count_diverging_commits(CountDivergingCommitsRequest {
                    repository: repo(format, "long"),
                    from: b"main".to_vec(),
                    to: b"side".to_vec(),
                    max_count: 0,
                })
                .await
                .expect("diverging")
                .into_inner();
            let want = rl(&["--left-right", "--count", "main...side"]).join(" ");
            assert_eq!(format!("{}\t{}", diverging.left_count, diverging.right_count), want, "{ctx}");
            let log = |args: &[&str]| {
                let mut a = vec!["log", "--format=%H"];
                a.extend_from_slice(args);
                lines(&git(Some(&path), &a))
            };
            let ids = |v: Vec<GitCommit>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
            let find = |revision: &str, offset: i32, limit: i32, order: i32, all: bool| FindCommitsRequest {
                repository: repo(format, "long"),
                revision: revision.into(),
                offset,
                limit,
                order,
                all,
                ..Default::default()
            };
            let got = ids(find_commits(&mut c, find("main", 1000, 250, 1, false)).await.expect("topo page"));
            assert_eq!(got, log(&["--topo-order", "--skip=1000", "--max-count=250", "main"]), "{ctx} topo page");
            let got = ids(find_commits(&mut c, find("main", 10_400, 1000, 0, false)).await.expect("last page"));
            assert_eq!(got, log(&["--skip=10400", "--max-count=1000", "main"]), "{ctx} last page");
            let got = ids(find_commits(&mut c, find("", 0, 300, 0, true)).await.expect("all"));
            assert_eq!(got, log(&["--all", "--reverse", "--max-count=300"]), "{ctx} all");
            let ancestor = c
                .commit_is_ancestor(CommitIsAncestorRequest {
                    repository: repo(format, "long"),
                    ancestor_id: "r1000".into(),
                    child_id: "main".into(),
                })
                .await
                .expect("ancestor")
                .into_inner();
            assert!(ancestor.value, "{ctx}");
            let ancestor = c
                .commit_is_ancestor(CommitIsAncestorRequest {
                    repository: repo(format, "long"),
                    ancestor_id: "main".into(),
                    child_id: "r1000".into(),
                })
                .await
                .expect("ancestor")
                .into_inner();
            assert!(!ancestor.value, "{ctx}");
        }
    }
}

/// With a commit-graph, walks take parents and dates from it as git does:
/// a history whose middle commit object is gone still walks and counts
/// exactly like `git rev-list` (which would fail without the graph).
#[tokio::test]
async fn walks_read_the_commit_graph() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let path = fixture::copy_repo(&node.storage, format, "fixture");
        git(Some(&path), &["commit-graph", "write", "--reachable"]);
        let older = git(Some(&path), &["rev-parse", "main~3"]);
        let gone = git(Some(&path), &["rev-parse", "main~2"]);
        std::fs::remove_file(path.join("objects").join(&gone[..2]).join(&gone[2..])).expect("a loose commit");
        let want = lines(&git(Some(&path), &["rev-list", "main"]));
        assert!(want.contains(&gone));
        let got = c
            .count_commits(CountCommitsRequest {
                repository: repo(format, "fixture"),
                revision: b"main".to_vec(),
                ..Default::default()
            })
            .await
            .expect("count")
            .into_inner()
            .count;
        assert_eq!(got as usize, want.len(), "{format:?}");
        let ancestor = c
            .commit_is_ancestor(CommitIsAncestorRequest {
                repository: repo(format, "fixture"),
                ancestor_id: older,
                child_id: "main".into(),
            })
            .await
            .expect("ancestor")
            .into_inner();
        assert!(ancestor.value, "{format:?}");
    }
}

/// A fast-import stream: `n` commits on main, each changing one of
/// `paths` (nested, unicode, high-bit bytes), with a side branch merged
/// back every 25 commits so simplification sees merges.
fn bloom_history(paths: &[&str], n: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 1..=n {
        let path = paths[(i * 7 + i / 3) % paths.len()];
        let branch = if i % 25 == 10 { "side" } else { "main" };
        s.push_str(&format!(
            "commit refs/heads/{branch}\nmark :{i}\ncommitter C <c@example.com> {} +0000\ndata 3\nc{}\n",
            1_600_000_000 + i * 60,
            i % 10
        ));
        if i == 10 {
            s.push_str("from :9\n");
        }
        if branch == "main" && i % 25 == 11 && i > 11 {
            s.push_str(&format!("merge :{}\n", i - 1));
        }
        let content = format!("{i}\n");
        s.push_str(&format!("M 100644 inline {path}\ndata {}\n{content}\n", content.len()));
    }
    s.push_str("done\n");
    s.into_bytes()
}

/// Path-limited walks answer the same with and without the commit-graph's
/// changed-path Bloom filters (both filter versions: version 1 hashed
/// high-bit bytes as signed), and the same as git without a graph.
#[tokio::test]
async fn path_limited_walks_agree_with_bloom_filters() {
    use crate::support::git::git_stdin;
    let node = Node::start().await;
    let mut c = client(&node).await;
    let paths = ["top.txt", "dir/a.txt", "dir/sub/ü.txt", "ÿ/x", "deep/a/b/c.txt", "dir/sub/plain"];
    let asked =
        ["top.txt", "dir", "dir/a.txt", "dir/sub", "dir/sub/ü.txt", "ÿ/x", "ÿ", "deep/a/b", "deep/a/b/c.txt", "nope"];
    for format in [Format::Sha1, Format::Sha256] {
        for version in ["1", "2"] {
            let rel = format!("bloom-{}-{version}.git", format.name());
            let r = node.create_repo(&rel, format);
            git_stdin(Some(&r.path), &["fast-import", "--quiet", "--done"], Some(&bloom_history(&paths, 300)));
            let want = |path: &str| {
                git(Some(&r.path), &["-c", "core.commitGraph=false", "log", "-1", "--format=%H", "main", "--", path])
            };
            let count = |path: &str| {
                git(Some(&r.path), &["-c", "core.commitGraph=false", "rev-list", "--count", "main", "--", path])
            };
            let expected: Vec<(String, String)> = asked.iter().map(|p| (want(p), count(p))).collect();
            for with_graph in [false, true] {
                if with_graph {
                    git(
                        Some(&r.path),
                        &[
                            "-c",
                            &format!("commitGraph.changedPathsVersion={version}"),
                            "commit-graph",
                            "write",
                            "--reachable",
                            "--changed-paths",
                        ],
                    );
                }
                for (path, (want_id, want_count)) in asked.iter().zip(&expected) {
                    let got = c
                        .last_commit_for_path(LastCommitForPathRequest {
                            repository: Some(node.repo(&rel)),
                            revision: b"main".to_vec(),
                            path: path.as_bytes().to_vec(),
                            ..Default::default()
                        })
                        .await
                        .expect("last commit")
                        .into_inner()
                        .commit
                        .map(|c| c.id)
                        .unwrap_or_default();
                    assert_eq!(&got, want_id, "{format:?} v{version} graph={with_graph} {path}");
                    let got_count = c
                        .count_commits(CountCommitsRequest {
                            repository: Some(node.repo(&rel)),
                            revision: b"main".to_vec(),
                            path: path.as_bytes().to_vec(),
                            ..Default::default()
                        })
                        .await
                        .expect("count")
                        .into_inner()
                        .count;
                    assert_eq!(got_count.to_string(), *want_count, "{format:?} v{version} graph={with_graph} {path}");
                }
            }
        }
    }
}
