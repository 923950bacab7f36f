# ratify-aws-signer — see README.md. `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin
PKGS  := ./...
VERSION ?= 0.1.0-dev

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the awssigner plugin (static) and the emulator into bin/.
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN)/awssigner ./plugins/verifier/awssigner
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/signer-emulator ./test/cmd/signer-emulator

.PHONY: tools
tools: $(BIN)/ratify $(BIN)/opa $(BIN)/helm ## Build the pinned third-party programs (Ratify v1.4.6, OPA, Helm) into bin/.

# Helm, pinned in tools/go.mod; version and Kubernetes version stamped as Helm's Makefile does.
$(BIN)/helm: tools/go.mod tools/go.sum
	@mkdir -p $(BIN)
	cd tools && v=$$($(GO) list -m -f '{{.Version}}' helm.sh/helm/v3) && \
	  k=$$($(GO) list -m -f '{{.Version}}' k8s.io/client-go | cut -d. -f2) && \
	  CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$$v \
	    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$$k \
	    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$$k" \
	    -o $(BIN)/helm helm.sh/helm/v3/cmd/helm

$(BIN)/opa: tools/go.mod tools/go.sum
	@mkdir -p $(BIN)
	cd tools && CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/opa github.com/open-policy-agent/opa

# Ratify takes a few minutes to build the first time; later runs reuse bin/.
$(BIN)/ratify: tools/go.mod tools/go.sum
	@mkdir -p $(BIN)
	@echo "building Ratify v1.4.6 from tools/ (first time: several minutes)..."
	cd tools && CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ratify github.com/ratify-project/ratify/cmd/ratify

.PHONY: test
test: lint tools chart-lint ## Run every test: unit, contract, real Ratify, policies (opa + Gatekeeper's engine), chart.
	$(GO) test -count=1 -race ./internal/... ./plugins/...
	GODEBUG=fips140=only $(GO) test -count=1 ./internal/verification/ ./internal/revocation/ ./internal/signature/ ./internal/signerapi/ ./internal/compose/
	REQUIRE_INTEGRATION=1 $(GO) test -count=1 ./test/...
	./policies/test.sh $(BIN)/opa
	cd test/gatekeeper && REQUIRE_INTEGRATION=1 $(GO) test -count=1 ./...
	cd test/chart && $(GO) test -count=1 ./...
	cd test/kyverno && CGO_ENABLED=0 REQUIRE_INTEGRATION=1 $(GO) test -count=1 ./...
	@$(MAKE) --no-print-directory test-release

.PHONY: test-release
test-release: $(BIN)/ratify ## Release artifacts: build, push to a local registry, pull back and check, plugin runs (contract, real Ratify download), signatures, SBOMs, reproducibility.
	cd tools/release && REQUIRE_INTEGRATION=1 $(GO) test -count=1 -timeout 20m ./...

# Release artifacts (docs/release.md). TAG defaults to VERSION; REGISTRY and
# PROFILE_ARN are required by push; RATIFY_BASE overrides the pinned base
# (tools/release/ratify/base.ref); PLAIN_HTTP=1 for a local registry.
TAG ?= $(VERSION)

.PHONY: image
image: ## Build the release images (awssigner, -fips, plugin artifacts) as an OCI layout in dist/; prints the digests.
	@mkdir -p $(BIN)
	cd tools/release && $(GO) build -trimpath -o $(BIN)/release ./cmd/release
	$(BIN)/release image -repo $(CURDIR) -version $(VERSION) -dist $(CURDIR)/dist

.PHONY: push
push: image ## Push the images and Ratify with the plugin, sign them (awssigner sign), attach SBOMs: REGISTRY=… PROFILE_ARN=… [TAG=…].
	$(BIN)/release push -dist $(CURDIR)/dist -registry "$(REGISTRY)" -tag "$(TAG)" -profile-arn "$(PROFILE_ARN)" \
	  $(if $(RATIFY_BASE),-ratify-base "$(RATIFY_BASE)") $(if $(PLAIN_HTTP),-plain-http) -json $(CURDIR)/dist/pushed.json

.PHONY: e2e
e2e: build $(BIN)/ratify $(BIN)/kube-apiserver $(BIN)/gatekeeper $(BIN)/kubectl $(BIN)/kyverno ## Cluster end to end on one machine: etcd, kube-apiserver, Gatekeeper, ratify serve as processes (no Docker).
	@command -v etcd >/dev/null || { echo "etcd not found: installing the Debian package etcd-server"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update && $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y etcd-server; }
	cd test/e2e && REQUIRE_INTEGRATION=1 $(GO) test -count=1 -timeout 30m -v ./...

# The Kyverno admission controller (pinned in tools/kyverno), for make e2e. Built
# like test/kyverno's tests (CGO_ENABLED=0, no -trimpath, the same module
# versions: tools/kyverno/go.mod says why), so each reuses the other's
# compiled packages: the second of the two costs about a link.
$(BIN)/kyverno: tools/kyverno/go.mod tools/kyverno/go.sum
	@mkdir -p $(BIN)
	@echo "building the Kyverno admission controller from tools/kyverno (first time: about 10 minutes)..."
	cd tools/kyverno && CGO_ENABLED=0 $(GO) build -ldflags "-s -w" -o $(BIN)/kyverno github.com/kyverno/kyverno/cmd/kyverno

