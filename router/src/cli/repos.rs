//! Subcommands about repositories that ask the running router:
//! `dataloss`, `accept-dataloss`, `set-replication-factor`, `metadata`,
//! `verify`, and `remove-repository`.

use super::flags::Parsed;
use super::{Ctx, Failure, OrFail};
use cairn_proto::gitaly::get_repository_metadata_request::{Path as MetadataPath, Query};
use cairn_proto::gitaly::mark_unverified_request::{Selector, Storage as MarkStorage};
use cairn_proto::gitaly::praefect_info_service_client::PraefectInfoServiceClient;
use cairn_proto::gitaly::repository_service_client::RepositoryServiceClient;
use cairn_proto::gitaly::*;
use std::time::{Duration, SystemTime};

async fn info_client(ctx: &Ctx) -> Result<PraefectInfoServiceClient<cairn_node::client::AuthChannel>, Failure> {
    Ok(PraefectInfoServiceClient::new(ctx.router().await?.channel()))
}

/// `praefect dataloss [-virtual-storage name] [-partially-unavailable]`.
pub(super) async fn dataloss(ctx: &Ctx, f: &Parsed) -> Result<(), Failure> {
    let partially = f.bool("partially-unavailable");
    let mut virtual_storages = match f.string("virtual-storage") {
        vs if vs.is_empty() => ctx.config.virtual_storages.iter().map(|v| v.name.clone()).collect(),
        vs => vec![vs],
    };
    virtual_storages.sort();
    let mut client = info_client(ctx).await?;
    for vs in virtual_storages {
        let mut stream = client
            .dataloss(DatalossRequest { virtual_storage: vs.clone(), include_partially_replicated: partially })
            .await
            .or_fail("error checking")?
            .into_inner();
        println!("Virtual storage: {vs}");
        let mut found = false;
        while let Some(resp) = stream.message().await.or_fail("getting response")? {
            if !resp.repositories.is_empty() {
                println!("  Repositories:");
            }
            for repo in resp.repositories {
                found = true;
                let unavailable = if repo.unavailable { " (unavailable)" } else { "" };
                println!("    {}{unavailable}:", repo.relative_path);
                let primary = if repo.primary.is_empty() { "No Primary" } else { &repo.primary };
                println!("      Primary: {primary}");
                println!("      In-Sync Storages:");
                for s in repo.storages.iter().filter(|s| s.behind_by == 0) {
                    println!("        {}{}{}", s.name, assigned(s.assigned), unhealthy(s.healthy));
                }
                println!("      Outdated Storages:");
                for s in repo.storages.iter().filter(|s| s.behind_by != 0) {
                    let plural = if s.behind_by > 1 { "s" } else { "" };
                    println!(
                        "        {} is behind by {} change{plural} or less{}{}",
                        s.name,
                        s.behind_by,
                        assigned(s.assigned),
                        unhealthy(s.healthy)
                    );
                }
            }
        }
        if !found {
            if partially {
                println!("  All repositories are fully available on all assigned storages!");
            } else {
                println!("  All repositories are available!");
            }
        }
    }
    Ok(())
}

fn assigned(a: bool) -> &'static str {
    if a { ", assigned host" } else { "" }
}

fn unhealthy(h: bool) -> &'static str {
    if h { "" } else { ", unhealthy" }
}

/// `praefect accept-dataloss -virtual-storage -relative-path -authoritative-storage`.
pub(super) async fn accept_dataloss(ctx: &Ctx, f: &Parsed) -> Result<(), Failure> {
    let request = SetAuthoritativeStorageRequest {
        virtual_storage: f.required("virtual-storage")?,
        relative_path: f.required("relative-path")?,
        authoritative_storage: f.required("authoritative-storage")?,
    };
    info_client(ctx).await?.set_authoritative_storage(request).await.or_fail("set authoritative storage")?;
    Ok(())
}

