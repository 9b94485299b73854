#!/usr/bin/env bash
# shellcheck disable=SC2317 # cleanup/on_signal are invoked through trap
# Runs the CRM suite locally (what `make run` calls, after `cargo build --workspace --bins`):
# starts the dev Postgres (unless PROFILES_DATABASE_URL is given), the services and the gateway
# listed in services/suite.tsv, mints a dev admin token and prints copy-paste examples.
# Ctrl-C stops everything.
#
# Environment (all optional):
#   PROFILES_DATABASE_URL, PROFILES_MIGRATION_DATABASE_URL   use this database instead of the dev cluster
#                          (then TICKETS_DATABASE_URL etc.: <NAME>_DATABASE_URL for each service
#                          with a database in services/suite.tsv)
#   <NAME>_LISTEN_ADDR     default 127.0.0.1:<port in services/suite.tsv>: PROFILES_LISTEN_ADDR
#                          (50051), TICKETS_LISTEN_ADDR (50052), GATEWAY_LISTEN_ADDR (8080, REST/JSON)
#   CRM_JWT_SECRET         default: .data/dev-jwt-secret (generated once)
#   CRM_DEV_TENANT         tenant of the dev token (default 0190a4c2-0000-7000-8000-000000000001)
#   CRM_LOG_FORMAT         default pretty
#   CARGO_TARGET_DIR       where the binaries were built (default ./target)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
DATA="$ROOT/.data"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ $TARGET_DIR == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
BIN="$TARGET_DIR/debug"

say() { printf 'run: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Which processes run, on which ports, with which databases, backends and
# peers: services/suite.tsv, one line each, started in its order. Read first,
# so that a malformed line fails before anything starts.
# shellcheck source-path=SCRIPTDIR source=suite.sh
source "$ROOT/scripts/suite.sh"
suite_load || die "cannot start the suite from services/suite.tsv (see above)"

PIDS=()      # service PIDs (the service processes themselves, not their log filters)
NAMES=()     # service names, parallel to PIDS
ADDRS=()     # listen addresses, parallel to PIDS
STARTED_DB=0 # 1 when this script started the dev cluster and must stop it
CLEANED=0

stop_services() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}

