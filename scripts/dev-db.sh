#!/usr/bin/env bash
# Local development Postgres for the CRM suite.
#
#   scripts/dev-db.sh up       start (initialising on first use) the dev cluster,
#                              ensure each service's roles and database, write .data/env
#   scripts/dev-db.sh down     stop the cluster (no error when stopped or never initialised)
#   scripts/dev-db.sh status   print running/stopped (exit 0 when running, 3 otherwise)
#   scripts/dev-db.sh env      print .data/env
#   scripts/dev-db.sh clean    stop the cluster and delete .data (and its /var/tmp home)
#
# THIS IS A THROWAWAY DEVELOPMENT CLUSTER: it listens on 127.0.0.1 only and trusts
# every local connection without a password. Never use this setup for real data.
# fsync and synchronous_commit stay on all the same: durability is a product
# promise and tests must exercise the real commit path.
#
# Environment:
#   CRM_PG_PORT      TCP port of the cluster (default 55432)
#   CRM_SERVICES     services to provision (default: those with a database in
#                    services/suite.tsv: "profiles tickets campaigns")
#   DATABASE_URL / PROFILES_DATABASE_URL
#                    when given by the user, `up` does nothing: the callers use that
#                    database. (A PROFILES_DATABASE_URL that came from .data/env, i.e.
#                    with CRM_DEV_CLUSTER=1, does not count as user-supplied.)
#
# For each service <svc> it creates:
#   crm_<svc>_owner  LOGIN CREATEDB: owns the schema, runs migrations, creates test dbs
#   crm_<svc>        LOGIN, no superuser/createdb/createrole/bypassrls: the service's
#                    login role, so Row-Level Security applies to it
#   crm_<svc>        database owned by crm_<svc>_owner
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
DATA="$ROOT/.data"
ENV_FILE="$DATA/env"
PORT="${CRM_PG_PORT:-55432}"
# shellcheck source-path=SCRIPTDIR source=suite.sh
source "$ROOT/scripts/suite.sh"
# Where the cluster lives when the postgres user cannot reach the checkout
# (e.g. a checkout under /root, which is mode 700).
FALLBACK_HOME="/var/tmp/crm-dev-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"

