# pgfleet: `make run` starts the fleet with demo data, `make test` proves the tree is good.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# Tools are built from source by pinned version into .tmp/bin; a stamp per version means a
# bumped version rebuilds and an unchanged one never does (buf alone takes minutes to build).
BUF_VERSION              := v1.75.0
# protoc-gen-go matches google.golang.org/protobuf in gen/go.mod, and the gateway plugins
# match grpc-gateway/v2 there.
PROTOC_GEN_GO_VERSION    := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GRPC_GATEWAY_VERSION     := v2.33.0
GOLANGCI_LINT_VERSION    := v2.15.0
GRPCURL_VERSION          := v1.9.4
GRPC_HEALTH_PROBE_VERSION := v0.4.61
# kustomize renders deploy/overlays; its Go API (sigs.k8s.io/kustomize/api) in deploy/go.mod
# is the same release, so `make manifests` prints what deploy's tests checked.
KUSTOMIZE_VERSION        := v5.8.2
# gojq answers as jq in .tmp/bin: the README's walkthroughs pass ids along with jq (v0.12.20 needs
# a go-yaml version the module proxy refuses).
GOJQ_VERSION             := v0.12.17

TMP   := $(CURDIR)/.tmp
BIN   := $(TMP)/bin
STAMP := $(TMP)/stamps
export PATH := $(BIN):$(PATH)
export GOFLAGS := -buildvcs=false

# Stamped into every binary by -ldflags (the flags buildinfo.LDFlags returns, tested there):
# --version and pgfleet_build_info report them. -buildvcs=false above keeps builds working
# outside a git checkout, where these fall back to devel and unknown.
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo devel)
REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X github.com/pgfleet/pgfleet/pkg/buildinfo.version=$(VERSION) -X github.com/pgfleet/pgfleet/pkg/buildinfo.revision=$(REVISION)

MODULES := gen pkg services/stock services/portfolio services/interview services/gateway tools deploy
SERVICES := stock portfolio interview gateway
TEST_PG_DIR  := $(TMP)/testpg
TEST_PG_PORT ?= 55431

define tool # $(call tool,name,package,version)
$(STAMP)/$(1)@$(3):
	@mkdir -p $(BIN) $(STAMP)
	@echo "building $(1) $(3)" >&2 # stderr: `make manifests | kubectl apply -f -` stays YAML
	@cd $(TMP) && GOBIN=$(BIN) GOWORK=off go install $(2)@$(3)
	@# go install names a binary after its module path (grpc-health-probe); link the usual name.
	@[ -e $(BIN)/$(1) ] || ln -s $(notdir $(2)) $(BIN)/$(1)
	@rm -f $(STAMP)/$(1)@* && touch $$@
TOOLS += $(STAMP)/$(1)@$(3)
endef
$(eval $(call tool,buf,github.com/bufbuild/buf/cmd/buf,$(BUF_VERSION)))
$(eval $(call tool,protoc-gen-go,google.golang.org/protobuf/cmd/protoc-gen-go,$(PROTOC_GEN_GO_VERSION)))
$(eval $(call tool,protoc-gen-go-grpc,google.golang.org/grpc/cmd/protoc-gen-go-grpc,$(PROTOC_GEN_GO_GRPC_VERSION)))
$(eval $(call tool,protoc-gen-grpc-gateway,github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway,$(GRPC_GATEWAY_VERSION)))
$(eval $(call tool,protoc-gen-openapiv2,github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2,$(GRPC_GATEWAY_VERSION)))
$(eval $(call tool,golangci-lint,github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION)))
$(eval $(call tool,grpcurl,github.com/fullstorydev/grpcurl/cmd/grpcurl,$(GRPCURL_VERSION)))
$(eval $(call tool,grpc_health_probe,github.com/grpc-ecosystem/grpc-health-probe,$(GRPC_HEALTH_PROBE_VERSION)))
$(eval $(call tool,kustomize,sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION)))
$(eval $(call tool,jq,github.com/itchyny/gojq/cmd/gojq,$(GOJQ_VERSION)))
RUN_TOOLS := $(STAMP)/grpcurl@$(GRPCURL_VERSION) $(STAMP)/grpc_health_probe@$(GRPC_HEALTH_PROBE_VERSION) $(STAMP)/jq@$(GOJQ_VERSION)
PROTO_TOOLS := $(filter $(STAMP)/buf@% $(STAMP)/protoc-gen-%,$(TOOLS))

