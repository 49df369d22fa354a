//! UserCommitFiles: a client stream of a header then file actions (create,
//! create directory, update, move, delete, chmod) that become one commit
//! on a branch, as the user, running the receive hooks. The tree is edited
//! in memory from the parent's tree and written, with its blobs and the
//! commit, into the change's quarantine; no work tree or index is shared
//! between requests.

use super::common::{signature, signing_key};
use super::start::{quarantined, start_commit};
use super::update::{Call, UpdateError};
use super::user_create_branch::branch_reference;
use crate::error::{Error, Result};
use crate::git::merge::{self, NewCommit};
use crate::git::objects::ObjectId;
use crate::git::write::{EditError, Entry, ObjectWriter, TreeEditor};
use crate::git::{repo, tree};
use crate::service::blocking;
use crate::service::repository::internal;
use base64::Engine as _;
use cairn_proto::gitaly::index_error::ErrorType;
use cairn_proto::gitaly::user_commit_files_action::UserCommitFilesActionPayload as Payload;
use cairn_proto::gitaly::user_commit_files_action_header::ActionType;
use cairn_proto::gitaly::user_commit_files_request::UserCommitFilesRequestPayload as RequestPayload;
use cairn_proto::gitaly::{
    IndexError, OperationBranchUpdate, UserCommitFilesActionHeader, UserCommitFilesError, UserCommitFilesRequest,
    UserCommitFilesRequestHeader, UserCommitFilesResponse, user_commit_files_error,
};
use std::sync::Arc;
use tokio_stream::StreamExt as _;
use tonic::{Code, Streaming};

const REGULAR: u32 = 0o100644;
const EXECUTABLE: u32 = 0o100755;