log() { printf 'dev-db: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Sets SERVICES, the services to provision (only `up` needs them, so that
# down/status/clean work whatever services/suite.tsv says).
load_services() {
    local svc
    suite_load || die "cannot read the services from services/suite.tsv (see above)"
    if [[ -n ${CRM_SERVICES:-} ]]; then
        SERVICES="$CRM_SERVICES"
        return 0
    fi
    SERVICES=""
    for svc in $(suite_databases); do
        [[ " $SERVICES " == *" $svc "* ]] || SERVICES+="${SERVICES:+ }$svc"
    done
}

# db_name SERVICE: its database as services/suite.tsv says; crm_<service> for
# one that has no database there (a service named in CRM_SERVICES only).
db_name() { printf '%s' "${SUITE_DB[$1]:-crm_$1}"; }

IS_ROOT=0
[[ $(id -u) -eq 0 ]] && IS_ROOT=1

# Runs a command as the user that owns the cluster: postgres when we are root
# (Postgres refuses to run as root), ourselves otherwise. `cd /` avoids
# "could not change directory" noise when the cwd is unreadable for postgres.
as_pg() {
    if ((IS_ROOT)); then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

find_pgbin() {
    local d best=""
    # Newest major version wins (sort -V handles 9.6 < 10 < 15 < 16).
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V); do
        [[ -x $d/initdb && -x $d/pg_ctl ]] && best="$d"
    done
    printf '%s' "$best"
}

ensure_pgbin() {
    PGBIN="$(find_pgbin)"
    if [[ -z $PGBIN ]]; then
        ((IS_ROOT)) || die "no Postgres server found under /usr/lib/postgresql and not root: install the 'postgresql' package"
        log "no Postgres server binaries found; installing the 'postgresql' package"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
        PGBIN="$(find_pgbin)"
        [[ -n $PGBIN ]] || die "installed postgresql but found no /usr/lib/postgresql/*/bin/initdb"
    fi
}

# Sets CLUSTER (dir holding data/, run/, postgres.log) and PGDATA without
# creating anything.
locate_cluster() {
    if [[ -L $DATA/pg ]]; then
        CLUSTER="$(readlink "$DATA/pg")"
    else
        CLUSTER="$DATA/pg"
    fi
    PGDATA="$CLUSTER/data"
    SOCKDIR="$CLUSTER/run"
}

# Creates the cluster directory (and the /var/tmp fallback with a .data/pg
# symlink when postgres cannot reach the checkout).
prepare_cluster_dir() {
    mkdir -p "$DATA"
    chmod 755 "$DATA"
    if [[ ! -e $DATA/pg && ! -L $DATA/pg ]] && ((IS_ROOT)); then
        if ! (cd / && runuser -u postgres -- test -x "$DATA"); then
            log "user postgres cannot reach $DATA; keeping the cluster in $FALLBACK_HOME/pg"
            mkdir -p "$FALLBACK_HOME"
            chmod 755 "$FALLBACK_HOME"
            ln -s "$FALLBACK_HOME/pg" "$DATA/pg"
        fi
    fi
    locate_cluster
    mkdir -p "$CLUSTER"
    if ((IS_ROOT)); then
        chown postgres: "$CLUSTER"
    fi
    chmod 755 "$CLUSTER"
    as_pg mkdir -p "$SOCKDIR"
}

is_initialised() { [[ -n ${PGDATA:-} && -f $PGDATA/PG_VERSION ]]; }

is_running() {
    is_initialised || return 1
    [[ -n ${PGBIN:-} ]] || PGBIN="$(find_pgbin)"
    [[ -n $PGBIN ]] || return 1
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1
}

# Port of the running postmaster (4th line of postmaster.pid).
running_port() { sed -n 4p "$PGDATA/postmaster.pid" 2>/dev/null; }

user_db_given() {
    [[ -n ${DATABASE_URL:-} ]] && return 0
    [[ -n ${PROFILES_DATABASE_URL:-} && ${CRM_DEV_CLUSTER:-} != 1 ]]
}

init_cluster() {
    local locale=C.UTF-8
    if ! locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then
        log "locale C.UTF-8 not available; initialising with --locale=C"
        locale=C
    fi
    log "initialising dev cluster in $PGDATA ($("$PGBIN/postgres" --version))"
    # Dev only: trust auth on local sockets and TCP (listening on 127.0.0.1 only).
    as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth-local=trust --auth-host=trust \
        -E UTF8 --locale="$locale" >"$CLUSTER/initdb.log" 2>&1 || {
        cat "$CLUSTER/initdb.log" >&2
        die "initdb failed"
    }
    printf "\n# CRM dev settings (rewritten by scripts/dev-db.sh up)\ninclude_if_exists = 'crm-dev.conf'\n" |
        as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null
}

write_conf() {
    as_pg tee "$PGDATA/crm-dev.conf" >/dev/null <<EOF
# Written by scripts/dev-db.sh; throwaway development cluster.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCKDIR'
max_connections = 300
# Durability stays on, as in production.
fsync = on
synchronous_commit = on
EOF
}

port_in_use() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_cluster() {
    # A Unix socket path is limited to 107 bytes; fail early with a clear message.
    local sock="$SOCKDIR/.s.PGSQL.$PORT"
    ((${#sock} <= 107)) || die "socket path too long (${#sock} > 107 bytes): $sock; move the checkout to a shorter path"
    if port_in_use "$PORT"; then
        die "port $PORT on 127.0.0.1 is already in use; set CRM_PG_PORT to a free port"
    fi
    log "starting Postgres on 127.0.0.1:$PORT (log: $CLUSTER/postgres.log)"
    if ! as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$CLUSTER/postgres.log" -w -t 60 start >/dev/null; then
        tail -n 30 "$CLUSTER/postgres.log" >&2 || true
        die "Postgres did not start"
    fi
}

psql_admin() {
    as_pg "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 "$@"
}

ensure_service() {
    local svc=$1 owner="crm_$1_owner" app="crm_$1" db
    [[ $svc =~ ^[a-z][a-z0-9_]*$ ]] || die "invalid service name '$svc' (want [a-z][a-z0-9_]*)"
    db="$(db_name "$svc")"
    psql_admin -d postgres <<EOF
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$owner') THEN
        CREATE ROLE $owner LOGIN CREATEDB;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$app') THEN
        CREATE ROLE $app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
END
\$\$;
-- Re-assert the attributes in case a role was created by hand.
ALTER ROLE $owner LOGIN CREATEDB NOSUPERUSER;
ALTER ROLE $app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
EOF
    if [[ -z $(psql_admin -d postgres -tA -c "SELECT 1 FROM pg_database WHERE datname = '$db'") ]]; then
        psql_admin -d postgres -c "CREATE DATABASE $db OWNER $owner"
    fi
}

write_env() {
    local svc up tmp db
    tmp="$(mktemp "$DATA/env.XXXXXX")"
    {
        echo "# Generated by scripts/dev-db.sh up: throwaway dev cluster, do not edit."
        echo "export CRM_PG_PORT=$PORT"
        echo "export CRM_DEV_CLUSTER=1"
        for svc in $SERVICES; do
            up="${svc^^}"
            db="$(db_name "$svc")"
            echo "export ${up}_DATABASE_URL=postgres://crm_${svc}@127.0.0.1:${PORT}/${db}"
            echo "export ${up}_MIGRATION_DATABASE_URL=postgres://crm_${svc}_owner@127.0.0.1:${PORT}/${db}"
        done
    } >"$tmp"
    chmod 644 "$tmp"
    mv -f "$tmp" "$ENV_FILE"
}

cmd_up() {
    if user_db_given; then
        local given=PROFILES_DATABASE_URL
        [[ -n ${DATABASE_URL:-} ]] && given=DATABASE_URL
        echo "dev-db: using the given database (\$$given); not starting a dev cluster"
        return 0
    fi
    [[ $PORT =~ ^[0-9]+$ ]] || die "CRM_PG_PORT must be a number, got '$PORT'"
    load_services
    ensure_pgbin
    if ((IS_ROOT)) && ! id postgres >/dev/null 2>&1; then
        log "creating system user postgres"
        useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
    prepare_cluster_dir
    local state=reused
    if is_running; then
        local actual
        actual="$(running_port)"
        if [[ -n $actual && $actual != "$PORT" ]]; then
            log "cluster already running on port $actual (CRM_PG_PORT=$PORT ignored until 'down')"
            PORT="$actual"
        fi
        state="already running"
    else
        if ! is_initialised; then
            init_cluster
            state=new
        fi
        # Another checkout's cluster (e.g. CI's fresh clone beside a developer's)
        # may hold the default port: take the next free one unless one was chosen.
        if [[ -z ${CRM_PG_PORT:-} ]] && port_in_use "$PORT"; then
            local candidate
            for candidate in $(seq $((PORT + 1)) $((PORT + 100))); do
                if ! port_in_use "$candidate"; then
                    log "port $PORT is in use; using $candidate"
                    PORT="$candidate"
                    break
                fi
            done
        fi
        write_conf
        start_cluster
        [[ $state == new ]] || state=started
    fi
    local svc dbs=""
    for svc in $SERVICES; do
        ensure_service "$svc"
        dbs+="$(db_name "$svc") "
    done
    write_env
    echo "dev-db: Postgres $("$PGBIN/pg_ctl" --version | awk '{print $3}') $state on 127.0.0.1:$PORT, databases: ${dbs}(env: $ENV_FILE)"
}

cmd_down() {
    locate_cluster
    if ! is_initialised; then
        echo "dev-db: no dev cluster initialised"
        return 0
    fi
    PGBIN="$(find_pgbin)"
    if ! is_running; then
        echo "dev-db: stopped (was not running)"
        return 0
    fi
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -w -t 60 -m fast stop >/dev/null
    echo "dev-db: stopped"
}

cmd_status() {
    locate_cluster
    if is_running; then
        echo "running (127.0.0.1:$(running_port), data: $PGDATA)"
        return 0
    fi
    if is_initialised; then
        echo "stopped (data: $PGDATA)"
    else
        echo "stopped (not initialised)"
    fi
    return 3
}

cmd_env() {
    [[ -f $ENV_FILE ]] || die "$ENV_FILE does not exist; run 'scripts/dev-db.sh up' first"
    cat "$ENV_FILE"
}

# Drops the per-test databases (test_<service>_<id>) left by earlier test runs.
cmd_prune_tests() {
    locate_cluster
    is_running || die "the dev cluster is not running"
    PGBIN="$(find_pgbin)"
    PORT="$(running_port)"
    local db
    for db in $(psql_admin -d postgres -tA -c "SELECT datname FROM pg_database WHERE datname LIKE 'test\_%'"); do
        psql_admin -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
    done
}

cmd_clean() {
    cmd_down
    locate_cluster
    if [[ -L $DATA/pg ]]; then
        local target home
        target="$(readlink "$DATA/pg")"
        home="$(dirname "$target")"
        # Only ever delete our own fallback directories.
        if [[ $home == /var/tmp/crm-dev-* ]]; then
            rm -rf -- "$home"
            echo "dev-db: removed $home"
        fi
    fi
    rm -rf -- "$DATA"
    echo "dev-db: removed $DATA"
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    clean) cmd_clean ;;
    prune-tests) cmd_prune_tests ;;
    *)
        echo "usage: $0 {up|down|status|env|clean|prune-tests}" >&2
        exit 2
        ;;
esac
