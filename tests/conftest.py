import os
import shutil
import tempfile

import pytest

# The suite's cache (converted models, CFR+ tables) is a fresh temporary directory: no test
# reads or writes the user's ~/.cache/zerosum, and every run starts cold, as on a new machine.
# Subprocesses inherit it. A test that needs the real cache must say why and set it itself.
SUITE_CACHE = tempfile.mkdtemp(prefix="zerosum-test-cache-")
os.environ["ZEROSUM_CACHE"] = SUITE_CACHE


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(SUITE_CACHE, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(items):
    """Tests that start Ray (they use the `ray_cpus` or `ray_gpus` fixture) carry the `ray`
    marker: they run in their own stage (`make test-ray`), which installs the `ray` extra
    first."""
    for item in items:
        if {"ray_cpus", "ray_gpus"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.ray)


@pytest.fixture(scope="module")
def ray_cpus():
    """A Ray instance with 2 CPUs (one per rollout worker) for a module's runs, which use it
    and leave it running; skips where Ray is not installed."""
    ray = pytest.importorskip("ray", reason="the Ray backend needs pip install 'zerosum[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


_EVIDENCE: list[str] = []


@pytest.fixture
def evidence():
    """`evidence(line)`: a line for the run's log, printed in pytest's terminal summary even
    when the test passes (the learning tests report their comparison runs there)."""
    return _EVIDENCE.append


def pytest_terminal_summary(terminalreporter):
    if _EVIDENCE:
        terminalreporter.section("learning evidence")
        for line in _EVIDENCE:
            terminalreporter.write_line(line)


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
