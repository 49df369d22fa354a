//! Reconcile: resolve inputs (Secrets), build every object, apply them with
//! server-side apply in dependency order, drive the upgrade order (nodes,
//! then the migration Job, then routers) and write status.

use crate::build::{self, Inputs};
use crate::certs::{self, Pair};
use crate::config::DbConn;
use crate::names::{self, FIELD_MANAGER, FINALIZER, Names};
use crate::status::{self, Cond};
use crate::types::{GitalyCluster, GitalyClusterStatus, Placement, StorageStatus, TlsMode};
use crate::{Error, Result};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// Shared state of the controller.
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    /// The clock; tests move it to exercise certificate renewal.
    pub now: fn() -> OffsetDateTime,
}

impl Context {
    pub fn new(client: Client) -> Self {
        Self { client, now: OffsetDateTime::now_utc }
    }
}

/// A user-fixable reason the cluster cannot progress (Degraded, no error).
struct Blocked {
    reason: &'static str,
    message: String,
}

/// Entry point for the controller: the finalizer wraps apply and cleanup.
pub async fn reconcile(gc: Arc<GitalyCluster>, ctx: Arc<Context>) -> Result<Action> {
    let ns = gc.namespace().unwrap_or_else(|| "default".to_owned());
    let api: Api<GitalyCluster> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, gc, |event| async {
        match event {
            Event::Apply(gc) => apply(&gc, &ctx).await,
            Event::Cleanup(gc) => cleanup(&gc).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// Requeue with a short backoff on API errors.
pub fn error_policy(gc: Arc<GitalyCluster>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(cluster = %gc.name_any(), error = %crate::error_chain(error), "reconcile failed");
    Action::requeue(Duration::from_secs(15))
}

/// Deletion: owned objects go by owner reference; volumes are retained on
/// purpose (repository data), which we log so admins know where data is.
async fn cleanup(gc: &GitalyCluster) -> Result<Action> {
    tracing::info!(
        cluster = %gc.name_any(),
        "cluster deleted; node volumes (PVCs repo-data-*) are retained and must be deleted by hand"
    );
    Ok(Action::await_change())
}

async fn apply(gc: &GitalyCluster, ctx: &Context) -> Result<Action> {
    let names = Names::of(gc);
    let old = gc.status.clone().unwrap_or_default();
    let now = (ctx.now)();

    if let Err(problems) = crate::validate::validate(&gc.spec) {
        let blocked = Blocked { reason: "InvalidSpec", message: problems.join("; ") };
        write_blocked(gc, ctx, &names, &old, blocked, now).await?;
        return Ok(Action::await_change());
    }
    match apply_objects(gc, ctx, &names, &old, now).await? {
        Ok(action) => Ok(action),
        Err(blocked) => {
            write_blocked(gc, ctx, &names, &old, blocked, now).await?;
            Ok(Action::requeue(Duration::from_secs(30)))
        }
    }
}

async fn write_blocked(
    gc: &GitalyCluster,
    ctx: &Context,
    names: &Names,
    old: &GitalyClusterStatus,
    b: Blocked,
    now: OffsetDateTime,
) -> Result<()> {
    tracing::warn!(cluster = %names.cluster, reason = b.reason, "{}", b.message);
    let mut st = old.clone();
    let g = gc.metadata.generation;
    st.observed_generation = g;
    st.phase = Some("Degraded".into());
    status::set(&mut st.conditions, Cond::new("Degraded", true, b.reason, &b.message), g, now);
    status::set(&mut st.conditions, Cond::new("Ready", false, b.reason, &b.message), g, now);
    status::set(&mut st.conditions, Cond::new("Progressing", false, b.reason, "blocked until fixed"), g, now);
    patch_status(gc, ctx, names, &st).await
}

/// Apply everything; `Ok(Err(_))` means a user-fixable block.
async fn apply_objects(
    gc: &GitalyCluster,
    ctx: &Context,
    names: &Names,
    old: &GitalyClusterStatus,
    now: OffsetDateTime,
) -> Result<std::result::Result<Action, Blocked>> {
    let spec = &gc.spec;
    let version = spec.version.clone();
    let g = gc.metadata.generation;
    let client = &ctx.client;
    let ns = names.namespace.as_str();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);

    // Token: the user's Secret, or ours generated once.
    let mut inputs = Inputs::new(gc, DbConn::default());
    let token = match &spec.auth.token_secret_name {
        Some(name) => match secret_key(&secrets, name, "token").await?.map(one_line) {
            Some(t) => t,
            None => {
                return Ok(Err(Blocked {
                    reason: "SecretMissing",
                    message: format!("Secret {name:?} with key \"token\" not found"),
                }));
            }
        },
        None => match secret_key(&secrets, &names.token(), "token").await?.map(one_line) {
            Some(t) => t,
            None => {
                let t = random_token();
                apply_obj(client, ns, &build::token_secret(&inputs, &t)).await?;
                t
            }
        },
    };
    if !crate::validate::secret_value_ok(&token) {
        return Ok(Err(Blocked {
            reason: "InvalidToken",
            message: "the auth token may only hold letters, digits and -._~+/=:@".into(),
        }));
    }

    // Database.
    let db_password;
    if spec.database.managed.is_some() {
        inputs.db = DbConn {
            host: format!("{}.{ns}.svc", names.postgres()),
            port: 5432,
            user: "praefect".into(),
            dbname: "praefect".into(),
            sslmode: "disable".into(),
        };
        db_password = match secret_key(&secrets, &names.postgres(), "password").await?.map(one_line) {
            Some(p) => p,
            None => random_token(),
        };
        apply_obj(client, ns, &build::postgres_secret(&inputs, &db_password)).await?;
        apply_obj(client, ns, &build::postgres_service(&inputs)).await?;
        apply_obj(client, ns, &build::postgres_statefulset(&inputs)).await?;
    } else if let Some(ext) = &spec.database.external {
        let Some(s) = secrets.get_opt(&ext.secret_name).await.map_err(kube_err("read database Secret"))? else {
            return Ok(Err(Blocked {
                reason: "SecretMissing",
                message: format!("database Secret {:?} not found", ext.secret_name),
            }));
        };
        let get = |k: &str| secret_data(&s, k);
        let (Some(host), Some(user), Some(pw), Some(dbname)) =
            (get("host"), get("user"), get("password").map(one_line), get("dbname"))
        else {
            return Ok(Err(Blocked {
                reason: "SecretInvalid",
                message: format!("database Secret {:?} needs keys host, user, password and dbname", ext.secret_name),
            }));
        };
        inputs.db = DbConn {
            host,
            port: get("port").and_then(|p| p.parse().ok()).unwrap_or(5432),
            user,
            dbname,
            sslmode: get("sslmode").unwrap_or_else(|| "prefer".into()),
        };
        db_password = pw;
    } else {
        unreachable!("validate() requires a database")
    }
    if !crate::validate::secret_value_ok(&db_password) {
        return Ok(Err(Blocked {
            reason: "SecretInvalid",
            message: "the database password may only hold letters, digits and -._~+/=:@".into(),
        }));
    }

    // TLS.
    let mut ca_cert = None;
    let mut cert_not_after = None;
    let mut renew_at = None;
    match spec.tls.mode {
        TlsMode::Disabled => {}
        TlsMode::Managed => {
            let ca = match (
                secret_key(&secrets, &names.ca(), "ca.crt").await?,
                secret_key(&secrets, &names.ca(), "ca.key").await?,
            ) {
                (Some(cert), Some(key)) => Pair { cert, key },
                _ => {
                    let ca = certs::new_ca(&names.cluster, now)?;
                    apply_obj(client, ns, &build::ca_secret(&inputs, &ca)).await?;
                    ca
                }
            };
            let sans = certs::desired_sans(spec, names);
            let current = secrets.get_opt(&names.tls()).await.map_err(kube_err("read TLS Secret"))?;
            let existing =
                current.as_ref().and_then(|s| Some((secret_data(s, "tls.crt")?, secret_data(s, "tls.key")?)));
            let leaf = match existing {
                Some((cert, key)) => {
                    let info = certs::inspect(&cert)?;
                    match certs::renewal_reason(&info, &sans, now, spec.tls.renew_before_days) {
                        None => Pair { cert, key },
                        Some(why) => {
                            tracing::info!(cluster = %names.cluster, "renewing serving certificate: {why}");
                            let leaf = certs::issue(&ca, Some(&key), &sans, now, spec.tls.certificate_days)?;
                            apply_obj(client, ns, &build::tls_secret(&inputs, &leaf, &ca.cert)).await?;
                            leaf
                        }
                    }
                }
                None => {
                    let leaf = certs::issue(&ca, None, &sans, now, spec.tls.certificate_days)?;
                    apply_obj(client, ns, &build::tls_secret(&inputs, &leaf, &ca.cert)).await?;
                    leaf
                }
            };
            let info = certs::inspect(&leaf.cert)?;
            cert_not_after = Some(certs::rfc3339(info.not_after));
            renew_at = Some(info.not_after - time::Duration::days(i64::from(spec.tls.renew_before_days)));
            inputs.tls_hash = Some(build::hash(&[&leaf.cert])[..16].to_owned());
            ca_cert = Some(ca.cert);
        }
        TlsMode::Secret => {
            let name = spec.tls.secret_name.clone().unwrap_or_default();
            let s = secrets.get_opt(&name).await.map_err(kube_err("read TLS Secret"))?;
            let Some((cert, _key)) =
                s.as_ref().and_then(|s| Some((secret_data(s, "tls.crt")?, secret_data(s, "tls.key")?)))
            else {
                return Ok(Err(Blocked {
                    reason: "SecretMissing",
                    message: format!("TLS Secret {name:?} with tls.crt and tls.key not found"),
                }));
            };
            inputs.tls_hash = Some(build::hash(&[&cert])[..16].to_owned());
            ca_cert = s.as_ref().and_then(|s| secret_data(s, "ca.crt"));
        }
    }

    // Config, Services, PDBs, then the node StatefulSets (objects a pod
    // refers to exist before the pod).
    inputs.router_version = old.router_version.clone();
    apply_obj(client, ns, &build::router_configmap(&inputs)).await?;
    for vs in &spec.storages {
        apply_obj(client, ns, &build::node_configmap(&inputs, vs)).await?;
        apply_obj(client, ns, &build::node_service(&inputs, vs)).await?;
        apply_obj(client, ns, &build::node_pdb(&inputs, vs)).await?;
    }
    apply_obj(client, ns, &build::router_service(&inputs)).await?;
    if spec.routers.placement == Placement::Deployment {
        apply_obj(client, ns, &build::router_pdb(&inputs)).await?;
    }
    let mut storages = Vec::new();
    for vs in &spec.storages {
        let sts = apply_obj(client, ns, &build::node_statefulset(&inputs, vs)).await?;
        storages.push(storage_status(&vs.name, &sts, &version));
    }
    let nodes_rolled_out = storages.iter().all(|s| s.rolled_out);

    // Migration for the new version, only once every node runs it.
    let mut migrated = old.migrated_version.clone();
    let mut migration_failed = None;
    if nodes_rolled_out && migrated.as_deref() != Some(version.as_str()) {
        let job = apply_obj(client, ns, &build::migration_job(&inputs, &version)).await?;
        let st = job.status.unwrap_or_default();
        let failed = st.conditions.unwrap_or_default().into_iter().find(|c| c.type_ == "Failed" && c.status == "True");
        if st.succeeded.unwrap_or(0) > 0 {
            migrated = Some(version.clone());
        } else if let Some(c) = failed {
            migration_failed = Some(format!(
                "migration Job {} failed: {}",
                names.migration(&version),
                c.message.unwrap_or_else(|| c.reason.unwrap_or_default())
            ));
        }
    }

    // Routers move to the new version only after its migration succeeded.
    let router_version =
        if migrated.as_deref() == Some(version.as_str()) { Some(version.clone()) } else { old.router_version.clone() };
    let mut routers_ready = (0, 0);
    match (spec.routers.placement, &router_version) {
        (Placement::Deployment, Some(v)) => {
            let d = apply_obj(client, ns, &build::router_deployment(&inputs, v)).await?;
            let want = i32::try_from(spec.routers.replicas).unwrap_or(i32::MAX);
            let ready = d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
            let rolled = deployment_rolled_out(&d, v);
            routers_ready = (if rolled { ready } else { ready.min(want - 1).max(0) }, want);
        }
        (Placement::Sidecar, Some(v)) => {
            if old.router_version.as_deref() != Some(v.as_str()) {
                // The node pods carry the routers: roll them again now.
                inputs.router_version = Some(v.clone());
                storages.clear();
                for vs in &spec.storages {
                    let sts = apply_obj(client, ns, &build::node_statefulset(&inputs, vs)).await?;
                    storages.push(storage_status(&vs.name, &sts, &version));
                }
            }
            let ready: i32 = storages.iter().map(|s| s.ready_replicas).sum();
            let want: i32 = storages.iter().map(|s| s.replicas).sum();
            routers_ready = (ready, want);
        }
        (_, None) => {}
    }
    apply_obj(client, ns, &build::gitlab_secret(&inputs, &token, ca_cert.as_deref())).await?;

    // Status.
    let mut st = old.clone();
    st.observed_generation = g;
    let ready_nodes: i32 = storages.iter().map(|s| s.ready_replicas).sum();
    let want_nodes: i32 = storages.iter().map(|s| s.replicas).sum();
    st.nodes_ready = Some(format!("{ready_nodes}/{want_nodes}"));
    st.routers_ready = Some(format!("{}/{}", routers_ready.0, routers_ready.1));
    st.storages = storages;
    st.router_version = router_version.clone();
    st.migrated_version = migrated.clone();
    st.connection_secret = Some(names.gitlab());
    st.certificate_not_after = cert_not_after;

    let c = &mut st.conditions;
    let routers_done = router_version.as_deref() == Some(version.as_str()) && routers_ready.0 == routers_ready.1;
    let all_ready = nodes_rolled_out && routers_done && ready_nodes == want_nodes;
    let (phase, reason, msg) = if let Some(m) = &migration_failed {
        ("Degraded", "MigrationFailed", m.clone())
    } else if !nodes_rolled_out {
        let verb = if old.router_version.is_some() { "Upgrading" } else { "Provisioning" };
        (verb, "RollingOutNodes", format!("node StatefulSets rolling out version {version}"))
    } else if migrated.as_deref() != Some(version.as_str()) {
        ("Migrating", "Migrating", format!("migration Job {} running", names.migration(&version)))
    } else if !routers_done {
        ("Upgrading", "RollingOutRouters", format!("routers rolling out version {version}"))
    } else {
        ("Ready", "Ready", "all nodes and routers are ready".to_owned())
    };
    st.phase = Some(phase.into());
    let failed = migration_failed.is_some();
    status::set(c, Cond::new("Ready", all_ready && !failed, reason, &msg), g, now);
    status::set(c, Cond::new("Progressing", !all_ready && !failed, reason, &msg), g, now);
    status::set(
        c,
        Cond::new(
            "Degraded",
            failed,
            if failed { "MigrationFailed" } else { "AsExpected" },
            if failed { &msg } else { "" },
        ),
        g,
        now,
    );
    let mig_ok = migrated.as_deref() == Some(version.as_str());
    status::set(
        c,
        Cond::new(
            "DatabaseMigrated",
            mig_ok,
            if mig_ok {
                "Migrated"
            } else if failed {
                "MigrationFailed"
            } else {
                "Pending"
            },
            &format!("schema for version {}", migrated.as_deref().unwrap_or("none")),
        ),
        g,
        now,
    );
    let certs_reason = match spec.tls.mode {
        TlsMode::Disabled => "TLSDisabled",
        TlsMode::Managed => "Issued",
        TlsMode::Secret => "Provided",
    };
    status::set(
        c,
        Cond::new("CertificatesReady", true, certs_reason, st.certificate_not_after.as_deref().unwrap_or("")),
        g,
        now,
    );
    patch_status(gc, ctx, names, &st).await?;

    let mut next = if all_ready || failed { Duration::from_secs(300) } else { Duration::from_secs(10) };
    if let Some(at) = renew_at {
        let until = (at - now).whole_seconds().max(1);
        next = next.min(Duration::from_secs(u64::try_from(until).unwrap_or(1)));
    }
    Ok(Ok(Action::requeue(next)))
}

fn storage_status(name: &str, sts: &StatefulSet, version: &str) -> StorageStatus {
    let want = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let s = sts.status.clone().unwrap_or_default();
    let template_version = sts
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(names::VERSION))
        .map(String::as_str);
    let ready = s.ready_replicas.unwrap_or(0);
    let updated = s.updated_replicas.unwrap_or(0);
    // Rolled out: the controller saw this template, every pod runs it and is ready.
    let rolled_out = template_version == Some(version)
        && s.observed_generation.unwrap_or(0) >= sts.metadata.generation.unwrap_or(0)
        && updated == want
        && ready == want
        && s.current_revision.is_some()
        && s.current_revision == s.update_revision;
    StorageStatus {
        name: name.to_owned(),
        replicas: want,
        ready_replicas: ready,
        updated_replicas: updated,
        rolled_out,
    }
}

fn deployment_rolled_out(d: &Deployment, version: &str) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let Some(s) = &d.status else { return false };
    let v = d
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(names::VERSION));
    v.map(String::as_str) == Some(version)
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && s.updated_replicas.unwrap_or(0) == want
        && s.ready_replicas.unwrap_or(0) == want
}

