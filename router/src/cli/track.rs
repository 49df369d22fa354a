//! `track-repository` and `track-repositories`: records repositories that
//! exist on a node's disk but not in the database (after a migration from
//! a standalone Gitaly, or a restore).

use super::flags::Parsed;
use super::{Ctx, DIAL_TIMEOUT, Failure, OrFail, dial_with_timeout};
use crate::config::Config;
use crate::db::Db;
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::{ReplicateRepositoryRequest, Repository, RepositoryExistsRequest};

const PREFIX: &str = "attempting to track repository in praefect database";

/// One repository to track (also one line of `-input-path`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
struct TrackRequest {
    relative_path: String,
    replica_path: String,
    virtual_storage: String,
    authoritative_storage: String,
}

/// `praefect track-repository -virtual-storage -relative-path -replica-path
/// -authoritative-storage [-replicate-immediately]`.
pub(super) async fn track_repository(ctx: &Ctx, f: &Parsed) -> Result<(), Failure> {
    let request = TrackRequest {
        virtual_storage: f.required("virtual-storage")?,
        relative_path: f.required("relative-path")?,
        replica_path: f.required("replica-path")?,
        authoritative_storage: f.required("authoritative-storage")?,
    };
    let db = ctx.db()?;
    track(&ctx.config, &db, &request, f.bool("replicate-immediately")).await
}

fn repository(storage: &str, path: &str) -> Repository {
    Repository { storage_name: storage.to_owned(), relative_path: path.to_owned(), ..Default::default() }
}

/// Whether the replica exists on the authoritative node (asked directly).
async fn exists_on_authoritative(config: &Config, request: &TrackRequest) -> Result<bool, String> {
    let vs = config
        .virtual_storage(&request.virtual_storage)
        .ok_or_else(|| format!("virtual storage {:?} not found", request.virtual_storage))?;
    let node = vs
        .nodes
        .iter()
        .find(|n| n.storage == request.authoritative_storage)
        .ok_or_else(|| format!("node {:?} not found", request.authoritative_storage))?;
    let asked = async {
        let conn = dial_with_timeout(&node.address, &node.token, DIAL_TIMEOUT).await.map_err(|e| e.to_string())?;
        let mut req = tonic::Request::new(RepositoryExistsRequest {
            repository: Some(repository(&node.storage, &request.replica_path)),
        });
        req.metadata_mut().insert("client_name", tonic::metadata::MetadataValue::from_static("track-repository"));
        let resp = RepositoryServiceClient::new(conn.channel()).repository_exists(req).await;
        resp.map(|r| r.into_inner().exists).map_err(|e| e.message().to_owned())
    };
    match asked.await {
        Ok(exists) => Ok(exists),
        Err(e) => {
            println!("checking if repository exists {:?}, {:?}: {e}", node.storage, request.replica_path);
            Ok(false)
        }
    }
}

async fn track(config: &Config, db: &Db, request: &TrackRequest, replicate_immediately: bool) -> Result<(), Failure> {
    let fail = |e: String| Failure::new(format!("{PREFIX}: {e}"));
    if !exists_on_authoritative(config, request).await.map_err(fail)? {
        return Err(fail("authoritative repository does not exist".to_owned()));
    }
    let vs = config.virtual_storage(&request.virtual_storage).expect("checked by exists_on_authoritative");
    let primary = request.authoritative_storage.as_str();
    let mut secondaries: Vec<String> =
        vs.nodes.iter().filter(|n| n.storage != primary).map(|n| n.storage.clone()).collect();
    // With a replication factor, only that many storages hold the repository.
    let assignments = if vs.default_replication_factor > 0 {
        fastrand::shuffle(&mut secondaries);
        secondaries.truncate(vs.default_replication_factor as usize - 1);
        std::iter::once(primary.to_owned()).chain(secondaries.iter().cloned()).collect()
    } else {
        Vec::new()
    };
    let queued: &[String] = if replicate_immediately { &[] } else { &secondaries };
    let tracked = db
        .track_repository(
            &request.virtual_storage,
            &request.relative_path,
            &request.replica_path,
            primary,
            &assignments,
            queued,
        )
        .await
        .map_err(|e| fail(e.to_string()))?;
    let id = match tracked {
        Some(id) => id,
        None => {
            println!("repository is already tracked in praefect database");
            let state = db
                .repository(&request.virtual_storage, &request.relative_path)
                .await
                .map_err(|e| fail(e.to_string()))?
                .ok_or_else(|| fail("repository disappeared while being tracked".to_owned()))?;
            if !replicate_immediately {
                db.enqueue_replication(state.id, &request.virtual_storage, primary, &secondaries, "")
                    .await
                    .map_err(|e| fail(e.to_string()))?;
            }
            state.id
        }
    };
    println!("Finished adding new repository to be tracked in praefect database.");
    for secondary in &secondaries {
        if !replicate_immediately {
            println!("Added replication job to replicate repository to {secondary:?}.");
            continue;
        }
        replicate(config, db, request, id, secondary)
            .await
            .map_err(|e| fail(format!("processing replication event {e}")))?;
        println!("Finished replicating repository to {secondary:?}.");
    }
    Ok(())
}

