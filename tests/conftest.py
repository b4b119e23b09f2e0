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
