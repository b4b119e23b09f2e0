"""Generation backends behind one protocol: `hf` (transformers) and `vllm`."""

from zerosum.engines.base import Engine, Generation, SamplingParams

__all__ = ["Engine", "Generation", "SamplingParams"]
