# Lambda targets, included from the Makefile.
#   make lambda-tools                       cargo-lambda + ziglang (PyPI) in the tools venv (`make tools`)
#   make lambda-build                       release build for Lambda: arm64 when the aarch64 std is installed
#   make lambda-invoke EVENT=events/x.json  run the real binary under cargo-lambda's emulator, loopback git + S3
#   make lambda-test                        the Lambda integration tests, including the cargo-lambda one
#   make lambda-lint                        cfn-lint template.yaml (must report nothing)

# TOOLS_VENV comes from the Makefile (which reads it from scripts/lib.sh); `make tools` installs into it.
LAMBDA_BIN := mirror-git-to-s3-lambda
CARGO_LAMBDA := $(TOOLS_VENV)/bin/cargo-lambda
# The venv's python3 (first on PATH) finds ziglang for cross builds; scripts that need the system python3
# (boto3 in scripts/lib.sh) get the venv last.
LAMBDA_BUILD_PATH := PATH="$(TOOLS_VENV)/bin:$$PATH"
LAMBDA_RUN_PATH := PATH="$$PATH:$(TOOLS_VENV)/bin"
EVENT ?= events/manual.json

.PHONY: lambda-tools lambda-build lambda-invoke lambda-test lambda-lint

lambda-tools: tools

lambda-build: tools
	@if rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then \
		arch=--arm64; \
	else \
		echo "lambda-build: the aarch64-unknown-linux-gnu standard library is not installed" \
			"(rustup target add aarch64-unknown-linux-gnu), so this builds for x86_64:" \
			"deploy it with Architectures: [x86_64] in template.yaml" >&2; \
		arch=--x86-64; \
	fi; \
	$(LAMBDA_BUILD_PATH) cargo lambda build --release $$arch --bin $(LAMBDA_BIN) && \
	ls -l "$${CARGO_TARGET_DIR:-target}/lambda/$(LAMBDA_BIN)/bootstrap"

lambda-invoke: tools
	$(LAMBDA_RUN_PATH) bash scripts/lambda-invoke.sh "$(EVENT)"

lambda-test: tools
	MIRROR_TEST_CARGO_LAMBDA="$(CARGO_LAMBDA)" cargo test --test lambda_runtime

lambda-lint: tools
	$(LAMBDA_BUILD_PATH) cfn-lint template.yaml