# googleapis protos the APIs import, printed from the descriptors in genproto (the version
# deploy/go.mod pins), since the Buf Schema Registry is unreachable: see deploy/protodeps.
PROTODEPS := $(TMP)/protodeps/google/api/field_behavior.proto
$(PROTODEPS): deploy/go.mod deploy/protodeps/main.go
	go run ./deploy/protodeps $(TMP)/protodeps
PROTO_TOOLS += $(PROTODEPS)

# The released API that `buf breaking` holds the protos to (WIRE_JSON: browsers see JSON
# names). After a release, `make api-baseline` moves it to the protos as they are.
API_BASELINE := proto/api-baseline.binpb

.PHONY: help
help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: tools
tools: $(TOOLS) ## build every pinned tool into .tmp/bin

.PHONY: proto
proto: $(PROTO_TOOLS) ## format and lint the protos, regenerate gen/
	buf format -w
	buf lint
	find gen -name '*.pb.go' -o -name '*.pb.gw.go' -o -name '*.swagger.json' | xargs -r rm -f
	buf generate

.PHONY: api-baseline
api-baseline: $(PROTO_TOOLS) ## record the protos as the released API that buf breaking checks against
	buf build --path proto/pgfleet -o $(API_BASELINE)

.PHONY: check-gen
check-gen: proto ## fail if gen/ differs from what the protos generate
	@# Not `tee /dev/stderr`: opening /dev/stderr truncates a log file that stderr points to.
	@changed=$$(git status --porcelain -- gen proto); test -z "$$changed" || \
		{ echo "$$changed" >&2; echo "gen/ is stale: run 'make proto' and commit the result" >&2; exit 1; }

.PHONY: lint
lint: $(PROTO_TOOLS) $(STAMP)/golangci-lint@$(GOLANGCI_LINT_VERSION) ## buf lint + format, gofmt, go vet, golangci-lint
	buf lint
	buf format -d --exit-code
	buf breaking --against $(API_BASELINE)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); test -z "$$unformatted" || \
		{ echo "$$unformatted" >&2; echo "gofmt: files above need formatting" >&2; exit 1; }
	go vet work
	@for m in $(filter-out gen,$(MODULES)); do echo "golangci-lint $$m"; (cd $$m && golangci-lint run ./...); done

.PHONY: build
build: ## build every service binary, pgfleet-provider-stub, pgfleet-token, pgfleet-run and pgfleet (tools/) into .tmp/bin
	@echo "building $(VERSION) ($(REVISION))"
	@for s in $(SERVICES); do go build -ldflags '$(LDFLAGS)' -o $(BIN)/pgfleet-$$s ./services/$$s; done
	go build -ldflags '$(LDFLAGS)' -o $(BIN)/pgfleet-provider-stub ./services/stock/cmd/pgfleet-provider-stub
	go build -ldflags '$(LDFLAGS)' -o $(BIN)/pgfleet-token ./tools/token
	go build -ldflags '$(LDFLAGS)' -o $(BIN)/pgfleet-run ./tools/run
	go build -ldflags '$(LDFLAGS)' -o $(BIN)/pgfleet ./tools/doctor

# promtool reads Prometheus rule files, and a PrometheusRule's spec is one: `make rules` extracts
# it (jq) into .tmp/rules and copies the unit tests beside it, where they find ../alerts.yaml.
MONITORING := deploy/components/monitoring

.PHONY: promtool
promtool: ## install promtool (Debian's prometheus package), which `make rules` runs
	@if ! command -v promtool >/dev/null && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing promtool with apt-get (package prometheus; make rules runs it)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	fi
	@command -v promtool >/dev/null || \
		{ echo "promtool not found: install Prometheus' promtool (Debian: apt-get install prometheus) or put it on PATH" >&2; exit 1; }

