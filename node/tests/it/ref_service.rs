//! RefService reads against the fixture repositories (and repositories
//! built here), compared with what git-for-each-ref, git-tag and
//! git-rev-list say about the same references, in SHA-1 and SHA-256.

#![allow(clippy::disallowed_methods, reason = "tests compare with the real git CLI")]

use crate::support::fixture::{self, fgit, rel};
use crate::support::git::Format;
use crate::support::{Node, snapshot};
use cairn_proto::gitaly::ref_service_client::RefServiceClient;
use cairn_proto::gitaly::*;
use prost::Message as _;
use tonic::Code;

const FORMATS: [Format; 2] = [Format::Sha1, Format::Sha256];

fn repo(format: Format, name: &str) -> Option<Repository> {
    Some(Repository { storage_name: "default".into(), relative_path: rel(format, name), ..Default::default() })
}

async fn all<T>(r: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>) -> Result<Vec<T>, tonic::Status> {
    let mut s = r?.into_inner();
    let mut out = Vec::new();
    while let Some(m) = s.message().await? {
        out.push(m);
    }
    Ok(out)
}

async fn client(node: &Node) -> RefServiceClient<tonic::transport::Channel> {
    RefServiceClient::new(node.channel().await)
}

/// `git for-each-ref` lines with the given format, sort and patterns.
fn for_each_ref(format: Format, name: &str, fmt: &str, extra: &[&str]) -> Vec<String> {
    let fmt = format!("--format={fmt}");
    let mut args = vec!["for-each-ref", fmt.as_str()];
    args.extend_from_slice(extra);
    let out = fgit(format, name, &args);
    out.lines().map(str::to_owned).filter(|l| !l.is_empty()).collect()
}

fn names(v: &[Vec<u8>]) -> Vec<String> {
    v.iter().map(|n| String::from_utf8_lossy(n).into_owned()).collect()
}

#[tokio::test]
async fn default_branch_name_follows_upstream_rules() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        for head_only in [false, true] {
            let got = c
                .find_default_branch_name(FindDefaultBranchNameRequest {
                    repository: repo(format, "fixture"),
                    head_only,
                })
                .await
                .expect("default branch")
                .into_inner();
            assert_eq!(got.name, b"refs/heads/main");
        }
        let empty = c
            .find_default_branch_name(FindDefaultBranchNameRequest {
                repository: repo(format, "empty"),
                head_only: false,
            })
            .await
            .expect("empty")
            .into_inner();
        assert!(empty.name.is_empty());
    }
    let node = Node::start().await;
    let mut c = client(&node).await;
    let r = node.create_repo("guess.git", Format::Sha256);
    r.commit_on("zzz", &[("a", "a")], "one");
    r.commit_on("aaa", &[("a", "a")], "one");
    r.git(&["symbolic-ref", "HEAD", "refs/heads/gone"]);
    let ask = |head_only| FindDefaultBranchNameRequest { repository: Some(node.repo("guess.git")), head_only };
    assert_eq!(c.find_default_branch_name(ask(false)).await.expect("first").into_inner().name, b"refs/heads/aaa");
    assert_eq!(c.find_default_branch_name(ask(true)).await.expect("head").into_inner().name, b"refs/heads/gone");
    r.commit_on("master", &[("a", "a")], "one");
    assert_eq!(c.find_default_branch_name(ask(false)).await.expect("master").into_inner().name, b"refs/heads/master");
    r.commit_on("main", &[("a", "a")], "one");
    assert_eq!(c.find_default_branch_name(ask(false)).await.expect("main").into_inner().name, b"refs/heads/main");
    let id = r.git(&["rev-parse", "main"]);
    r.git(&["update-ref", "--no-deref", "HEAD", &id]);
    let e = c.find_default_branch_name(ask(false)).await.expect_err("detached HEAD");
    assert_eq!(e.code(), Code::Internal);
    let e = c.find_default_branch_name(FindDefaultBranchNameRequest { repository: None, head_only: false }).await;
    assert_eq!(e.expect_err("no repository").code(), Code::InvalidArgument);
}

