//! DiffService against the fixture repositories (and repositories built
//! here for renames, limits and whitespace), every answer compared with
//! what the git CLI says about the same repository, in both formats.

#![allow(clippy::disallowed_methods, reason = "expected answers come from the real git CLI, byte for byte")]

use crate::support::Node;
use crate::support::fixture::{self, rel};
use crate::support::git::{Format, TestRepo};
use cairn_proto::gitaly::diff_service_client::DiffServiceClient;
use cairn_proto::gitaly::*;
use std::path::Path;
use std::process::{Command, Stdio};
use tonic::Code;
use tonic::transport::Channel;

const FORMATS: [Format; 2] = [Format::Sha1, Format::Sha256];

fn repo(format: Format, name: &str) -> Option<Repository> {
    Some(Repository { storage_name: "default".into(), relative_path: rel(format, name), ..Default::default() })
}

fn hex_len(format: Format) -> usize {
    if format == Format::Sha1 { 40 } else { 64 }
}

fn zero(format: Format) -> String {
    "0".repeat(hex_len(format))
}

/// Runs git in `dir` with a sealed environment and returns its raw stdout
/// (`None` when git fails).
fn try_git(dir: Option<&Path>, args: &[&str], stdin: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut cmd = Command::new("git");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args(["-c", "core.bigFileThreshold=50m"]);
    if let Some(d) = dir {
        cmd.arg("--git-dir").arg(d);
    }
    cmd.args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("git runs");
    let writer = stdin.map(|input| {
        let mut w = child.stdin.take().expect("piped");
        let input = input.to_vec();
        std::thread::spawn(move || {
            use std::io::Write as _;
            let _ = w.write_all(&input);
        })
    });
    let out = child.wait_with_output().expect("git finishes");
    if let Some(w) = writer {
        w.join().expect("stdin writer");
    }
    out.status.success().then_some(out.stdout)
}

fn gitb(dir: &Path, args: &[&str]) -> Vec<u8> {
    try_git(Some(dir), args, None).unwrap_or_else(|| panic!("git {args:?} fails"))
}

fn gits(dir: &Path, args: &[&str]) -> String {
    String::from_utf8(gitb(dir, args)).expect("utf-8").trim_end().to_owned()
}

async fn client(node: &Node) -> DiffServiceClient<Channel> {
    DiffServiceClient::new(node.channel().await)
}

/// Every message of a server stream, or the status that ended it.
async fn drain<T>(resp: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>) -> Result<Vec<T>, tonic::Status> {
    let mut stream = resp?.into_inner();
    let mut out = Vec::new();
    while let Some(m) = stream.message().await? {
        out.push(m);
    }
    Ok(out)
}

/// Commits of the fixture worth diffing, oldest first.
fn fixture_commits(format: Format) -> Vec<String> {
    let dir = fixture::path(format, "fixture");
    let mut commits: Vec<String> = gits(&dir, &["rev-list", "--reverse", "--topo-order", "main", "feature", "signed"])
        .lines()
        .map(str::to_owned)
        .collect();
    commits.dedup();
    commits
}

/// One raw entry as git prints it with `--raw -z`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Raw {
    old_mode: i32,
    new_mode: i32,
    old_id: String,
    new_id: String,
    status: u8,
    old_path: Vec<u8>,
    path: Vec<u8>,
}

fn split_nul(data: &[u8]) -> Vec<&[u8]> {
    let mut parts: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    if parts.last() == Some(&&b""[..]) {
        parts.pop();
    }
    parts
}

/// Parses `--raw -z` entries from the front of `data`; returns them and
/// the rest of the output.
fn parse_raw(data: &[u8]) -> (Vec<Raw>, &[u8]) {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.first() == Some(&b':') {
        let take = |r: &mut &[u8]| -> Vec<u8> {
            let end = r.iter().position(|b| *b == 0).expect("NUL-terminated");
            let field = r[..end].to_vec();
            *r = &r[end + 1..];
            field
        };
        let head = String::from_utf8(take(&mut rest)).expect("ascii head");
        let f: Vec<&str> = head[1..].split(' ').collect();
        let status = f[4].as_bytes()[0];
        let old_path = take(&mut rest);
        let path = if matches!(status, b'R' | b'C') { take(&mut rest) } else { old_path.clone() };
        out.push(Raw {
            old_mode: i32::from_str_radix(f[0], 8).expect("mode"),
            new_mode: i32::from_str_radix(f[1], 8).expect("mode"),
            old_id: f[2].to_owned(),
            new_id: f[3].to_owned(),
            status,
            old_path,
            path,
        });
    }
    if rest.first() == Some(&0) {
        rest = &rest[1..];
    }
    (out, rest)
}

/// Upstream splits a type change into a deletion and an addition.
fn split_type_changes(raw: Vec<Raw>, zero: &str) -> Vec<Raw> {
    let mut out = Vec::new();
    for r in raw {
        if r.status == b'T' {
            out.push(Raw { new_mode: 0, new_id: zero.to_owned(), status: b'D', ..r.clone() });
            out.push(Raw { old_mode: 0, old_id: zero.to_owned(), status: b'A', ..r });
        } else {
            out.push(r);
        }
    }
    out
}

/// The sections of a patch, each with its `diff --git` line.
fn sections(patch: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut pos = 0;
    while pos < patch.len() {
        if patch[pos..].starts_with(b"diff --git ") {
            starts.push(pos);
        }
        pos += patch[pos..].iter().position(|b| *b == b'\n').map_or(patch.len() - pos, |i| i + 1);
    }
    starts.iter().enumerate().map(|(i, s)| &patch[*s..starts.get(i + 1).copied().unwrap_or(patch.len())]).collect()
}

/// The hunks (or binary notice) of a section, without its headers.
fn hunks(section: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut in_body = false;
    for line in section.split_inclusive(|b| *b == b'\n') {
        if !in_body && (line.starts_with(b"@@") || line.starts_with(b"Binary files")) {
            in_body = true;
        }
        if in_body {
            out.extend_from_slice(line);
        }
    }
    out
}

fn count_lines(patch: &[u8], first: u8) -> i32 {
    patch.split_inclusive(|b| *b == b'\n').filter(|l| l.first() == Some(&first)).count() as i32
}

/// Pairs of fixture commits to compare (both directions, root included).
fn commit_pairs(format: Format) -> Vec<(String, String)> {
    let commits = fixture_commits(format);
    let mut pairs = Vec::new();
    for (i, a) in commits.iter().enumerate() {
        for b in commits.iter().skip(i + 1) {
            pairs.push((a.clone(), b.clone()));
            pairs.push((b.clone(), a.clone()));
        }
    }
    pairs
}

fn deltas_of(responses: Vec<CommitDeltaResponse>) -> Vec<Raw> {
    responses
        .into_iter()
        .flat_map(|r| r.deltas)
        .map(|d| Raw {
            old_mode: d.old_mode,
            new_mode: d.new_mode,
            old_id: d.from_id,
            new_id: d.to_id,
            status: 0,
            old_path: d.from_path,
            path: d.to_path,
        })
        .collect()
}

fn without_status(raw: Vec<Raw>) -> Vec<Raw> {
    raw.into_iter().map(|r| Raw { status: 0, ..r }).collect()
}

#[tokio::test]
async fn commit_delta_matches_git_diff_raw() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let dir = fixture::path(format, "fixture");
        let abbrev = format!("--abbrev={}", hex_len(format));
        let mut renames = 0;
        for (left, right) in commit_pairs(format) {
            for paths in [vec![], vec!["src"], vec!["dir with space", "*.md"], vec!["files/", "vendor/sub", "link"]] {
                let mut args =
                    vec!["diff", "--raw", "-z", &abbrev, "--full-index", "--find-renames", &left, &right, "--"];
                args.extend(paths.iter().copied());
                let (raw, _) = parse_raw(&gitb(&dir, &args));
                renames += raw.iter().filter(|r| r.status == b'R').count();
                let want = without_status(split_type_changes(raw, &zero(format)));
                let got = drain(
                    c.commit_delta(CommitDeltaRequest {
                        repository: repo(format, "fixture"),
                        left_commit_id: left.clone(),
                        right_commit_id: right.clone(),
                        paths: paths.iter().map(|p| p.as_bytes().to_vec()).collect(),
                    })
                    .await,
                )
                .await
                .expect("commit delta");
                assert_eq!(deltas_of(got), want, "{left}..{right} {paths:?}");
            }
        }
        assert!(renames > 0, "the fixture has renames");
    }
}