async fn patch_status(gc: &GitalyCluster, ctx: &Context, names: &Names, st: &GitalyClusterStatus) -> Result<()> {
    let api: Api<GitalyCluster> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let body = serde_json::json!({
        "apiVersion": GitalyCluster::api_version(&()),
        "kind": GitalyCluster::kind(&()),
        "status": st,
    });
    api.patch_status(&gc.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body))
        .await
        .map_err(kube_err("write status"))?;
    Ok(())
}

/// Server-side apply with the operator's field manager; returns the object
/// as the apiserver has it (with status).
async fn apply_obj<K>(client: &Client, ns: &str, obj: &K) -> Result<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(obj))
        .await
        .map_err(|source| Error::Kube { step: "apply", kind: K::kind(&()).into_owned(), name, source })
}

fn kube_err(step: &'static str) -> impl Fn(kube::Error) -> Error {
    move |source| Error::Kube { step, kind: "Secret".into(), name: String::new(), source }
}

async fn secret_key(api: &Api<Secret>, name: &str, key: &str) -> Result<Option<String>> {
    let s = api.get_opt(name).await.map_err(kube_err("read Secret"))?;
    Ok(s.and_then(|s| secret_data(&s, key)))
}

/// A one-line secret value (token, password); `kubectl create secret
/// --from-file` often leaves a trailing newline.
fn one_line(v: String) -> String {
    v.trim_end_matches(['\n', '\r']).to_owned()
}