/// `praefect set-replication-factor -virtual-storage -relative-path -replication-factor N`.
pub(super) async fn set_replication_factor(ctx: &Ctx, f: &Parsed) -> Result<(), Failure> {
    let virtual_storage = f.required("virtual-storage")?;
    let relative_path = f.required("relative-path")?;
    f.required("replication-factor")?;
    let factor: u32 = f.int("replication-factor")?.unwrap_or_default();
    let resp = info_client(ctx)
        .await?
        .set_replication_factor(SetReplicationFactorRequest {
            virtual_storage,
            relative_path,
            replication_factor: i32::try_from(factor).unwrap_or(i32::MAX),
        })
        .await
        .or_fail("")?
        .into_inner();
    println!("current assignments: {}", resp.storages.join(", "));
    Ok(())
}

/// A timestamp the way Go's `time.Time.String` prints a UTC time.
fn go_time(t: SystemTime) -> String {
    let rfc = humantime::format_rfc3339_nanos(t).to_string();
    let (date_time, frac) = rfc.trim_end_matches('Z').split_once('.').unwrap_or((&rfc, ""));
    let frac = frac.trim_end_matches('0');
    let dot = if frac.is_empty() { "" } else { "." };
    format!("{}{dot}{frac} +0000 UTC", date_time.replace('T', " "))
}

/// `praefect metadata (-repository-id N | -virtual-storage -relative-path)`.
pub(super) async fn metadata(ctx: &Ctx, f: &Parsed) -> Result<(), Failure> {
    let id: i64 = f.int("repository-id")?.unwrap_or(0);
    let (vs, path) = (f.string("virtual-storage"), f.string("relative-path"));
    let query = if id != 0 {
        if !vs.is_empty() || !path.is_empty() {
            return Err(Failure::new("virtual storage and relative path can't be provided with a repository ID"));
        }
        Query::RepositoryId(id)
    } else if !vs.is_empty() || !path.is_empty() {
        if vs.is_empty() {
            return Err(Failure::new("virtual storage is required with relative path"));
        }
        if path.is_empty() {
            return Err(Failure::new("relative path is required with virtual storage"));
        }
        Query::Path(MetadataPath { virtual_storage: vs, relative_path: path })
    } else {
        return Err(Failure::new("repository ID or virtual storage and relative path required"));
    };
    let conn = ctx.router().await.map_err(|e| Failure::new(e.message.replacen("error dialing", "dial", 1)))?;
    let m = PraefectInfoServiceClient::new(conn.channel())
        .get_repository_metadata(GetRepositoryMetadataRequest { query: Some(query) })
        .await
        .or_fail("get metadata")?
        .into_inner();
    println!("Repository ID: {}", m.repository_id);
    println!("Virtual Storage: {:?}", m.virtual_storage);
    println!("Relative Path: {:?}", m.relative_path);
    println!("Replica Path: {:?}", m.replica_path);
    println!("Primary: {:?}", m.primary);
    println!("Generation: {}", m.generation);
    println!("Replicas:");
    for r in &m.replicas {
        println!("- Storage: {:?}", r.storage);
        println!("  Assigned: {}", r.assigned);
        let generation = if r.generation == -1 {
            "replica not yet created".to_owned()
        } else if r.generation < m.generation {
            format!("{}, behind by {} changes", r.generation, m.generation - r.generation)
        } else {
            format!("{}, fully up to date", r.generation)
        };
        let verified =
            r.verified_at.and_then(|t| SystemTime::try_from(t).ok()).map_or_else(|| "unverified".to_owned(), go_time);
        println!("  Generation: {generation}");
        println!("  Healthy: {}", r.healthy);
        println!("  Valid Primary: {}", r.valid_primary);
        println!("  Verified At: {verified}");
    }
    Ok(())
}