#[tokio::test]
async fn local_branches_sorted_and_paginated() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    use find_local_branches_request::SortBy;
    for format in FORMATS {
        for (sort, key) in
            [(SortBy::Name, "refname"), (SortBy::UpdatedAsc, "committerdate"), (SortBy::UpdatedDesc, "-committerdate")]
        {
            let req = FindLocalBranchesRequest {
                repository: repo(format, "fixture"),
                sort_by: sort.into(),
                pagination_params: None,
            };
            let got: Vec<Branch> = all(c.find_local_branches(req).await)
                .await
                .expect("branches")
                .into_iter()
                .flat_map(|m| m.local_branches)
                .collect();
            let want =
                for_each_ref(format, "fixture", "%(refname) %(objectname)", &[&format!("--sort={key}"), "refs/heads"]);
            let got_lines: Vec<String> = got
                .iter()
                .map(|b| {
                    format!("{} {}", String::from_utf8_lossy(&b.name), b.target_commit.as_ref().expect("commit").id)
                })
                .collect();
            assert_eq!(got_lines, want, "{format:?} {key}");
            for b in &got {
                let commit = b.target_commit.as_ref().expect("commit");
                let name = String::from_utf8_lossy(&b.name).into_owned();
                assert_eq!(
                    String::from_utf8_lossy(&commit.subject),
                    fgit(format, "fixture", &["log", "-1", "--format=%s", &name])
                );
                assert_eq!(commit.tree_id, fgit(format, "fixture", &["rev-parse", &format!("{name}^{{tree}}")]));
            }
        }
        let page = |limit, token: &str| FindLocalBranchesRequest {
            repository: repo(format, "fixture"),
            sort_by: 0,
            pagination_params: Some(PaginationParameter { page_token: token.into(), limit }),
        };
        let all_names = for_each_ref(format, "fixture", "%(refname)", &["refs/heads"]);
        let got: Vec<Branch> = all(c.find_local_branches(page(2, "")).await)
            .await
            .expect("page")
            .into_iter()
            .flat_map(|m| m.local_branches)
            .collect();
        assert_eq!(names(&got.iter().map(|b| b.name.clone()).collect::<Vec<_>>()), all_names[..2]);
        let got: Vec<Branch> = all(c.find_local_branches(page(2, &all_names[1])).await)
            .await
            .expect("next page")
            .into_iter()
            .flat_map(|m| m.local_branches)
            .collect();
        assert_eq!(names(&got.iter().map(|b| b.name.clone()).collect::<Vec<_>>()), all_names[2..4]);
        let got: Vec<Branch> = all(c.find_local_branches(page(-1, &all_names[0])).await)
            .await
            .expect("unlimited")
            .into_iter()
            .flat_map(|m| m.local_branches)
            .collect();
        assert_eq!(got.len(), all_names.len() - 1);
        let none = all(c.find_local_branches(page(0, "")).await).await.expect("limit 0");
        assert!(none.is_empty());
        let e = all(c.find_local_branches(page(5, "refs/heads/does-not-exist")).await).await.expect_err("bad token");
        assert_eq!((e.code(), e.message()), (Code::Internal, "finding refs: sending lines: could not find page token"));
    }
    // Upstream's batches: 20 branches per message.
    let node = Node::start().await;
    let mut c = client(&node).await;
    let r = node.create_repo("many.git", Format::Sha1);
    let id = r.commit_on("main", &[("a", "a")], "one");
    for i in 0..44 {
        r.git(&["update-ref", &format!("refs/heads/b{i:02}"), &id]);
    }
    let req = FindLocalBranchesRequest { repository: Some(node.repo("many.git")), sort_by: 0, pagination_params: None };
    let msgs = all(c.find_local_branches(req).await).await.expect("many");
    assert_eq!(msgs.iter().map(|m| m.local_branches.len()).collect::<Vec<_>>(), vec![20, 20, 5]);
}