.PHONY: rules
rules: promtool $(STAMP)/jq@$(GOJQ_VERSION) ## promtool check rules and test rules on the monitoring component's alerts
	@rm -rf $(TMP)/rules && mkdir -p $(TMP)/rules/tests
	@for f in $(MONITORING)/rules/*.yaml; do jq --yaml-input --yaml-output .spec "$$f" > $(TMP)/rules/$$(basename "$$f"); done
	@cp $(MONITORING)/tests/*.yaml $(TMP)/rules/tests/
	promtool check rules $(TMP)/rules/*.yaml
	promtool test rules $(TMP)/rules/tests/*.yaml

.PHONY: chromium
chromium: ## install headless Chromium (Debian), which the gateway's status page test drives
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium with apt-get (the gateway's browser test needs it)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# The tools users run (redocly, openapi-typescript, openapi-fetch and tsc; apache-arrow), which the
# gateway's tests run on its documents and its Arrow export; pinned by package-lock.json, installed again only
# when it changes.
OPENAPI_NPM := services/gateway/internal/openapi/testdata/npm
$(OPENAPI_NPM)/node_modules/.installed: $(OPENAPI_NPM)/package-lock.json
	cd $(OPENAPI_NPM) && npm ci --no-audit --no-fund
	@touch $@

.PHONY: openapi-tools
openapi-tools: $(OPENAPI_NPM)/node_modules/.installed ## install the OpenAPI tools the gateway's tests run (npm ci; Node.js 20.19+)

.PHONY: test
test: check-gen chromium openapi-tools rules ## run every test against a throwaway PostgreSQL cluster
	go build -o $(BIN)/pgfleet-run ./tools/run
	@# pgfleet-run starts one throwaway cluster for every package (PGFLEET_TEST_DATABASE_URL).
	$(BIN)/pgfleet-run postgres -dir $(TEST_PG_DIR) -port $(TEST_PG_PORT) -- \
		go test -race -shuffle=on -count=1 -timeout 10m work
	$(MAKE) examples

.PHONY: bench
bench: build ## the fleet vs pgbench, pgx, bare servers and COPY: one table (BENCH_DURATION=2s: smoke run)
	@mkdir -p $(TMP)/bench
	go build -o $(TMP)/bench/bench ./tools/bench
	$(TMP)/bench/bench -root $(CURDIR) $(BENCH_FLAGS)
ifeq ($(BENCH_GO_TEST),1)
	@# BENCH_GO_TEST=1: also the in-process go-test benchmarks (handler vs pgx, no network),
	@# on a cluster of their own; they take -cpuprofile where a process has no pprof.
	$(BIN)/pgfleet-run postgres -dir $(TEST_PG_DIR) -port $(TEST_PG_PORT) -- \
		go test -run '^$$' -bench . -benchmem -count=1 -timeout 30m work
endif

.PHONY: run
run: build $(RUN_TOOLS) ## start PostgreSQL, the fleet and demo data; Ctrl-C stops it
	$(BIN)/pgfleet-run -root $(CURDIR)

.PHONY: examples
examples: build $(RUN_TOOLS) ## run the sh examples of the README and docs/, as printed, against a fresh make run
	go build -o $(TMP)/examples ./deploy/examples
	@# As root, in a network namespace of its own: the fleet's fixed ports cannot clash.
	@if [ "$$(id -u)" = 0 ] && command -v ip >/dev/null && unshare -n true 2>/dev/null; then \
		unshare -n sh -c 'ip link set lo up && exec $(TMP)/examples -root $(CURDIR)'; \
	else \
		$(TMP)/examples -root $(CURDIR); \
	fi

OVERLAY ?= prod
.PHONY: manifests
manifests: $(STAMP)/kustomize@$(KUSTOMIZE_VERSION) ## print kustomize build deploy/overlays/prod (OVERLAY=dev: dev)
	@kustomize build deploy/overlays/$(OVERLAY)

.PHONY: tidy
tidy: ## go mod tidy in every module
	@for m in $(MODULES); do echo "tidy $$m"; (cd $$m && GOWORK=off go mod tidy); done
