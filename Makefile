# edgedeploy: `make demo` and `make test` do all set-up on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARTIFACTS ?= artifacts
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup setup-legacy system-deps test test-legacy test-fast fuzz dist lint demo edgemin bench-harness e2e-arm64 clean reference-model reference-lm export quantize bench report release

setup: $(STAMP)

# Exact versions from constraints.txt (the metadata has ranges; an unconstrained torch pulls a
# multi-GB CUDA build). uv installs them (pip took about 45 s per venv here, uv under 10), from
# the sources pip is configured with on this machine (scripts/pip_sources.py).
UV_INSTALL = uv pip install -q --index-strategy unsafe-best-match $(shell $(PYTHON) scripts/pip_sources.py)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt uv
	$(BIN)/$(UV_INSTALL) --python $(BIN)/python -c constraints.txt -e '.[cpu,export,demo,dev]'
	touch $(STAMP)

# The last transformers 4 stack (optimum-onnx), in its own venv: `make test-legacy` runs the
# tests of what differs between the stacks (export, decoders, encoder-decoders, optimum's own
# output directories) on it.
LEGACY_VENV ?= .venv-legacy
LEGACY_STAMP := $(LEGACY_VENV)/.installed
setup-legacy: $(LEGACY_STAMP)

$(LEGACY_STAMP): pyproject.toml constraints-legacy.txt
	test -x $(LEGACY_VENV)/bin/python || $(PYTHON) -m venv $(LEGACY_VENV)
	$(LEGACY_VENV)/bin/python -m pip install -q -c constraints-legacy.txt uv
	$(LEGACY_VENV)/bin/$(UV_INSTALL) --python $(LEGACY_VENV)/bin/python -c constraints-legacy.txt -e '.[cpu,export-legacy,demo,dev]'
	touch $(LEGACY_STAMP)

# The SSH tests start a real sshd on 127.0.0.1 and the report test renders report.html in
# headless Chromium: install OpenSSH and Chromium when missing (CI machines start bare).
system-deps:
	@missing=""; \
	{ test -x /usr/sbin/sshd && command -v ssh >/dev/null && command -v ssh-keygen >/dev/null; } || missing=" openssh-server openssh-client"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing (needed by the SSH and report-rendering tests)"; \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# Random order (pytest-randomly prints "Using --randomly-seed=N" in the header; pass it to rerun that order),
# the 20 slowest tests and every skip reason at the end; a missing sshd fails the SSH tests here.
PYTEST := EDGEDEPLOY_REQUIRE_SSHD=1 $(BIN)/python -m pytest -p no:cacheprovider --durations=20 -rs

test: setup system-deps lint
	$(PYTEST) tests

LEGACY_TESTS := tests/test_export.py tests/test_decoder.py tests/test_seq2seq.py tests/test_adopt.py
test-legacy: setup-legacy system-deps
	EDGEDEPLOY_REQUIRE_SSHD=1 EDGEDEPLOY_REQUIRE_OPTIMUM=1 $(LEGACY_VENV)/bin/python -m pytest -p no:cacheprovider --durations=10 -rs $(LEGACY_TESTS)

test-fast: setup system-deps
	$(PYTEST) -m "not slow" tests

# The property tests of every untrusted-input parser, long and with a fresh seed (make test runs
# them with a fixed seed and 40 examples each): 4,000 examples per parser.
fuzz: setup
	EDGEDEPLOY_FUZZ_PROFILE=fuzz $(PYTEST) -p no:randomly tests/test_fuzz.py

# The library wheel (metadata with ranges, see constraints.txt for the pins) and the device
# runtime wheel (numpy + onnxruntime only, console script edgedeploy-runtime).
dist: setup
	rm -rf dist build
	$(BIN)/python -m pip wheel -q --no-deps --no-build-isolation -w dist .
	$(BIN)/python -m edgedeploy.device.runtime_bundle --wheel dist
	@ls dist