#[tokio::test]
async fn all_branches_and_merged_ones() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let req = |merged_only, merged_branches: Vec<&str>| FindAllBranchesRequest {
            repository: repo(format, "fixture"),
            merged_only,
            merged_branches: merged_branches.into_iter().map(|s| s.as_bytes().to_vec()).collect(),
        };
        let lines = |r: Vec<FindAllBranchesResponse>| -> Vec<String> {
            r.into_iter()
                .flat_map(|m| m.branches)
                .map(|b| format!("{} {}", String::from_utf8_lossy(&b.name), b.target.expect("target").id))
                .collect()
        };
        let got = lines(all(c.find_all_branches(req(false, vec![])).await).await.expect("all"));
        assert_eq!(got, for_each_ref(format, "fixture", "%(refname) %(objectname)", &["refs/heads", "refs/remotes"]));
        let got = lines(all(c.find_all_branches(req(true, vec![])).await).await.expect("merged"));
        let want = for_each_ref(
            format,
            "fixture",
            "%(refname) %(objectname)",
            &["--merged=refs/heads/main", "refs/heads", "refs/remotes"],
        );
        assert_eq!(got, want);
        assert!(!got.iter().any(|l| l.starts_with("refs/heads/signed ")), "signed is ahead of main");
        let got = lines(
            all(c.find_all_branches(req(true, vec!["refs/heads/feature", "refs/heads/signed"])).await)
                .await
                .expect("subset"),
        );
        assert_eq!(got, for_each_ref(format, "fixture", "%(refname) %(objectname)", &["refs/heads/feature"]));
        let e = all(c.find_all_branches(req(true, vec!["--contains=main"])).await).await.expect_err("option-like");
        assert_eq!(e.code(), Code::Internal);
    }
}

#[tokio::test]
async fn remote_branches() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let req = |remote: &str| FindAllRemoteBranchesRequest {
            repository: repo(format, "fixture"),
            remote_name: remote.into(),
        };
        let got: Vec<Branch> = all(c.find_all_remote_branches(req("origin")).await)
            .await
            .expect("origin")
            .into_iter()
            .flat_map(|m| m.branches)
            .collect();
        let got: Vec<String> = got
            .iter()
            .map(|b| format!("{} {}", String::from_utf8_lossy(&b.name), b.target_commit.as_ref().expect("commit").id))
            .collect();
        assert_eq!(got, for_each_ref(format, "fixture", "%(refname) %(objectname)", &["refs/remotes/origin"]));
        assert!(all(c.find_all_remote_branches(req("nope")).await).await.expect("none").is_empty());
        let e = all(c.find_all_remote_branches(req("")).await).await.expect_err("empty name");
        assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "empty RemoteName"));
    }
}

#[tokio::test]
async fn find_branch_by_name() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        for name in ["main", "feature", "unicode-ß", "loose-branch", "signed"] {
            let got = c
                .find_branch(FindBranchRequest { repository: repo(format, "fixture"), name: name.as_bytes().to_vec() })
                .await
                .expect("find branch")
                .into_inner()
                .branch
                .expect("found");
            assert_eq!(got.name, name.as_bytes());
            let commit = got.target_commit.expect("commit");
            assert_eq!(commit.id, fgit(format, "fixture", &["rev-parse", &format!("refs/heads/{name}")]));
            assert_eq!(
                commit.parent_ids.join(" "),
                fgit(format, "fixture", &["log", "-1", "--format=%P", &format!("refs/heads/{name}")])
            );
        }
        for missing in ["nope", "v1.0", "refs/heads/main"] {
            let got = c
                .find_branch(FindBranchRequest {
                    repository: repo(format, "fixture"),
                    name: missing.as_bytes().to_vec(),
                })
                .await
                .expect("missing branch");
            assert!(got.into_inner().branch.is_none(), "{missing}");
        }
    }
    let node = Node::start().await;
    let mut c = client(&node).await;
    let r = node.create_repo("amb.git", Format::Sha1);
    r.commit_on("feature/x", &[("a", "a")], "one");
    let e = c
        .find_branch(FindBranchRequest { repository: Some(node.repo("amb.git")), name: b"feature".to_vec() })
        .await
        .expect_err("ambiguous");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("reference is ambiguous"), "{}", e.message());
    let e = c
        .find_branch(FindBranchRequest { repository: Some(node.repo("amb.git")), name: vec![] })
        .await
        .expect_err("empty");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "Branch name cannot be empty"));
}

/// The message part of a tag object.
fn tag_message(format: Format, tag: &str) -> String {
    let raw = std::process::Command::new("git")
        .arg("-C")
        .arg(fixture::path(format, "fixture"))
        .args(["cat-file", "tag", tag])
        .output()
        .expect("git");
    let raw = String::from_utf8(raw.stdout).expect("utf-8");
    raw.split_once("\n\n").map(|(_, m)| m.to_owned()).unwrap_or_default()
}