/// Deterministic pseudo-random numbers for generated content.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Lines drawn from a small vocabulary, so files share lines and scores
/// land anywhere between 0 and 100%.
fn text(rng: &mut Rng, lines: usize) -> Vec<u8> {
    let words = ["alpha", "beta", "gamma", "delta", "{", "}", "", "return x;", "fn main() {", "let y = 2;"];
    let mut out = Vec::new();
    for _ in 0..lines {
        let n = 1 + rng.below(4);
        let line: Vec<&str> = (0..n).map(|_| words[rng.below(words.len() as u64) as usize]).collect();
        out.extend_from_slice(line.join(" ").as_bytes());
        if rng.below(7) == 0 {
            out.extend_from_slice(format!(" {}", rng.next()).as_bytes());
        }
        out.push(b'\n');
    }
    out
}

/// Changes about `percent` of the lines of `data`.
fn edit(rng: &mut Rng, data: &[u8], percent: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for line in data.split_inclusive(|b| *b == b'\n') {
        if rng.below(100) < percent {
            out.extend_from_slice(format!("changed {}\n", rng.next()).as_bytes());
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}

/// Writes a tree of `(mode, path, content)` files and a commit of it.
fn write_commit(dir: &Path, files: &[(&str, String, Vec<u8>)], parent: Option<&str>) -> String {
    // Nested trees through a temporary index.
    let scratch = tempfile::tempdir().expect("scratch dir");
    let index = scratch.path().join("index");
    let mut info = Vec::new();
    for (mode, path, content) in files {
        let id = if *mode == "160000" {
            String::from_utf8(content.clone()).expect("gitlink id")
        } else {
            String::from_utf8(try_git(Some(dir), &["hash-object", "-w", "--stdin"], Some(content)).expect("blob"))
                .expect("id")
                .trim()
                .to_owned()
        };
        info.extend_from_slice(format!("{mode} {id}\t{path}\n").as_bytes());
    }
    let mut cmd = Command::new("git");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_INDEX_FILE", &index)
        .arg("--git-dir")
        .arg(dir)
        .args(["update-index", "--add", "--index-info"])
        .stdin(Stdio::piped());
    let mut child = cmd.spawn().expect("update-index");
    {
        use std::io::Write as _;
        child.stdin.take().expect("stdin").write_all(&info).expect("index info");
    }
    assert!(child.wait().expect("update-index").success());
    let tree = Command::new("git")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_INDEX_FILE", &index)
        .arg("--git-dir")
        .arg(dir)
        .arg("write-tree")
        .output()
        .expect("write-tree");
    let tree = String::from_utf8(tree.stdout).expect("tree id").trim().to_owned();
    let mut args = vec!["-c", "user.name=A", "-c", "user.email=a@a", "commit-tree", tree.as_str(), "-m", "generated"];
    if let Some(p) = parent {
        args.push("-p");
        args.push(p);
    }
    gits(dir, &args)
}

/// Two commits full of renames of every kind: exact (ambiguous ones
/// too), inexact at every similarity, moved with the same base name,
/// empty files, symlinks, CRLF and binary files.
fn rename_repo(dir: &Path, seed: u64) -> (String, String) {
    let mut rng = Rng(seed);
    let mut before: Vec<(&str, String, Vec<u8>)> = Vec::new();
    let mut after: Vec<(&str, String, Vec<u8>)> = Vec::new();
    for i in 0..40 {
        let lines = 5 + rng.below(40) as usize;
        let content = text(&mut rng, lines);
        let path = format!("d{}/file{i}.txt", i % 4);
        before.push(("100644", path.clone(), content.clone()));
        match rng.below(6) {
            // Kept, maybe edited.
            0 => {
                let p = rng.below(30);
                after.push(("100644", path, edit(&mut rng, &content, p)));
            }
            // Moved, same name.
            1 => {
                let p = rng.below(100);
                after.push(("100644", format!("moved/{i}/file{i}.txt"), edit(&mut rng, &content, p)));
            }
            // Renamed to a new name.
            2 => {
                let p = rng.below(100);
                after.push(("100644", format!("renamed/x{i}.rs"), edit(&mut rng, &content, p)));
            }
            // Deleted.
            3 => {}
            // Replaced by something unrelated elsewhere.
            4 => {
                let n = 5 + rng.below(30) as usize;
                after.push(("100644", format!("new/n{i}.txt"), text(&mut rng, n)));
            }
            // Copied away and deleted, executable now.
            _ => after.push(("100755", format!("bin/tool{i}"), edit(&mut rng, &content, 10))),
        }
    }
    // Near-identical files with shared base names: ties in the matrix.
    let template = text(&mut rng, 25);
    for i in 0..12 {
        let content = edit(&mut rng, &template, 5);
        before.push(("100644", format!("pkg{i}/index.js"), content.clone()));
        let target = match rng.below(3) {
            0 => format!("lib/pkg{i}/index.js"),
            1 => format!("lib/pkg{}/main.js", rng.below(4)),
            _ => format!("lib/other{i}.js"),
        };
        if !after.iter().any(|(_, p, _)| *p == target) {
            let p = rng.below(40);
            after.push(("100644", target, edit(&mut rng, &content, p)));
        }
    }
    // Identical contents: exact renames with ambiguous sources.
    let same = text(&mut rng, 12);
    for i in 0..3 {
        before.push(("100644", format!("dup/same{i}.txt"), same.clone()));
    }
    after.push(("100644", "dup2/same1.txt".into(), same.clone()));
    after.push(("100644", "other/copy.txt".into(), same.clone()));
    // Empty files.
    before.push(("100644", "empty/a".into(), Vec::new()));
    after.push(("100644", "empty/b".into(), Vec::new()));
    // Symlinks: exact rename only.
    before.push(("120000", "links/l1".into(), b"target/one".to_vec()));
    before.push(("120000", "links/l2".into(), b"target/two".to_vec()));
    after.push(("120000", "links2/l1".into(), b"target/one".to_vec()));
    after.push(("120000", "links2/l2".into(), b"target/two-changed".to_vec()));
    // CRLF text, renamed with LF endings.
    let crlf: Vec<u8> = text(&mut rng, 30).split(|b| *b == b'\n').flat_map(|l| [l, b"\r\n"].concat()).collect();
    before.push(("100644", "crlf/win.txt".into(), crlf.clone()));
    after.push(("100644", "crlf/unix.txt".into(), crlf.iter().copied().filter(|b| *b != b'\r').collect()));
    // Binary, renamed with a small change.
    let mut bin: Vec<u8> = (0..3000).map(|_| rng.below(256) as u8).collect();
    bin[5] = 0;
    before.push(("100644", "bin.dat".into(), bin.clone()));
    bin[2000] ^= 0xff;
    after.push(("100644", "data/bin.dat".into(), bin));
    // A gitlink moving.
    let sub = "1".repeat(if dir.to_string_lossy().contains("sha256") { 64 } else { 40 }).into_bytes();
    before.push(("160000", "sub/a".into(), sub.clone()));
    after.push(("160000", "sub/b".into(), sub));
    let left = write_commit(dir, &before, None);
    let right = write_commit(dir, &after, Some(&left));
    (left, right)
}

#[tokio::test]
async fn renames_match_git_exactly() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        for seed in 1..=10 {
            let name = format!("{}/renames-{seed}.git", format.name());
            let r = node.create_repo(&name, format);
            let (left, right) = rename_repo(&r.path, seed);
            let abbrev = format!("--abbrev={}", hex_len(format));
            // CommitDelta: git diff --find-renames (50%).
            let out = gitb(&r.path, &["diff", "--raw", "-z", &abbrev, "--full-index", "--find-renames", &left, &right]);
            let inexact = split_nul(&out)
                .iter()
                .filter(|f| f.starts_with(b":") && !f.ends_with(b"R100") && f.contains(&b'R'))
                .count();
            let (raw, _) = parse_raw(&out);
            assert!(raw.iter().filter(|r| r.status == b'R').count() > 5, "seed {seed} renames");
            assert!(inexact > 2, "seed {seed} has inexact renames: {inexact}");
            let want = without_status(split_type_changes(raw, &zero(format)));
            let got = drain(
                c.commit_delta(CommitDeltaRequest {
                    repository: Some(node.repo(&name)),
                    left_commit_id: left.clone(),
                    right_commit_id: right.clone(),
                    paths: vec![],
                })
                .await,
            )
            .await
            .expect("commit delta");
            assert_eq!(deltas_of(got), want, "{format:?} seed {seed}");
            // FindChangedPaths: git diff-tree --find-renames=30%.
            let want = diff_tree(&r.path, &[format!("{right} {left}")], &["--find-renames=30%", "-m"], "AMDTCR", true);
            let got = changed_paths(&mut c, Some(node.repo(&name)), commit_request(&right, &[&left]), true, 0, vec![])
                .await
                .expect("changed paths");
            assert_eq!(got, want, "{format:?} seed {seed}");
        }
    }
}

