# Developer entry points; CI runs `make test` (see .ci/run).
#   make test   lint, then every test against one shared moto_server (TEST_ARGS="harness" to filter)
#   make lint   cargo fmt --check and clippy with warnings as errors (make test also runs cfn-lint on template.yaml)
#   make demo   offline demo: mirror a generated repository from a local git server into moto, then clone it
#   make bench  time, peak memory and request counts of the mirror vs `git clone --mirror`
SHELL := /bin/bash
CARGO ?= cargo
TEST_ARGS ?=

.PHONY: all tools test lint fmt-check clippy demo bench

all: test

# Installs what a fresh machine lacks (apt: lighttpd, time, curl; the tools venv: moto, boto3, cfn-lint,
# cargo-lambda, ziglang); quick when everything is there.
tools:
	bash -c '. scripts/lib.sh && ensure_tools'

test: tools lint lambda-lint
	bash scripts/test.sh $(TEST_ARGS)

lint: fmt-check clippy

fmt-check:
	$(CARGO) fmt --check

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

demo:
	bash scripts/demo.sh

bench:
	bash scripts/bench.sh

# Fragments for other parts of the project (e.g. mk/lambda.mk) add their own targets.
include $(sort $(wildcard mk/*.mk))