#[tokio::test]
async fn all_tags_sorted_peeled_and_paginated() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    use find_all_tags_request::sort_by::Key;
    for format in FORMATS {
        let req = |sort_by, pagination_params| FindAllTagsRequest {
            repository: repo(format, "fixture"),
            sort_by,
            pagination_params,
        };
        for (key, field) in
            [(Key::Refname, "refname"), (Key::Creatordate, "creatordate"), (Key::VersionRefname, "version:refname")]
        {
            for (dir, sign) in [(SortDirection::Ascending, ""), (SortDirection::Descending, "-")] {
                let sort = find_all_tags_request::SortBy { key: key.into(), direction: dir.into() };
                let got: Vec<Tag> = all(c.find_all_tags(req(Some(sort), None)).await)
                    .await
                    .expect("tags")
                    .into_iter()
                    .flat_map(|m| m.tags)
                    .collect();
                let want = for_each_ref(
                    format,
                    "fixture",
                    "%(refname:lstrip=2) %(objectname)",
                    &[&format!("--sort={sign}{field}"), "refs/tags/"],
                );
                let got_lines: Vec<String> =
                    got.iter().map(|t| format!("{} {}", String::from_utf8_lossy(&t.name), t.id)).collect();
                assert_eq!(got_lines, want, "{format:?} {sign}{field}");
            }
        }
        let tags: Vec<Tag> =
            all(c.find_all_tags(req(None, None)).await).await.expect("tags").into_iter().flat_map(|m| m.tags).collect();
        for t in &tags {
            let name = String::from_utf8_lossy(&t.name).into_owned();
            let kind = fgit(format, "fixture", &["cat-file", "-t", &t.id]);
            let peeled = fgit(format, "fixture", &["rev-parse", &format!("refs/tags/{name}^{{}}")]);
            let peeled_kind = fgit(format, "fixture", &["cat-file", "-t", &peeled]);
            if peeled_kind == "commit" {
                assert_eq!(t.target_commit.as_ref().expect("target commit").id, peeled, "{name}");
            } else {
                assert!(t.target_commit.is_none(), "{name}");
            }
            if kind == "tag" {
                let message = tag_message(format, &name);
                let trimmed = message.trim_end_matches('\n');
                assert_eq!(String::from_utf8_lossy(&t.message), trimmed, "{name}: whole message, signature included");
                assert_eq!(t.message_size as usize, trimmed.len());
                let tagger = t.tagger.as_ref().expect("tagger");
                assert_eq!(tagger.name, b"Tim Tagger");
                let expected_sig = if name == "v1.2-signed" { SignatureType::Pgp } else { SignatureType::None };
                assert_eq!(t.signature_type(), expected_sig, "{name}");
            } else {
                assert!(t.message.is_empty() && t.tagger.is_none(), "{name}");
            }
        }
        let all_names = for_each_ref(format, "fixture", "%(refname)", &["refs/tags/"]);
        let page = |limit, token: &str| Some(PaginationParameter { limit, page_token: token.into() });
        let got: Vec<Tag> = all(c.find_all_tags(req(None, page(2, &all_names[1]))).await)
            .await
            .expect("page")
            .into_iter()
            .flat_map(|m| m.tags)
            .collect();
        let want: Vec<String> = all_names[2..4].iter().map(|n| n.trim_start_matches("refs/tags/").to_owned()).collect();
        assert_eq!(names(&got.iter().map(|t| t.name.clone()).collect::<Vec<_>>()), want);
        for bad in [page(2, "refs/tags/nope"), page(0, &all_names[0])] {
            let e = all(c.find_all_tags(req(None, bad)).await).await.expect_err("token not found");
            assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "could not find page token"));
        }
        let bad_sort = find_all_tags_request::SortBy { key: 0, direction: 7 };
        let e = all(c.find_all_tags(req(Some(bad_sort), None)).await).await.expect_err("bad direction");
        assert_eq!(e.code(), Code::InvalidArgument);
    }
}