/// Upstream's reading of `git diff-tree -z` output.
fn parse_diff_tree(out: &[u8], include_commit: bool) -> Vec<ChangedPaths> {
    let mut result = Vec::new();
    let mut rest = out;
    let mut commit = String::new();
    while let Some(colon) = rest.iter().position(|b| *b == b':') {
        let before = String::from_utf8_lossy(&rest[..colon]).trim().trim_matches('\0').to_owned();
        if include_commit && (before.len() == 40 || before.len() == 64) {
            commit = before;
        }
        rest = &rest[colon + 1..];
        let nul = rest.iter().position(|b| *b == 0).expect("NUL after head");
        let head = String::from_utf8(rest[..nul].to_vec()).expect("ascii");
        rest = &rest[nul + 1..];
        let mut split: Vec<&str> = head.split(' ').collect();
        let sources = split[0].rfind(':').map_or(0, |i| i + 1) + 1;
        split[0] = &split[0][sources - 1..];
        let status: Vec<u8> = split[split.len() - 1].bytes().filter(|b| b"MDTCAR".contains(b)).collect();
        let mut take = || {
            let nul = rest.iter().position(|b| *b == 0).expect("NUL after path");
            let p = rest[..nul].to_vec();
            rest = &rest[nul + 1..];
            p
        };
        let old_path = if sources == 1 && matches!(status[0], b'R' | b'C') { take() } else { Vec::new() };
        let path = take();
        for i in 0..sources {
            let status = match status[i] {
                b'A' => changed_paths::Status::Added,
                b'M' => changed_paths::Status::Modified,
                b'D' => changed_paths::Status::Deleted,
                b'T' => changed_paths::Status::TypeChange,
                b'C' => changed_paths::Status::Copied,
                _ => changed_paths::Status::Renamed,
            };
            result.push(ChangedPaths {
                path: path.clone(),
                status: status.into(),
                old_mode: i32::from_str_radix(split[i], 8).expect("mode"),
                new_mode: i32::from_str_radix(split[sources], 8).expect("mode"),
                old_blob_id: split[sources + 1 + i].to_owned(),
                new_blob_id: split[split.len() - 2].to_owned(),
                old_path: old_path.clone(),
                score: 0,
                commit_id: commit.clone(),
            });
        }
    }
    result
}

/// What upstream's FindChangedPaths answers, from git itself.
fn diff_tree(dir: &Path, lines: &[String], flags: &[&str], filter: &str, include_commit: bool) -> Vec<ChangedPaths> {
    let filter = format!("--diff-filter={filter}");
    let mut args = vec!["diff-tree", "-z", "--stdin", "-r", "--root", filter.as_str()];
    if !include_commit {
        args.push("--no-commit-id");
    }
    if !flags.iter().any(|f| f.starts_with("--find-renames")) {
        args.push("--no-renames");
    }
    args.extend_from_slice(flags);
    let input = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    parse_diff_tree(&try_git(Some(dir), &args, Some(input.as_bytes())).expect("diff-tree"), include_commit)
}

fn commit_request(commit: &str, parents: &[&str]) -> find_changed_paths_request::Request {
    find_changed_paths_request::Request {
        r#type: Some(find_changed_paths_request::request::Type::CommitRequest(
            find_changed_paths_request::request::CommitRequest {
                commit_revision: commit.to_owned(),
                parent_commit_revisions: parents.iter().map(|p| (*p).to_owned()).collect(),
            },
        )),
    }
}

fn tree_request(left: &str, right: &str) -> find_changed_paths_request::Request {
    find_changed_paths_request::Request {
        r#type: Some(find_changed_paths_request::request::Type::TreeRequest(
            find_changed_paths_request::request::TreeRequest {
                left_tree_revision: left.to_owned(),
                right_tree_revision: right.to_owned(),
            },
        )),
    }
}

async fn changed_paths(
    c: &mut DiffServiceClient<Channel>,
    repository: Option<Repository>,
    request: find_changed_paths_request::Request,
    find_renames: bool,
    mode: i32,
    filters: Vec<i32>,
) -> Result<Vec<ChangedPaths>, tonic::Status> {
    changed_paths_many(c, repository, vec![request], find_renames, mode, filters).await
}

async fn changed_paths_many(
    c: &mut DiffServiceClient<Channel>,
    repository: Option<Repository>,
    requests: Vec<find_changed_paths_request::Request>,
    find_renames: bool,
    mode: i32,
    filters: Vec<i32>,
) -> Result<Vec<ChangedPaths>, tonic::Status> {
    #[allow(deprecated, reason = "the old field stays empty")]
    let req = FindChangedPathsRequest {
        repository,
        commits: vec![],
        requests,
        merge_commit_diff_mode: mode,
        find_renames,
        diff_filters: filters,
    };
    Ok(drain(c.find_changed_paths(req).await).await?.into_iter().flat_map(|r| r.paths).collect())
}

fn status_filter(filters: &[i32]) -> String {
    use find_changed_paths_request::DiffStatus as S;
    if filters.is_empty() {
        return "AMDTCR".into();
    }
    filters
        .iter()
        .map(|f| match S::try_from(*f).expect("status") {
            S::Added => 'A',
            S::Modified => 'M',
            S::Deleted => 'D',
            S::TypeChange => 'T',
            S::Copied => 'C',
            _ => 'R',
        })
        .collect()
}

#[tokio::test]
async fn find_changed_paths_matches_diff_tree() {
    use find_changed_paths_request::{DiffStatus as S, MergeCommitDiffMode as M};
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    let filter_sets: Vec<Vec<i32>> = vec![
        vec![],
        vec![S::Modified as i32],
        vec![S::Added as i32, S::Deleted as i32, S::Added as i32],
        vec![S::Renamed as i32, S::TypeChange as i32],
    ];
    for format in FORMATS {
        let dir = fixture::path(format, "fixture");
        let commits = fixture_commits(format);
        let mut merges = 0;
        for commit in &commits {
            merges += usize::from(gits(&dir, &["rev-list", "--parents", "-1", commit]).split(' ').count() > 2);
            for renames in [false, true] {
                for (mode, flag) in [(M::Unspecified, "-m"), (M::IncludeMerges, "-m"), (M::AllParents, "-c")] {
                    for filters in &filter_sets {
                        let mut flags = vec![flag];
                        if renames {
                            flags.push("--find-renames=30%");
                        }
                        let want = diff_tree(&dir, std::slice::from_ref(commit), &flags, &status_filter(filters), true);
                        let got = changed_paths(
                            &mut c,
                            repo(format, "fixture"),
                            commit_request(commit, &[]),
                            renames,
                            mode as i32,
                            filters.clone(),
                        )
                        .await
                        .expect("changed paths");
                        assert_eq!(got, want, "{commit} renames={renames} {flag} {filters:?}");
                    }
                }
            }
        }
        assert!(merges > 0, "the fixture has a merge");
        // Explicit parents, tree pairs, refs and tags, several requests.
        let (first, last) = (&commits[0], commits.last().expect("commits"));
        let cases: Vec<(Vec<find_changed_paths_request::Request>, Vec<String>, bool)> = vec![
            (
                vec![commit_request("main", &["v1.0", "feature"])],
                vec![format!(
                    "{} {} {}",
                    gits(&dir, &["rev-parse", "main"]),
                    gits(&dir, &["rev-parse", "v1.0^{commit}"]),
                    gits(&dir, &["rev-parse", "feature"])
                )],
                true,
            ),
            (vec![commit_request(last, &[first])], vec![format!("{last} {first}")], true),
            (
                vec![tree_request(&format!("{first}^{{tree}}"), "main^{tree}"), commit_request("feature", &[])],
                vec![
                    format!(
                        "{} {}",
                        gits(&dir, &["rev-parse", &format!("{first}^{{tree}}")]),
                        gits(&dir, &["rev-parse", "main^{tree}"])
                    ),
                    gits(&dir, &["rev-parse", "feature"]),
                ],
                false,
            ),
            (
                vec![tree_request("v1.0", "main:src")],
                vec![format!(
                    "{} {}",
                    gits(&dir, &["rev-parse", "v1.0^{tree}"]),
                    gits(&dir, &["rev-parse", "main:src"])
                )],
                false,
            ),
        ];
        for (requests, lines, include_commit) in cases {
            for renames in [false, true] {
                let flags: Vec<&str> = if renames { vec!["-m", "--find-renames=30%"] } else { vec!["-m"] };
                let want = diff_tree(&dir, &lines, &flags, "AMDTCR", include_commit);
                let got = changed_paths_many(&mut c, repo(format, "fixture"), requests.clone(), renames, 0, vec![])
                    .await
                    .expect("changed paths");
                assert_eq!(got, want, "{lines:?}");
            }
        }
    }
}

