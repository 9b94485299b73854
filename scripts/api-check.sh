#!/usr/bin/env bash
# shellcheck disable=SC2317 # cleanup is invoked through trap
# Checks of the REST/JSON API description against a running suite (what `make api-check` calls):
#
#   1. tools: schemathesis and openapi-spec-validator from PyPI into the venv that
#      scripts/k8s-check.sh uses (~/.cache/crm-tools/venv; installed once, again when
#      the pins below change), Chromium from Debian's packages (apt-get, when missing);
#   2. build: `cargo build --workspace --bins` (CRM_API_CHECK_BUILD=0 skips it);
#   3. suite: the services and the gateway of services/suite.tsv (profiles, tickets,
#      gateway) through scripts/run.sh on fresh databases of the dev Postgres (started
#      if needed, stopped again if this script started it), on their own ports, with a
#      dev admin token;
#   4. spec: /openapi.json is a valid OpenAPI 3.1 document (openapi-spec-validator);
#   5. docs: headless Chromium loads /docs and Redoc lists every operation;
#   6. fuzz: schemathesis runs every operation with the admin token, with positive
#      then negative data, checking not_a_server_error, status_code_conformance and
#      response_schema_conformance, $CRM_API_CHECK_EXAMPLES examples per operation
#      and mode (default 25); reports (JUnit, HAR) go to target/api-check/.
#   Then it stops the suite and drops the databases.
#
# Environment:
#   CRM_API_CHECK_EXAMPLES   examples per operation for schemathesis (default 25)
#   CRM_API_CHECK_MODES      schemathesis data modes, in order (default "positive negative")
#   CRM_API_CHECK_ARGS       more schemathesis arguments, e.g.
#                            "--exclude-operation-id ArticleService_CreateArticle"
#   CRM_API_CHECK_BUILD      0: do not build first
#   CRM_API_CHECK_PORTS      base port: the Nth line of services/suite.tsv listens on
#                            base + N - 1 (profiles +0, tickets +1, gateway +2; default 28051,
#                            below Linux's ephemeral range 32768-60999, so that no outgoing
#                            connection of the test run can hold one of these ports)
#   CRM_TOOLS_DIR            tools cache (default ~/.cache/crm-tools)
#   CARGO_TARGET_DIR         where the binaries are built (default ./target)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
TOOLS_DIR="${CRM_TOOLS_DIR:-$HOME/.cache/crm-tools}"
VENV="$TOOLS_DIR/venv"
EXAMPLES="${CRM_API_CHECK_EXAMPLES:-25}"
BASE_PORT="${CRM_API_CHECK_PORTS:-28051}"
# Pinned so that a new schemathesis check cannot turn the run red by itself; bump
# deliberately. packaging stays below 24 for checkov, which shares the venv.
PIP_PINS=(
    "schemathesis==4.32.5"
    "openapi-spec-validator==0.9.0"
    "packaging==23.2"
)

say() { printf 'api-check: %s\n' "$*"; }
die() { printf 'api-check: error: %s\n' "$*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }

# The services, their ports and databases: services/suite.tsv.
# shellcheck source-path=SCRIPTDIR source=suite.sh
source "$ROOT/scripts/suite.sh"
suite_load || die "cannot read the services from services/suite.tsv (see above)"

START=$SECONDS
RUN_PID=""
STARTED_DB=0
DATABASES=() # "owner URL|database" pairs: a database is dropped by its owner
WORK="$(mktemp -d)"

cleanup() {
    local rc=$?
    if [[ -n $RUN_PID ]] && kill -0 "$RUN_PID" 2>/dev/null; then
        say "stopping the suite"
        kill -TERM "$RUN_PID" 2>/dev/null || true
        wait "$RUN_PID" 2>/dev/null || true
    fi
    local entry
    for entry in "${DATABASES[@]}"; do
        psql -q "${entry%|*}" -c "DROP DATABASE IF EXISTS \"${entry##*|}\" WITH (FORCE)" >/dev/null 2>&1 ||
            say "could not drop database ${entry##*|}"
    done
    if ((STARTED_DB)); then
        "$ROOT/scripts/dev-db.sh" down >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
    say "finished in $((SECONDS - START)) s (exit $rc)"
}
trap cleanup EXIT

# --- 1. tools ------------------------------------------------------------------
command -v python3 >/dev/null || die "python3 not found"
command -v psql >/dev/null || die "psql not found (Debian package postgresql-client)"
stamp="$VENV/.crm-api-pins"
if [[ ! -x $VENV/bin/python || ! -f $stamp || $(cat "$stamp") != "${PIP_PINS[*]}" ]]; then
    step "installing ${PIP_PINS[*]} into $VENV (once)"
    mkdir -p "$TOOLS_DIR"
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PIP_PINS[@]}"
    printf '%s' "${PIP_PINS[*]}" >"$stamp"
fi
if ! command -v chromium >/dev/null && [[ -z ${CHROMIUM:-} ]]; then
    step "installing Chromium (Debian package chromium)"
    SUDO=()
    ((EUID == 0)) || SUDO=(sudo)
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq chromium >/dev/null
fi

# --- 2. build ------------------------------------------------------------------
if [[ ${CRM_API_CHECK_BUILD:-1} != 0 ]]; then
    step "cargo build --workspace --bins"
    cargo build --workspace --bins
fi

# --- 3. suite ------------------------------------------------------------------
step "starting ${SUITE_NAMES[*]} on fresh databases"
if ! scripts/dev-db.sh status >/dev/null 2>&1; then
    STARTED_DB=1