#[tokio::test]
async fn find_tag_by_name_or_pattern() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let find =
            |name: &str| FindTagRequest { repository: repo(format, "fixture"), tag_name: name.as_bytes().to_vec() };
        for (ask, want) in [("v1.0", "v1.0"), ("v1.0-light", "v1.0-light"), ("v1.*", "v1.0"), ("blob-tag", "blob-tag")]
        {
            let tag = c.find_tag(find(ask)).await.expect("find tag").into_inner().tag.expect("tag");
            assert_eq!(tag.name, want.as_bytes());
            assert_eq!(tag.id, fgit(format, "fixture", &["rev-parse", &format!("refs/tags/{want}")]));
        }
        let e = c.find_tag(find("nope")).await.expect_err("missing");
        assert_eq!((e.code(), e.message()), (Code::NotFound, "tag does not exist"));
        let details = cairn_node::error::status_details(&e);
        assert_eq!(details[0].type_url, "type.googleapis.com/gitaly.FindTagError");
        let detail = FindTagError::decode(details[0].value.as_slice()).expect("detail");
        let Some(find_tag_error::Error::TagNotFound(nf)) = detail.error else { panic!("tag_not_found") };
        assert_eq!(nf.reference_name, b"refs/tags/nope");
        let e = c.find_tag(find("")).await.expect_err("empty");
        assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "tag name is empty"));
        let e = c.find_tag(find("-n1")).await.expect_err("option-like");
        assert_eq!(e.code(), Code::Internal);
    }
}

#[tokio::test]
async fn tag_messages_and_signatures() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let ids: Vec<String> = ["v1.0", "v1.2-signed", "v1.0-nested"]
            .iter()
            .map(|t| fgit(format, "fixture", &["rev-parse", &format!("refs/tags/{t}")]))
            .collect();
        let msgs = all(c
            .get_tag_messages(GetTagMessagesRequest { repository: repo(format, "fixture"), tag_ids: ids.clone() })
            .await)
        .await
        .expect("messages");
        let mut got: Vec<(String, Vec<u8>)> = Vec::new();
        for m in msgs {
            if m.tag_id.is_empty() {
                got.last_mut().expect("tag id first").1.extend(m.message);
            } else {
                assert!(m.message.is_empty());
                got.push((m.tag_id, Vec::new()));
            }
        }
        let want: Vec<(String, Vec<u8>)> = ids
            .iter()
            .zip(["v1.0", "v1.2-signed", "v1.0-nested"])
            .map(|(id, t)| (id.clone(), tag_message(format, t).into_bytes()))
            .collect();
        assert_eq!(got, want);
        let main = fgit(format, "fixture", &["rev-parse", "main"]);
        let e = all(c
            .get_tag_messages(GetTagMessagesRequest { repository: repo(format, "fixture"), tag_ids: vec![main] })
            .await)
        .await
        .expect_err("not a tag");
        assert_eq!(e.code(), Code::Internal);

        let sigs = |revs: &[&str]| GetTagSignaturesRequest {
            repository: repo(format, "fixture"),
            tag_revisions: revs.iter().map(|s| (*s).to_owned()).collect(),
        };
        let got: Vec<_> = all(c.get_tag_signatures(sigs(&["v1.2-signed"])).await)
            .await
            .expect("signed")
            .into_iter()
            .flat_map(|m| m.signatures)
            .collect();
        let raw = fgit(format, "fixture", &["cat-file", "tag", "v1.2-signed"]) + "\n";
        let at = raw.find("-----BEGIN").expect("armor");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].tag_id, ids[1]);
        assert_eq!(String::from_utf8_lossy(&got[0].content), &raw[..at]);
        assert_eq!(String::from_utf8_lossy(&got[0].signature), raw[at..].trim_end_matches('\n'));
        for revs in [vec!["--tags"], vec!["--all"], vec!["v1.0-nested"], vec!["--tags", "--not", "v1.0"], vec!["main"]]
        {
            let got: Vec<String> = all(c.get_tag_signatures(sigs(&revs)).await)
                .await
                .expect("signatures")
                .into_iter()
                .flat_map(|m| m.signatures)
                .map(|s| s.tag_id)
                .collect();
            let mut args = vec!["rev-list", "--objects", "--filter=object:type=tag", "--filter-provided-objects"];
            args.extend(revs.iter());
            let want: Vec<String> = fgit(format, "fixture", &args)
                .lines()
                .map(|l| l.split(' ').next().unwrap_or_default().to_owned())
                .collect();
            assert_eq!(got, want, "{revs:?}");
        }
        for bad in [vec![], vec!["--output=/tmp/cairn-sig"], vec!["main:README.md"], vec!["-n1"]] {
            let e = all(c.get_tag_signatures(sigs(&bad)).await).await.expect_err("bad revisions");
            assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}");
        }
        let e = all(c.get_tag_signatures(sigs(&["nope"])).await).await.expect_err("unknown");
        assert_eq!(e.code(), Code::Internal);
    }
}