#[tokio::test]
async fn find_changed_paths_combined_diffs_of_octopus_merges() {
    use find_changed_paths_request::{DiffStatus as S, MergeCommitDiffMode as M};
    let node = Node::start().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let name = format!("{}/octopus.git", format.name());
        let r = node.create_repo(&name, format);
        let f = |path: &str, content: &str| ("100644", path.to_owned(), content.as_bytes().to_vec());
        let base = write_commit(&r.path, &[f("README.md", "# Hello\n"), f("common", "same\n"), f("gone", "x\n")], None);
        let mut parents = vec![base.clone()];
        for (i, word) in ["Welcome", "to", "this", "project"].iter().enumerate() {
            let files = vec![
                f("README.md", &format!("# Hello\n{word}\n")),
                f("common", "same\n"),
                f("gone", "x\n"),
                f(&format!("only{i}"), word),
            ];
            parents.push(write_commit(&r.path, &files, Some(&base)));
        }
        let merge_files = vec![
            f("README.md", "# Hello\nWelcome to this project\n"),
            f("common", "same\n"),
            f("only0", "Welcome"),
            f("renamed-gone", "x\n"),
            f("new", "new file\n"),
        ];
        let tree = {
            let c = write_commit(&r.path, &merge_files, None);
            gits(&r.path, &["rev-parse", &format!("{c}^{{tree}}")])
        };
        let mut args = vec!["commit-tree", tree.as_str(), "-m", "octopus"];
        for p in &parents {
            args.extend(["-p", p.as_str()]);
        }
        let merge = String::from_utf8(
            try_git(Some(&r.path), &[&["-c", "user.name=A", "-c", "user.email=a@a"][..], &args].concat(), None)
                .expect("commit"),
        )
        .expect("id")
        .trim()
        .to_owned();
        for renames in [false, true] {
            for filters in [vec![], vec![S::Modified as i32], vec![S::Added as i32, S::Renamed as i32]] {
                for (mode, flag) in [(M::AllParents, "-c"), (M::IncludeMerges, "-m")] {
                    let mut flags = vec![flag];
                    if renames {
                        flags.push("--find-renames=30%");
                    }
                    let want = diff_tree(&r.path, std::slice::from_ref(&merge), &flags, &status_filter(&filters), true);
                    let got = changed_paths(
                        &mut c,
                        Some(node.repo(&name)),
                        commit_request(&merge, &[]),
                        renames,
                        mode as i32,
                        filters.clone(),
                    )
                    .await
                    .expect("changed paths");
                    assert_eq!(got, want, "{flag} renames={renames} {filters:?}");
                    if flag == "-c" && filters.is_empty() {
                        assert!(!got.is_empty());
                    }
                }
            }
        }
    }
}

/// One file of a CommitDiff answer, its patch parts joined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FileDiff {
    from_path: Vec<u8>,
    to_path: Vec<u8>,
    from_id: String,
    to_id: String,
    old_mode: i32,
    new_mode: i32,
    binary: bool,
    patch: Vec<u8>,
    lines_added: i32,
    lines_removed: i32,
    overflow: bool,
    collapsed: bool,
    too_large: bool,
}

/// Joins the parts of each file, checking upstream's message shapes: at
/// most 5 KiB of patch per message, metadata only in the first.
fn join_files(messages: Vec<CommitDiffResponse>) -> Vec<FileDiff> {
    let mut out = Vec::new();
    let mut current: Option<FileDiff> = None;
    for m in messages {
        assert!(m.raw_patch_data.len() <= 5 * 1024, "patch parts are at most 5 KiB");
        match current.as_mut() {
            Some(f) => {
                assert!(
                    m.from_path.is_empty() && m.from_id.is_empty() && m.new_mode == 0,
                    "continuations carry data only"
                );
                f.patch.extend_from_slice(&m.raw_patch_data);
            }
            None => {
                current = Some(FileDiff {
                    from_path: m.from_path.clone(),
                    to_path: m.to_path.clone(),
                    from_id: m.from_id.clone(),
                    to_id: m.to_id.clone(),
                    old_mode: m.old_mode,
                    new_mode: m.new_mode,
                    binary: m.binary,
                    patch: m.raw_patch_data.clone(),
                    lines_added: m.lines_added,
                    lines_removed: m.lines_removed,
                    overflow: m.overflow_marker,
                    collapsed: m.collapsed,
                    too_large: m.too_large,
                });
            }
        }
        if m.end_of_patch {
            out.push(current.take().expect("a file"));
        } else {
            assert_eq!(m.raw_patch_data.len(), 5 * 1024, "only the last part is short");
        }
    }
    assert!(current.is_none(), "every file ends");
    out
}

/// What CommitDiff must answer, from `git diff` itself.
fn expected_files(
    dir: &Path,
    format: Format,
    extra: &[&str],
    left: &str,
    right: &str,
    paths: &[&str],
) -> Vec<FileDiff> {
    let abbrev = format!("--abbrev={}", hex_len(format));
    let mut args =
        vec!["-c", "attr.tree=HEAD", "diff", "--patch", "--raw", "-z", &abbrev, "--full-index", "--find-renames=30%"];
    args.extend_from_slice(extra);
    args.extend([left, right, "--"]);
    args.extend_from_slice(paths);
    let out = gitb(dir, &args);
    let (raw, patch) = parse_raw(&out);
    let raw = split_type_changes(raw, &zero(format));
    let secs = sections(patch);
    assert_eq!(secs.len(), raw.len(), "one section per file");
    raw.into_iter()
        .zip(secs)
        .map(|(r, s)| {
            let patch = hunks(s);
            FileDiff {
                binary: patch.starts_with(b"Binary files"),
                lines_added: count_lines(&patch, b'+'),
                lines_removed: count_lines(&patch, b'-'),
                from_path: r.old_path,
                to_path: r.path,
                from_id: r.old_id,
                to_id: r.new_id,
                old_mode: r.old_mode,
                new_mode: r.new_mode,
                patch,
                ..Default::default()
            }
        })
        .collect()
}

fn commit_diff_request(repository: Option<Repository>, left: &str, right: &str) -> CommitDiffRequest {
    CommitDiffRequest { repository, left_commit_id: left.into(), right_commit_id: right.into(), ..Default::default() }
}

#[tokio::test]
async fn commit_diff_matches_git_diff() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let dir = fixture::path(format, "fixture");
        let mut binaries = 0;
        for (left, right) in commit_pairs(format) {
            for paths in [vec![], vec!["dir with space", "files"]] {
                let want = expected_files(&dir, format, &[], &left, &right, &paths);
                let got = join_files(
                    drain(
                        c.commit_diff(CommitDiffRequest {
                            paths: paths.iter().map(|p| p.as_bytes().to_vec()).collect(),
                            ..commit_diff_request(repo(format, "fixture"), &left, &right)
                        })
                        .await,
                    )
                    .await
                    .expect("commit diff"),
                );
                binaries += got.iter().filter(|f| f.binary).count();
                assert_eq!(got, want, "{left}..{right} {paths:?}");
            }
        }
        assert!(binaries > 0, "binary files are reported");
        // Word diffs are git's porcelain word diff.
        let (left, right) = ("main~4", "main");
        let want = expected_files(&dir, format, &["--word-diff=porcelain"], left, right, &[]);
        let got = join_files(
            drain(
                c.commit_diff(CommitDiffRequest {
                    diff_mode: commit_diff_request::DiffMode::Worddiff as i32,
                    ..commit_diff_request(repo(format, "fixture"), left, right)
                })
                .await,
            )
            .await
            .expect("word diff"),
        );
        assert!(got.iter().any(|f| f.patch.windows(2).any(|w| w == b"~\n")));
        assert_eq!(got, want);
    }
}

