//! Commits signed with `[git] signing_key` when a request asks (`sign`),
//! verified by `git verify-commit` against the key's public half.

#![allow(clippy::disallowed_methods, reason = "the key is made and checked with ssh-keygen and git")]

use super::merges::{diverged, timestamp};
use super::{client, copy_repo, repository, user};
use crate::support::Node;
use crate::support::git::{Format, TestRepo};
use cairn_proto::gitaly::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An ed25519 key made with ssh-keygen in `dir`; returns its path.
fn make_key(dir: &Path) -> PathBuf {
    let key = dir.join("signing_key");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "cairn", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen runs");
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
    key
}

/// Whether `git verify-commit` accepts `id` as signed by `key` for the
/// committer's address.
fn verified(repo: &TestRepo, key: &Path, id: &str) -> bool {
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    let signers = key.with_file_name("allowed_signers");
    std::fs::write(&signers, format!("jane@example.com {public}")).expect("write allowed signers");
    Command::new("git")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .arg("-C")
        .arg(&repo.path)
        .args(["-c", &format!("gpg.ssh.allowedSignersFile={}", signers.display()), "verify-commit", id])
        .output()
        .expect("git runs")
        .status
        .success()
}

fn to_ref(relative: &str, source: &str, sign: bool) -> UserMergeToRefRequest {
    UserMergeToRefRequest {
        repository: Some(repository(relative)),
        user: Some(user()),
        source_sha: source.into(),
        first_parent_ref: b"refs/heads/main".to_vec(),
        target_ref: b"refs/merge-requests/1/merge".to_vec(),
        message: b"Merge".to_vec(),
        timestamp: timestamp(),
        sign,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_signed_when_asked_and_replicas_agree() {
    let keys = tempfile::tempdir().expect("tempdir");
    let key = make_key(keys.path());
    let configured = key.clone();
    let node = Node::start_with(move |c| c.git.signing_key = Some(configured)).await;
    let (repo, _, feature, _, _) = diverged(&node, "r.git", Format::Sha1);
    copy_repo(&node, &repo, "copy.git");
    let mut ops = client(&node).await;

    let signed = ops.user_merge_to_ref(to_ref("r.git", &feature, true)).await.expect("merged").into_inner().commit_id;
    let raw = repo.git(&["cat-file", "commit", &signed]);
    assert!(raw.contains("gpgsig -----BEGIN SSH SIGNATURE-----"), "{raw}");
    assert!(verified(&repo, &key, &signed), "the signature verifies");
    // Ed25519 signatures are deterministic: a replica signs the same bytes.
    let replica =
        ops.user_merge_to_ref(to_ref("copy.git", &feature, true)).await.expect("merged").into_inner().commit_id;
    assert_eq!(replica, signed);

    // Not asked: not signed.
    let plain = ops.user_merge_to_ref(to_ref("r.git", &feature, false)).await.expect("merged").into_inner().commit_id;
    assert!(!repo.git(&["cat-file", "commit", &plain]).contains("gpgsig"));
    assert!(!verified(&repo, &key, &plain));

    // UserCommitFiles writes its tree in process; a signed commit goes through git.
    use super::commit_files::{action, commit, header};
    use cairn_proto::gitaly::user_commit_files_action_header::ActionType;
    let h =
        UserCommitFilesRequestHeader { start_branch_name: b"main".to_vec(), sign: true, ..header("r.git", "signed") };
    let update = commit(&node, h, vec![action(ActionType::Create, "signed.txt", "", Some("signed\n"))])
        .await
        .expect("committed")
        .branch_update
        .expect("update");
    assert!(verified(&repo, &key, &update.commit_id), "the committed change verifies");

    // GetCommitSignatures names the node as signer of its own commits only:
    // not of a user's signature, nor of one that names the node's key but
    // does not match the commit (the signed commit with another message).
    let user_keys = keys.path().join("user");
    std::fs::create_dir(&user_keys).expect("mkdir");
    let other = make_key(&user_keys);
    let by_user = {
        let out = Command::new("git")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_COMMITTER_NAME", "U")
            .env("GIT_COMMITTER_EMAIL", "u@example.com")
            .env("GIT_AUTHOR_NAME", "U")
            .env("GIT_AUTHOR_EMAIL", "u@example.com")
            .arg("-C")
            .arg(&repo.path)
            .args(["-c", "gpg.format=ssh", "-c", &format!("user.signingKey={}", other.display())])
            .args(["commit-tree", "-S", "-m", "by a user", &format!("{signed}^{{tree}}")])
            .output()
            .expect("git runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let forged = crate::support::git::git_stdin(
        Some(&repo.path),
        &["hash-object", "-t", "commit", "-w", "--stdin"],
        Some(raw.replace("\nMerge", "\nForged").as_bytes()),
    );
    let mut commits = cairn_proto::gitaly::commit_service_client::CommitServiceClient::new(node.channel().await);
    let req = GetCommitSignaturesRequest {
        repository: Some(repository("r.git")),
        commit_ids: vec![signed.clone(), by_user.clone(), forged.clone(), plain.clone()],
    };
    let mut stream = commits.get_commit_signatures(req).await.expect("signatures").into_inner();
    let mut signers = Vec::new();
    while let Some(msg) = stream.message().await.expect("message") {
        if !msg.commit_id.is_empty() {
            signers.push((msg.commit_id.clone(), msg.signer()));
        }
    }
    use cairn_proto::gitaly::get_commit_signatures_response::Signer;
    assert_eq!(signers, vec![(signed, Signer::System), (by_user, Signer::User), (forged, Signer::User)]);
    assert_eq!(repo.git(&["show", &format!("{}:signed.txt", update.commit_id)]), "signed");
    assert_eq!(repo.git(&["rev-parse", "refs/heads/signed"]), update.commit_id);
}
