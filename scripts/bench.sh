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
# The hot-path and gateway benchmarks start real service processes: build them in release too.
# CRM_BENCH_BASELINE_BIN=<another crm-profiles binary> adds before/after figures to hot_paths.
cargo build --release -p crm-profiles -p crm-tickets -p crm-campaigns -p crm-gateway
cargo bench -p crm-profiles --bench hot_paths
cargo bench -p crm-profiles --bench archive
# Segments over 1 000 000 customers (CRM_BENCH_CUSTOMERS=N for fewer).
cargo bench -p crm-profiles --bench segments
# The nightly regrade (scores + lifetime-value model) over 1 000 000 buyers.
cargo bench -p crm-profiles --bench grading
# Duplicate detection over 1 000 000 customers: the full scan and FindDuplicates.
cargo bench -p crm-profiles --bench duplicates
# 1 000 000 customer rows imported from CSV beside a raw COPY of the same rows.
cargo bench -p crm-profiles --bench imports
# 1 000 000 customers exported as CSV (and XLSX) beside COPY … TO STDOUT of the same rows.
cargo bench -p crm-profiles --bench exports
# 1 000 000 orders of 100 000 members imported from CSV beside a raw COPY of the same transactions and items.
cargo bench -p crm-profiles --bench transaction_imports
# Webhooks against a plain HTTP client, commit-to-delivery latency, the JetStream relay against a plain async-nats publisher (a real nats-server: Debian's package).
export CRM_TEST_NATS_SERVER="${CRM_TEST_NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}"
cargo bench -p crm-profiles --bench outward
cargo bench -p crm-tickets --bench hot_paths
cargo bench -p crm-gateway --bench overhead
# Campaigns: SendNotice against its transaction; email and SMS campaigns of 100 000 and a 1 000 000-member snapshot (several minutes).
# shellcheck source-path=SCRIPTDIR source=py-tools.sh
source "$ROOT/scripts/py-tools.sh"
CRM_TEST_PYTHON="$(crm_tools_python)"
export CRM_TEST_PYTHON
cargo bench -p crm-campaigns --bench hot_paths
cargo bench -p crm-campaigns --bench delivery
# Journeys: 100 000 customers entering from one burst of profiles' events, against the stream read alone; 1 000 000 runs' storage and reads.
cargo bench -p crm-campaigns --bench journeys
# The reliability proof at the issue's full size: a 5 000-recipient campaign
# under 6 SIGKILLs and a pause/resume (make test runs it with 600).
CRM_CRASH_RECIPIENTS="${CRM_CRASH_RECIPIENTS:-5000}" cargo test --release -p crm-campaigns --test api campaign_crash -- --nocapture