/// Upstream's limit scenarios, on upstream's three files.
#[tokio::test]
async fn commit_diff_limits_like_upstream() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let name = format!("{}/limits.git", format.name());
        let r: TestRepo = node.create_repo(&name, format);
        let left = r.commit(
            &[
                ("a.aa", "a\na\na\na\na\na\na\n"),
                ("b.bb", "b\nb\nb\n\nthis line is a bit longer and will change\nb\nb\nb\n"),
                ("c.cc", "will change up front\nc\nc\nc\nc\nc\nwill change in the end\n"),
            ],
            &[],
            "left",
        );
        let right = r.commit(
            &[
                ("a.aa", "a\na\na\nb\na\na\na\n"),
                ("b.bb", "b\nb\nb\n\nmultiple\nlines\nare\ninserted\ninto\nthe\nmiddle\nb\nb\nb\n"),
                ("c.cc", "some changes up front\nc\nc\nc\nc\nc\nsome changes in the end\n"),
            ],
            &[],
            "right",
        );
        // (path, collapsed, overflow, too large)
        type Want = Vec<(&'static str, bool, bool, bool)>;
        let limits = |files, lines, bytes, patch| CommitDiffRequest {
            enforce_limits: true,
            max_files: files,
            max_lines: lines,
            max_bytes: bytes,
            max_patch_bytes: patch,
            ..commit_diff_request(Some(node.repo(&name)), &left, &right)
        };
        let cases: Vec<(&str, CommitDiffRequest, Want)> = vec![
            (
                "no enforcement",
                commit_diff_request(Some(node.repo(&name)), &left, &right),
                vec![("a.aa", false, false, false), ("b.bb", false, false, false), ("c.cc", false, false, false)],
            ),
            (
                "max files",
                limits(2, 9000, 9000, 9000),
                vec![("a.aa", false, false, false), ("b.bb", false, false, false), ("", false, true, false)],
            ),
            (
                "max files, all paths",
                CommitDiffRequest { collect_all_paths: true, ..limits(2, 9000, 9000, 9000) },
                vec![("a.aa", false, false, false), ("b.bb", false, false, false), ("c.cc", false, true, false)],
            ),
            (
                "max lines",
                limits(9000, 30, 9000, 9000),
                vec![("a.aa", false, false, false), ("b.bb", false, false, false), ("", false, true, false)],
            ),
            (
                "max lines, all paths",
                CommitDiffRequest { collect_all_paths: true, ..limits(9000, 30, 9000, 9000) },
                vec![("a.aa", false, false, false), ("b.bb", false, false, false), ("c.cc", false, true, false)],
            ),
            (
                "max bytes",
                limits(9000, 9000, 150, 9000),
                vec![("a.aa", false, false, false), ("b.bb", false, false, false), ("", false, true, false)],
            ),
            (
                "max bytes, all paths",
                CommitDiffRequest { collect_all_paths: true, ..limits(9000, 9000, 150, 9000) },
                vec![("a.aa", false, false, false), ("b.bb", false, false, false), ("c.cc", false, true, false)],
            ),
            (
                "max patch bytes per extension",
                CommitDiffRequest {
                    max_patch_bytes_for_file_extension: [(".bb".to_owned(), 9000)].into_iter().collect(),
                    ..limits(9000, 9000, 9000, 10)
                },
                vec![("a.aa", false, false, true), ("b.bb", false, false, false), ("c.cc", false, false, true)],
            ),
            (
                "collapse after safe max files",
                CommitDiffRequest {
                    collapse_diffs: true,
                    safe_max_files: 1,
                    safe_max_lines: 9000,
                    safe_max_bytes: 9000,
                    ..limits(9000, 9000, 9000, 9000)
                },
                vec![("a.aa", false, false, false), ("b.bb", true, false, false), ("c.cc", true, false, false)],
            ),
            (
                "collapse after safe max lines",
                CommitDiffRequest {
                    collapse_diffs: true,
                    safe_max_files: 9000,
                    safe_max_lines: 20,
                    safe_max_bytes: 9000,
                    ..limits(9000, 9000, 9000, 9000)
                },
                vec![("a.aa", false, false, false), ("b.bb", true, false, false), ("c.cc", false, false, false)],
            ),
            (
                "collapse after safe max bytes",
                CommitDiffRequest {
                    collapse_diffs: true,
                    safe_max_files: 9000,
                    safe_max_lines: 9000,
                    safe_max_bytes: 120,
                    ..limits(9000, 9000, 9000, 9000)
                },
                vec![("a.aa", false, false, false), ("b.bb", true, false, false), ("c.cc", false, false, false)],
            ),
        ];
        let full = expected_files(&r.path, format, &[], &left, &right, &[]);
        for (desc, req, want) in cases {
            let got = join_files(drain(c.commit_diff(req).await).await.expect(desc));
            let shape: Want = got
                .iter()
                .zip(&want)
                .map(|(f, w)| (if f.from_path.is_empty() { "" } else { w.0 }, f.collapsed, f.overflow, f.too_large))
                .collect();
            assert_eq!(shape, want, "{desc}");
            for (f, (path, collapsed, overflow, too_large)) in got.iter().zip(&want) {
                assert_eq!(String::from_utf8_lossy(&f.from_path), *path, "{desc}");
                if *collapsed || *too_large || (*overflow && !path.is_empty()) {
                    assert!(f.patch.is_empty(), "{desc}: {path} has no patch");
                } else if !path.is_empty() {
                    let whole = full.iter().find(|w| w.from_path == path.as_bytes()).expect("file");
                    assert_eq!(f.patch, whole.patch, "{desc}: {path}");
                }
            }
        }
    }
}

#[tokio::test]
async fn commit_diff_sends_whitespace_only_files_last() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let name = format!("{}/whitespace.git", format.name());
        let r = node.create_repo(&name, format);
        let left = r.commit(&[("a", "one  two\n"), ("b", "x y\n"), ("c", "keep\n")], &[], "left");
        let right = r.commit(&[("a", "one two\n"), ("b", "x  y\n"), ("c", "changed\n")], &[], "right");
        for (mode, flag) in [
            (commit_diff_request::WhitespaceChanges::Ignore, "--ignore-space-change"),
            (commit_diff_request::WhitespaceChanges::IgnoreAll, "--ignore-all-space"),
        ] {
            let got = join_files(
                drain(
                    c.commit_diff(CommitDiffRequest {
                        whitespace_changes: mode as i32,
                        ..commit_diff_request(Some(node.repo(&name)), &left, &right)
                    })
                    .await,
                )
                .await
                .expect("commit diff"),
            );
            let with_patch = expected_files(&r.path, format, &[flag], &left, &right, &["c"]);
            let plain = expected_files(&r.path, format, &[], &left, &right, &[]);
            let mut want = with_patch;
            for path in ["a", "b"] {
                let f = plain.iter().find(|f| f.to_path == path.as_bytes()).expect("file");
                // The counts of a plain numstat, no patch.
                want.push(FileDiff { patch: Vec::new(), binary: false, ..f.clone() });
            }
            assert_eq!(got, want, "{flag}");
            assert_eq!((got[1].lines_added, got[1].lines_removed), (1, 1));
        }
    }
}

#[tokio::test]
async fn commit_diff_splits_large_patches() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let name = format!("{}/large.git", format.name());
        let r = node.create_repo(&name, format);
        let big: String = (0..3000).map(|i| format!("line {i} with some text\n")).collect();
        let bigger: String = (0..3000).map(|i| format!("line {i} with other text\n")).collect();
        let left = r.commit(&[("big.txt", &big), ("small", "a\n")], &[], "left");
        let right = r.commit(&[("big.txt", &bigger), ("small", "b\n")], &[], "right");
        let messages = drain(c.commit_diff(commit_diff_request(Some(node.repo(&name)), &left, &right)).await)
            .await
            .expect("commit diff");
        assert!(messages.len() > 10, "the big patch spans many messages");
        let want = expected_files(&r.path, format, &[], &left, &right, &[]);
        assert_eq!(join_files(messages), want);
        // Over the patch limit: no patch, and nothing more is read than needed.
        let got = join_files(
            drain(
                c.commit_diff(CommitDiffRequest {
                    enforce_limits: true,
                    max_files: 100,
                    max_lines: 100_000,
                    max_bytes: 10_000_000,
                    max_patch_bytes: 1000,
                    ..commit_diff_request(Some(node.repo(&name)), &left, &right)
                })
                .await,
            )
            .await
            .expect("commit diff"),
        );
        assert!(got[0].too_large && got[0].patch.is_empty());
        assert_eq!((got[0].lines_added, got[0].lines_removed), (3000, 3000));
        assert_eq!(got[1].patch, want[1].patch);
    }
}

fn joined<T>(messages: Vec<T>, data: impl Fn(T) -> Vec<u8>) -> Vec<u8> {
    messages.into_iter().flat_map(data).collect()
}

