//! A small in-memory apiserver behind `tower_test::mock`: it stores what
//! the operator applies (server-side apply is modelled as "replace the
//! object, keep its status"), answers GETs from the store, handles the
//! finalizer's JSON patches and records every request. Tests set object
//! status through `status` hooks to play the kubelet and the controllers.

use cairn_operator::controller::{self, Context};
use cairn_operator::types::GitalyCluster;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

/// One request the operator made.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) body: Value,
}

type StatusHook = Box<dyn Fn(&str, &mut Value) + Send + Sync>;

#[derive(Default)]
pub(crate) struct State {
    pub(crate) objects: BTreeMap<String, Value>,
    pub(crate) calls: Vec<Call>,
    hooks: Vec<StatusHook>,
}

/// The fake apiserver and a client wired to it.
pub(crate) struct Fake {
    pub(crate) state: Arc<Mutex<State>>,
    pub(crate) ctx: Arc<Context>,
}

pub(crate) const NS: &str = "cairn";

pub(crate) fn cr_path(name: &str) -> String {
    format!("/apis/cairn.dev/v1alpha1/namespaces/{NS}/gitalyclusters/{name}")
}
pub(crate) fn core(kind: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{NS}/{kind}/{name}")
}
pub(crate) fn apps(kind: &str, name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{NS}/{kind}/{name}")
}
pub(crate) fn job(name: &str) -> String {
    format!("/apis/batch/v1/namespaces/{NS}/jobs/{name}")
}

impl Fake {
    /// Starts the fake with `gc` stored, and a clock.
    pub(crate) fn start(gc: &GitalyCluster, now: fn() -> OffsetDateTime) -> Self {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let state = Arc::new(Mutex::new(State::default()));
        let mut cr = serde_json::to_value(gc).expect("CR serializes");
        cr["metadata"]["namespace"] = json!(NS);
        state.lock().expect("lock").objects.insert(cr_path(&gc.metadata.name.clone().unwrap_or_default()), cr);
        let st = state.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.expect("request body");
                let body: Value =
                    if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
                let ctype = parts.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let (code, out) = handle_request(&st, &parts.method, &parts.uri, &ctype, body);
                let resp = Response::builder()
                    .status(code)
                    .body(Body::from(serde_json::to_vec(&out).expect("response JSON")))
                    .expect("response");
                send.send_response(resp);
            }
        });
        let client = kube::Client::new(service, NS);
        Self { state, ctx: Arc::new(Context { client, now }) }
    }

    /// Adds a hook run on every applied object (path, object) to set status.
    pub(crate) fn on_apply(&self, hook: impl Fn(&str, &mut Value) + Send + Sync + 'static) {
        self.state.lock().expect("lock").hooks.push(Box::new(hook));
    }

    /// Drops every status hook.
    pub(crate) fn clear_hooks(&self) {
        self.state.lock().expect("lock").hooks.clear();
    }

    /// Stores an object as if a user created it.
    pub(crate) fn put(&self, path: &str, obj: Value) {
        self.state.lock().expect("lock").objects.insert(path.to_owned(), obj);
    }

    /// The stored CR.
    pub(crate) fn cr(&self, name: &str) -> GitalyCluster {
        let v = self.get(&cr_path(name)).expect("CR stored");
        serde_json::from_value(v).expect("stored CR deserializes")
    }

    /// Changes the stored CR's spec (as `kubectl edit` would) and bumps its generation.
    pub(crate) fn edit(&self, name: &str, f: impl FnOnce(&mut GitalyCluster)) {
        let mut gc = self.cr(name);
        f(&mut gc);
        gc.metadata.generation = Some(gc.metadata.generation.unwrap_or(1) + 1);
        let v = serde_json::to_value(&gc).expect("CR serializes");
        self.state.lock().expect("lock").objects.insert(cr_path(name), v);
    }

    pub(crate) fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().expect("lock").objects.get(path).cloned()
    }

    pub(crate) fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.state.lock().expect("lock").calls)
    }

    /// Reconciles the stored CR once, with a deadline so a hang fails.
    pub(crate) async fn reconcile(&self, name: &str) -> kube::runtime::controller::Action {
        let gc = Arc::new(self.cr(name));
        tokio::time::timeout(std::time::Duration::from_secs(5), controller::reconcile(gc, self.ctx.clone()))
            .await
            .expect("reconcile finished in time")
            .expect("reconcile succeeded")
    }
}

fn not_found() -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

