#!/usr/bin/env bash
# Builds the real test ground's binaries from pinned Go modules, once per version:
#   kube-apiserver, kube-controller-manager  (k8s.io/kubernetes, tools/controlplane/go.mod)
#   etcd                                     (go.etcd.io/etcd/server/v3, tools/etcd/go.mod)
#   helm                                     (helm.sh/helm/v4, tools/helm/go.mod)
# into .cache/controlplane/<kubernetes version>/bin/. A binary already built from the same module
# version and Go version is skipped. Without Go it says so and exits 0: callers decide whether
# that is fatal (tests/realplane skips with the reason).
#
# Usage: tools/controlplane/build.sh [--print-bin-dir]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/tools"

# The version a go.mod requires for a module path, read from the file (no network).
required_version() { # go.mod module
    awk -v m="$2" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$1"
}

K8S_VERSION="$(required_version "$TOOLS/controlplane/go.mod" k8s.io/kubernetes)"
ETCD_VERSION="$(required_version "$TOOLS/etcd/go.mod" go.etcd.io/etcd/server/v3)"
HELM_VERSION="$(required_version "$TOOLS/helm/go.mod" helm.sh/helm/v4)"
BIN="$ROOT/.cache/controlplane/$K8S_VERSION/bin"

if [[ "${1:-}" == "--print-bin-dir" ]]; then
    echo "$BIN"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    echo "controlplane: Go is not installed, so kube-apiserver, kube-controller-manager, etcd and"
    echo "controlplane: helm cannot be built; the real-ground tests will be skipped."
    echo "controlplane: install Go 1.26 and run 'make controlplane' to build them into $BIN"
    exit 0
fi

GO_VERSION="$(go env GOVERSION)"
mkdir -p "$BIN"
# What a cold build of each binary took on this project's 2-core machines, in this order (README,
# "The real test ground"); said before a build so nobody thinks it hangs.
declare -A COLD=([kube-apiserver]="about 4–5 minutes" [kube-controller-manager]="about 1.5 minutes"
    [etcd]="under a minute" [helm]="about 2 minutes")

# kubectl and clients read the server's /version: stamp it as Kubernetes' own build does
# (hack/lib/version.sh), else it says v0.0.0-master.
k8s_version_ldflags() {
    local v="$K8S_VERSION" major minor flags="" pkg
    major="${v#v}"
    major="${major%%.*}"
    minor="${v#v*.}"
    minor="${minor%%.*}"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        flags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        flags+=" -X $pkg.gitTreeState=archive"
    done
    echo "$flags"
}

# build NAME MODULE_DIR PACKAGE VERSION [EXTRA_LDFLAGS]
build() {
    local name="$1" dir="$2" pkg="$3" version="$4" extra="${5:-}"
    local out="$BIN/$name" stamp="$BIN/.$name.built"
    local ldflags="-s -w$extra"
    local want="$pkg@$version $GO_VERSION $ldflags"
    if [[ -x "$out" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        echo "controlplane: $name $version already built ($out)"
        return
    fi
    echo "controlplane: building $name $version with $GO_VERSION (a cold build takes ${COLD[$name]} on 2 cores; warm Go caches make it faster)…"
    local start end
    start=$(date +%s)
    (cd "$dir" && GOFLAGS="${GOFLAGS:-} -mod=readonly" \
        go build -trimpath -ldflags="$ldflags" -o "$out.tmp" "$pkg")
    mv "$out.tmp" "$out"
    end=$(date +%s)
    echo "$want" >"$stamp"
    echo "controlplane: built $name in $((end - start)) s"
    echo "$name $version $GO_VERSION $((end - start))s $(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$BIN/../build-times.txt"
}

K8S_LDFLAGS="$(k8s_version_ldflags)"
build kube-apiserver "$TOOLS/controlplane" k8s.io/kubernetes/cmd/kube-apiserver "$K8S_VERSION" "$K8S_LDFLAGS"
build kube-controller-manager "$TOOLS/controlplane" k8s.io/kubernetes/cmd/kube-controller-manager "$K8S_VERSION" "$K8S_LDFLAGS"
build etcd "$TOOLS/etcd" koos.local/tools/etcd "$ETCD_VERSION"
build helm "$TOOLS/helm" helm.sh/helm/v4/cmd/helm "$HELM_VERSION" \
    " -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
echo "controlplane: binaries in $BIN"