/// `praefect verify (-repository-id N | -virtual-storage [-storage])`.
pub(super) async fn verify(ctx: &Ctx, f: &Parsed) -> Result<(), Failure> {
    let id: i64 = f.int("repository-id")?.unwrap_or(0);
    let (vs, storage) = (f.string("virtual-storage"), f.string("storage"));
    let selector = if id != 0 {
        if !vs.is_empty() || !storage.is_empty() {
            return Err(Failure::new("virtual storage and storage can't be provided with a repository ID"));
        }
        Selector::RepositoryId(id)
    } else if !storage.is_empty() {
        if vs.is_empty() {
            return Err(Failure::new("virtual storage must be passed with storage"));
        }
        Selector::Storage(MarkStorage { virtual_storage: vs, storage })
    } else if !vs.is_empty() {
        Selector::VirtualStorage(vs)
    } else {
        return Err(Failure::new("(repository id), (virtual storage) or (virtual storage, storage) required"));
    };
    let conn = ctx.router().await.map_err(|e| Failure::new(e.message.replacen("error dialing", "dial", 1)))?;
    let resp = PraefectInfoServiceClient::new(conn.channel())
        .mark_unverified(MarkUnverifiedRequest { selector: Some(selector) })
        .await
        .or_fail("verify replicas")?
        .into_inner();
    println!("{} replicas marked unverified", resp.replicas_marked);
    Ok(())
}

/// `praefect remove-repository -virtual-storage -relative-path [-apply [-db-only]]`.
pub(super) async fn remove_repository(ctx: &Ctx, f: &Parsed) -> Result<(), Failure> {
    let virtual_storage = f.required("virtual-storage")?;
    let relative_path = f.required("relative-path")?;
    let db = ctx.db()?;
    let mut repository_id = None;
    match db.repository(&virtual_storage, &relative_path).await {
        Err(e) => println!(
            "error getting storages from database: {e}. Please make sure the database parameters are set correctly \
             and the database is accessible."
        ),
        Ok(Some(state)) => {
            println!("Repository found in the database.");
            repository_id = Some(state.id);
        }
        Ok(None) => return Err(Failure::new("repository is not being tracked in Praefect")),
    }
    if !f.bool("apply") {
        println!(
            "Re-run the command with -apply to remove repositories from the database and disk or -apply and \
             -db-only to remove from database only."
        );
        return Ok(());
    }
    if f.bool("db-only") {
        println!("Attempting to remove {relative_path} from the database...");
        if let Some(state) =
            db.delete_repository(&virtual_storage, &relative_path).await.or_fail("remove repository from database")?
        {
            repository_id = Some(state.id);
        }
        println!("Repository removal from database completed.");
        if let Some(id) = repository_id {
            remove_replication_jobs(&db, id).await?;
        }
        return Ok(());
    }
    println!("Attempting to remove {relative_path} from the database, and delete it from all gitaly nodes...");
    let conn = ctx.router().await.map_err(|e| Failure::new(format!("repository removal failed: {}", e.message)))?;
    let mut request = tonic::Request::new(RemoveRepositoryRequest {
        repository: Some(Repository {
            storage_name: virtual_storage.clone(),
            relative_path: relative_path.clone(),
            ..Default::default()
        }),
    });
    request.metadata_mut().insert("client_name", tonic::metadata::MetadataValue::from_static("remove-repository"));
    RepositoryServiceClient::new(conn.channel())
        .remove_repository(request)
        .await
        .or_fail("repository removal failed")?;
    println!("Repository removal completed.");
    println!("Removing replication events...");
    if let Some(id) = repository_id {
        remove_replication_jobs(&db, id).await?;
    }
    println!("Replication event removal completed.");
    Ok(())
}

/// Deletes the repository's queued replication jobs, waiting (polling
/// every second) for running ones to finish first.
async fn remove_replication_jobs(db: &crate::db::Db, repository_id: i64) -> Result<(), Failure> {
    while db.delete_idle_replication_jobs(repository_id).await.or_fail("remove scheduled replication events")? {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}