pub(super) async fn handle(
    call: Call<'_>,
    mut stream: Streaming<UserCommitFilesRequest>,
) -> Result<UserCommitFilesResponse> {
    let receive = |e: tonic::Status| Error::new(e.code(), format!("receive request: {}", e.message()));
    let first = stream.next().await.transpose().map_err(receive)?;
    let Some(RequestPayload::Header(header)) = first.and_then(|f| f.user_commit_files_request_payload) else {
        return Err(Error::invalid_argument("empty UserCommitFilesRequestHeader"));
    };
    let path = call.deps.storages.repo(header.repository.as_ref())?;
    let format = call.deps.read_at(path.clone(), |r, _| Ok(r.object_format())).await?;
    validate(&header, format)?;
    let Some(user) = &header.user else { return Err(Error::invalid_argument("empty User")) };
    let committer = signature(user, header.timestamp.as_ref())?;
    let mut author = committer.clone();
    let (name, email) = (header.commit_author_name.trim_ascii(), header.commit_author_email.trim_ascii());
    if !name.is_empty() {
        author.name = name.to_vec();
    }
    if !email.is_empty() {
        author.email = email.to_vec();
    }
    if author.name.is_empty() || author.email.is_empty() {
        return Err(Error::invalid_argument(
            "commit: failed to parse signature - Signature cannot have an empty name or email",
        ));
    }
    let reference = branch_reference(&header.branch_name)?;
    let repository = header.repository.clone().unwrap_or_default();
    let change = call.change(&repository, &path, user);
    let quarantine = Arc::new(change.quarantine()?);
    let objects = quarantine.objects();

    // A start point in another repository (a fork) is resolved there and
    // its commit fetched into the quarantine.
    let remote_parent = match &header.start_repository {
        Some(start) if !internal::same_repository(call.deps, &repository, start) => {
            let revision = if !header.start_sha.is_empty() {
                header.start_sha.clone().into_bytes()
            } else if header.start_branch_name.is_empty() {
                reference.clone()
            } else {
                branch_reference(&header.start_branch_name)?
            };
            let found = start_commit(&call, (&repository, &path), &objects, Some(start), &revision).await?;
            match found {
                Some(id) => Some(ObjectId::from_hex(id.as_bytes()).map_err(|e| Error::internal("start commit", e))?),
                // The start repository lacks the branch being committed to:
                // the first commit of a branch starts where the target is.
                None if header.start_sha.is_empty() && header.start_branch_name.is_empty() => None,
                None => {
                    return Err(Error::new(
                        Code::Unknown,
                        format!(
                            "resolve parent commit: resolving refish \"{}^{{commit}}\": reference not found",
                            String::from_utf8_lossy(&revision)
                        ),
                    ));
                }
            }
        }
        _ => None,
    };

    // The parent commit and the branch's current commit.
    let (start_branch, start_sha, lookup) =
        (header.start_branch_name.clone(), header.start_sha.clone(), reference.clone());
    let (target, parent, had_branches) = call
        .deps
        .read_at(quarantined(&path, &objects), move |r, _| {
            let commit_of = |rev: &[u8]| repo::resolve_revision(r, &[rev, b"^{commit}".as_slice()].concat());
            let target = commit_of(&lookup);
            let has_branches = repo::has_branches(r)?;
            let parent = if remote_parent.is_some() {
                remote_parent
            } else if !start_sha.is_empty() {
                let id = ObjectId::from_hex(start_sha.as_bytes())
                    .map_err(|e| Error::invalid_argument(format!("cannot resolve parent commit: {e}")))?;
                Some(id)
            } else if start_branch.is_empty() || !has_branches {
                target
            } else {
                let branch = branch_reference(&start_branch)?;
                Some(commit_of(&branch).ok_or_else(|| {
                    Error::new(
                        Code::Unknown,
                        format!(
                            "resolve parent commit: resolving refish \"{}^{{commit}}\": reference not found",
                            String::from_utf8_lossy(&branch)
                        ),
                    )
                })?)
            };
            if let Some(p) = parent
                && Some(p) != target
                && commit_of(p.to_string().as_bytes()).is_none()
            {
                return Err(Error::new(
                    Code::Unknown,
                    "fetch missing commit: lookup parent commit: reference not found",
                ));
            }
            Ok((target, parent, has_branches))
        })
        .await?;

    // The actions, each with its content.
    let mut actions: Vec<(UserCommitFilesActionHeader, Vec<u8>)> = Vec::new();
    while let Some(req) = stream.next().await.transpose().map_err(receive)? {
        match req.user_commit_files_request_payload {
            Some(RequestPayload::Action(a)) => match a.user_commit_files_action_payload {
                Some(Payload::Header(h)) => actions.push((h, Vec::new())),
                Some(Payload::Content(c)) => match actions.last_mut() {
                    Some((_, content)) => content.extend_from_slice(&c),
                    None => return Err(Error::new(Code::Unknown, "content sent before action")),
                },
                None => return Err(Error::new(Code::Unknown, "unhandled action payload type: <nil>")),
            },
            _ => return Err(Error::new(Code::Unknown, "unhandled action payload type")),
        }
    }

    let (q, repos, repo_path) = (quarantine.clone(), call.deps.repos.clone(), path.path.clone());
    let key = signing_key(call.deps, header.sign);
    let signed = key.is_some();
    let (author_c, committer_c, message) = (author.clone(), committer.clone(), header.commit_message.clone());
    let commit = blocking(move || {
        let r = q.open(&repos, &repo_path)?;
        let writer = ObjectWriter::new(&q, format);
        let base = match parent {
            Some(p) => {
                Some(tree::root_of(&r, p)?.ok_or_else(|| Error::internal_msg("getting tree id: parent has no tree"))?)
            }
            None => None,
        };
        let mut editor = TreeEditor::new(&r, base)?;
        for (action, content) in actions {
            apply(&mut editor, &writer, &action, content)?;
        }
        let tree = editor.write(&writer)?;
        let parents: Vec<ObjectId> = parent.into_iter().collect();
        if signed {
            return Ok(Written::Tree(tree, parents));
        }
        Ok(Written::Commit(writer.commit(tree, &parents, &author_c, &committer_c, &message)?))
    })
    .await?;
    // A signed commit is written by git, which signs it with ssh-keygen.
    let commit = match commit {
        Written::Commit(id) => id,
        Written::Tree(tree, parents) => {
            let (tree, parents) = (tree.to_string(), parents.iter().map(ToString::to_string).collect::<Vec<_>>());
            let new = NewCommit {
                tree: &tree,
                parents: &parents,
                author: &author,
                committer: &committer,
                message: &header.commit_message,
                signing_key: key,
            };
            let id = merge::write_commit(&call.deps.git, &path.path, &objects, &new, call.correlation_id)
                .await
                .map_err(|e| Error::internal("write signed commit", e))?;
            ObjectId::from_hex(id.as_bytes()).map_err(|e| Error::internal("signed commit id", e))?
        }
    };

    let zero = format.zero_oid();
    let old = if !header.expected_old_oid.is_empty() {
        let expected = header.expected_old_oid.clone();
        call.deps.read_at(path.clone(), move |r, _| Ok(super::common::expected_old(r, &expected)?.to_string())).await?
    } else {
        match (target, parent) {
            (None, _) => zero.clone(),
            (Some(t), _) if header.force => t.to_string(),
            (Some(_), Some(p)) => p.to_string(),
            (Some(t), None) => t.to_string(),
        }
    };
    let quarantine = Arc::try_unwrap(quarantine).map_err(|_| Error::internal_msg("quarantine still in use"))?;
    change.update_reference(Some(quarantine), &reference, &commit.to_string(), &old).await.map_err(|e| {
        let detail = |error| UserCommitFilesError { error: Some(error) };
        match e {
            UpdateError::CustomHook(hook) => Error::permission_denied("denied by custom hooks")
                .with_detail(&detail(user_commit_files_error::Error::CustomHook(hook))),
            UpdateError::AccessCheck(ref check) => Error::permission_denied(e.message())
                .with_detail(&detail(user_commit_files_error::Error::AccessCheck(check.clone()))),
            UpdateError::Reference(..) => Error::failed_precondition(e.message()),
            UpdateError::Other(e) => Error::new(Code::Unknown, format!("update reference: {e}")),
        }
    })?;
    Ok(UserCommitFilesResponse {
        branch_update: Some(OperationBranchUpdate {
            commit_id: commit.to_string(),
            repo_created: !had_branches,
            branch_created: old == zero,
        }),
        ..Default::default()
    })
}