cleanup() {
    ((CLEANED)) && return 0
    CLEANED=1
    if ((${#PIDS[@]})); then
        say "stopping services"
        stop_services
    fi
    if ((STARTED_DB)); then
        "$ROOT/scripts/dev-db.sh" down >&2 || true
    fi
}

on_signal() {
    trap - INT TERM
    echo >&2
    cleanup
    exit 0
}

trap cleanup EXIT
trap on_signal INT TERM

# --- database ------------------------------------------------------------
# A PROFILES_DATABASE_URL that was sourced from .data/env (CRM_DEV_CLUSTER=1)
# means the dev cluster, not a user-supplied database.
if [[ -n ${PROFILES_DATABASE_URL:-} && ${CRM_DEV_CLUSTER:-} != 1 ]]; then
    # Migrations run only when PROFILES_MIGRATION_DATABASE_URL is given too.
    say "using the given PROFILES_DATABASE_URL${PROFILES_MIGRATION_DATABASE_URL:+ (migrations: PROFILES_MIGRATION_DATABASE_URL)}"
else
    unset PROFILES_DATABASE_URL PROFILES_MIGRATION_DATABASE_URL DATABASE_URL
    if ! "$ROOT/scripts/dev-db.sh" status >/dev/null 2>&1; then
        STARTED_DB=1
    fi
    "$ROOT/scripts/dev-db.sh" up
    # shellcheck source=/dev/null
    source "$DATA/env"
fi

# --- auth ------------------------------------------------------------------
if [[ -z ${CRM_JWT_SECRET:-} ]]; then
    mkdir -p "$DATA"
    secret_file="$DATA/dev-jwt-secret"
    if [[ ! -s $secret_file ]]; then
        (
            umask 077
            openssl rand -hex 32 2>/dev/null >"$secret_file" ||
                head -c32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$secret_file"
        )
    fi
    chmod 600 "$secret_file"
    CRM_JWT_SECRET="$(tr -d '\n' <"$secret_file")"
    export CRM_JWT_SECRET
fi
export CRM_DEV_TENANT="${CRM_DEV_TENANT:-0190a4c2-0000-7000-8000-000000000001}"

[[ -x $BIN/crm-dev-token ]] || die "$BIN/crm-dev-token not found: run 'make build' (or 'make run')"
TOKEN="$("$BIN/crm-dev-token" --tenant "$CRM_DEV_TENANT" --roles admin --subject dev-admin --ttl-hours 24)" ||
    die "crm-dev-token failed"

# --- services --------------------------------------------------------------
LOG_DIR="$DATA/logs"
mkdir -p "$LOG_DIR"

# Listen address of each: NAME_LISTEN_ADDR (NAME upper-cased), else
# 127.0.0.1:<its port in services/suite.tsv>.
declare -A ADDR_OF=()
for name in "${SUITE_NAMES[@]}"; do
    addr_var="${name^^}_LISTEN_ADDR"
    ADDR_OF[$name]="${!addr_var:-127.0.0.1:${SUITE_PORT[$name]}}"
done

# start_process NAME
#   Runs $BIN/crm-NAME on ADDR_OF[NAME] with CRM_LOG_FORMAT and, as its line in
#   services/suite.tsv says:
#   - a database: CRM_DATABASE_URL and CRM_MIGRATION_DATABASE_URL taken from
#     NAME_DATABASE_URL and NAME_MIGRATION_DATABASE_URL;
#   - needs: CRM_<NEED>_URL=http://<address of NEED> for each;
#   - a gateway: CRM_BACKENDS, a package=http://address pair for each proto
#     package of each service.
#   Output goes to the terminal prefixed with [NAME] and to .data/logs/NAME.log.
start_process() {
    local name=$1
    local up="${name^^}" addr="${ADDR_OF[$1]}"
    local url_var="${up}_DATABASE_URL" mig_var="${up}_MIGRATION_DATABASE_URL" addr_var="${up}_LISTEN_ADDR"
    local bin="$BIN/crm-$name" log="$LOG_DIR/$name.log" need svc pkg backends=""
    [[ -x $bin ]] || die "$bin not found: run 'make build'"
    local -a envs=(
        CRM_LISTEN_ADDR="$addr"
        CRM_LOG_FORMAT="${CRM_LOG_FORMAT:-pretty}"
        # Locally, providers (the SMTP server above) live on loopback; never in production.
        CRM_OUTBOUND_ALLOW_PRIVATE=true
    )
    # Campaigns' unsubscribe links and provider callback URLs point at the local gateway.
    if [[ $name == campaigns ]]; then
        envs+=(CRM_PUBLIC_URL="http://${ADDR_OF[gateway]:-127.0.0.1:8080}")
    fi
    if [[ -n ${SUITE_DB[$name]} ]]; then
        [[ -n ${!url_var:-} ]] || die "$url_var is not set"
        envs+=(CRM_DATABASE_URL="${!url_var}")
        [[ -n ${!mig_var:-} ]] && envs+=(CRM_MIGRATION_DATABASE_URL="${!mig_var}")
    fi
    for need in ${SUITE_NEEDS[$name]}; do
        envs+=("CRM_${need^^}_URL=http://${ADDR_OF[$need]}")
    done
    if [[ ${SUITE_KIND[$name]} == gateway ]]; then
        for svc in "${SUITE_NAMES[@]}"; do
            for pkg in ${SUITE_PROTOS[$svc]}; do
                backends+="${backends:+,}$pkg=http://${ADDR_OF[$svc]}"
            done
        done
        envs+=(CRM_BACKENDS="$backends")
    fi
    if port_open "$addr"; then
        die "$addr is already in use (another 'make run'?); set $addr_var to move $name"
    fi
    : >"$log"
    # $! is the process itself: the prefixing filter runs in a process
    # substitution and ignores INT/TERM so that it drains the process's
    # last log lines after Ctrl-C.
    env -u CRM_DATABASE_URL -u CRM_MIGRATION_DATABASE_URL "${envs[@]}" "$bin" > >(
            trap '' INT TERM
            tee -a "$log" | sed -u "s/^/[$name] /"
        ) 2>&1 &
    PIDS+=("$!")
    NAMES+=("$name")
    ADDRS+=("$addr")
    say "started crm-$name (pid $!) on $addr"
}

# port_open HOST:PORT -> 0 when something accepts TCP there.
port_open() {
    local host="${1%:*}" port="${1##*:}"
    host="${host#[}"
    host="${host%]}"
    case "$host" in "" | 0.0.0.0) host=127.0.0.1 ;; "::") host=::1 ;; esac
    (: <>"/dev/tcp/$host/$port") 2>/dev/null
}

# wait_ready INDEX: waits up to 60 s for the process's port; fails if it dies.
wait_ready() {
    local i=$1 pid="${PIDS[$1]}" name="${NAMES[$1]}" addr="${ADDRS[$1]}" t rc
    for ((t = 0; t < 600; t++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rc=0
            wait "$pid" || rc=$?
            unset 'PIDS[i]'
            sleep 0.2 # let the log filter flush
            say "crm-$name exited (status $rc) before accepting connections; last log lines:"
            tail -n 40 "$LOG_DIR/$name.log" >&2 || true
            exit 1
        fi
        port_open "$addr" && return 0
        sleep 0.1
    done
    say "crm-$name did not accept connections on $addr within 60 s; last log lines:"
    tail -n 40 "$LOG_DIR/$name.log" >&2 || true
    exit 1
}

# A local SMTP server for campaigns' email: every message it accepts is a line
# of .data/smtp-sink.jsonl (scripts/smtp_sink.py; aiosmtpd from the tools' venv).
# shellcheck source-path=SCRIPTDIR source=py-tools.sh
source "$ROOT/scripts/py-tools.sh"
SMTP_PORT="${CRM_SMTP_SINK_PORT:-2525}"
SMTP_OUT="$DATA/smtp-sink.jsonl"
if port_open "127.0.0.1:$SMTP_PORT"; then
    die "127.0.0.1:$SMTP_PORT is already in use; set CRM_SMTP_SINK_PORT to move the local SMTP server"
fi
"$(crm_tools_python)" "$ROOT/scripts/smtp_sink.py" --port "$SMTP_PORT" --out "$SMTP_OUT" &
PIDS+=("$!")
NAMES+=("smtp-sink")
ADDRS+=("127.0.0.1:$SMTP_PORT")
say "started the local SMTP server (pid $!) on 127.0.0.1:$SMTP_PORT; messages: $SMTP_OUT"

# The services start together (a service reaches the ones it needs when it
# calls them, not at start); the gateway, which has no database and only
# needs the backends' addresses and the JWT settings, once they accept
# connections.
for name in $(suite_names service); do
    start_process "$name"
done
for i in "${!PIDS[@]}"; do
    wait_ready "$i"
done
for name in $(suite_names gateway); do
    start_process "$name"
    wait_ready $((${#PIDS[@]} - 1))
done

# The examples below call profiles, tickets and the (first) gateway.
P="${ADDR_OF[profiles]:-}"
T="${ADDR_OF[tickets]:-}"
C="${ADDR_OF[campaigns]:-}"
G=""
for name in $(suite_names gateway); do
    G="${ADDR_OF[$name]}"
    break
done
cat <<EOF

================================================================================
 CRM suite is up (Ctrl-C to stop)
$(for i in "${!NAMES[@]}"; do case "${SUITE_KIND[${NAMES[$i]}]:-smtp}" in gateway) scheme=http ;; service) scheme=grpc ;; *) scheme=smtp ;; esac; printf '   %-10s %s://%s\n' "${NAMES[$i]}" "$scheme" "${ADDRS[$i]}"; done)
   tenant     $CRM_DEV_TENANT (dev token: roles=admin, subject=dev-admin, 24 h)

 export TOKEN=$TOKEN

 # create a customer
 buf curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer \$TOKEN" -d '{"customer":{"displayName":"Ada Lovelace","emails":[{"address":"ada@example.com"}]}}' http://$P/crm.profiles.v1.CustomerService/CreateCustomer

 # list customers
 grpcurl -plaintext -H "authorization: Bearer \$TOKEN" -d '{"page_size":10}' $P crm.profiles.v1.CustomerService/ListCustomers

 # open a ticket for that customer (use the name CreateCustomer returned)
 buf curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer \$TOKEN" -d '{"ticket":{"customer":"customers/<id>","subject":"Printer on fire","type":"TICKET_TYPE_PROBLEM","channel":"CHANNEL_HOTLINE"}}' http://$T/crm.tickets.v1.TicketService/CreateTicket

 # send that customer an email notice: the tenant's email provider (the local
 # SMTP server), a template with a locked amount, then the notice
 buf curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer \$TOKEN" -d '{"provider":{"displayName":"Local relay","channel":"CHANNEL_EMAIL","smtp":{"host":"127.0.0.1","port":$SMTP_PORT,"security":"SMTP_SECURITY_NONE","fromAddress":"notices@crm.example"}}}' http://$C/crm.campaigns.v1.ProviderService/CreateProvider
 buf curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer \$TOKEN" -d '{"template":{"displayName":"Fee notice","channel":"CHANNEL_EMAIL","purpose":"PURPOSE_TRANSACTIONAL","defaultLocale":"en","lockedVariables":["amount"],"contents":[{"locale":"en","subject":"Your fee notice","body":"Dear {{ customer.display_name }}, your fee of {{ vars.amount }} is due."}]}}' http://$C/crm.campaigns.v1.TemplateService/CreateTemplate
 buf curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer \$TOKEN" -d '{"template":"templates/<id>","customer":"customers/<id>","variables":{"amount":"¥328.00"},"requestId":"fee-2026-11-ada"}' http://$C/crm.campaigns.v1.DeliveryService/SendNotice
 tail -n1 $SMTP_OUT   # what the SMTP server received

 # send a test campaign: customers tagged "news" who opted in to email, a
 # marketing template (its unsubscribe link points at the gateway), start, watch the counts
 curl -s -H "authorization: Bearer \$TOKEN" -H 'content-type: application/json' -d '{"displayName":"Grace Hopper","emails":[{"address":"grace@example.com","primary":true}],"tags":["news"],"consent":{"email":{"state":"CONSENT_STATE_OPTED_IN"}}}' http://$G/v1/customers
 curl -s -H "authorization: Bearer \$TOKEN" -H 'content-type: application/json' -d '{"displayName":"News","channel":"CHANNEL_EMAIL","purpose":"PURPOSE_MARKETING","defaultLocale":"en","contents":[{"locale":"en","subject":"News for {{ customer.display_name }}","body":"Hello! Leave this list: {{ links.unsubscribe }}"}]}' http://$G/v1/templates
 curl -s -H "authorization: Bearer \$TOKEN" -H 'content-type: application/json' -d '{"displayName":"November news","template":"templates/<id>","audience":{"filter":"tags:\\"news\\""}}' http://$G/v1/campaigns
 curl -s -H "authorization: Bearer \$TOKEN" http://$G/v1/campaigns/<id>:estimateReach
 curl -s -H "authorization: Bearer \$TOKEN" -H 'content-type: application/json' -d '{}' http://$G/v1/campaigns/<id>:start
 curl -s -H "authorization: Bearer \$TOKEN" http://$G/v1/campaigns/<id>    # state and counts; the mail is in $SMTP_OUT

 # the same over REST/JSON through the gateway
 curl -s -H "authorization: Bearer \$TOKEN" -H 'content-type: application/json' -d '{"displayName":"Ada Lovelace","emails":[{"address":"ada@example.com"}]}' http://$G/v1/customers
 curl -s -H "authorization: Bearer \$TOKEN" 'http://$G/v1/customers?pageSize=10&filter=display_name:ada'
 curl -s http://$G/readyz

 # health
 grpcurl -plaintext $P grpc.health.v1.Health/Check
 buf curl --protocol grpc --http2-prior-knowledge http://$P/grpc.health.v1.Health/Check
================================================================================

EOF

# Run until Ctrl-C/TERM (handled by on_signal) or until a service exits by itself.
# Ctrl-C reaches the services too (they install their own SIGINT handler), so
# a service that exits with status 0 was asked to stop: stop the rest quietly.
rc=0
wait -n "${PIDS[@]}" || rc=$?
if ((rc == 0)); then
    cleanup
    exit 0
fi
for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
        say "crm-${NAMES[$i]} exited unexpectedly (status $rc); stopping the suite"
        unset 'PIDS[i]'
    fi
done
exit 1