#[tokio::test]
async fn raw_diff_and_raw_patch_are_gits_bytes() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let dir = fixture::path(format, "fixture");
        for (left, right) in commit_pairs(format) {
            let want = gitb(&dir, &["-c", "attr.tree=HEAD", "diff", "--full-index", &left, &right]);
            let messages = drain(
                c.raw_diff(RawDiffRequest {
                    repository: repo(format, "fixture"),
                    left_commit_id: left.clone(),
                    right_commit_id: right.clone(),
                })
                .await,
            )
            .await
            .expect("raw diff");
            assert!(messages.iter().all(|m| m.data.len() <= 128 * 1024 && !m.data.is_empty()));
            assert_eq!(joined(messages, |m| m.data), want, "{left}..{right}");
            let want = gitb(
                &dir,
                &[
                    "-c",
                    "attr.tree=HEAD",
                    "format-patch",
                    "--stdout",
                    "--signature=GitLab",
                    &format!("{left}..{right}"),
                ],
            );
            let got = drain(
                c.raw_patch(RawPatchRequest {
                    repository: repo(format, "fixture"),
                    left_commit_id: left.clone(),
                    right_commit_id: right.clone(),
                })
                .await,
            )
            .await
            .expect("raw patch");
            assert_eq!(joined(got, |m| m.data), want, "{left}..{right}");
        }
        // The 1.5 MiB file's history makes a diff of many 128 KiB messages.
        let first = &fixture_commits(format)[0];
        let messages = drain(
            c.raw_patch(RawPatchRequest {
                repository: repo(format, "fixture"),
                left_commit_id: first.clone(),
                right_commit_id: "main".into(),
            })
            .await,
        )
        .await
        .expect("raw patch");
        let want = gitb(
            &dir,
            &["-c", "attr.tree=HEAD", "format-patch", "--stdout", "--signature=GitLab", &format!("{first}..main")],
        );
        assert_eq!(joined(messages, |m| m.data), want);
    }
}

#[tokio::test]
async fn raw_diff_streams_in_128k_messages() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let name = format!("{}/big-diff.git", format.name());
        let r = node.create_repo(&name, format);
        let big: String = (0..40_000).map(|i| format!("line {i}\n")).collect();
        let left = r.commit(&[("f", "x\n")], &[], "left");
        let right = r.commit(&[("f", &big)], &[], "right");
        let messages = drain(
            c.raw_diff(RawDiffRequest {
                repository: Some(node.repo(&name)),
                left_commit_id: left.clone(),
                right_commit_id: right.clone(),
            })
            .await,
        )
        .await
        .expect("raw diff");
        let sizes: Vec<usize> = messages.iter().map(|m| m.data.len()).collect();
        assert!(sizes.len() > 2 && sizes[..sizes.len() - 1].iter().all(|s| *s == 128 * 1024), "{sizes:?}");
        assert_eq!(joined(messages, |m| m.data), gitb(&r.path, &["diff", "--full-index", &left, &right]));
    }
}

#[tokio::test]
async fn diff_stats_match_numstat() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let dir = fixture::path(format, "fixture");
        for (left, right) in commit_pairs(format) {
            let out = gitb(&dir, &["-c", "attr.tree=HEAD", "diff", "--numstat", "-z", &left, &right]);
            let mut want = Vec::new();
            let mut fields = split_nul(&out).into_iter();
            while let Some(f) = fields.next() {
                let parts: Vec<&[u8]> = f.splitn(3, |b| *b == b'\t').collect();
                let n = |b: &[u8]| if b == b"-" { 0 } else { String::from_utf8_lossy(b).parse().expect("count") };
                let (path, old_path) = if parts[2].is_empty() {
                    let old = fields.next().expect("old").to_vec();
                    (fields.next().expect("new").to_vec(), old)
                } else {
                    (parts[2].to_vec(), Vec::new())
                };
                want.push(DiffStats { path, additions: n(parts[0]), deletions: n(parts[1]), old_path });
            }
            let got: Vec<DiffStats> = drain(
                c.diff_stats(DiffStatsRequest {
                    repository: repo(format, "fixture"),
                    left_commit_id: left.clone(),
                    right_commit_id: right.clone(),
                })
                .await,
            )
            .await
            .expect("diff stats")
            .into_iter()
            .flat_map(|r| r.stats)
            .collect();
            assert_eq!(got, want, "{left}..{right}");
        }
    }
}

#[tokio::test]
async fn diff_stats_batches_a_thousand() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    let name = "sha1/many.git";
    let r = node.create_repo(name, Format::Sha1);
    let files: Vec<(String, String)> = (0..2500).map(|i| (format!("f{i:04}"), format!("{i}\n"))).collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    let left = r.commit(&[("other", "x\n")], &[], "left");
    let right = r.commit(&refs, &[], "right");
    let messages = drain(
        c.diff_stats(DiffStatsRequest {
            repository: Some(node.repo(name)),
            left_commit_id: left,
            right_commit_id: right,
        })
        .await,
    )
    .await
    .expect("diff stats");
    assert_eq!(messages.iter().map(|m| m.stats.len()).collect::<Vec<_>>(), [1000, 1000, 501]);
}

/// `git diff --full-index A B | git patch-id --verbatim` outside any
/// repository, as upstream runs it.
fn git_patch_id(dir: &Path, old: &str, new: &str) -> Option<String> {
    let diff = gitb(dir, &["-c", "attr.tree=HEAD", "diff", "--full-index", old, new]);
    let out = try_git(None, &["patch-id", "--verbatim"], Some(&diff)).expect("patch-id");
    let text = String::from_utf8(out).expect("ascii");
    text.split(' ').next().filter(|s| !s.is_empty()).map(str::to_owned)
}

#[tokio::test]
async fn get_patch_id_matches_git_patch_id() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let dir = fixture::path(format, "fixture");
        let mut seen = std::collections::BTreeSet::new();
        for (old, new) in commit_pairs(format) {
            let answer = c
                .get_patch_id(GetPatchIdRequest {
                    repository: repo(format, "fixture"),
                    old_revision: old.clone().into_bytes(),
                    new_revision: new.clone().into_bytes(),
                })
                .await;
            // Commits with the same tree (the signed commit) have no diff.
            let Some(want) = git_patch_id(&dir, &old, &new) else {
                let err = answer.expect_err("no diff, no id");
                assert_eq!(err.code(), Code::FailedPrecondition, "{old}..{new}");
                continue;
            };
            let got = answer.expect("patch id").into_inner().patch_id;
            assert_eq!(got, want, "{old}..{new}");
            seen.insert(got);
        }
        assert!(seen.len() > 10, "different diffs have different ids");
        let err = c
            .get_patch_id(GetPatchIdRequest {
                repository: repo(format, "fixture"),
                old_revision: b"main".to_vec(),
                new_revision: b"main^{tree}".to_vec(),
            })
            .await
            .expect_err("no difference");
        assert_eq!(
            (err.code(), err.message()),
            (Code::FailedPrecondition, "no difference between old and new revision")
        );
    }
}

#[tokio::test]
async fn get_patch_id_hashes_whitespace_and_binary_ids() {
    let node = Node::start().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let name = format!("{}/patch-id.git", format.name());
        let r = node.create_repo(&name, format);
        let f = |p: &str, content: &[u8]| ("100644", p.to_owned(), content.to_vec());
        let base = write_commit(&r.path, &[f("a.txt", b"one\ntwo\n"), f("bin", b"\0one"), f("n", b"x")], None);
        let spaced =
            write_commit(&r.path, &[f("a.txt", b"one\n two\n"), f("bin", b"\0one"), f("n", b"x")], Some(&base));
        let tabbed =
            write_commit(&r.path, &[f("a.txt", b"one\n\ttwo\n"), f("bin", b"\0two"), f("n", b"y")], Some(&base));
        let mut ids = Vec::new();
        for (old, new) in [(&base, &spaced), (&base, &tabbed), (&spaced, &tabbed)] {
            let want = git_patch_id(&r.path, old, new).expect("a diff");
            let got = c
                .get_patch_id(GetPatchIdRequest {
                    repository: Some(node.repo(&name)),
                    old_revision: old.clone().into_bytes(),
                    new_revision: new.clone().into_bytes(),
                })
                .await
                .expect("patch id")
                .into_inner()
                .patch_id;
            assert_eq!(got, want);
            ids.push(got);
        }
        assert_ne!(ids[0], ids[1], "whitespace counts");
    }
}

/// `git diff <a> <b>` of two blobs, as DiffBlobs answers it: the hunks (or
/// binary notice) of its one section.
/// The empty blob, missing from the fixture, is written to a throw-away
/// object directory in front of the fixture's objects.
fn blob_diff(dir: &Path, left: &str, right: &str) -> Vec<u8> {
    let scratch = tempfile::tempdir().expect("scratch objects");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_OBJECT_DIRECTORY", scratch.path())
            .env("GIT_ALTERNATE_OBJECT_DIRECTORIES", dir.join("objects"))
            .arg("--git-dir")
            .arg(dir)
            .args(args)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}");
        out.stdout
    };
    git(&["hash-object", "-w", "-t", "blob", "/dev/null"]);
    let out = git(&["-c", "attr.tree=HEAD", "diff", left, right]);
    sections(&out).first().map(|s| hunks(s)).unwrap_or_default()
}

