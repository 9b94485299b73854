# CRM suite developer entry points. `make` (or `make help`) lists the targets.
.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -euo pipefail -c

CARGO ?= cargo
# buf comes from npm (@bufbuild/buf ships the prebuilt binary as a package).
TOOLS_DIR := $(HOME)/.cache/crm-tools
BUF := $(TOOLS_DIR)/node_modules/.bin/buf
# The suite's services, ports, databases and backends: one line each in
# services/suite.tsv (read by the scripts too).
SUITE := services/suite.tsv
# `make images`: one image per line of $(SUITE) from the root Dockerfile, as
# name:port (the port the pod listens on; only EXPOSEd). Tag and registry
# prefix (e.g. IMAGE_PREFIX=registry.example.com/crm/) are overridable.
IMAGES := $(shell awk 'NF && substr($$1, 1, 1) != "\043" { print $$1 ":" $$3 }' $(SUITE))
IMAGE_TAG ?= dev
IMAGE_PREFIX ?=

.PHONY: help build run test bench fmt lint db-up db-down clean-data k8s-check api-check images

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## .*$$' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

build: ## build every binary of the workspace (debug)
	$(CARGO) build --workspace --bins

run: build ## start Postgres and the suite, print endpoints and a dev token
	@scripts/run.sh

test: ## every test of the workspace against a real Postgres
	@scripts/test.sh

bench: ## benchmarks in release mode against the dev Postgres (figures: docs/benchmarks.md)
	@scripts/bench.sh

fmt: ## format all Rust code
	$(CARGO) fmt --all

lint: $(BUF) ## rustfmt check, clippy with -D warnings, buf lint of proto/, no module import cycles in any crate
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd proto && "$(BUF)" lint
	@for src in services/*/src shared/*/src tests/src; do printf '%s: ' "$$src"; python3 scripts/module_cycles.py "$$src" | tail -1 || exit 1; done

$(BUF):
	npm install --prefix "$(TOOLS_DIR)" --no-audit --no-fund --loglevel=error @bufbuild/buf

k8s-check: ## render the k8s overlays, validate them (schemas, checkov) and check them against the built binaries
	@scripts/k8s-check.sh

api-check: ## run the suite and check its API description: OpenAPI 3.1 validation, /docs in headless Chromium, schemathesis
	@scripts/api-check.sh

images: ## build a container image per service with docker (crm-<service>:IMAGE_TAG, default dev)
	@command -v docker >/dev/null || { echo "make images: docker is not installed; the images are built where a Docker daemon runs (see docs/operating.md)" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "make images: the Docker daemon does not answer (docker info failed); start it or build where one runs" >&2; exit 1; }
	@[[ -n "$(IMAGES)" ]] || { echo "make images: no services in $(SUITE)" >&2; exit 1; }
	@for entry in $(IMAGES); do \
		svc=$${entry%%:*}; port=$${entry##*:}; \
		echo "docker build crm-$$svc (port $$port) -> $(IMAGE_PREFIX)crm-$$svc:$(IMAGE_TAG)"; \
		docker build --build-arg SERVICE=$$svc --build-arg PORT=$$port -t "$(IMAGE_PREFIX)crm-$$svc:$(IMAGE_TAG)" . || exit 1; \
	done

db-up: ## start the dev Postgres cluster (creates roles and databases, writes .data/env)
	@scripts/dev-db.sh up

db-down: ## stop the dev Postgres cluster
	@scripts/dev-db.sh down

clean-data: ## stop the dev cluster and delete .data (and its /var/tmp home if used)
	@scripts/dev-db.sh clean