.PHONY: demo-cluster
demo-cluster: build $(BIN)/ratify $(BIN)/kube-apiserver $(BIN)/gatekeeper $(BIN)/kubectl ## The e2e control plane, then kubectl run of signed, unsigned, other-profile and revoked images on the provider and Ratify paths.
	@command -v etcd >/dev/null || { echo "etcd not found: installing the Debian package etcd-server"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update && $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y etcd-server; }
	@cd test/e2e && $(GO) run ./cmd/demo-cluster -bin $(BIN)

$(BIN)/kube-apiserver: tools/kube/go.mod tools/kube/go.sum
	@mkdir -p $(BIN)
	@echo "building kube-apiserver from tools/kube (first time: 10-20 minutes)..."
	cd tools/kube && v=$$($(GO) list -m -f '{{.Version}}' k8s.io/kubernetes) && \
	  CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$$v \
	    -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$$(echo $$v | cut -d. -f2)" \
	    -o $(BIN)/kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver

# kubectl for the end-to-end test's run of the chart's hook Job (k8s.io/kubectl, pinned in tools/gatekeeper).
$(BIN)/kubectl: tools/gatekeeper/go.mod tools/gatekeeper/go.sum tools/gatekeeper/kubectl/main.go
	@mkdir -p $(BIN)
	cd tools/gatekeeper && v=$$($(GO) list -m -f '{{.Version}}' k8s.io/kubectl | sed 's/^v0\./v1./') && \
	  CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$$v" -o $(BIN)/kubectl ./kubectl

$(BIN)/gatekeeper: tools/gatekeeper/go.mod tools/gatekeeper/go.sum
	@mkdir -p $(BIN)
	@echo "building the Gatekeeper manager from tools/gatekeeper (first time: 5-10 minutes)..."
	cd tools/gatekeeper && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/gatekeeper github.com/open-policy-agent/gatekeeper/v3

.PHONY: policies
policies: ## Regenerate policies/*/template.yaml from their Rego sources, and the chart's copies.
	$(GO) run ./policies/gen
	$(GO) run ./charts/gen

.PHONY: chart-policies
chart-policies: ## Copy policies/*/template.yaml into the Helm chart's templates.
	$(GO) run ./charts/gen

.PHONY: chart-lint
chart-lint: $(BIN)/helm ## helm lint --strict the chart: defaults and every examples/*.yaml.
	$(BIN)/helm lint --strict charts/ratify-aws-signer
	@set -e; for f in charts/ratify-aws-signer/examples/*.yaml; do \
	  echo "$(BIN)/helm lint --strict charts/ratify-aws-signer -f $$f"; \
	  $(BIN)/helm lint --strict --quiet charts/ratify-aws-signer -f $$f; \
	done

.PHONY: bench-policy
bench-policy: tools ## Gatekeeper-engine review time of a Pod with 10 containers (warm provider cache).
	cd test/gatekeeper && REQUIRE_INTEGRATION=1 $(GO) test -run '^$$' -bench . -benchtime 200x -count 5 ./...

.PHONY: lint
lint: ## gofmt and go vet (both modules).
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	cd test/gatekeeper && $(GO) vet ./...
	cd test/chart && $(GO) vet ./...
	cd test/e2e && $(GO) vet ./...
	cd test/kyverno && CGO_ENABLED=0 $(GO) vet ./...
	cd tools/release && $(GO) vet ./...

.PHONY: bench
bench: bench-core bench-plugin bench-serve bench-policy ## All benchmarks (tables).

.PHONY: bench-plugin
bench-plugin: tools build ## Plugin process, ratify verify with the plugin vs. built-in notation, RSS, Signer calls.
	$(GO) run ./test/cmd/bench -bin $(BIN) -runs 200

.PHONY: bench-serve
bench-serve: tools build ## awssigner serve vs ratify serve + plugin vs ratify serve + built-in notation: cold, warm, 10-container Pod, 100 concurrent, RSS, Signer calls.
	$(GO) run ./test/cmd/benchserve -bin $(BIN) -runs 100

.PHONY: bench-core
bench-core: ## In-process verification vs. its P-384 crypto floor (table of medians).
	@mkdir -p $(BIN)
	$(GO) test -c -o $(BIN)/verification.test ./internal/verification/
	$(GO) build -o $(BIN)/benchtable ./test/cmd/benchtable
	@cd internal/verification && for i in 1 2 3 4 5 6 7 8 9 10; do \
	  $(BIN)/verification.test -test.run '^$$' -test.bench . -test.benchtime 100x; \
	done | $(BIN)/benchtable -base BenchmarkCryptoFloor

.PHONY: fuzz
fuzz: ## Fuzz envelope parsing, config decoding, signature-manifest reading and revocation cache entries for 30s each.
	$(GO) test -run '^$$' -fuzz FuzzVerifyEnvelope -fuzztime 30s -fuzzminimizetime 0 ./internal/verification/
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./internal/config/
	$(GO) test -run '^$$' -fuzz FuzzRead -fuzztime 30s ./internal/signature/
	$(GO) test -run '^$$' -fuzz FuzzCacheEntry -fuzztime 30s ./test/hostile/

.PHONY: demo
demo: $(BIN)/ratify build ## Sign an image through the AWS Signer emulator, verify it with Ratify, revoke, verify again.
	@$(GO) run ./test/cmd/demo -bin $(BIN)

.PHONY: clean
clean: ## Remove bin/ and dist/.
	rm -rf $(BIN) dist