fn secret_data(s: &Secret, key: &str) -> Option<String> {
    if let Some(v) = s.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(v.0.clone()).ok();
    }
    s.string_data.as_ref().and_then(|d| d.get(key)).cloned()
}

fn random_token() -> String {
    (0..40).map(|_| fastrand::alphanumeric()).collect()
}

/// Runs the controller until SIGTERM. `WATCH_NAMESPACE` limits it to one
/// namespace (then a Role is enough); otherwise it watches all.
pub async fn run(client: Client, health: Arc<crate::http::Health>) {
    use futures::StreamExt;
    use kube::runtime::{Controller, watcher};
    let ns = std::env::var("WATCH_NAMESPACE").ok().filter(|n| !n.is_empty());
    fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let cfg = watcher::Config::default();
    let ctx = Arc::new(Context::new(client.clone()));
    health.set_ready();
    Controller::new(api::<GitalyCluster>(&client, &ns), cfg.clone())
        .owns(api::<StatefulSet>(&client, &ns), cfg.clone())
        .owns(api::<Deployment>(&client, &ns), cfg.clone())
        .owns(api::<Job>(&client, &ns), cfg.clone())
        .owns(api::<Service>(&client, &ns), cfg.clone())
        .owns(api::<ConfigMap>(&client, &ns), cfg.clone())
        .owns(api::<Secret>(&client, &ns), cfg.clone())
        .owns(api::<PodDisruptionBudget>(&client, &ns), cfg)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| {
            health.reconciled(r.is_ok());
            async move {
                match r {
                    Ok((obj, _)) => tracing::debug!(cluster = %obj.name, "reconciled"),
                    Err(e) => tracing::debug!(error = %crate::error_chain(&e), "reconcile error"),
                }
            }
        })
        .await;
}
