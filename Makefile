# weir's build, test and tooling targets. `make test` is exactly what CI runs
# (through .ci/run); the rest are for working on weir.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

# Go from PATH, falling back to the standard install location.
export PATH := $(PATH):/usr/local/go/bin
GO    ?= go
GOFMT ?= gofmt

# The version stamped into bin/weir: the nearest tag or commit, "-dirty" when
# the tree has uncommitted changes, "dev" outside git (or before a commit).
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

# Packages that run goroutines, for the race detector. -race makes tests
# several times slower, so it runs where races can happen rather than
# everywhere; add packages as they grow goroutines.
RACE_PKGS ?= ./log/... ./partition/... ./cluster/... ./broker/... ./client/... ./internal/...

BENCH     ?= .
BENCHTIME ?=
FUZZTIME  ?= 15s

STATICCHECK_VERSION := v0.8.2

.PHONY: build run cluster cluster-stop test vet testrace bench fuzz lint soak fmt verify clean help

## build: compile bin/weir, stamped with VERSION.
build:
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o bin/weir ./cmd/weir

## run: build, then start a single-node broker on 127.0.0.1:7420 (data in ./weir-data).
run: build
	bin/weir serve

## cluster: build, then start three nodes on 127.0.0.1 (clients on 7520, 7530, 7540; data in ./weir-cluster).
cluster: build
	scripts/cluster.sh start

## cluster-stop: stop the nodes make cluster started (SIGTERM, by their pid files).
cluster-stop:
	scripts/cluster.sh stop

## test: the whole suite, as CI runs it: vet, all tests, then the race tests.
test: vet
	$(GO) test -count=1 -timeout 9m ./...
	$(MAKE) --no-print-directory testrace

vet:
	$(GO) vet ./...

## testrace: the goroutine-heavy packages under the race detector (needs cgo).
testrace:
	$(GO) test -race -count=1 -timeout 9m $(RACE_PKGS)

## bench: run benchmarks, e.g. make bench BENCH=Append BENCHTIME=2s.
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count=1 -timeout 30m \
		$(if $(BENCHTIME),-benchtime $(BENCHTIME)) ./...

## fuzz: run every fuzz target of every package for FUZZTIME each.
# `go test -fuzz` takes one target at a time, so list each package's targets
# and run them one by one. A package that fails to build fails the target
# rather than being skipped.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		targets=$$($(GO) test -list '^Fuzz' "$$pkg"); \
		for name in $$(grep '^Fuzz' <<<"$$targets" || true); do \
			echo "== $$pkg $$name ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) "$$pkg"; \
		done; \
	done

## lint: go vet and staticcheck (installed into GOPATH/bin when missing).
lint: vet
	@gobin="$$($(GO) env GOPATH | cut -d: -f1)/bin"; \
	if ! "$$gobin/staticcheck" -version 2>/dev/null | grep -qF '($(STATICCHECK_VERSION:v%=%))'; then \
		echo "installing staticcheck $(STATICCHECK_VERSION) into $$gobin"; \
		GOBIN="$$gobin" $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); \
	fi; \
	"$$gobin/staticcheck" ./...

## soak: the long fault-injection runs, behind the soak build tag.
soak:
	$(GO) test -tags soak -count=1 -timeout 60m ./...

## fmt: fail, listing the files, if any Go file is not gofmt-formatted.
# testdata/ is skipped: it may hold deliberately odd Go files.
fmt:
	@files=$$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -print0 \
		| xargs -0 -r $(GOFMT) -l); \
	if [[ -n "$$files" ]]; then \
		echo "not gofmt-formatted (run gofmt -w):"; echo "$$files"; exit 1; \
	fi

## verify: fail if generated code is stale (protocol/messages_gen.go and the rest).
# Regenerates into a temporary directory and compares: the protocol codec and
# test codec, and the message tables of PROTOCOL.md, all from
# protocol/messages.def (`go generate ./protocol` rewrites them in place).
verify:
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(GO) run ./protocol/internal/gen -out "$$tmp"; \
	stale=0; \
	for f in protocol/messages_gen.go protocol/versioned_gen_test.go PROTOCOL.md; do \
		if ! diff -u "$$f" "$$tmp/$$(basename "$$f")"; then stale=1; fi; \
	done; \
	if ((stale)); then echo "generated files are stale: run go generate ./protocol"; exit 1; fi

## help: list these targets.
help:
	@sed -n 's/^## //p' $(firstword $(MAKEFILE_LIST))

## clean: remove build output. Leaves ./weir-data alone: it is data.
clean:
	rm -rf bin/