fn validate(header: &UserCommitFilesRequestHeader, format: crate::git::ObjectFormat) -> Result<()> {
    if header.user.is_none() {
        return Err(Error::invalid_argument("empty User"));
    }
    if header.commit_message.is_empty() {
        return Err(Error::invalid_argument("empty CommitMessage"));
    }
    if header.branch_name.is_empty() {
        return Err(Error::invalid_argument("empty BranchName"));
    }
    if !header.start_sha.is_empty() && !format.is_oid(&header.start_sha) {
        return Err(Error::invalid_argument(format!("invalid object ID: {:?}", header.start_sha)));
    }
    Ok(())
}

/// The error upstream answers for an index error: its code, its message
/// and the IndexError detail.
fn index_error(kind: ErrorType, path: &[u8]) -> Error {
    let (code, message) = match kind {
        ErrorType::DirectoryExists => (Code::AlreadyExists, "A directory with this name already exists".to_owned()),
        ErrorType::FileExists => (Code::AlreadyExists, "A file with this name already exists".to_owned()),
        ErrorType::FileNotFound => (Code::NotFound, "A file with this name doesn't exist".to_owned()),
        ErrorType::DirectoryTraversal => (Code::InvalidArgument, "Path cannot include directory traversal".to_owned()),
        ErrorType::EmptyPath => (Code::InvalidArgument, "You must provide a file path".to_owned()),
        ErrorType::InvalidPath => (Code::InvalidArgument, format!("invalid path: {:?}", String::from_utf8_lossy(path))),
        ErrorType::Unspecified => (Code::Internal, "index error".to_owned()),
    };
    Error::new(code, message).with_detail(&UserCommitFilesError {
        error: Some(user_commit_files_error::Error::IndexUpdate(IndexError {
            path: path.to_vec(),
            error_type: kind as i32,
        })),
    })
}

fn edit_error(e: EditError, path: &[u8]) -> Error {
    index_error(
        match e {
            EditError::FileExists => ErrorType::FileExists,
            EditError::DirectoryExists => ErrorType::DirectoryExists,
            EditError::FileNotFound => ErrorType::FileNotFound,
        },
        path,
    )
}