#[tokio::test]
async fn ref_exists_needs_a_full_name() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let exists =
            |name: &str| RefExistsRequest { repository: repo(format, "fixture"), r#ref: name.as_bytes().to_vec() };
        for (name, want) in [
            ("refs/heads/main", true),
            ("refs/heads/loose-branch", true),
            ("refs/tags/v1.0", true),
            ("refs/keep-around/fixture", true),
            ("refs/heads/unicode-ß", true),
            ("refs/heads/nope", false),
            ("refs/heads/*", false),
            ("refs/ /heads", false),
            ("refs/heads", false),
            ("refs/heads/main/", false),
        ] {
            let got = c.ref_exists(exists(name)).await.expect("ref exists").into_inner().value;
            assert_eq!(got, want, "{name}");
        }
        for bad in ["main", "HEAD", "", "--", "heads/main"] {
            let e = c.ref_exists(exists(bad)).await.expect_err("invalid");
            assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "invalid refname"), "{bad}");
        }
    }
}

#[tokio::test]
async fn list_refs_like_for_each_ref() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    use list_refs_request::sort_by::Key;
    for format in FORMATS {
        let base = || ListRefsRequest {
            repository: repo(format, "fixture"),
            patterns: vec![b"refs/heads/".to_vec(), b"refs/tags/".to_vec()],
            ..Default::default()
        };
        let lines = |msgs: Vec<ListRefsResponse>| -> Vec<String> {
            msgs.into_iter()
                .flat_map(|m| m.references)
                .map(|r| {
                    format!("{} {} {}", String::from_utf8_lossy(&r.name), r.target, r.peeled_target)
                        .trim_end()
                        .to_owned()
                })
                .collect()
        };
        let got = lines(all(c.list_refs(base()).await).await.expect("refs"));
        assert_eq!(got, for_each_ref(format, "fixture", "%(refname) %(objectname)", &["refs/heads/", "refs/tags/"]));
        let got = lines(
            all(c.list_refs(ListRefsRequest { head: true, peel_tags: true, ..base() }).await).await.expect("head"),
        );
        let mut want = vec![format!("HEAD {}", fgit(format, "fixture", &["rev-parse", "HEAD"]))];
        want.extend(
            for_each_ref(format, "fixture", "%(refname) %(objectname) %(*objectname)", &["refs/heads/", "refs/tags/"])
                .into_iter()
                .map(|l| l.trim_end().to_owned()),
        );
        assert_eq!(got, want);
        for (key, field) in [
            (Key::Refname, "refname"),
            (Key::Creatordate, "creatordate"),
            (Key::Authordate, "authordate"),
            (Key::Committerdate, "committerdate"),
        ] {
            for (dir, sign) in [(SortDirection::Ascending, ""), (SortDirection::Descending, "-")] {
                let sort_by = Some(list_refs_request::SortBy { key: key.into(), direction: dir.into() });
                let got = lines(all(c.list_refs(ListRefsRequest { sort_by, ..base() }).await).await.expect("sorted"));
                let want = for_each_ref(
                    format,
                    "fixture",
                    "%(refname) %(objectname)",
                    &[&format!("--sort={sign}{field}"), "refs/heads/", "refs/tags/"],
                );
                assert_eq!(got, want, "{sign}{field}");
            }
        }
        let main = fgit(format, "fixture", &["rev-parse", "main"]);
        let v10 = fgit(format, "fixture", &["rev-parse", "v1.0^{}"]);
        let got = lines(
            all(c
                .list_refs(ListRefsRequest {
                    pointing_at_oids: vec![main.clone().into_bytes(), v10.clone().into_bytes()],
                    ..base()
                })
                .await)
            .await
            .expect("points at"),
        );
        let want = for_each_ref(
            format,
            "fixture",
            "%(refname) %(objectname)",
            &[&format!("--points-at={main}"), &format!("--points-at={v10}"), "refs/heads/", "refs/tags/"],
        );
        assert_eq!(got, want);
        let got = lines(
            all(c
                .list_refs(ListRefsRequest {
                    patterns: vec![b"refs/*/v1*".to_vec(), b"refs/keep-around".to_vec()],
                    ..base()
                })
                .await)
            .await
            .expect("globs"),
        );
        assert_eq!(
            got,
            for_each_ref(format, "fixture", "%(refname) %(objectname)", &["refs/*/v1*", "refs/keep-around"])
        );

        // Pagination: pages continue after the cursor of the previous one.
        let everything = for_each_ref(format, "fixture", "%(refname) %(objectname)", &["refs/heads/", "refs/tags/"]);
        let mut token = String::new();
        let mut paged = Vec::new();
        loop {
            let msgs = all(c
                .list_refs(ListRefsRequest {
                    pagination_params: Some(PaginationParameter { page_token: token.clone(), limit: 4 }),
                    ..base()
                })
                .await)
            .await
            .expect("page");
            let cursor = msgs.last().and_then(|m| m.pagination_cursor.clone());
            let page = lines(msgs);
            assert!(page.len() <= 4);
            paged.extend(page);
            match cursor {
                Some(c) => token = c.next_cursor,
                None => break,
            }
        }
        assert_eq!(paged, everything);
        let e = all(c
            .list_refs(ListRefsRequest {
                pagination_params: Some(PaginationParameter { page_token: "refs/heads/nope".into(), limit: 4 }),
                ..base()
            })
            .await)
        .await
        .expect_err("unknown token");
        assert_eq!(e.code(), Code::InvalidArgument);

        let e = all(c.list_refs(ListRefsRequest { patterns: vec![], ..base() }).await).await.expect_err("no patterns");
        assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "patterns must have at least one entry"));
        let e = all(c
            .list_refs(ListRefsRequest { sort_by: Some(list_refs_request::SortBy { key: 9, direction: 0 }), ..base() })
            .await)
        .await
        .expect_err("bad key");
        assert_eq!(e.code(), Code::InvalidArgument);
        let e = all(c.list_refs(ListRefsRequest { patterns: vec![b"--contains=main".to_vec()], ..base() }).await)
            .await
            .expect_err("option-like");
        assert_eq!(e.code(), Code::Internal);
    }
    let empty = all(c
        .list_refs(ListRefsRequest {
            repository: repo(Format::Sha1, "empty"),
            patterns: vec![b"refs/".to_vec()],
            head: true,
            ..Default::default()
        })
        .await)
    .await
    .expect("empty repository");
    assert!(empty.is_empty());
}