fn blob_pair(left: &str, right: &str) -> diff_blobs_request::BlobPair {
    diff_blobs_request::BlobPair { left_blob: left.as_bytes().to_vec(), right_blob: right.as_bytes().to_vec() }
}

/// The patches of a DiffBlobs answer, one per pair.
fn blob_diffs(messages: Vec<DiffBlobsResponse>) -> Vec<DiffBlobsResponse> {
    let mut out: Vec<DiffBlobsResponse> = Vec::new();
    let mut open = false;
    for m in messages {
        if open {
            let last = out.last_mut().expect("open diff");
            last.patch.extend_from_slice(&m.patch);
            last.status = m.status;
        } else {
            out.push(m.clone());
        }
        open = m.status() != diff_blobs_response::Status::EndOfPatch;
    }
    out
}

#[tokio::test]
async fn diff_blobs_match_git_diff_of_blobs() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let dir = fixture::path(format, "fixture");
        // Every modified regular file between the fixture's commits, as id pairs.
        let mut pairs = Vec::new();
        for (left, right) in commit_pairs(format).into_iter().take(40) {
            let (raw, _) = parse_raw(&gitb(
                &dir,
                &["diff", "--raw", "-z", "--no-renames", &format!("--abbrev={}", hex_len(format)), &left, &right],
            ));
            for r in raw {
                if r.status == b'M'
                    && r.old_mode == 0o100644
                    && r.new_mode == 0o100644
                    && !pairs.contains(&(r.old_id.clone(), r.new_id.clone()))
                {
                    pairs.push((r.old_id, r.new_id));
                }
            }
        }
        assert!(pairs.len() > 3, "the fixture modifies files");
        let mut requested: Vec<(String, String)> = pairs.clone();
        // A path-scoped binary pair, and additions/deletions (null ids).
        requested.push(("main:files/large.bin".into(), "main:README.md".into()));
        requested.push((zero(format), pairs[0].1.clone()));
        requested.push((pairs[0].0.clone(), zero(format)));
        let got = blob_diffs(
            drain(
                c.diff_blobs(DiffBlobsRequest {
                    repository: repo(format, "fixture"),
                    blob_pairs: requested.iter().map(|(l, r)| blob_pair(l, r)).collect(),
                    ..Default::default()
                })
                .await,
            )
            .await
            .expect("diff blobs"),
        );
        assert_eq!(got.len(), requested.len(), "one diff per pair");
        let empty = gits(&dir, &["hash-object", "-t", "blob", "/dev/null"]);
        for ((l, r), d) in requested.iter().zip(&got) {
            let git_side = |s: &str| if *s == zero(format) { empty.clone() } else { s.to_owned() };
            let want = blob_diff(&dir, &git_side(l), &git_side(r));
            assert_eq!(String::from_utf8_lossy(&d.patch), String::from_utf8_lossy(&want), "{l} {r}");
            assert_eq!(d.binary, want.starts_with(b"Binary files"), "{l} {r}");
            assert_eq!((d.lines_added, d.lines_removed), (count_lines(&want, b'+'), count_lines(&want, b'-')));
            assert_eq!(d.patch_size as usize, want.len());
            if !l.contains(':') {
                assert_eq!((&d.left_blob_id, &d.right_blob_id), (l, r));
            }
        }
        assert!(got.iter().any(|d| d.binary), "the path-scoped pair is binary");
        // A patch at or over the limit is left out and flagged.
        let (l, r) = &pairs[0];
        let size = blob_diff(&dir, l, r).len() as i32;
        for (limit, over) in [(size, true), (size + 1, false)] {
            let d = blob_diffs(
                drain(
                    c.diff_blobs(DiffBlobsRequest {
                        repository: repo(format, "fixture"),
                        blob_pairs: vec![blob_pair(l, r)],
                        patch_bytes_limit: limit,
                        ..Default::default()
                    })
                    .await,
                )
                .await
                .expect("diff blobs"),
            );
            assert_eq!((d[0].over_patch_bytes_limit, d[0].patch.is_empty()), (over, over), "limit {limit}");
            assert_eq!(d[0].patch_size, size);
        }
        // Bad pairs: not blobs, missing, option-like.
        for (l, r) in
            [("main", pairs[0].1.as_str()), ("main:nope", pairs[0].1.as_str()), ("--output=/tmp/x:a", "main:README.md")]
        {
            let err = drain(
                c.diff_blobs(DiffBlobsRequest {
                    repository: repo(format, "fixture"),
                    blob_pairs: vec![blob_pair(l, r)],
                    ..Default::default()
                })
                .await,
            )
            .await
            .expect_err("bad pair");
            assert_eq!(err.code(), Code::InvalidArgument, "{l}: {}", err.message());
        }
    }
}

/// A repository with two versions of a three-commit series: one commit
/// the same, one changed, one dropped and one added.
fn range_repo(node: &Node, format: Format) -> (String, TestRepo) {
    let name = format!("{}/range.git", format.name());
    let r = node.create_repo(&name, format);
    let lines = |edits: &[(usize, &str)]| -> String {
        (0..30)
            .map(|i| {
                edits.iter().find(|(at, _)| *at == i).map_or_else(|| format!("line {i}\n"), |(_, t)| format!("{t}\n"))
            })
            .collect()
    };
    let (b0, b_one, b_two) =
        (lines(&[]), lines(&[(5, "FIVE"), (6, "SIX"), (7, "SEVEN")]), lines(&[(5, "FIVE"), (6, "SIX"), (7, "seven!")]));
    let base = r.commit(&[("a", "1\n"), ("b", &b0)], &[], "base");
    let a1 = r.commit(&[("a", "2\n"), ("b", &b0)], &[&base], "Same change");
    let a2 = r.commit(&[("a", "2\n"), ("b", &b_one)], &[&a1], "Changed: differently");
    let a3 = r.commit(&[("a", "2\n"), ("b", &b_one), ("c", "x\n")], &[&a2], "Dropped");
    let b1 = r.commit(&[("a", "2\n"), ("b", &b0)], &[&base], "Same change");
    let b2 = r.commit(&[("a", "2\n"), ("b", &b_two)], &[&b1], "Changed: differently");
    let b3 = r.commit(&[("a", "2\n"), ("b", &b_two), ("d", "y\n")], &[&b2], "Added");
    r.git(&["update-ref", "refs/heads/base", &base]);
    r.git(&["update-ref", "refs/heads/one", &a3]);
    r.git(&["update-ref", "refs/heads/two", &b3]);
    (name, r)
}

