GO       ?= go
BIN      ?= bin/bb
GOBIN    := $(shell $(GO) env GOPATH)/bin
export PATH := $(PATH):$(GOBIN)

.PHONY: all build test test-only demo bench fmt vet docs check-docs clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/bb

# Whole suite: installs missing test tools and starts dockerd (as root),
# then vet, gofmt check and the race-enabled tests.
test: 
	./scripts/test-deps.sh
	$(MAKE) test-only

test-only:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

# Main job on a built-in default: snapshot a generated root filesystem
# (no Docker needed), inspect it, resume it; plus a Docker round trip when
# a daemon is reachable.
demo: build
	./scripts/demo.sh $(BIN)

bench: build
	@echo "see bench/README.md"

docs:
	rm -f docs/cli/*.md
	$(GO) run ./cmd/bb/help docs/cli

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf bin .demo