fi
scripts/dev-db.sh up >/dev/null
# shellcheck source=/dev/null
source .data/env
unset CRM_DEV_CLUSTER
repoint() { printf '%s/%s' "${1%/*}" "$2"; } # postgres://u@h:p/db → …/$2
suffix="$(date +%s)_$$"
for svc in $(suite_databases); do
    up="${svc^^}"
    mig_var="${up}_MIGRATION_DATABASE_URL" app_var="${up}_DATABASE_URL"
    db="apicheck_${svc}_$suffix"
    psql -q "${!mig_var}" -c "CREATE DATABASE \"$db\"" >/dev/null
    DATABASES+=("${!mig_var}|$db")
    export "$mig_var=$(repoint "${!mig_var}" "$db")" "$app_var=$(repoint "${!app_var}" "$db")"
done
# Own ports, in the registry's order; run.sh reads <NAME>_LISTEN_ADDR.
GATEWAY=""
for i in "${!SUITE_NAMES[@]}"; do
    svc="${SUITE_NAMES[$i]}"
    export "${svc^^}_LISTEN_ADDR=127.0.0.1:$((BASE_PORT + i))"
    # The (first) gateway is the one checked.
    if [[ -z $GATEWAY && ${SUITE_KIND[$svc]} == gateway ]]; then
        GATEWAY="http://127.0.0.1:$((BASE_PORT + i))"
    fi
done
[[ -n $GATEWAY ]] || die "services/suite.tsv lists no gateway"
export CRM_LOG_FORMAT=json
# The fuzzer is one caller sending hundreds of requests: rate limits would answer most with 429.
export CRM_RATE_LIMIT_PER_SUBJECT="read=100000/100000,write=100000/100000,search=100000/100000"
export CRM_RATE_LIMIT_PER_TENANT="$CRM_RATE_LIMIT_PER_SUBJECT"
RUN_LOG="$WORK/run.log"
scripts/run.sh >"$RUN_LOG" 2>&1 &
RUN_PID=$!
for _ in $(seq 1 600); do
    grep -q 'CRM suite is up' "$RUN_LOG" && break
    kill -0 "$RUN_PID" 2>/dev/null || { tail -n 40 "$RUN_LOG" >&2; die "the suite did not start"; }
    sleep 0.1
done
grep -q 'CRM suite is up' "$RUN_LOG" || { tail -n 40 "$RUN_LOG" >&2; die "the suite did not start within 60 s"; }
TOKEN="$(sed -n 's/^ export TOKEN=//p' "$RUN_LOG")"
[[ -n $TOKEN ]] || die "no dev token in the run.sh output"
say "suite up at $GATEWAY ($((SECONDS - START)) s)"

# --- 4. spec -------------------------------------------------------------------
step "validating $GATEWAY/openapi.json"
"$VENV/bin/python" scripts/api_check.py spec "$GATEWAY"

# --- 5. docs -------------------------------------------------------------------
step "rendering $GATEWAY/docs in headless Chromium"
"$VENV/bin/python" scripts/api_check.py docs "$GATEWAY"

# --- 6. fuzz -------------------------------------------------------------------
# Positive data gets past the gateway to the services (and their databases);
# negative data checks that every rejection is a documented error, not a 500.
failed=()
# schemathesis keeps a cache of the failures it found (replayed first next time) in
# the working directory: keep it with the reports, out of the source tree.
mkdir -p "$ROOT/target/api-check"
cd "$ROOT/target/api-check"
for mode in ${CRM_API_CHECK_MODES:-positive negative}; do
    step "schemathesis ($mode data): $EXAMPLES examples per operation"
    fuzz_start=$SECONDS
    report="$ROOT/target/api-check/$mode"
    mkdir -p "$report"
    run_schemathesis() {
        # shellcheck disable=SC2086 # CRM_API_CHECK_ARGS is a list of extra arguments
        "$VENV/bin/st" run "$GATEWAY/openapi.json" \
            --header "Authorization: Bearer $TOKEN" \
            --checks not_a_server_error,status_code_conformance,response_schema_conformance \
            --phases examples,coverage,fuzzing \
            --mode "$mode" \
            --max-examples "$EXAMPLES" \
            --workers 2 \
            --request-timeout 15 \
            --seed 1 \
            --suppress-health-check all \
            --warnings off \
            --report junit,har --report-dir "$report" --report-har-path "$report/requests.har" \
            --no-color ${CRM_API_CHECK_ARGS:-} 2>&1 | tee "$report/output.txt"
        return "${PIPESTATUS[0]}"
    }
    attempt=1
    until run_schemathesis; do
        # CPython 3.11's ast module is not thread-safe: hypothesis describing a
        # lambda in one worker while another parses can crash the tool with
        # "AST constructor recursion depth mismatch". That is no finding about
        # the API, and only that crash (with no failure found) is run again, once.
        if ((attempt == 1)) && grep -q "AST constructor recursion depth mismatch" "$report/output.txt" \
            && ! grep -q "= FAILURES =" "$report/output.txt"; then
            attempt=2
            say "schemathesis ($mode) crashed inside CPython's ast module (a tool bug, not an API finding); running it again"
            continue
        fi
        failed+=("$mode")
        say "schemathesis ($mode) found failures in $((SECONDS - fuzz_start)) s (reports: $report; service logs: .data/logs/); responses by status:"
        break
    done
    if [[ ! " ${failed[*]} " == *" $mode "* ]]; then
        say "schemathesis ($mode) passed in $((SECONDS - fuzz_start)) s; responses by status:"
    fi
    "$VENV/bin/python" "$ROOT/scripts/api_check.py" statuses "$report/requests.har" "$GATEWAY" "$mode"
done
((${#failed[@]} == 0)) || die "schemathesis failed with ${failed[*]} data"