#[tokio::test]
async fn refs_by_oid() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let main = fgit(format, "fixture", &["rev-parse", "main"]);
        let v10 = fgit(format, "fixture", &["rev-parse", "v1.0^{}"]);
        let find = |oid: &str, patterns: &[&str], sort: &str, limit| FindRefsByOidRequest {
            repository: repo(format, "fixture"),
            oid: oid.into(),
            ref_patterns: patterns.iter().map(|s| (*s).to_owned()).collect(),
            sort_field: sort.into(),
            limit,
        };
        for (oid, patterns, sort, limit) in [
            (main.as_str(), vec![], "", 0),
            (main.as_str(), vec![], "refname", 1),
            (main.as_str(), vec![], "-refname", 0),
            (v10.as_str(), vec![], "", 0),
            (v10.as_str(), vec!["refs/"], "-creatordate", 0),
            (main.as_str(), vec!["refs/heads/"], "", 0),
            (&main[..10], vec!["refs/tags/v1*"], "version:refname", 0),
        ] {
            let got =
                c.find_refs_by_oid(find(oid, &patterns, sort, limit)).await.expect("refs by oid").into_inner().refs;
            let mut args = vec![format!("--points-at={oid}")];
            if !sort.is_empty() {
                args.push(format!("--sort={sort}"));
            }
            if limit > 0 {
                args.push(format!("--count={limit}"));
            }
            if patterns.is_empty() {
                args.extend(["refs/tags/".to_owned(), "refs/heads/".to_owned()]);
            } else {
                args.extend(patterns.iter().map(|s| (*s).to_owned()));
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            assert_eq!(got, for_each_ref(format, "fixture", "%(refname)", &args), "{oid} {patterns:?} {sort}");
        }
        let none = c.find_refs_by_oid(find(&format_zero(format), &[], "", 0)).await.expect("nothing points there");
        assert!(none.into_inner().refs.is_empty());
        for (oid, sort) in [("", ""), ("does-not-exist", ""), (main.as_str(), "bogus")] {
            let e = c.find_refs_by_oid(find(oid, &[], sort, 0)).await.expect_err("bad request");
            assert_eq!(e.code(), Code::InvalidArgument, "{oid:?} {sort:?}");
        }
    }
}

