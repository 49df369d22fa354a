//! CommitService against the fixture repositories, compared with what the
//! git CLI says about the same repositories.

use crate::support::Node;
use crate::support::fixture::{self, fgit, rel};
use crate::support::git::Format;
use cairn_proto::gitaly::commit_service_client::CommitServiceClient;
use cairn_proto::gitaly::*;
use tonic::Code;

const FORMATS: [Format; 2] = [Format::Sha1, Format::Sha256];

fn repo(format: Format, name: &str) -> Option<Repository> {
    Some(Repository { storage_name: "default".into(), relative_path: rel(format, name), ..Default::default() })
}

#[tokio::test]
async fn find_commit_matches_git() {
    let node = Node::start_on_fixture().await;
    let mut c = CommitServiceClient::new(node.channel().await);
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
    let _ = fixture::LONG_COMMITS;
}
