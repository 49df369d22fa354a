//! UserApplyPatch: series made with `git format-patch`, applied by the RPC
//! and compared with what `git am --3way` makes of them in a clone.

use super::{client, copy_repo, detail, repository, resolve, user};
use crate::hooks::{quarantines, script};
use crate::support::Node;
use crate::support::git::{Format, TestRepo, git, git_stdin, has_object};
use cairn_proto::gitaly::custom_hook_error::HookType;
use cairn_proto::gitaly::user_apply_patch_request::{Header, UserApplyPatchRequestPayload as Payload};
use cairn_proto::gitaly::*;
use tonic::Code;

/// The request's time: 2023-11-14 22:13:20 UTC.
const NOW: i64 = 1_700_000_000;

/// The user, in a time zone east of UTC so the committer offset shows.
fn shanghai_user() -> User {
    User { timezone: "Asia/Shanghai".into(), ..user() }
}

fn header(relative: &str, branch: &str) -> Header {
    Header {
        repository: Some(repository(relative)),
        user: Some(shanghai_user()),
        target_branch: branch.into(),
        timestamp: Some(prost_types::Timestamp { seconds: NOW, nanos: 0 }),
        expected_old_oid: String::new(),
    }
}

/// The header, then `mbox` in chunks of `chunk` bytes.
fn messages(header: Header, mbox: &[u8], chunk: usize) -> Vec<UserApplyPatchRequest> {
    let wrap = |p| UserApplyPatchRequest { user_apply_patch_request_payload: Some(p) };
    let mut out = vec![wrap(Payload::Header(header))];
    out.extend(mbox.chunks(chunk).map(|c| wrap(Payload::Patches(c.to_vec()))));
    out
}

async fn apply(node: &Node, header: Header, mbox: &[u8]) -> Result<OperationBranchUpdate, tonic::Status> {
    let mut ops = client(node).await;
    let resp = ops.user_apply_patch(tokio_stream::iter(messages(header, mbox, 61))).await?;
    Ok(resp.into_inner().branch_update.expect("branch update"))
}

/// A tree holding `files`, written into `repo`.
fn tree(repo: &TestRepo, files: &[(&str, &str)]) -> String {
    let commit = repo.commit(files, &[], "scratch");
    repo.git(&["rev-parse", &format!("{commit}^{{tree}}")])
}

/// A commit of `files` on `parent` by `author` (`Name <email> secs +zone`).
fn authored(repo: &TestRepo, files: &[(&str, &str)], parent: &str, author: &str, message: &str) -> String {
    let raw = format!(
        "tree {}\nparent {parent}\nauthor {author}\ncommitter Scrooge McDuck <scrooge@mcduck.com> 1572776879 +0100\n\n{message}",
        tree(repo, files)
    );
    git_stdin(Some(&repo.path), &["hash-object", "-t", "commit", "-w", "--stdin"], Some(raw.as_bytes()))
}

const SIX: &str = "1\n2\n3\n4\n5\n6\n";
const ADA: &str = "Ada Author <ada@example.com> 1600000000 +0530";
const BOB: &str = "Bob Builder <bob@example.com> 1600003600 -0700";

/// A repository whose `main` holds a base commit and whose `topic` adds
/// three commits by other authors on top: an edit, a rename with a new
/// file, and an edit of the renamed file with a deletion. Returns the base.
fn fixture(node: &Node, relative: &str, format: Format) -> (TestRepo, String) {
    let repo = node.create_repo(relative, format);
    let base = repo.commit_on("main", &[("README.md", "hello\n"), ("file.txt", SIX)], "base");
    repo.git(&["symbolic-ref", "HEAD", "refs/heads/main"]);
    let two = SIX.replace("2\n", "two\n");
    let c1 = authored(
        &repo,
        &[("README.md", "hello\n"), ("file.txt", &two)],
        &base,
        ADA,
        "Change line two\n\nWith a body that  \nexplains it.\n\n\n",
    );
    let c2 = authored(
        &repo,
        &[("README.md", "hello\n"), ("moved.txt", &two), ("new.txt", "new\n")],
        &c1,
        BOB,
        "Move the file\n",
    );
    let c3 = authored(
        &repo,
        &[("moved.txt", &two.replace("5\n", "five\n")), ("new.txt", "new\n")],
        &c2,
        ADA,
        "Edit the moved file\n\nSigned-off-by: Ada Author <ada@example.com>\n",
    );
    repo.git(&["update-ref", "refs/heads/topic", &c3]);
    (repo, base)
}

/// `git format-patch --stdout` of `range`.
fn format_patch(repo: &TestRepo, range: &str) -> Vec<u8> {
    repo.git(&["format-patch", "--stdout", range]).into_bytes()
}

