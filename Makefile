# edgedeploy: `make demo` and `make test` do all set-up on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARTIFACTS ?= artifacts
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup test test-fast demo bench-harness clean

setup: $(STAMP)

# torch first, pinned: the CPU build lies on this machine's disk; an unpinned torch pulls a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[demo,dev]'
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

test-fast: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow" tests

demo: setup
	$(BIN)/edgedeploy export minilm-l6 -o $(ARTIFACTS)/minilm-l6 --force
	$(BIN)/edgedeploy quantize $(ARTIFACTS)/minilm-l6 -o $(ARTIFACTS)/minilm-l6-int8 --method dynamic --eval-data ../shared/datasets/sst2/dev.tsv --force
	$(BIN)/edgedeploy quantize $(ARTIFACTS)/minilm-l6 -o $(ARTIFACTS)/minilm-l6-fp16 --method fp16 --eval-data ../shared/datasets/sst2/dev.tsv --force
	$(BIN)/edgedeploy bench $(ARTIFACTS)/minilm-l6 $(ARTIFACTS)/minilm-l6-int8 $(ARTIFACTS)/minilm-l6-fp16 --iterations 200 -o $(ARTIFACTS)/bench.json
	@echo "demo artifacts: $(abspath $(ARTIFACTS))/minilm-l6, minilm-l6-int8, minilm-l6-fp16; bench results: $(abspath $(ARTIFACTS))/bench.json"

bench-harness: setup
	$(BIN)/python benchmarks/harness_overhead.py

clean:
	rm -rf $(ARTIFACTS) .pytest_cache
