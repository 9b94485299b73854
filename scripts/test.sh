#!/usr/bin/env bash
# Runs every test of the workspace against a real Postgres (what `make test` calls).
#
# Unless PROFILES_DATABASE_URL is given (by the user, not sourced from .data/env),
# the dev cluster of scripts/dev-db.sh is used; it is stopped afterwards only when
# this script started it.
#
# Environment (all optional):
#   PROFILES_DATABASE_URL, PROFILES_MIGRATION_DATABASE_URL   use this database
#   CRM_JWT_SECRET   default: a fixed test secret (tests mint their own tokens with it)
#   CRM_TOOLS_DIR    where the Python venv with aiosmtpd lives (default ~/.cache/crm-tools)
#   CRM_TEST_NATS_SERVER  the nats-server binary (default: Debian's, installed when missing)
#   TEST_ARGS        extra arguments for the test binaries, e.g. TEST_ARGS=--nocapture
# shellcheck disable=SC2317 # stop_db is invoked through trap
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"

STARTED_DB=0
stop_db() {
    if ((STARTED_DB)); then
        "$ROOT/scripts/dev-db.sh" down >&2 || true
    fi
}

if [[ -n ${PROFILES_DATABASE_URL:-} && ${CRM_DEV_CLUSTER:-} != 1 ]]; then
    echo "test: using the given PROFILES_DATABASE_URL" >&2
else
    unset DATABASE_URL
    if ! "$ROOT/scripts/dev-db.sh" status >/dev/null 2>&1; then
        STARTED_DB=1
    fi
    trap stop_db EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    "$ROOT/scripts/dev-db.sh" up
    "$ROOT/scripts/dev-db.sh" prune-tests
    # shellcheck source=/dev/null
    source "$ROOT/.data/env"
fi

export CRM_JWT_SECRET="${CRM_JWT_SECRET:-crm-test-secret-0123456789abcdef}"

# The campaigns tests send email to a real SMTP server: aiosmtpd (PyPI), run by
# scripts/smtp_sink.py from the tools' venv.
# shellcheck source-path=SCRIPTDIR source=py-tools.sh
source "$ROOT/scripts/py-tools.sh"
CRM_TEST_PYTHON="$(crm_tools_python)"
export CRM_TEST_PYTHON
export RUST_BACKTRACE=1

# Installs Debian package $1 (for the command $2) when the command is missing.
need_package() {
    if command -v "$2" >/dev/null 2>&1 || [[ -x /usr/sbin/$2 ]]; then return 0; fi
    [[ $(id -u) -eq 0 ]] || { echo "test: $2 is missing: apt-get install $1" >&2; exit 1; }
    echo "test: installing $1 (apt)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

# The TLS-to-Postgres test makes its CA and server certificate with openssl.
need_package openssl openssl

# The JetStream relay tests start a real nats-server (Debian's package).
if [[ -z ${CRM_TEST_NATS_SERVER:-} ]]; then
    need_package nats-server nats-server
    CRM_TEST_NATS_SERVER="$(command -v nats-server || echo /usr/sbin/nats-server)"
    export CRM_TEST_NATS_SERVER
fi

# TEST_ARGS is split on whitespace on purpose (no globbing).
set -f
# shellcheck disable=SC2086
set -- ${TEST_ARGS:-}
set +f

rc=0
cargo test --workspace --all-targets -- "$@" || rc=$?
exit "$rc"
