# Developer entry points; CI runs `make test` (see .ci/run).
#   make test   lint, then every test against one shared moto_server (TEST_ARGS="harness" to filter)
#   make lint   cargo fmt --check, clippy with warnings as errors, and the purity check of src/git/ (make test also
#               runs cfn-lint on template.yaml)
#   make demo   offline demo: mirror a generated repository from a local git server into moto, then clone it
#   make fuzz   every cargo-fuzz target for FUZZ_SECONDS each (default 60; nightly and cargo-fuzz needed); new
#               corpus entries and crashes go to fuzz/corpus and fuzz/artifacts
#   make bench  the mirror vs `git clone --mirror` on generated repositories (BENCH_ONLY, BENCH_RUNS: see
#               scripts/bench.sh); report in target/bench/report.md
SHELL := /bin/bash
CARGO ?= cargo
TEST_ARGS ?=
# The tools venv (moto, cfn-lint, cargo-lambda, ...), as scripts/lib.sh defines it (MIRROR_TOOLS_VENV honoured).
TOOLS_VENV := $(shell bash -c '. scripts/lib.sh && printf %s "$$TOOLS_VENV"')

.PHONY: all tools test lint fmt-check clippy purity demo bench fuzz

all: test

# Installs what a fresh machine lacks (apt: lighttpd, time, curl, openssl, git-lfs; the tools venv: moto, boto3,
# cfn-lint, cargo-lambda, ziglang, dulwich, git-lfs-http-mirror). When everything is there it only checks: no
# apt-get, no pip, no root needed.
tools:
	bash -c 'set -euo pipefail; . scripts/lib.sh; ensure_tools'

test: tools lint lambda-lint
	bash scripts/test.sh $(TEST_ARGS)

lint: fmt-check clippy purity

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# src/git/ is bytes in, values out: outside its tests it names no async runtime, HTTP, AWS SDK or logging crate,
# and no std::fs, std::net, std::env or std::process (as a path or in a grouped std import).
PURITY_PATTERN := \b(tokio|hyper[a-z_]*|aws_[a-z_]+|tracing[a-z_]*)::|std::(fs|net|env|process)\b
PURITY_PATTERN := $(PURITY_PATTERN)|std::\{[^}]*\b(fs|net|env|process)\b

purity:
	@if grep -rnE '$(PURITY_PATTERN)' src/git --include='*.rs' \
		--exclude=tests.rs --exclude=test_support.rs; then \
		echo 'purity: the lines above do I/O in src/git/, which is bytes in, values out' >&2; exit 1; fi

demo:
	bash scripts/demo.sh

bench:
	bash scripts/bench.sh

FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= pktline advertisement response pack delta layout ref_name redact resolve idx packed_refs \
	lambda_event retry_after

# Each target runs on a scratch copy of its seeds so that the committed corpus only changes on purpose.
fuzz:
	cd fuzz && cargo +nightly fuzz build -O
	set -e; for target in $(FUZZ_TARGETS); do \
		work=$$(mktemp -d); cp -r fuzz/corpus/$$target/. $$work/; \
		(cd fuzz && cargo +nightly fuzz run -O $$target $$work -- -max_total_time=$(FUZZ_SECONDS) \
			-max_len=1048576) 2>&1 | grep -E '^(Done|==|SUMMARY)|#[0-9]+.*DONE' || true; \
		rm -rf $$work; \
		test ! -d fuzz/artifacts/$$target || ! ls fuzz/artifacts/$$target | grep -q . || \
			{ echo "fuzz: $$target crashed: see fuzz/artifacts/$$target" >&2; exit 1; }; \
	done

# Fragments for other parts of the project (e.g. mk/lambda.mk) add their own targets.
include $(sort $(wildcard mk/*.mk))
