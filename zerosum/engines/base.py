"""The engine protocol: batched sampling that reports exactly what was sampled.

Constrained-answer mode: each prompt may carry a list of allowed answers (the legal action
strings). Decoding is then restricted, token by token, to continuations of those answers
(a prefix trie), followed by end-of-sequence. The sampling probability of an answer is the
product of per-step probabilities renormalised over the allowed tokens, which the learner
reproduces exactly from the stored `allowed` sets. Both engines apply the same trie (the vllm
engine through a logits processor: vLLM's guided `choice` would accept every tokenization of
an answer, which the learner could not re-score).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from zerosum.typed_config import POSITIVE, PROBABILITY, fld, numbers

MAX_TEMPERATURE = 100.0  # far above any useful value; beyond it sampling is uniform noise
# Every sampling temperature a player or evaluation may use (training's excludes 0).
TEMPERATURE = numbers(0, MAX_TEMPERATURE, note="(0: greedy decoding)")

EngineName = Literal["hf", "vllm"]
ENGINES: tuple[str, ...] = get_args(EngineName)
LoraSync = Literal["auto", "adapter", "merge"]
LORA_SYNCS: tuple[str, ...] = get_args(LoraSync)


@dataclass
class VLLMConfig:
    """Options of `engine: vllm` (ignored by `hf`); the `vllm` section of a training config."""

    lora_sync: LoraSync = fld(
        "auto",
        "LoRA runs: adapter serves each new adapter as a LoRARequest; merge reloads the base "
        "weights with the adapter folded in (no LoRA kernels at generation); auto: adapter on "
        "GPUs, merge on CPUs (4.8x faster generation there, BENCHMARKS.md)",
    )
    enforce_eager: bool = fld(False, "skip torch.compile and graph capture (faster start)")
    kv_cache_gib: int = fld(2, "CPU only: KV cache size in GiB (VLLM_CPU_KVCACHE_SPACE)", POSITIVE)
    gpu_memory_utilization: float = fld(
        0.3, "GPU only: share of GPU memory vLLM may take (the learner shares the GPU)", PROBABILITY
    )
    tensor_parallel_size: int = fld(1, "GPUs (or CPU workers) one model is split over", POSITIVE)
    sleep: bool = fld(
        False, "GPU only: release vLLM's GPU memory while the learner steps (sleep mode)"
    )


@dataclass(frozen=True)
class SamplingParams:
    """How responses are sampled.

    `temperature=0` is greedy decoding (the most likely token at every step; reported
    log-probabilities are then those of the chosen tokens under the untempered distribution,
    after the constraint). `top_p` must be > 0: nucleus mass 0 keeps nothing, and greedy
    decoding is asked for with the temperature. In constrained mode `max_new_tokens` does not
    cut answers: decoding stops after the longest allowed answer and its end-of-sequence.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    # `reasoned` answers: the reasoning's temperature (None: `temperature`, as the move's).
    reasoning_temperature: float | None = None

    def __post_init__(self) -> None:
        TEMPERATURE.check("temperature", self.temperature)
        if self.reasoning_temperature is not None:
            TEMPERATURE.check("reasoning_temperature", self.reasoning_temperature)
        PROBABILITY.check("top_p", self.top_p)
        if isinstance(self.max_new_tokens, bool):
            raise ValueError(
                f"max_new_tokens = {self.max_new_tokens!r} is invalid; allowed: an integer >= 1"
            )
        POSITIVE.check("max_new_tokens", self.max_new_tokens)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class Generation:
    """One sampled response."""

    token_ids: list[int]  # generated tokens, including a final end-of-sequence token if any
    logprobs: list[float]  # log-probability of each token under the sampling distribution
    finish_reason: str  # "stop" (end-of-sequence) or "length" (hit max_new_tokens)
    text: str  # decoded response without special tokens
    # Constrained mode: the allowed token ids per step; reasoned mode also [] (any token).
    allowed: list[list[int]] | None = None


class Engine(Protocol):
    def generate(
        self,
        prompts: Sequence[list[int]],
        params: SamplingParams,
        choices: Sequence[Sequence[str]] | None = None,
        seed: int = 0,
        seeds: Sequence[int] | None = None,
    ) -> list[Generation]:
        """Sample one response per prompt (token ids). `choices[i]` constrains prompt i.

        The same prompts, parameters and `seed` give the same samples. `seeds` (one per
        prompt, replacing `seed`) makes each prompt's sample depend only on its own seed, not
        on the other prompts of the call (up to batched rounding): what lets a caller batch
        independent requests, such as concurrent games, and still replay each one alone."""
        ...

    def offload(self) -> None:
        """Free generation memory before a learner step (a no-op unless the engine can)."""
        ...

    def sync_weights(self) -> None:
        """Serve the learner's current weights (a no-op when weights are shared)."""
        ...


class ChoiceTrie:
    """Token-level prefix trie of the allowed answers, each ending with end-of-sequence."""

    def __init__(self, sequences: Sequence[Sequence[int]]):
        if not sequences:
            raise ValueError("constrained decoding needs at least one allowed answer")
        self.sequences = [list(s) for s in sequences]
        # Tokens of the longest answer with its end-of-sequence: constrained decoding needs
        # exactly this many steps, whatever the free-text cap `max_new_tokens` is.
        self.depth = max(len(s) for s in self.sequences)

    @functools.cached_property
    def decision_depth(self) -> int:
        """Tokens after which every answer is decided (its `completion` known, or it has
        ended), at least one: an engine that cannot stop a row early (vLLM) samples this
        many and writes the forced rest."""
        return max(
            1,
            *(
                next((n for n in range(len(s)) if self.completion(s[:n]) is not None), len(s))
                for s in self.sequences
            ),
        )

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        """Token ids that extend `prefix` towards some allowed answer."""
        n = len(prefix)
        nxt = {s[n] for s in self.sequences if len(s) > n and s[:n] == list(prefix)}
        return sorted(nxt)

    def completion(self, prefix: Sequence[int]) -> list[int] | None:
        """The rest of the one allowed answer `prefix` starts, or None while more than one
        (or none) remain: those tokens are forced, each with probability 1."""
        n = len(prefix)
        rest = {tuple(s[n:]) for s in self.sequences if len(s) > n and s[:n] == list(prefix)}
        return list(next(iter(rest))) if len(rest) == 1 else None


def choice_token_ids(tokenizer, choices: Sequence[str], eos_id: int) -> list[list[int]]:
    """Token sequences of the allowed answers, as the model must write them."""
    return [tokenizer.encode(c, add_special_tokens=False) + [eos_id] for c in choices]
