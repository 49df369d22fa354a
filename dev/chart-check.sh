#!/usr/bin/env bash
# Checks the Helm chart charts/cairn offline: helm lint, helm template with
# default values, with the namespaced/HA options, and with each
# examples/*.yaml GitalyCluster created through cluster.spec; every rendered
# Kubernetes object is validated against the Kubernetes $KUBE_VERSION schemas
# (kubernetes-validate --strict), and every GitalyCluster against the CRD's
# openAPIV3Schema (check-jsonschema). Also checks that the chart's CRD is the
# same file as crds/ and that README.md documents every value, and lints the
# Dockerfile with hadolint.
#
#   dev/chart-check.sh
#
# Pinned helm and Python tools are fetched once into target/tools (see
# dev/lib/tools.sh); later runs take seconds. dev/test.sh runs this.
set -euo pipefail
cd "$(dirname "$0")/.."
source dev/lib/tools.sh

KUBE_VERSION="${KUBE_VERSION:-1.33.0}"
chart=charts/cairn
crd_name=gitalyclusters.cairn.dev.yaml
namespace=cairn-system

helm="$(tools_helm)"
venv="$(tools_chart_venv)"
py="$venv/bin/python3"
echo "chart-check: $("$helm" version --short) (npm $HELM_NPM_PACKAGE@$HELM_NPM_VERSION)," \
    "kubernetes-validate $("$venv/bin/kubernetes-validate" --version | awk '{print $NF}')" \
    "for Kubernetes $KUBE_VERSION, check-jsonschema $("$venv/bin/check-jsonschema" --version | awk '{print $NF}')"

work="$(mktemp -d "${TMPDIR:-/tmp}/cairn-chart-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT

step() { echo "chart-check: $*"; }

# The chart carries a copy of the CRD (helm installs crds/ before templates).
if [ -f "crds/$crd_name" ]; then
    if ! cmp -s "crds/$crd_name" "$chart/crds/$crd_name"; then
        echo "$chart/crds/$crd_name differs from crds/$crd_name; refresh it with:" >&2
        echo "  cp crds/$crd_name $chart/crds/$crd_name" >&2
        exit 1
    fi
    step "$chart/crds/$crd_name is identical to crds/$crd_name"
else
    step "note: crds/$crd_name does not exist yet; using the chart's copy alone"
fi
"$py" dev/lib/chart_check.py crd-schema "$chart/crds/$crd_name" "$work/gitalycluster.schema.json"

step "readme: $chart/README.md"
"$py" dev/lib/chart_check.py readme-keys "$chart/values.yaml" "$chart/README.md"

# render NAME [helm template flags...]: lint and render with those values,
# then validate what came out.
render() {
    local name="$1"
    shift
    step "$name: helm lint --strict"
    "$helm" lint --strict --quiet --namespace "$namespace" "$chart" "$@" >"$work/lint.log" 2>&1 || {
        cat "$work/lint.log" >&2
        exit 1
    }
    step "$name: helm template"
    "$helm" template cairn "$chart" --namespace "$namespace" --include-crds "$@" >"$work/$name.yaml"
    "$py" dev/lib/chart_check.py split "$work/$name.yaml" "$work/$name"
    step "$name: kubernetes-validate --strict -k $KUBE_VERSION"
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$KUBE_VERSION" "$work/$name/builtin.yaml"
    local cluster
    for cluster in "$work/$name"/gitalycluster-*.yaml; do
        [ -e "$cluster" ] || continue
        step "$name: GitalyCluster against the CRD's openAPIV3Schema (check-jsonschema)"
        "$venv/bin/check-jsonschema" --schemafile "$work/gitalycluster.schema.json" "$cluster"
    done
}

render defaults
render namespaced --set watchNamespace=gitlab --set metrics.serviceMonitor.enabled=true

shopt -s nullglob
examples=(examples/*.yaml)
if [ "${#examples[@]}" -eq 0 ]; then
    step "note: no examples/*.yaml yet; no GitalyCluster rendered through the chart"
fi
for example in "${examples[@]}"; do
    name="example-$(basename "$example" .yaml)"
    "$py" dev/lib/chart_check.py example-values "$example" "$work/$name.values.yaml"
    render "$name" -f "$work/$name.values.yaml"
done

# The chart refuses settings that would break the cluster, with a message.
step "refused: replicaCount=2 (no leader election yet)"
if "$helm" template cairn "$chart" --set replicaCount=2 >"$work/refused.log" 2>&1; then
    echo "helm template accepted replicaCount=2" >&2
    exit 1
fi
grep -q "needs leader election" "$work/refused.log"

step "hadolint Dockerfile"
"$venv/bin/hadolint" Dockerfile

step "ok"