fn handle_request(
    st: &Mutex<State>,
    method: &Method,
    uri: &http::Uri,
    ctype: &str,
    body: Value,
) -> (StatusCode, Value) {
    let mut st = st.lock().expect("lock");
    let path = uri.path().to_owned();
    st.calls.push(Call {
        method: method.clone(),
        path: path.clone(),
        query: uri.query().unwrap_or("").to_owned(),
        body: body.clone(),
    });
    match *method {
        Method::GET => match st.objects.get(&path) {
            Some(v) => (StatusCode::OK, v.clone()),
            None => not_found(),
        },
        Method::DELETE => match st.objects.remove(&path) {
            Some(v) => (StatusCode::OK, v),
            None => not_found(),
        },
        Method::PATCH if ctype.contains("json-patch") => {
            let Some(obj) = st.objects.get_mut(&path) else { return not_found() };
            for op in body.as_array().cloned().unwrap_or_default() {
                let p = op["path"].as_str().unwrap_or("");
                match op["op"].as_str() {
                    Some("add") if p == "/metadata/finalizers" => obj["metadata"]["finalizers"] = op["value"].clone(),
                    Some("add") if p == "/metadata/finalizers/-" => {
                        if let Some(a) = obj["metadata"]["finalizers"].as_array_mut() {
                            a.push(op["value"].clone());
                        }
                    }
                    Some("remove") if p.starts_with("/metadata/finalizers/") => {
                        let i: usize = p.rsplit('/').next().and_then(|i| i.parse().ok()).expect("index");
                        if let Some(a) = obj["metadata"]["finalizers"].as_array_mut() {
                            a.remove(i);
                        }
                    }
                    _ => {}
                }
            }
            (StatusCode::OK, obj.clone())
        }
        Method::PATCH => {
            if let Some(base) = path.strip_suffix("/status") {
                let Some(obj) = st.objects.get_mut(base) else { return not_found() };
                obj["status"] = body["status"].clone();
                return (StatusCode::OK, obj.clone());
            }
            let mut obj = body;
            let old = st.objects.get(&path).cloned();
            let generation = match &old {
                Some(o) if strip(o) == strip(&obj) => o["metadata"]["generation"].as_i64().unwrap_or(1),
                Some(o) => o["metadata"]["generation"].as_i64().unwrap_or(1) + 1,
                None => 1,
            };
            if let Some(o) = &old
                && let Some(s) = o.get("status")
            {
                obj["status"] = s.clone();
            }
            obj["metadata"]["generation"] = json!(generation);
            // The apiserver stores stringData as data.
            if let Some(sd) = obj.as_object_mut().and_then(|o| o.remove("stringData")) {
                use base64::Engine;
                let data: serde_json::Map<String, Value> = sd
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| {
                        (k.clone(), json!(base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or(""))))
                    })
                    .collect();
                obj["data"] = Value::Object(data);
            }
            for h in &st.hooks {
                h(&path, &mut obj);
            }
            st.objects.insert(path, obj.clone());
            (StatusCode::OK, obj)
        }
        _ => (StatusCode::METHOD_NOT_ALLOWED, json!({})),
    }
}

fn strip(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
        if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("generation");
        }
        if let Some(sd) = o.remove("stringData") {
            o.insert("data".into(), sd);
        }
    }
    v
}

/// Hook: every StatefulSet is fully rolled out and ready at its template.
pub(crate) fn statefulsets_ready(path: &str, obj: &mut Value) {
    if !path.contains("/statefulsets/") {
        return;
    }
    let n = obj["spec"]["replicas"].clone();
    obj["status"] = json!({
        "replicas": n, "readyReplicas": n, "updatedReplicas": n, "availableReplicas": n,
        "observedGeneration": obj["metadata"]["generation"],
        "currentRevision": "r", "updateRevision": "r",
    });
}

/// Hook: every Deployment is rolled out and ready.
pub(crate) fn deployments_ready(path: &str, obj: &mut Value) {
    if !path.contains("/deployments/") {
        return;
    }
    let n = obj["spec"]["replicas"].clone();
    obj["status"] = json!({
        "replicas": n, "readyReplicas": n, "updatedReplicas": n, "availableReplicas": n,
        "observedGeneration": obj["metadata"]["generation"],
    });
}

/// Hook: every Job succeeds.
pub(crate) fn jobs_succeed(path: &str, obj: &mut Value) {
    if path.contains("/jobs/") {
        obj["status"] = json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]});
    }
}

/// Hook: every Job fails.
pub(crate) fn jobs_fail(path: &str, obj: &mut Value) {
    if path.contains("/jobs/") {
        obj["status"] = json!({"failed": 3, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]});
    }
}
