use super::*;
use tonic::Code;

fn setup() -> (tempfile::TempDir, Storages) {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().join("storage");
    std::fs::create_dir_all(storage.join("group/project.git/objects")).expect("mkdir");
    std::fs::create_dir_all(storage.join("group/project.git/refs")).expect("mkdir");
    std::fs::write(storage.join("group/project.git/HEAD"), "ref: refs/heads/main\n").expect("HEAD");
    std::fs::create_dir_all(storage.join("half.git/objects")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("outside/evil.git")).expect("mkdir");
    std::os::unix::fs::symlink(dir.path().join("outside"), storage.join("link")).expect("symlink");
    std::os::unix::fs::symlink("/nonexistent/target", storage.join("dangling")).expect("symlink");
    std::fs::write(storage.join("file"), "x").expect("file");
    let storages = Storages::new(&[config::Storage { name: "default".into(), path: storage }]);
    (dir, storages)
}

fn repo(storage: &str, path: &str) -> Repository {
    Repository { storage_name: storage.into(), relative_path: path.into(), ..Default::default() }
}

fn code(r: Result<RepoPath>) -> (Code, String) {
    let e = r.expect_err("should fail");
    (e.code(), e.to_string())
}

#[test]
fn resolves_and_cleans() {
    let (_d, s) = setup();
    let r = s.repo(Some(&repo("default", "/group/./x/../project.git"))).expect("valid");
    assert_eq!(r.relative_path, "group/project.git");
    assert!(r.path.ends_with("storage/group/project.git"));
}

#[test]
fn upstream_error_codes() {
    let (_d, s) = setup();
    assert_eq!(code(s.repo(None)), (Code::InvalidArgument, "repository not set".into()));
    assert_eq!(code(s.repo(Some(&repo("", "")))), (Code::InvalidArgument, "repository not set".into()));
    assert_eq!(code(s.repo(Some(&repo("default", "")))), (Code::InvalidArgument, "repository path not set".into()));
    assert_eq!(code(s.repo(Some(&repo("", "x.git")))), (Code::InvalidArgument, "storage name not set".into()));
    assert_eq!(code(s.repo(Some(&repo("nope", "x.git")))), (Code::InvalidArgument, "storage name not found".into()));
    assert_eq!(code(s.repo(Some(&repo("default", "missing.git")))), (Code::NotFound, "repository not found".into()));
    assert_eq!(code(s.repo(Some(&repo("default", "file")))), (Code::NotFound, "repository not found".into()));
    assert_eq!(
        code(s.repo(Some(&repo("default", "half.git")))),
        (Code::FailedPrecondition, "repository not valid: \"refs\" does not exist".into())
    );
}

#[test]
fn hostile_paths_are_invalid_arguments() {
    let (_d, s) = setup();
    for p in [
        "..",
        "../x",
        "../../etc/passwd",
        "a/../../x",
        "./../x",
        "group/../../x",
        ".",
        "/",
        "a/..",
        "link",
        "link/evil.git",
        "link/../link/evil.git",
        "dangling",
        "dangling/x.git",
        "+gitaly/tmp",
        "/+gitaly",
        "a\0b",
        &"a/".repeat(2000),
        &"x".repeat(300),
    ] {
        let (c, msg) = code(s.repo_for_create(Some(&repo("default", p))));
        assert_eq!(c, Code::InvalidArgument, "{p:?}: {msg}");
    }
}

#[test]
fn quarantine_directories_stay_inside() {
    let (d, s) = setup();
    let mut r = repo("default", "group/project.git");
    r.git_object_directory = "../../../outside".into();
    assert_eq!(code(s.repo(Some(&r))).0, Code::InvalidArgument);
    r.git_object_directory = "/tmp".into();
    assert_eq!(code(s.repo(Some(&r))).0, Code::InvalidArgument);
    r.git_object_directory = "objects/incoming-abc".into();
    assert_eq!(code(s.repo(Some(&r))).0, Code::NotFound);
    std::fs::create_dir(d.path().join("storage/group/project.git/objects/incoming-abc")).expect("mkdir");
    let ok = s.repo(Some(&r)).expect("valid quarantine");
    assert!(ok.object_dir.expect("set").ends_with("objects/incoming-abc"));
    r.git_alternate_object_directories = vec!["objects".into(), "../../link".into()];
    assert_eq!(code(s.repo(Some(&r))).0, Code::InvalidArgument);
}
