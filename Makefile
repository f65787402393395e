GO       ?= go
BIN      ?= bin/bb
GOBIN    := $(shell $(GO) env GOPATH)/bin
export PATH := $(PATH):$(GOBIN)

.PHONY: all build test test-only fuzz-short demo bench fmt vet docs lint clean

all: build

# bb version reports VERSION and COMMIT (from git when built from a checkout).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)

build:
	$(GO) build -ldflags "-X github.com/bot-bottle/bb/cmd/bb/cli.version=$(VERSION) -X github.com/bot-bottle/bb/cmd/bb/cli.commit=$(COMMIT)" -o $(BIN) ./cmd/bb

# Whole suite: installs missing test tools and starts dockerd (as root),
# then gofmt, vet and staticcheck (for Linux, and for macOS, where the
# macos-container backend runs: there bb is compiled and checked, not
# run), the race-enabled tests and a short run of every fuzzer.
test: 
	./scripts/test-deps.sh
	$(MAKE) test-only

test-only:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	GOOS=darwin GOARCH=arm64 $(GO) vet ./...
	$(MAKE) lint
	$(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) fuzz-short

# A short run of every fuzzer beyond its checked-in seed corpus
# (testdata/fuzz/, which go test already runs), one line each. The budget
# is a count of inputs, not a duration: with -fuzztime as a duration, Go
# 1.26's fuzz coordinator can report "context deadline exceeded" as a
# failure when the time runs out (go.dev/issue/75804), which is no finding.
# FUZZN inputs per fuzzer (a few seconds each on two cores); the stitcher
# runs FUZZN_SLOW, since each of its inputs packs several gzip streams.
# Minimizing a new input is bounded by a count too (FUZZMIN runs).
FUZZN      ?= 3000x
FUZZN_SLOW ?= 300x
FUZZMIN    ?= 100x
fuzz-short:
	$(GO) test -run '^$$' -fuzz '^FuzzExtract$$' -fuzztime $(FUZZN) -fuzzminimizetime $(FUZZMIN) ./rootfs
	$(GO) test -run '^$$' -fuzz '^FuzzFilter$$' -fuzztime $(FUZZN) -fuzzminimizetime $(FUZZMIN) ./snapshot
	$(GO) test -run '^$$' -fuzz '^FuzzImport$$' -fuzztime $(FUZZN) -fuzzminimizetime $(FUZZMIN) ./archive
	$(GO) test -run '^$$' -fuzz '^FuzzDockerDiff$$' -fuzztime $(FUZZN) -fuzzminimizetime $(FUZZMIN) ./backends/docker
	$(GO) test -run '^$$' -fuzz '^FuzzNames$$' -fuzztime $(FUZZN) -fuzzminimizetime $(FUZZMIN) ./registry
	$(GO) test -run '^$$' -fuzz '^FuzzParsePath$$' -fuzztime $(FUZZN) -fuzzminimizetime $(FUZZMIN) ./registry
	$(GO) test -run '^$$' -fuzz '^FuzzRange$$' -fuzztime $(FUZZN) -fuzzminimizetime $(FUZZMIN) ./registry
	$(GO) test -run '^$$' -fuzz '^FuzzManifestInfo$$' -fuzztime $(FUZZN) -fuzzminimizetime $(FUZZMIN) ./registry
	$(GO) test -run '^$$' -fuzz '^FuzzStitch$$' -fuzztime $(FUZZN_SLOW) -fuzzminimizetime $(FUZZMIN) ./pack

# Main job on a built-in default: snapshot a generated root filesystem
# (no Docker needed), inspect it, resume it; plus a Docker round trip when
# a daemon is reachable.
demo: build
	./scripts/demo.sh $(BIN)

# Benchmark, not a test (see bench/README.md): builds the bench bottles under
# .bench/ (cached; needs root, dockerd and the Debian mirror), then measures bb
# against the tools it replaces, median of BENCH_RUNS (3) runs. Tables on stdout
# and in .bench/results.md, raw data in .bench/results.json. BENCH_ISSUES=2,3,4
# and BENCH_ONLY=REGEXP select steps.
bench: build
	./scripts/test-deps.sh
	./bench/build-bottle.sh
	$(GO) run ./bench/cmd/bbbench run -bb $(abspath $(BIN))
	$(GO) run ./bench/cmd/bbbench conformance -bb $(abspath $(BIN))

docs:
	rm -f docs/cli/*.md
	$(GO) run ./cmd/bb/help docs/cli

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

# staticcheck at the version scripts/test-deps.sh installs. Not yet part
# of test-only: findings remain in packages under other work.
lint:
	staticcheck ./...
	GOOS=darwin GOARCH=arm64 staticcheck ./...

clean:
	rm -rf bin .demo
