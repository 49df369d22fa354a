#!/usr/bin/env bash
# End-to-end test on a real Kubernetes cluster (kind or k3d) named by
# KUBECONFIG: builds the three images and loads them into the cluster,
# installs the chart, applies examples/cluster.yaml, waits for the
# GitalyCluster to be Ready, then, from a Job in the node image that talks
# only to the router Service (as GitLab would):
#   1. creates a repository, pushes a first commit and clones it back;
#   2. deletes the pod of the repository's primary node and checks that a push
#      succeeds again within E2E_FAILOVER_SECONDS;
# and cleans up (GitalyCluster, helm release, namespace).
#
#   KUBECONFIG=~/.kube/config e2e/run.sh
#
# Without KUBECONFIG, or when no cluster answers, it says so and exits 0
# (dev/test.sh runs it, so CI shows the skip). Knobs:
#   E2E_NAMESPACE         namespace to use (default cairn-e2e; created and deleted)
#   E2E_SKIP_IMAGES=1     the images are already in the cluster (no docker build/load)
#   E2E_IMAGE_PREFIX      repository prefix of the images (default cairn.local)
#   E2E_STORAGE_CLASS     StorageClass of the node volumes (default: the cluster's default class)
#   E2E_READY_TIMEOUT     how long the cluster may take to become Ready (default 15m)
#   E2E_FAILOVER_SECONDS  bound on the push after deleting the primary (default 180)
#   E2E_KEEP=1            leave everything in place for debugging
#   E2E_ALLOW_CONTEXT     run on this kubectl context although it is not kind-*/k3d-*
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "e2e: $*"; }
skip() {
    echo "e2e skipped: $*"
    exit 0
}
[ -n "${KUBECONFIG:-}" ] || skip "KUBECONFIG is not set (needs a kind or k3d cluster)"
command -v kubectl >/dev/null 2>&1 || skip "kubectl is not installed"
kubectl version --request-timeout=10s >/dev/null 2>&1 ||
    skip "no cluster answers at KUBECONFIG=$KUBECONFIG (needs a kind or k3d cluster)"
# dev/test.sh runs this: never install into a cluster nobody meant for tests.
context="$(kubectl config current-context)"
case "$context" in
kind-* | k3d-* | "${E2E_ALLOW_CONTEXT:-}") ;;
*) skip "context $context is not a kind or k3d cluster (E2E_ALLOW_CONTEXT=$context runs there anyway)" ;;
esac

source dev/lib/tools.sh
helm="$(tools_helm)"
venv="$(tools_chart_venv)"

ns="${E2E_NAMESPACE:-cairn-e2e}"
prefix="${E2E_IMAGE_PREFIX:-cairn.local}"
ready_timeout="${E2E_READY_TIMEOUT:-15m}"
failover_seconds="${E2E_FAILOVER_SECONDS:-180}"
release=cairn-e2e
repository=e2e.git
work="$(mktemp -d "${TMPDIR:-/tmp}/cairn-e2e.XXXXXX")"
trap 'rm -rf "$work"' EXIT # until cleanup() below takes over

# The example names kind's StorageClass; k3d's default is another.
storage_class="${E2E_STORAGE_CLASS:-$(kubectl get storageclass -o \
    jsonpath='{range .items[?(@.metadata.annotations.storageclass\.kubernetes\.io/is-default-class=="true")]}{.metadata.name}{"\n"}{end}' |
    head -n 1)}"

# The example cluster, moved to our namespace and pointed at our images and
# storage class. Prints "name version virtual-storage".
read -r cluster version storage < <("$venv/bin/python3" - examples/cluster.yaml "$work/cluster.yaml" "$ns" "$prefix" "$storage_class" <<'PY'
import sys, yaml
src, dst, ns, prefix, storage_class = sys.argv[1:]
doc = yaml.safe_load(open(src))
doc.setdefault("metadata", {})["namespace"] = ns
images = doc["spec"].setdefault("images", {})
images["repositoryPrefix"] = prefix
images["pullPolicy"] = "IfNotPresent"
if storage_class:
    for vs in doc["spec"]["storages"]:
        vs["storageClassName"] = storage_class
yaml.safe_dump(doc, open(dst, "w"), sort_keys=False)
print(doc["metadata"]["name"], doc["spec"]["version"], doc["spec"]["storages"][0]["name"])
PY
)
[ -n "${storage:-}" ] || { log "could not read examples/cluster.yaml"; exit 1; }
node_image="$prefix/cairn-node:$version"
router_image="$prefix/cairn-router:$version"
operator_image="$prefix/cairn-operator:$version"
log "context $context, namespace $ns, cluster $cluster (version $version, virtual storage $storage," \
    "storage class ${storage_class:-as in the example})"

diagnose() {
    log "--- state of namespace $ns"
    kubectl -n "$ns" get gitalyclusters,pods,jobs,statefulsets,deployments -o wide || true
    kubectl -n "$ns" describe gitalycluster "$cluster" || true
    log "--- operator log (last 50 lines)"
    kubectl -n "$ns" logs deployment/"$release"-operator --tail=50 || true
}