/// What `git am --3way` makes of `mbox` on `branch` of a clone of `repo`,
/// committed as the request's user at the request's time: the new tip, or
/// `None` when it fails.
fn git_am(repo: &TestRepo, branch: &str, mbox: &[u8]) -> Option<String> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("work");
    git(None, &["clone", "--quiet", "--no-local", &repo.path.to_string_lossy(), &work.to_string_lossy()]);
    git(Some(&work), &["checkout", "--quiet", "-B", "am", &format!("origin/{branch}")]);
    let mut child = super::git_as_user(&work, &format!("{NOW} +0800"))
        .args(["am", "--quiet", "--3way"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("git runs");
    use std::io::Write as _;
    child.stdin.take().expect("piped").write_all(mbox).expect("write mbox");
    let ok = child.wait().expect("git am finishes").success();
    ok.then(|| git(Some(&work), &["rev-parse", "HEAD"]))
}

/// Temporary directories the RPC left in the storage.
fn leftovers(node: &Node) -> Vec<String> {
    match std::fs::read_dir(node.storage.join("+gitaly/tmp")) {
        Ok(entries) => entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    }
}

async fn applies_a_series_as_git_am_does(format: Format) {
    let node = Node::start().await;
    let (repo, base) = fixture(&node, "r.git", format);
    let mbox = format_patch(&repo, "main..topic");
    let expected = git_am(&repo, "main", &mbox).expect("git am applies the series");

    let update = apply(&node, header("r.git", "main"), &mbox).await.expect("applied");
    assert!(!update.branch_created && !update.repo_created);
    // Same trees, authors, dates, messages and committer: the same commits.
    assert_eq!(update.commit_id, expected);
    assert_eq!(resolve(&repo, "main").as_deref(), Some(expected.as_str()));
    assert_eq!(repo.git(&["rev-list", "--count", &format!("{base}..main")]), "3");
    assert_eq!(
        repo.git(&["log", "--format=%an <%ae> %ad|%cn <%ce> %cd|%B", "--date=raw", "main~3..main"]),
        "Ada Author <ada@example.com> 1600000000 +0530|Jane Doe <jane@example.com> 1700000000 +0800|\
         Edit the moved file\n\nSigned-off-by: Ada Author <ada@example.com>\n\n\
         Bob Builder <bob@example.com> 1600003600 -0700|Jane Doe <jane@example.com> 1700000000 +0800|Move the file\n\n\
         Ada Author <ada@example.com> 1600000000 +0530|Jane Doe <jane@example.com> 1700000000 +0800|\
         Change line two\n\nWith a body that\nexplains it."
    );
    assert_eq!(repo.git(&["rev-parse", "main^{tree}"]), repo.git(&["rev-parse", "topic^{tree}"]));
    repo.git(&["fsck", "--strict"]);
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
    assert_eq!(leftovers(&node), Vec::<String>::new());

    // Patches mailed by someone else carry the author in the body; the
    // commits come out the same.
    let forwarded =
        repo.git(&["format-patch", "--stdout", "--from=Test Sender <sender@example.com>", &format!("{base}..topic")]);
    assert!(forwarded.contains("From: Test Sender"), "{forwarded}");
    repo.git(&["update-ref", "refs/heads/forwarded", &base]);
    let update = apply(&node, header("r.git", "forwarded"), forwarded.as_bytes()).await.expect("applied");
    assert_eq!(update.commit_id, expected);

    // The same request on a copy of the repository writes the same commits.
    copy_repo(&node, &repo, "copy.git");
    let copy = TestRepo { path: node.storage.join("copy.git") };
    copy.git(&["update-ref", "refs/heads/main", &base]);
    let again = apply(&node, header("copy.git", "main"), &mbox).await.expect("applied");
    assert_eq!(again.commit_id, update.commit_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_a_series_as_git_am_does_sha1() {
    applies_a_series_as_git_am_does(Format::Sha1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_a_series_as_git_am_does_sha256() {
    applies_a_series_as_git_am_does(Format::Sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falls_back_to_a_three_way_merge_that_follows_renames() {
    let node = Node::start().await;
    let (repo, base) = fixture(&node, "r.git", Format::Sha1);
    // main renamed the file the first patch edits.
    let renamed = repo.commit(&[("README.md", "hello\n"), ("renamed.txt", SIX)], &[&base], "rename");
    repo.git(&["update-ref", "refs/heads/main", &renamed]);
    let mbox = format_patch(&repo, "topic~3..topic~2");
    let expected = git_am(&repo, "main", &mbox).expect("git am merges");

    let update = apply(&node, header("r.git", "main"), &mbox).await.expect("applied");
    assert_eq!(update.commit_id, expected);
    assert_eq!(repo.git(&["show", "main:renamed.txt"]), SIX.replace("2\n", "two\n").trim_end());
    assert_eq!(repo.git(&["ls-tree", "--name-only", "main"]), "README.md\nrenamed.txt");

    // A patch whose change main has already is skipped, as git am does.
    let mbox = format_patch(&repo, "topic~3..topic~2");
    let again = apply(&node, header("r.git", "main"), &mbox).await.expect("applied");
    assert_eq!(again.commit_id, update.commit_id);
    assert_eq!(git_am(&repo, "main", &mbox).as_deref(), Some(update.commit_id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_that_does_not_apply_changes_nothing() {
    let node = Node::start().await;
    let (repo, base) = fixture(&node, "r.git", Format::Sha1);
    // main changed line five too; the third patch conflicts with it, the
    // first two apply.
    let five = repo.commit(&[("README.md", "hello\n"), ("file.txt", &SIX.replace("5\n", "FIVE\n"))], &[&base], "5");
    repo.git(&["update-ref", "refs/heads/main", &five]);
    let mbox = format_patch(&repo, "main..topic");
    assert_eq!(git_am(&repo, "main", &mbox), None, "git am fails too");
    let two_applied = git_am(&repo, "main", &format_patch(&repo, "main..topic~1")).expect("two patches apply");

    let status = apply(&node, header("r.git", "main"), &mbox).await.expect_err("conflict");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(
        status.message(),
        "Patch failed at 0003 Edit the moved file\n\
         When you have resolved this problem, run \"git am --continue\".\n\
         If you prefer to skip this patch, run \"git am --skip\" instead.\n\
         To restore the original branch and stop patching, run \"git am --abort\".\n"
    );
    assert_eq!(resolve(&repo, "main").as_deref(), Some(five.as_str()));
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
    assert_eq!(leftovers(&node), Vec::<String>::new());
    // The commits of the first two patches did not reach the repository.
    assert!(!has_object(&repo.path, &two_applied));

    // Input that is no patch at all.
    let status = apply(&node, header("r.git", "main"), b"hello\n").await.expect_err("no patch");
    assert_eq!(
        (status.code(), status.message()),
        (Code::Internal, "apply patch: 0001: patch does not have a valid e-mail address")
    );
    assert_eq!(resolve(&repo, "main").as_deref(), Some(five.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_branch_starts_from_the_default_branch() {
    let node = Node::start().await;
    let (repo, base) = fixture(&node, "r.git", Format::Sha1);
    repo.git(&["update-ref", "refs/heads/a-first-branch", &repo.commit(&[("x", "x\n")], &[], "unrelated")]);
    let mbox = format_patch(&repo, "main..topic");
    let expected = git_am(&repo, "main", &mbox).expect("git am applies");
    let update = apply(&node, header("r.git", "feature"), &mbox).await.expect("applied");
    assert!(update.branch_created && !update.repo_created);
    assert_eq!(update.commit_id, expected);
    assert_eq!(resolve(&repo, "feature").as_deref(), Some(expected.as_str()));
    assert_eq!(resolve(&repo, "main").as_deref(), Some(base.as_str()));

    // An empty series creates the branch at the default branch, as git am
    // applying nothing does upstream.
    let update = apply(&node, header("r.git", "nothing"), b"").await.expect("applied");
    assert!(update.branch_created);
    assert_eq!((update.commit_id.as_str(), resolve(&repo, "nothing").as_deref()), (base.as_str(), Some(base.as_str())));

    // Without any branch there is nothing to start from.
    let empty = node.create_repo("empty.git", Format::Sha1);
    let status = apply(&node, header("empty.git", "main"), &mbox).await.expect_err("no default branch");
    assert_eq!((status.code(), status.message()), (Code::Internal, "no default branch"));
    assert_eq!(empty.git(&["for-each-ref"]), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_old_oid_guards_the_update() {
    let node = Node::start().await;
    let (repo, base) = fixture(&node, "r.git", Format::Sha1);
    let mbox = format_patch(&repo, "main..topic~2");

    let stale = Header { expected_old_oid: base.clone(), ..header("r.git", "main") };
    let moved = repo.commit_on("main", &[("README.md", "hello\n"), ("file.txt", SIX), ("z", "z\n")], "moved on");
    let status = apply(&node, stale, &mbox).await.expect_err("stale");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_eq!(status.message(), "update reference: reference update: reference does not point to expected object");
    assert_eq!(resolve(&repo, "main").as_deref(), Some(moved.as_str()));
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());

    let cases = [
        (
            "foo".to_owned(),
            "expected old object id not expected SHA format: invalid object ID: \"foo\", expected length 40, got 3",
        ),
        ("0".repeat(40), "expected old object cannot be resolved: reference not found"),
    ];
    for (oid, message) in cases {
        let h = Header { expected_old_oid: oid, ..header("r.git", "main") };
        let status = apply(&node, h, &mbox).await.expect_err("bad expected old value");
        assert_eq!((status.code(), status.message()), (Code::Internal, message));
        assert_eq!(resolve(&repo, "main").as_deref(), Some(moved.as_str()));
    }

    let current = Header { expected_old_oid: moved.clone(), ..header("r.git", "main") };
    let update = apply(&node, current, &mbox).await.expect("applied");
    assert_eq!(repo.git(&["rev-parse", &format!("{}^", update.commit_id)]), moved);
    assert_eq!(repo.git(&["show", "main:file.txt"]), SIX.replace("2\n", "two\n").trim_end());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_hook_refusing_leaves_nothing_behind() {
    let node = Node::start().await;
    let (repo, base) = fixture(&node, "r.git", Format::Sha1);
    let mbox = format_patch(&repo, "main..topic");
    let expected = git_am(&repo, "main", &mbox).expect("git am applies");
    script(&repo.path.join("custom_hooks/pre-receive"), "echo out; echo 'patches need review' >&2; exit 1");

    let status = apply(&node, header("r.git", "main"), &mbox).await.expect_err("refused");
    assert_eq!((status.code(), status.message()), (Code::PermissionDenied, "denied by custom hooks"));
    let err: UserApplyPatchError = detail(&status);
    let Some(user_apply_patch_error::Error::CustomHook(hook)) = err.error else { panic!("{err:?}") };
    assert_eq!(hook.hook_type(), HookType::Prereceive);
    assert_eq!(
        (hook.stdout.as_slice(), hook.stderr.as_slice()),
        (b"out\n".as_slice(), b"patches need review\n".as_slice())
    );
    assert_eq!(resolve(&repo, "main").as_deref(), Some(base.as_str()));
    assert!(!has_object(&repo.path, &expected), "the refused commit stayed out of the repository");
    assert_eq!(quarantines(&repo.path), Vec::<String>::new());
    assert_eq!(leftovers(&node), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused() {
    let node = Node::start().await;
    let (repo, base) = fixture(&node, "r.git", Format::Sha1);
    let mbox = format_patch(&repo, "main..topic");
    let cases = [
        (Header { repository: None, ..header("r.git", "main") }, Code::InvalidArgument),
        (Header { user: None, ..header("r.git", "main") }, Code::InvalidArgument),
        (Header { target_branch: Vec::new(), ..header("r.git", "main") }, Code::InvalidArgument),
        (header("missing.git", "main"), Code::NotFound),
    ];
    for (h, code) in cases {
        let status = apply(&node, h, &mbox).await.expect_err("refused");
        assert_eq!(status.code(), code, "{status:?}");
    }
    let status = apply(&node, Header { user: None, ..header("r.git", "main") }, &mbox).await.expect_err("refused");
    assert_eq!(status.message(), "missing User");
    let status = apply(&node, Header { target_branch: Vec::new(), ..header("r.git", "main") }, &mbox).await;
    assert_eq!(status.expect_err("refused").message(), "missing Branch");

    // No header first.
    let mut ops = client(&node).await;
    let patches_only = UserApplyPatchRequest { user_apply_patch_request_payload: Some(Payload::Patches(mbox.clone())) };
    let status = ops.user_apply_patch(tokio_stream::iter(vec![patches_only])).await.expect_err("no header");
    assert_eq!((status.code(), status.message()), (Code::InvalidArgument, "empty UserApplyPatch_Header"));

    // More patch data than a request may send.
    let mut ops = client(&node).await;
    let wrap = |p| UserApplyPatchRequest { user_apply_patch_request_payload: Some(p) };
    let chunk = vec![b'x'; 1024 * 1024];
    let requests = std::iter::once(wrap(Payload::Header(header("r.git", "main"))))
        .chain((0..101).map(move |_| wrap(Payload::Patches(chunk.clone()))));
    let status = ops.user_apply_patch(tokio_stream::iter(requests)).await.expect_err("too large");
    assert_eq!(
        (status.code(), status.message()),
        (Code::InvalidArgument, "patches exceed the limit of 104857600 bytes")
    );
    assert_eq!(resolve(&repo, "main").as_deref(), Some(base.as_str()));
    assert_eq!(leftovers(&node), Vec::<String>::new());
}
