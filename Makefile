# CRM suite developer entry points. `make` (or `make help`) lists the targets.
.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -euo pipefail -c

CARGO ?= cargo
# buf comes from npm (@bufbuild/buf ships the prebuilt binary as a package).
TOOLS_DIR := $(HOME)/.cache/crm-tools
BUF := $(TOOLS_DIR)/node_modules/.bin/buf

.PHONY: help build run test fmt lint db-up db-down clean-data

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## .*$$' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

build: ## build every binary of the workspace (debug)
	$(CARGO) build --workspace --bins

run: build ## start Postgres and the suite, print endpoints and a dev token
	@scripts/run.sh

test: ## every test of the workspace against a real Postgres
	@scripts/test.sh

fmt: ## format all Rust code
	$(CARGO) fmt --all

lint: $(BUF) ## rustfmt check, clippy with -D warnings, buf lint of proto/
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd proto && "$(BUF)" lint

$(BUF):
	npm install --prefix "$(TOOLS_DIR)" --no-audit --no-fund --loglevel=error @bufbuild/buf

db-up: ## start the dev Postgres cluster (creates roles and databases, writes .data/env)
	@scripts/dev-db.sh up

db-down: ## stop the dev Postgres cluster
	@scripts/dev-db.sh down

clean-data: ## stop the dev cluster and delete .data (and its /var/tmp home if used)
	@scripts/dev-db.sh clean