#[tokio::test]
async fn range_diffs_match_git_range_diff() {
    use range_diff_response::Comparator;
    let node = Node::start().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let (name, r) = range_repo(&node, format);
        let empty_tree = gits(&r.path, &["hash-object", "-t", "tree", "/dev/null"]);
        let attr = format!("attr.tree={empty_tree}");
        let abbrev = format!("--abbrev={}", hex_len(format));
        let specs: Vec<(Vec<&str>, raw_range_diff_request::RangeSpec, range_diff_request::RangeSpec)> = vec![
            (
                vec!["base..one", "base..two"],
                raw_range_diff_request::RangeSpec::RangePair(RangePair {
                    range1: "base..one".into(),
                    range2: "base..two".into(),
                }),
                range_diff_request::RangeSpec::RangePair(RangePair {
                    range1: "base..one".into(),
                    range2: "base..two".into(),
                }),
            ),
            (
                vec!["one...two"],
                raw_range_diff_request::RangeSpec::RevisionRange(RevisionRange {
                    rev1: "one".into(),
                    rev2: "two".into(),
                }),
                range_diff_request::RangeSpec::RevisionRange(RevisionRange { rev1: "one".into(), rev2: "two".into() }),
            ),
            (
                vec!["base", "one", "two"],
                raw_range_diff_request::RangeSpec::BaseWithRevisions(BaseWithRevisions {
                    base: "base".into(),
                    rev1: "one".into(),
                    rev2: "two".into(),
                }),
                range_diff_request::RangeSpec::BaseWithRevisions(BaseWithRevisions {
                    base: "base".into(),
                    rev1: "one".into(),
                    rev2: "two".into(),
                }),
            ),
        ];
        for (args, raw_spec, spec) in specs {
            let mut git_args = vec!["-c", attr.as_str(), "range-diff", abbrev.as_str()];
            git_args.extend(&args);
            let want = gitb(&r.path, &git_args);
            let raw = drain(
                c.raw_range_diff(RawRangeDiffRequest {
                    repository: Some(node.repo(&name)),
                    range_spec: Some(raw_spec),
                })
                .await,
            )
            .await
            .expect("raw range diff");
            assert_eq!(String::from_utf8_lossy(&joined(raw, |m| m.data)), String::from_utf8_lossy(&want), "{args:?}");

            let messages = drain(
                c.range_diff(RangeDiffRequest { repository: Some(node.repo(&name)), range_spec: Some(spec) }).await,
            )
            .await
            .expect("range diff");
            let mut pairs: Vec<RangeDiffResponse> = Vec::new();
            let mut open = false;
            for m in messages {
                if open {
                    pairs.last_mut().expect("open pair").patch_data.extend_from_slice(&m.patch_data);
                } else {
                    pairs.push(m.clone());
                }
                open = !m.end_of_patch;
            }
            git_args.insert(3, "--no-color");
            let text = String::from_utf8(gitb(&r.path, &git_args)).expect("utf-8");
            let pair_lines: Vec<&str> =
                text.lines().filter(|l| !l.starts_with("    ")).filter(|l| !l.is_empty()).collect();
            assert_eq!(pairs.len(), pair_lines.len(), "{args:?}");
            let symbols: Vec<Comparator> = pairs.iter().map(|p| p.comparison()).collect();
            let want_symbols: Vec<Comparator> = pair_lines
                .iter()
                .map(|l| match l.split_whitespace().nth(2) {
                    Some("=") => Comparator::EqualUnspecified,
                    Some("!") => Comparator::NotEqual,
                    Some("<") => Comparator::LessThan,
                    _ => Comparator::GreaterThan,
                })
                .collect();
            assert_eq!(symbols, want_symbols, "{args:?}");
            if args.len() == 2 {
                // The same first commit on both sides is outside `one...two`.
                assert_eq!(
                    symbols,
                    [Comparator::EqualUnspecified, Comparator::NotEqual, Comparator::LessThan, Comparator::GreaterThan]
                );
            }
            let changed = symbols.iter().position(|s| *s == Comparator::NotEqual).expect("a changed commit");
            for (p, line) in pairs.iter().zip(&pair_lines) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                assert_eq!((p.from_commit_id.as_str(), p.to_commit_id.as_str()), (fields[1], fields[4]), "{line}");
                assert!(line.ends_with(&p.commit_message_title), "{line}");
            }
            // The diff-of-diffs of the changed commit, unindented.
            let indented: String = text
                .lines()
                .filter(|l| l.starts_with("    ") || l.is_empty())
                .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
                .collect();
            assert_eq!(
                String::from_utf8_lossy(&pairs[changed].patch_data),
                indented.trim_end_matches('\n').to_owned() + "\n"
            );
            assert!(pairs.iter().enumerate().all(|(i, p)| i == changed || p.patch_data.is_empty()));
        }
        // Option-like and missing ranges.
        for (range1, code) in [("--output=/tmp/range", Code::Internal), ("nope..one", Code::FailedPrecondition)] {
            let err = drain(
                c.range_diff(RangeDiffRequest {
                    repository: Some(node.repo(&name)),
                    range_spec: Some(range_diff_request::RangeSpec::RangePair(RangePair {
                        range1: range1.into(),
                        range2: "base..two".into(),
                    })),
                })
                .await,
            )
            .await
            .expect_err("bad range");
            assert_eq!(err.code(), code, "{range1}: {}", err.message());
        }
        assert!(!Path::new("/tmp/range").exists());
    }
}

#[tokio::test]
async fn bad_revisions_get_upstreams_codes() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    let out = std::env::temp_dir().join("cairn-diff-option-like");
    let option = format!("--output={}", out.display());
    for format in FORMATS {
        let dir = fixture::path(format, "fixture");
        let main = gits(&dir, &["rev-parse", "main"]);
        let missing = "1".repeat(hex_len(format));
        let cases: Vec<(&str, &str, Code, Code)> = vec![
            // (left, right, code of git-backed RPCs, code of RawDiff/RawPatch)
            (&option, &main, Code::Internal, Code::Internal),
            ("-n1", &main, Code::Internal, Code::Internal),
            (&main, "-R", Code::Internal, Code::Internal),
            (&missing, &main, Code::FailedPrecondition, Code::Unknown),
            ("invalidinvalidinvalid", &main, Code::FailedPrecondition, Code::Unknown),
        ];
        for (left, right, code, raw_code) in cases {
            let r = || repo(format, "fixture");
            let what = format!("{left} {right}");
            let err = drain(c.commit_diff(commit_diff_request(r(), left, right)).await).await.expect_err(&what);
            assert_eq!(err.code(), code, "CommitDiff {what}: {}", err.message());
            let err = drain(
                c.commit_delta(CommitDeltaRequest {
                    repository: r(),
                    left_commit_id: left.into(),
                    right_commit_id: right.into(),
                    ..Default::default()
                })
                .await,
            )
            .await
            .expect_err(&what);
            assert_eq!(err.code(), code, "CommitDelta {what}: {}", err.message());
            let err = drain(
                c.diff_stats(DiffStatsRequest {
                    repository: r(),
                    left_commit_id: left.into(),
                    right_commit_id: right.into(),
                })
                .await,
            )
            .await
            .expect_err(&what);
            assert_eq!(err.code(), code, "DiffStats {what}: {}", err.message());
            let err = drain(
                c.raw_diff(RawDiffRequest {
                    repository: r(),
                    left_commit_id: left.into(),
                    right_commit_id: right.into(),
                })
                .await,
            )
            .await
            .expect_err(&what);
            assert_eq!(err.code(), raw_code, "RawDiff {what}: {}", err.message());
            let err = drain(
                c.raw_patch(RawPatchRequest {
                    repository: r(),
                    left_commit_id: left.into(),
                    right_commit_id: right.into(),
                })
                .await,
            )
            .await
            .expect_err(&what);
            // RawPatch hands git one `left..right` argument, which only a
            // dash in front of `left` makes option-like.
            let patch_code = if right.starts_with('-') { Code::Unknown } else { raw_code };
            assert_eq!(err.code(), patch_code, "RawPatch {what}: {}", err.message());
            let err = c
                .get_patch_id(GetPatchIdRequest {
                    repository: r(),
                    old_revision: left.as_bytes().to_vec(),
                    new_revision: right.as_bytes().to_vec(),
                })
                .await
                .expect_err(&what);
            assert_eq!(err.code(), Code::Internal, "GetPatchID {what}: {}", err.message());
        }
        // Empty ids and no repository: INVALID_ARGUMENT before git runs.
        let err = drain(c.commit_diff(commit_diff_request(repo(format, "fixture"), "", &main)).await)
            .await
            .expect_err("empty");
        assert_eq!((err.code(), err.message()), (Code::InvalidArgument, "empty LeftCommitId"));
        let err = drain(c.commit_diff(commit_diff_request(repo(format, "fixture"), &main, "")).await)
            .await
            .expect_err("empty");
        assert_eq!((err.code(), err.message()), (Code::InvalidArgument, "empty RightCommitId"));
        let err = drain(c.commit_diff(commit_diff_request(None, &main, &main)).await).await.expect_err("no repo");
        assert_eq!(err.code(), Code::InvalidArgument);
        // FindChangedPaths: missing commits are NOT_FOUND.
        let err = drain(
            c.find_changed_paths(FindChangedPathsRequest {
                repository: repo(format, "fixture"),
                requests: vec![commit_request(&missing, &[])],
                ..Default::default()
            })
            .await,
        )
        .await
        .expect_err("missing");
        assert_eq!(err.code(), Code::NotFound, "{}", err.message());
    }
    assert!(!out.exists(), "no option reached git");
}

#[tokio::test]
async fn commit_diff_word_diff_matches_git() {
    let node = Node::start_on_fixture().await;
    let mut c = client(&node).await;
    for format in FORMATS {
        let dir = fixture::path(format, "fixture");
        for (left, right) in commit_pairs(format).into_iter().take(12) {
            let want = expected_files(&dir, format, &["--word-diff=porcelain"], &left, &right, &[]);
            let mut req = commit_diff_request(repo(format, "fixture"), &left, &right);
            req.set_diff_mode(commit_diff_request::DiffMode::Worddiff);
            let got = join_files(drain(c.commit_diff(req).await).await.expect("word diff"));
            assert_eq!(got, want, "{left}..{right}");
        }
    }
}
