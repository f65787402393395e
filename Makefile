# bb's build and test entry points. .ci/run installs what the tests need
# and runs `make test`.
GO ?= go
BIN ?= bin/bb
# The whole suite takes a few minutes on 2 cores; the timeout catches hangs.
TEST_TIMEOUT ?= 15m

.PHONY: build test

build:
	$(GO) build -o $(BIN) ./cmd/bb

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
