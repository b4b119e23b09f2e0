"""Run by test_vllm_engine.py in a process of its own (one vLLM engine per process: tearing
one down resets vLLM's global parallel state under any other; tensor-parallel workers are
spawned). Starts the vllm engine on a tiny model, full weights or a LoRA adapter, on 1 or 2
CPU workers; twice changes the learner's trainable weights and syncs; prints as JSON how far
the engine's log-probabilities are from the learner's at the start, while stale and after
each sync, the adapters vLLM holds, and whether the learner's frozen base weights changed.

    python tests/vllm_sync_check.py {full,adapter,merge} TENSOR_PARALLEL_SIZE
"""

import json
import sys

import torch

from zerosum.engines.base import SamplingParams
from zerosum.engines.vllm import VLLMEngine, engine_weights
from zerosum.models import load_tokenizer, tiny_model
from zerosum.scoring import Sample, response_logprobs


def check(mode: str, tensor_parallel: int) -> dict:
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    model = tiny_model(tokenizer, hidden_size=64, layers=2, heads=2, seed=0)
    gen = torch.Generator().manual_seed(0)
    if mode != "full":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
        model = get_peft_model(model, config)
        with torch.no_grad():  # a non-zero adapter (PEFT starts with B = 0, the identity)
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    frozen = {k: v.clone() for k, v in engine_weights(model, merge_lora=False)}
    engine = VLLMEngine(
        model, tokenizer, max_batch=4, kv_cache_gib=1, enforce_eager=True,
        tensor_parallel_size=tensor_parallel, lora_sync="adapter" if mode == "full" else mode,
    )  # fmt: skip
    prompt = tokenizer.encode("Hello there, how are", add_special_tokens=False)

    def gap() -> float:
        g = engine.generate([prompt], SamplingParams(temperature=0.7, max_new_tokens=8), seed=1)
        sample = Sample(prompt, g[0].token_ids, 0.0)
        with torch.no_grad():
            logp, _, _, _ = response_logprobs(model, [sample], 0.7, tokenizer.pad_token_id)
        return float((logp[0, : len(g[0].token_ids)] - torch.tensor(g[0].logprobs)).abs().max())

    out: dict = {"start": gap(), "stale": [], "synced": []}
    for _ in range(2):
        with torch.no_grad():  # a learner update: the trainable weights only
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(torch.randn(p.shape, generator=gen) * 0.3)
        out["stale"].append(gap())
        engine.sync_weights()
        out["synced"].append(gap())
    out["loras"] = sorted(engine.llm.llm_engine.list_loras()) if engine.adapter else []
    base = dict(engine_weights(model, merge_lora=False))
    out["base_unchanged"] = all(torch.equal(base[k], v) for k, v in frozen.items())
    return out


if __name__ == "__main__":
    print(json.dumps(check(sys.argv[1], int(sys.argv[2]))))
