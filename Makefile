# Gatehouse. Quick start: `make run` (server + demo), `make test` (everything).
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
DATA ?= $(CURDIR)/data
ETCD_BIN := $(BIN)/etcd
OPA_BIN := $(BIN)/opa
export GATEHOUSE_ETCD_BIN := $(ETCD_BIN)
export GATEHOUSE_OPA_BIN := $(OPA_BIN)
# Tests that need a real database server fail instead of skipping.
export GATEHOUSE_REQUIRE_SERVERS := 1

.PHONY: all build run test test-deps bench lint fmt clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/accessd ./cmd/access ./cmd/accessctl

# The real etcd of the version in go.mod, for tests against an external
# cluster (Debian's etcd-server is an older 3.4).
$(ETCD_BIN): go.mod go.sum
	@mkdir -p $(BIN)
	$(GO) build -o $(ETCD_BIN) go.etcd.io/etcd/server/v3

# Stock OPA of the version in go.mod: the shipped policies must pass
# `opa test --capabilities policies/capabilities.json` too.
$(OPA_BIN): go.mod go.sum
	@mkdir -p $(BIN)
	$(GO) build -o $(OPA_BIN) github.com/open-policy-agent/opa

# The demo's key-encryption key lives beside ./data, never inside it.
DEMO_KEK ?= $(CURDIR)/gatehouse-demo.kek

run: build
	@test -f $(DEMO_KEK) || $(BIN)/accessd kek-generate $(DEMO_KEK)
	$(BIN)/accessd start --data-dir $(DATA) --cluster-name gatehouse.local --kek-file $(DEMO_KEK) --demo deploy/demo

# Installs what the tests need when it is missing (idempotent), then runs
# every test, with -race for the packages with concurrency.
test-deps:
	@./scripts/test-deps.sh

test: test-deps $(ETCD_BIN) $(OPA_BIN)
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

bench: $(ETCD_BIN)
	$(GO) test -run '^$$' -bench . -benchtime 2s -count 3 -timeout 30m ./bench/
	$(GO) test -run '^$$' -bench . -timeout 30m ./access/ ./inventory/ ./store/
	$(GO) test -run '^$$' -bench . -count 3 -timeout 30m ./bot/ ./chatops/ ./integrations/...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