fn format_zero(format: Format) -> String {
    "ab".repeat(if format == Format::Sha1 { 20 } else { 32 })
}

#[tokio::test]
async fn names_containing_a_commit() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        for rev in ["main~2", "feature~1", "main", "signed", "feature"] {
            let commit = fgit(format, "fixture", &["rev-parse", rev]);
            let branches: Vec<String> = all(c
                .list_branch_names_containing_commit(ListBranchNamesContainingCommitRequest {
                    repository: repo(format, "fixture"),
                    commit_id: commit.clone(),
                    limit: 0,
                })
                .await)
            .await
            .expect("branches")
            .into_iter()
            .flat_map(|m| names(&m.branch_names))
            .collect();
            assert_eq!(
                branches,
                for_each_ref(
                    format,
                    "fixture",
                    "%(refname:lstrip=2)",
                    &[&format!("--contains={commit}"), "refs/heads"]
                ),
                "{rev}"
            );
            let tags: Vec<String> = all(c
                .list_tag_names_containing_commit(ListTagNamesContainingCommitRequest {
                    repository: repo(format, "fixture"),
                    commit_id: commit.clone(),
                    limit: 0,
                })
                .await)
            .await
            .expect("tags")
            .into_iter()
            .flat_map(|m| names(&m.tag_names))
            .collect();
            assert_eq!(
                tags,
                for_each_ref(format, "fixture", "%(refname:lstrip=2)", &[&format!("--contains={commit}"), "refs/tags"]),
                "{rev}"
            );
            let limited: Vec<String> = all(c
                .list_branch_names_containing_commit(ListBranchNamesContainingCommitRequest {
                    repository: repo(format, "fixture"),
                    commit_id: commit.clone(),
                    limit: 1,
                })
                .await)
            .await
            .expect("limited")
            .into_iter()
            .flat_map(|m| names(&m.branch_names))
            .collect();
            assert_eq!(limited, branches[..1]);
        }
        // A long history: tags r0..r10000 that contain r5000.
        let r5000 = fgit(format, "long", &["rev-parse", "r5000"]);
        let tags: Vec<String> = all(c
            .list_tag_names_containing_commit(ListTagNamesContainingCommitRequest {
                repository: repo(format, "long"),
                commit_id: r5000.clone(),
                limit: 0,
            })
            .await)
        .await
        .expect("long tags")
        .into_iter()
        .flat_map(|m| names(&m.tag_names))
        .collect();
        assert_eq!(
            tags,
            for_each_ref(format, "long", "%(refname:lstrip=2)", &[&format!("--contains={r5000}"), "refs/tags"])
        );
    }
    let before = snapshot(&fixture::path(Format::Sha1, "fixture"));
    for (bad, code) in
        [("main", Code::InvalidArgument), ("", Code::InvalidArgument), ("--output=/tmp/x", Code::InvalidArgument)]
    {
        let e = all(c
            .list_branch_names_containing_commit(ListBranchNamesContainingCommitRequest {
                repository: repo(Format::Sha1, "fixture"),
                commit_id: bad.into(),
                limit: 0,
            })
            .await)
        .await
        .expect_err("bad id");
        assert_eq!(e.code(), code, "{bad}");
    }
    let e = all(c
        .list_tag_names_containing_commit(ListTagNamesContainingCommitRequest {
            repository: repo(Format::Sha1, "fixture"),
            commit_id: format_zero(Format::Sha1),
            limit: 0,
        })
        .await)
    .await
    .expect_err("missing commit");
    assert_eq!(e.code(), Code::Internal);
    assert_eq!(snapshot(&fixture::path(Format::Sha1, "fixture")), before);
}
