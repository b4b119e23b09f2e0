import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tokenizer():
    """The default model's tokenizer (read from the packaged GGUF; no weights loaded)."""
    from zerosum.models import load_tokenizer

    return load_tokenizer()


@pytest.fixture
def tiny(tokenizer):
    """A fresh tiny randomly initialised causal LM on the default tokenizer."""
    from zerosum.models import tiny_model

    return tiny_model(tokenizer, hidden_size=32, layers=1, heads=2, seed=0)


@pytest.fixture(scope="session")
def benchmarks() -> Path:
    """The benchmark JSONL folder: `$ZEROSUM_BENCHMARKS`, else ../shared/data/benchmarks beside
    the project (DESIGN.md)."""
    candidates = [
        os.environ.get("ZEROSUM_BENCHMARKS", ""),
        Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks",
        "/work/shared/data/benchmarks",
    ]
    for c in candidates:
        if c and (Path(c) / "gsm8k.jsonl").is_file():
            return Path(c)
    pytest.skip("benchmark data not found: set ZEROSUM_BENCHMARKS to the benchmarks folder")
