"""LoRA runs with the `vllm` engine: `vllm.lora_sync=adapter` against `merge`, in one run.

The default model (SmolLM2-135M-Instruct, float32) with a rank-16 adapter on every linear
layer, as `model.lora=true` builds it. Each mode runs in a child process (one vLLM engine per
process), eager in both (vLLM turns compilation off for LoRA on CPU): the time of one
`sync_weights` (median of 5) and generation throughput at batch 64 (game prompts, 64 new
tokens, temperature 1.0). Ratios are merge over adapter.

    .venv-vllm/bin/python bench/bench_lora_sync.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_engines import game_prompts, throughput  # noqa: E402


def measure(mode: str) -> dict[str, float]:
    import torch
    from peft import LoraConfig, get_peft_model

    from zerosum.engines.base import SamplingParams
    from zerosum.engines.vllm import VLLMEngine
    from zerosum.models import load_model

    model, tokenizer = load_model("smollm2-135m-instruct")
    lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    engine = VLLMEngine(model, tokenizer, max_batch=64, lora_sync=mode, enforce_eager=True)
    syncs = []
    for _ in range(5):
        with torch.no_grad():  # stands in for a learner step
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(torch.randn_like(p) * 1e-3)
        start = time.perf_counter()
        engine.sync_weights()
        syncs.append(time.perf_counter() - start)
    engine.generate(game_prompts(tokenizer, 4), SamplingParams(max_new_tokens=4))
    params = SamplingParams(temperature=1.0, max_new_tokens=64)
    tps, _ = throughput(engine, game_prompts(tokenizer, 64), params, seed=64)
    return {"sync_s": statistics.median(syncs), "tok_s": tps}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(measure(sys.argv[2])))
        return
    res = {}
    for mode in ("adapter", "merge"):
        cmd = [sys.executable, __file__, "--child", mode]
        run = subprocess.run(cmd, capture_output=True, text=True, check=True)
        res[mode] = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"{'lora_sync':>9} {'sync s':>7} {'tok/s @64':>10}")
    for mode, r in res.items():
        print(f"{mode:>9} {r['sync_s']:>7.3f} {r['tok_s']:>10.1f}")
    a, m = res["adapter"], res["merge"]
    print(f"merge/adapter: sync time {m['sync_s'] / a['sync_s']:.2f}x, "
          f"throughput {m['tok_s'] / a['tok_s']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