/// A request path cleaned as upstream does (`.` and `..` resolved, never
/// above the root); index errors for empty paths, `//` and traversal.
fn clean_path(raw: &[u8]) -> Result<Vec<Vec<u8>>> {
    if raw.is_empty() {
        return Err(index_error(ErrorType::EmptyPath, raw));
    }
    if raw.windows(2).any(|w| w == b"//") {
        return Err(index_error(ErrorType::InvalidPath, raw));
    }
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(index_error(ErrorType::DirectoryTraversal, raw));
                }
            }
            c => out.push(c.to_vec()),
        }
    }
    if out.is_empty() {
        return Err(index_error(ErrorType::EmptyPath, raw));
    }
    if out[0] == b".git" {
        return Err(Error::new(Code::Unknown, format!("invalid path: '{}'", String::from_utf8_lossy(raw))));
    }
    Ok(out)
}

fn apply(
    editor: &mut TreeEditor<'_>,
    writer: &ObjectWriter,
    action: &UserCommitFilesActionHeader,
    content: Vec<u8>,
) -> Result<()> {
    let Ok(kind) = ActionType::try_from(action.action) else {
        return Err(Error::invalid_argument(format!(
            "NoMethodError: undefined method `downcase' for {}:Integer",
            action.action
        )));
    };
    let raw = action.file_path.as_slice();
    let path = clean_path(raw)?;
    let components: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
    let blob = |content: Vec<u8>| -> Result<ObjectId> {
        let data = if action.base64_content {
            base64::engine::general_purpose::STANDARD
                .decode(content.trim_ascii())
                .map_err(|e| Error::new(Code::Unknown, format!("write blob: illegal base64 data: {e}")))?
        } else {
            content
        };
        Ok(writer.blob(&data)?)
    };
    let fail = |r: std::result::Result<(), EditError>, at: &[u8]| r.map_err(|e| edit_error(e, at));
    match kind {
        ActionType::Create => {
            let id = blob(content)?;
            let mode = if action.execute_filemode { EXECUTABLE } else { REGULAR };
            fail(editor.add(&components, mode, id, true)?, raw)
        }
        ActionType::Update => {
            let id = blob(content)?;
            fail(editor.modify(&components, |mode, _| (mode, id))?, raw)
        }
        ActionType::Chmod => {
            let exec = action.execute_filemode;
            fail(
                editor.modify(&components, |mode, id| match (exec, mode) {
                    (true, _) => (EXECUTABLE, id),
                    (false, EXECUTABLE) => (REGULAR, id),
                    (false, m) => (m, id),
                })?,
                raw,
            )
        }
        ActionType::Delete => fail(editor.delete(&components)?, raw),
        ActionType::CreateDir => {
            match editor.get(&components)? {
                Some(Entry::Tree) => return Err(index_error(ErrorType::DirectoryExists, raw)),
                Some(Entry::Leaf { mode: 0o160000, .. }) => {
                    return Err(index_error(ErrorType::DirectoryExists, raw));
                }
                Some(Entry::Leaf { .. }) => return Err(index_error(ErrorType::FileExists, raw)),
                None => {}
            }
            let keep = writer.blob(b"")?;
            let mut with_keep = components.clone();
            with_keep.push(b".gitkeep");
            editor.add(&with_keep, REGULAR, keep, false)?.map_err(|e| match e {
                EditError::FileExists => index_error(ErrorType::DirectoryExists, raw),
                e => edit_error(e, raw),
            })
        }
        ActionType::Move => {
            let prev_raw = action.previous_path.as_slice();
            let prev = clean_path(prev_raw)?;
            let prev: Vec<&[u8]> = prev.iter().map(Vec::as_slice).collect();
            let Some(Entry::Leaf { mode, id }) = editor.get(&prev)? else {
                return Err(index_error(ErrorType::FileNotFound, prev_raw));
            };
            let id = if action.infer_content { id } else { blob(content)? };
            fail(editor.delete(&prev)?, prev_raw)?;
            fail(editor.add(&components, mode, id, true)?, raw)
        }
    }
}

/// What the tree edit wrote: the commit, or for a signed commit only its
/// tree and parents (git writes and signs the commit).
enum Written {
    Commit(ObjectId),
    Tree(ObjectId, Vec<ObjectId>),
}
