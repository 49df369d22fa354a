//! No RPC can reach outside a storage: hostile relative paths and object
//! directories thrown at every implemented repository RPC get
//! INVALID_ARGUMENT, and the file system is unchanged afterwards.

use crate::support::git::Format;
use crate::support::{Node, snapshot};
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::*;
use tonic::Code;
use tonic::transport::Channel;

fn hostile_paths() -> Vec<String> {
    let mut paths: Vec<String> = [
        "..",
        "../",
        "../outside/victim.git",
        "../../",
        "/../outside/victim.git",
        "a/../../outside/victim.git",
        "./../outside/victim.git",
        "ok.git/../../outside/victim.git",
        "ok.git/objects/../../../outside/victim.git",
        "ok.git/../..",
        "link",
        "link/victim.git",
        "link/../link/victim.git",
        "link/new.git",
        "dangling",
        "dangling/new.git",
        ".",
        "/",
        "./",
        "",
        "+gitaly",
        "+gitaly/tmp/x.git",
        "/+gitaly/tmp",
        "a\0b.git",
        "ok.git\0/../../outside",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    paths.push("a/".repeat(2000));
    paths.push(format!("{}.git", "x".repeat(300)));
    paths
}

#[allow(deprecated, reason = "the deprecated hook RPCs are served and must be checked too")]
async fn call_every_rpc(
    c: &mut RepositoryServiceClient<Channel>,
    repo: Repository,
) -> Vec<(&'static str, tonic::Status)> {
    let r = || Some(repo.clone());
    let mut out = Vec::new();
    macro_rules! unary {
        ($name:literal, $call:expr) => {
            if let Err(e) = $call.await {
                out.push(($name, e));
            } else {
                out.push(($name, tonic::Status::ok("succeeded")));
            }
        };
    }
    macro_rules! server_stream {
        ($name:literal, $call:expr) => {
            match $call.await {
                Err(e) => out.push(($name, e)),
                Ok(resp) => {
                    let mut s = resp.into_inner();
                    let mut status = tonic::Status::ok("succeeded");
                    loop {
                        match s.message().await {
                            Ok(Some(_)) => {}
                            Ok(None) => break,
                            Err(e) => {
                                status = e;
                                break;
                            }
                        }
                    }
                    out.push(($name, status));
                }
            }
        };
    }
    unary!("RepositoryExists", c.repository_exists(RepositoryExistsRequest { repository: r() }));
    unary!(
        "CreateRepository",
        c.create_repository(CreateRepositoryRequest {
            repository: r(),
            default_branch: b"main".to_vec(),
            object_format: 0
        })
    );
    unary!("RemoveRepository", c.remove_repository(RemoveRepositoryRequest { repository: r() }));
    unary!("ObjectFormat", c.object_format(ObjectFormatRequest { repository: r() }));
    unary!("HasLocalBranches", c.has_local_branches(HasLocalBranchesRequest { repository: r() }));
    unary!("RepositorySize", c.repository_size(RepositorySizeRequest { repository: r() }));
    unary!("GetObjectDirectorySize", c.get_object_directory_size(GetObjectDirectorySizeRequest { repository: r() }));
    unary!("RepositoryInfo", c.repository_info(RepositoryInfoRequest { repository: r() }));
    unary!(
        "WriteRef",
        c.write_ref(WriteRefRequest {
            repository: r(),
            r#ref: b"refs/heads/evil".to_vec(),
            revision: b"main".to_vec(),
            old_revision: Vec::new()
        })
    );
    unary!(
        "FindMergeBase",
        c.find_merge_base(FindMergeBaseRequest {
            repository: r(),
            revisions: vec![b"main".to_vec(), b"main".to_vec()]
        })
    );
    unary!("CalculateChecksum", c.calculate_checksum(CalculateChecksumRequest { repository: r() }));
    server_stream!("GetConfig", c.get_config(GetConfigRequest { repository: r() }));
    server_stream!("GetCustomHooks", c.get_custom_hooks(GetCustomHooksRequest { repository: r() }));
    server_stream!("BackupCustomHooks", c.backup_custom_hooks(BackupCustomHooksRequest { repository: r() }));
    unary!(
        "SetCustomHooks",
        c.set_custom_hooks(futures::stream::iter(vec![SetCustomHooksRequest { repository: r(), data: Vec::new() }]))
    );
    unary!(
        "RestoreCustomHooks",
        c.restore_custom_hooks(futures::stream::iter(vec![RestoreCustomHooksRequest {
            repository: r(),
            data: Vec::new()
        }]))
    );
    out
}

#[tokio::test]
async fn hostile_relative_paths_never_escape() {
    let node = Node::start().await;
    let outside = node.dir.path().join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir outside");
    let victim = crate::support::git::TestRepo::create(&outside, "victim.git", Format::Sha1);
    victim.commit_on("main", &[("secret", "s")], "victim");
    let ok = node.create_repo("ok.git", Format::Sha1);
    ok.commit_on("main", &[("f", "x")], "ok");
    std::os::unix::fs::symlink(&outside, node.storage.join("link")).expect("symlink");
    std::os::unix::fs::symlink("/nonexistent/target", node.storage.join("dangling")).expect("symlink");

    let mut c = RepositoryServiceClient::new(node.channel().await);
    let before = snapshot(node.dir.path());
    let paths = hostile_paths();
    assert!(paths.len() >= 20);
    let mut calls = 0;
    for path in &paths {
        let repo = node.repo(path);
        for (rpc, status) in call_every_rpc(&mut c, repo).await {
            calls += 1;
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{rpc} with {:?}: {status:?}",
                &path[..path.len().min(60)]
            );
        }
    }
    assert!(calls >= 20 * 16);
    assert_eq!(snapshot(node.dir.path()), before, "the file system is unchanged");
    assert_eq!(victim.git(&["rev-parse", "main"]).len(), 40, "the victim is intact");
}

#[tokio::test]
async fn hostile_object_directories_never_escape() {
    let node = Node::start().await;
    let ok = node.create_repo("ok.git", Format::Sha1);
    ok.commit_on("main", &[("f", "x")], "ok");
    std::fs::create_dir_all(node.dir.path().join("outside/objects")).expect("mkdir");
    let mut c = RepositoryServiceClient::new(node.channel().await);
    let before = snapshot(node.dir.path());
    for dir in ["../../outside/objects", "/tmp", "objects/../../../outside", "../ok.git/../../outside", "objects\0x"] {
        let mut repo = node.repo("ok.git");
        repo.git_object_directory = dir.to_owned();
        for (rpc, status) in call_every_rpc(&mut c, repo.clone()).await {
            assert_eq!(status.code(), Code::InvalidArgument, "{rpc} with object dir {dir:?}: {status:?}");
        }
        let mut repo = node.repo("ok.git");
        repo.git_alternate_object_directories = vec!["objects".into(), dir.to_owned()];
        for (rpc, status) in call_every_rpc(&mut c, repo).await {
            assert_eq!(status.code(), Code::InvalidArgument, "{rpc} with alternate {dir:?}: {status:?}");
        }
    }
    assert_eq!(snapshot(node.dir.path()), before);
}
