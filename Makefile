# edgedeploy: `make demo` and `make test` do all set-up on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARTIFACTS ?= artifacts
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup system-deps test test-fast demo bench-harness e2e-arm64 clean

setup: $(STAMP)

# torch first, pinned: the CPU build lies on this machine's disk; an unpinned torch pulls a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[demo,dev]'
	touch $(STAMP)

# The SSH tests start a real sshd on 127.0.0.1: install OpenSSH when it is missing (CI machines start bare).
system-deps:
	@if ! test -x /usr/sbin/sshd || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then \
		echo "installing openssh-server and openssh-client (needed by the SSH tests)"; \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq openssh-server openssh-client >/dev/null; \
	fi

test: setup system-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

test-fast: setup system-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow" tests

DATA ?= ../shared/datasets/sst2
Q := $(BIN)/edgedeploy quantize $(ARTIFACTS)/minilm-l6 --eval-data $(DATA)/dev.tsv --force

demo: setup
	$(BIN)/edgedeploy export minilm-l6 -o $(ARTIFACTS)/minilm-l6 --force
	$(Q) -o $(ARTIFACTS)/minilm-l6-int8 --method dynamic --profile "$$($(BIN)/python -c 'from edgedeploy.doctor import diagnose; print(diagnose()["closest_profile"])')"
	$(Q) -o $(ARTIFACTS)/minilm-l6-static --method static --calib-data $(DATA)/train.tsv --calib-samples 128
	$(Q) -o $(ARTIFACTS)/minilm-l6-fp16 --method fp16
	$(Q) -o $(ARTIFACTS)/minilm-l6-int4 --method int4 --calib-data $(DATA)/train.tsv
	$(BIN)/edgedeploy bench $(ARTIFACTS)/minilm-l6 $(ARTIFACTS)/minilm-l6-int8 $(ARTIFACTS)/minilm-l6-static $(ARTIFACTS)/minilm-l6-fp16 $(ARTIFACTS)/minilm-l6-int4 --iterations 200 -o $(ARTIFACTS)/bench.json
	@echo "demo artifacts in $(abspath $(ARTIFACTS)): minilm-l6 (float), minilm-l6-int8, minilm-l6-static, minilm-l6-fp16, minilm-l6-int4; bench results: $(abspath $(ARTIFACTS))/bench.json"

# Not part of `make test`: builds (or reuses) an arm64 Debian rootfs under qemu-user, cached in
# /var/cache/edgedeploy, then provisions and benchmarks it over SSH. Needs root; takes minutes.
e2e-arm64: setup
	scripts/e2e_arm64.sh

bench-harness: setup
	$(BIN)/python benchmarks/harness_overhead.py

clean:
	rm -rf $(ARTIFACTS) .pytest_cache
