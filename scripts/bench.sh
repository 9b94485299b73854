#!/usr/bin/env bash
# Runs the benchmarks (what `make bench` calls) against the dev Postgres
# cluster, in release mode. Figures and how to read them: docs/benchmarks.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"

"$ROOT/scripts/dev-db.sh" up
# shellcheck source=/dev/null
source "$ROOT/.data/env"
export CRM_JWT_SECRET="${CRM_JWT_SECRET:-crm-test-secret-0123456789abcdef}"
export CRM_LOG="${CRM_LOG:-warn}"

cargo bench -p crm-tickets --bench service_metrics
# The profiles and gateway benchmarks start real crm-profiles processes: build them in release too.
# CRM_BENCH_BASELINE_BIN=<another crm-profiles binary> adds before/after figures to hot_paths.
cargo build --release -p crm-profiles
cargo bench -p crm-profiles --bench hot_paths
cargo bench -p crm-gateway --bench overhead