cleanup() {
    local status=$?
    [ "$status" -eq 0 ] || diagnose
    if [ -n "${E2E_KEEP:-}" ]; then
        log "E2E_KEEP is set: leaving namespace $ns and release $release in place"
    else
        log "cleaning up"
        # The GitalyCluster goes first, while the operator can still run its
        # finalizer; then the release and the namespace (with the PVCs).
        kubectl -n "$ns" delete gitalycluster "$cluster" --ignore-not-found --timeout=5m || true
        "$helm" uninstall "$release" --namespace "$ns" --wait --timeout 5m >/dev/null 2>&1 || true
        kubectl delete namespace "$ns" --ignore-not-found --timeout=5m || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. Images.
if [ -z "${E2E_SKIP_IMAGES:-}" ]; then
    command -v docker >/dev/null 2>&1 || { log "docker is needed to build the images (or set E2E_SKIP_IMAGES=1)"; exit 1; }
    for target in node router operator; do
        log "docker build --target $target"
        docker build --quiet --target "$target" -t "$prefix/cairn-$target:$version" . >/dev/null
    done
    case "$context" in
    kind-*)
        kind load docker-image "$node_image" "$router_image" "$operator_image" --name "${context#kind-}"
        ;;
    k3d-*)
        k3d image import "$node_image" "$router_image" "$operator_image" --cluster "${context#k3d-}"
        ;;
    *)
        log "context $context is neither kind-* nor k3d-*: push the images to a registry the cluster" \
            "pulls from and run with E2E_SKIP_IMAGES=1 E2E_IMAGE_PREFIX=<registry/path>"
        exit 1
        ;;
    esac
fi

# 2. The operator.
log "helm install $release (CRD, operator, RBAC)"
"$helm" upgrade --install "$release" charts/cairn --namespace "$ns" --create-namespace \
    --set image.repository="$prefix/cairn-operator" --set image.tag="$version" \
    --set logLevel="info,cairn_operator=debug" --wait --timeout 5m

# 3. The cluster.
log "kubectl apply examples/cluster.yaml; waiting up to $ready_timeout for condition Ready"
kubectl apply -f "$work/cluster.yaml"
kubectl -n "$ns" wait --for=condition=Ready gitalycluster/"$cluster" --timeout="$ready_timeout"
kubectl -n "$ns" get gitalycluster "$cluster"

# 4. The client Jobs.
kubectl -n "$ns" create configmap e2e-client --from-file=client.sh=e2e/client.sh \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null

# run_client MODE: runs client.sh MODE in a Job and waits for it to finish.
run_client() {
    local mode="$1" job="e2e-$1" deadline
    kubectl -n "$ns" delete job "$job" --ignore-not-found >/dev/null
    kubectl apply -f - >/dev/null <<YAML
apiVersion: batch/v1
kind: Job
metadata:
  name: $job
  namespace: $ns
spec:
  backoffLimit: 0
  activeDeadlineSeconds: $((failover_seconds + 300))
  template:
    spec:
      restartPolicy: Never
      securityContext:
        runAsNonRoot: true
        runAsUser: 1000
        runAsGroup: 1000
      containers:
        - name: client
          image: $node_image
          imagePullPolicy: IfNotPresent
          command: ["/bin/sh", "/e2e/client.sh", "$mode"]
          env:
            - {name: VIRTUAL_STORAGE, value: "$storage"}
            - {name: REPOSITORY, value: "$repository"}
            - {name: RETRY_SECONDS, value: "$failover_seconds"}
            - name: GITALY_ADDRESS
              valueFrom: {secretKeyRef: {name: $cluster-gitlab, key: address}}
            - name: GITALY_TOKEN
              valueFrom: {secretKeyRef: {name: $cluster-gitlab, key: token}}
          volumeMounts:
            - {name: client, mountPath: /e2e}
            - {name: gitlab, mountPath: /etc/cairn-gitlab}
      volumes:
        - {name: client, configMap: {name: e2e-client}}
        - {name: gitlab, secret: {secretName: $cluster-gitlab}}
YAML
    deadline=$((SECONDS + failover_seconds + 360))
    while :; do
        if [ "$(kubectl -n "$ns" get job "$job" -o jsonpath='{.status.succeeded}')" = 1 ]; then
            kubectl -n "$ns" logs job/"$job"
            return 0
        fi
        if [ -n "$(kubectl -n "$ns" get job "$job" -o jsonpath='{.status.failed}')" ] || [ "$SECONDS" -ge "$deadline" ]; then
            log "job $job failed or timed out; its log:"
            kubectl -n "$ns" logs job/"$job" || true
            return 1
        fi
        sleep 3
    done
}

log "client: create $storage:$repository, push, clone"
run_client create

# 5. Failover: find the repository's primary through the router's metadata
# (storage names are pod names) and delete its pod.
router_pod="$(kubectl -n "$ns" get pods -l "app.kubernetes.io/instance=$cluster,app.kubernetes.io/component=router" \
    --field-selector=status.phase=Running -o jsonpath='{.items[0].metadata.name}')"
primary() {
    kubectl -n "$ns" exec "$router_pod" -- praefect -config /etc/praefect/config.toml metadata \
        -virtual-storage "$storage" -relative-path "$repository" | sed -n 's/^Primary: "\(.*\)"$/\1/p'
}
old_primary="$(primary)"
[ -n "$old_primary" ] || { log "the router reports no primary for $storage:$repository"; exit 1; }
log "primary of $repository is $old_primary; deleting its pod"
kubectl -n "$ns" delete pod "$old_primary" --wait=false
deleted_at=$SECONDS
log "client: push after the primary's deletion (within ${failover_seconds}s)"
run_client push
log "push succeeded $((SECONDS - deleted_at))s after deleting $old_primary; primary now $(primary || echo unknown)"

# 6. The cluster recovers: the deleted pod comes back and Ready holds.
kubectl -n "$ns" wait --for=condition=Ready gitalycluster/"$cluster" --timeout="$ready_timeout"
log "ok"