/// Runs ReplicateRepository on `target` from the authoritative node, then
/// records the generation the target now holds.
async fn replicate(config: &Config, db: &Db, request: &TrackRequest, id: i64, target: &str) -> Result<(), String> {
    use base64::Engine as _;
    let vs = config.virtual_storage(&request.virtual_storage).ok_or("virtual storage not found")?;
    let find = |storage: &str| {
        vs.nodes.iter().find(|n| n.storage == storage).ok_or_else(|| format!("connection for {storage:?} not found"))
    };
    let (source, target_node) = (find(&request.authoritative_storage)?, find(target)?);
    let state = db.repository_by_id(id).await.map_err(|e| e.to_string())?.ok_or("repository not found")?;
    let generation = state.generation_of(&request.authoritative_storage).max(0);
    let servers = serde_json::json!({ source.storage.clone(): { "address": source.address, "token": source.token } });
    let servers = base64::engine::general_purpose::STANDARD.encode(servers.to_string());
    let conn =
        dial_with_timeout(&target_node.address, &target_node.token, DIAL_TIMEOUT).await.map_err(|e| e.to_string())?;
    let mut req = tonic::Request::new(ReplicateRepositoryRequest {
        repository: Some(repository(target, &state.replica_path)),
        source: Some(repository(&source.storage, &state.replica_path)),
    });
    req.metadata_mut().insert("gitaly-servers", servers.parse().map_err(|_| "invalid gitaly-servers value")?);
    RepositoryServiceClient::new(conn.channel())
        .replicate_repository(req)
        .await
        .map_err(|e| crate::service::checks::status_text(&e))?;
    db.set_replica_generation(id, target, generation).await.map_err(|e| e.to_string())
}

/// One rejected line of `-input-path`.
struct Invalid {
    line: usize,
    relative_path: String,
    replica_path: String,
    errors: Vec<String>,
}

/// `praefect track-repositories -input-path FILE [-replicate-immediately]`:
/// validates every line before tracking any.
pub(super) async fn track_repositories(ctx: &Ctx, f: &Parsed) -> Result<(), Failure> {
    let input = f.required("input-path")?;
    let db = ctx.db()?;
    let text = std::fs::read_to_string(&input).or_fail("open input")?;
    println!("Validating repository information in {input:?}");
    let mut requests = Vec::new();
    let mut invalid: Vec<Invalid> = Vec::new();
    let mut lines_of: std::collections::HashMap<String, Vec<usize>> = std::collections::HashMap::new();
    let mut count = 0;
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        count += 1;
        let line = i + 1;
        let mut bad = Invalid { line, relative_path: String::new(), replica_path: String::new(), errors: Vec::new() };
        let request: TrackRequest = match serde_json::from_str(raw) {
            Ok(r) => r,
            Err(e) => {
                bad.errors.push(e.to_string());
                invalid.push(bad);
                continue;
            }
        };
        bad.relative_path = request.relative_path.clone();
        bad.replica_path = request.replica_path.clone();
        for (value, flag) in [
            (&request.relative_path, "relative-path"),
            (&request.replica_path, "replica-path"),
            (&request.virtual_storage, "virtual-storage"),
            (&request.authoritative_storage, "authoritative-storage"),
        ] {
            if value.is_empty() {
                bad.errors.push(format!("{flag:?} is a required parameter"));
            }
        }
        if !bad.errors.is_empty() {
            invalid.push(bad);
            continue;
        }
        let seen = lines_of.entry(request.relative_path.clone()).or_default();
        seen.push(line);
        if seen.len() > 1 {
            bad.errors.push(format!("duplicate entries for relative_path, line {:?}", seen));
            invalid.push(bad);
            continue;
        }
        if db.repository(&request.virtual_storage, &request.relative_path).await.or_fail("checking database")?.is_some()
        {
            bad.errors.push("repository is already tracked by Praefect".to_owned());
            invalid.push(bad);
            continue;
        }
        match exists_on_authoritative(&ctx.config, &request).await {
            Err(e) => bad.errors.push(format!("checking repository on disk: {e}")),
            Ok(false) => bad.errors.push("not a valid git repository".to_owned()),
            Ok(true) => {}
        }
        if !bad.errors.is_empty() {
            invalid.push(bad);
            continue;
        }
        requests.push(request);
    }
    if !invalid.is_empty() {
        println!("Found {} invalid request(s) in {input:?}:", invalid.len());
        for bad in &invalid {
            println!(
                "  line {}, relative_path: {:?}, replica_path: {:?}",
                bad.line, bad.relative_path, bad.replica_path
            );
            for e in &bad.errors {
                // Duplicates list every line of the path, known only now.
                let e = match lines_of.get(&bad.relative_path) {
                    Some(lines) if e.starts_with("duplicate entries") => {
                        format!("duplicate entries for relative_path, line {lines:?}")
                    }
                    _ => e.clone(),
                };
                println!("    {e}");
            }
        }
        return Err(Failure::new("invalid entries found, aborting"));
    }
    if requests.is_empty() {
        return Err(Failure::new(format!("no repository information found in {input:?}")));
    }
    println!("All repository details are correctly formatted");
    println!("Tracking {count} repositories in Praefect DB...");
    let immediately = f.bool("replicate-immediately");
    for request in &requests {
        track(&ctx.config, &db, request, immediately)
            .await
            .map_err(|e| Failure::new(format!("tracking repository {:?}: {}", request.relative_path, e.message)))?;
    }
    Ok(())
}