# ruff; deptry: every imported third-party package is declared; vermin: the device runtime parses
# and runs on Python 3.8 (JetPack 5), as runtimes/pyproject.toml's Requires-Python says.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/deptry .
	$(BIN)/vermin --no-tips --violations -q -t=3.8- runtimes/

# ---- release pipelines: thin wrappers over the CLI, for CI jobs and Makefiles -------------
# make export [MODEL=minilm-l6|path|reference:sst2]     -> $(ARTIFACTS)/model
# make quantize [METHOD=dynamic|static|fp16|int4] [PROFILE=rpi4] [CALIB=file]   -> $(ARTIFACTS)/model-$(METHOD)
# make bench [HOST=pi@raspberrypi.local PROFILE=rpi4 REMOTE_VENV=.edgedeploy/venv]
# make release RECIPE=examples/sst2.yaml   -> edgedeploy run RECIPE --gate (exit 1 on a missed budget)
# make report RUN_DIR=runs/sst2
MODEL ?= minilm-l6
METHOD ?= dynamic
PROFILE ?=
HOST ?=
REMOTE_VENV ?=
CALIB ?= ../shared/datasets/sst2/train.tsv
RUN_DIR ?=
RECIPE ?=
DATA ?=
ED := $(BIN)/edgedeploy

reference-model: setup
	$(BIN)/python -m edgedeploy.reference_model sst2 banking77

# The reference LM (reference:lm): a 4-layer Llama-style decoder trained on SST-2 text, cached.
reference-lm: setup
	$(BIN)/python -m edgedeploy.reference_model lm

export: setup
	$(ED) export $(MODEL) -o $(ARTIFACTS)/model --force

quantize: setup
	$(ED) quantize $(ARTIFACTS)/model -o $(ARTIFACTS)/model-$(METHOD) --method $(METHOD) --force \
		$(if $(PROFILE),--profile $(PROFILE)) $(if $(filter static int4,$(METHOD)),--calib-data $(CALIB))

bench: setup
	$(ED) bench $(ARTIFACTS)/model $(ARTIFACTS)/model-$(METHOD) -o $(ARTIFACTS)/bench$(if $(HOST),-$(subst @,_,$(HOST))).json \
		$(if $(PROFILE),--profile $(PROFILE)) $(if $(HOST),--host $(HOST)) $(if $(REMOTE_VENV),--remote-venv $(REMOTE_VENV))

report: setup
	@test -n "$(RUN_DIR)" || { echo "usage: make report RUN_DIR=runs/<recipe name>"; exit 2; }
	$(ED) report $(RUN_DIR)

release: setup
	@test -n "$(RECIPE)" || { echo "usage: make release RECIPE=examples/sst2.yaml"; exit 2; }
	$(ED) run $(RECIPE) --gate $(if $(RUN_DIR),--run-dir $(RUN_DIR))

# EdgeMIN-style compression of the SST-2 reference classifier: distill 6->3 layers, prune 20 %
# of the heads with recovery, dynamic INT8; report per stage (about 12 min on 2 cores).
edgemin: setup
	$(ED) run examples/sst2-edgemin.yaml --gate --run-dir $(or $(RUN_DIR),runs/sst2-edgemin)

# The whole pipeline on the default model (examples/demo.yaml): export, int8/fp16/int4, bench,
# report. DATA=path adds fidelity (and accuracy for a classifier MODEL) on real text.
demo: setup
	$(ED) run examples/demo.yaml --run-dir $(or $(RUN_DIR),runs/demo) \
		$(if $(filter-out minilm-l6,$(MODEL)),--set source=$(MODEL)) $(if $(DATA),--set data.eval=$(DATA))

# Not part of `make test`: builds (or reuses) an arm64 Debian rootfs under qemu-user, cached in
# /var/cache/edgedeploy, then provisions and benchmarks it over SSH. Needs root; takes minutes.
e2e-arm64: setup
	scripts/e2e_arm64.sh

bench-harness: setup
	$(BIN)/python benchmarks/harness_overhead.py

clean:
	rm -rf $(ARTIFACTS) runs .pytest_cache
