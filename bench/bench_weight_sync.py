"""Weight sync of the Ray backend: the object store against a torch.distributed broadcast
(`distributed.weight_sync`), side by side in one run.

The default model (SmolLM2-135M-Instruct, float32) as `zerosum train` builds it, in full
fine-tuning and with its LoRA adapter (`model.lora=true`: rank 16 on every linear layer), is
served to `--workers` rollout workers (Ray actors, `hf` engine) by `RayRollouts.publish`, as
after every learner step of a sync-mode run: from the start of the publish until every worker
serves the new weights. The ways run in turn, each with its own workers (both sets at once
do not fit beside other work in this machine's memory): one warm-up sync, then `--repeats`
syncs, the weights nudged before each (standing in for a learner step); the figure is the
median. Afterwards every worker's tensors are compared with the learner's. GB/s is
the bytes of one copy of the trained tensors over the seconds of a sync to all workers.

The projection to a 7B model scales the median linearly by the bytes that travel (7B
parameters in bf16 in full fine-tuning; a rank-16 all-linear adapter in float32 on Llama-2-7B's
shapes with LoRA), which assumes the bandwidth measured here holds for 50-100x larger
messages and ignores fixed costs. It is a projection for this machine, not a measurement;
GPUs with nccl over NVLink are another medium.

    .venv/bin/python bench/bench_weight_sync.py [--repeats 5] [--workers 2]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from pathlib import Path

import torch

from zerosum.assembly import build_model
from zerosum.config import load_config
from zerosum.distributed.placement import Placement
from zerosum.distributed.ray_backend import RayRollouts
from zerosum.hardware import cpu_model
from zerosum.models import trainable_parameters

RECIPE = Path(__file__).resolve().parent.parent / "configs" / "kuhn_poker_cpu.yaml"
WAYS = ("object_store", "broadcast")
# 7B projections: every parameter in bf16; a rank-16 adapter on every linear layer of
# Llama-2-7B (hidden 4096, MLP 11008, 32 layers; A is r x in, B out x r) in float32.
FULL_7B_BYTES = 7e9 * 2
_LINEARS_7B = [(4096, 4096)] * 4 + [(4096, 11008)] * 2 + [(11008, 4096)]
LORA_7B_BYTES = 32 * sum(16 * (i + o) for i, o in _LINEARS_7B) * 4


def measure(model, tokenizer, overrides: list[str], way: str, repeats: int) -> list[float]:
    """Seconds of each of `repeats` publishes of `model` by `way` (after a warm-up), after
    checking that every worker then holds the learner's tensors."""
    import ray

    cfg = load_config(RECIPE, [*overrides, f"distributed.weight_sync={way}"])
    placement = Placement(cfg.distributed, learner_on_gpu=False)
    try:
        backend = RayRollouts(cfg, model, tokenizer, 0, placement)
        try:
            seconds = []
            for version in range(1, repeats + 2):
                with torch.no_grad():  # stands in for a learner step
                    for p in trainable_parameters(model).values():
                        p.add_(torch.randn_like(p) * 1e-4)
                start = time.perf_counter()
                backend.publish(model, version)
                seconds.append(time.perf_counter() - start)
            want = {n: p.detach() for n, p in model.state_dict().items()}
            for worker in backend.workers:
                got = ray.get(worker.parameters.remote())
                if not all(torch.equal(got[n], t) for n, t in want.items()):
                    raise SystemExit(f"{way}: a worker does not hold the learner's weights")
            return seconds[1:]
        finally:
            backend.close()
    finally:
        placement.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import ray

    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; torch {torch.__version__}, "
          f"Ray {ray.__version__}", flush=True)  # fmt: skip
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    overrides = ["distributed.backend=ray", f"distributed.rollout_workers={args.workers}",
                 "model.device=cpu"]  # fmt: skip
    rows = []
    try:
        for name, extra, bytes_7b in (
            ("full weights", [], FULL_7B_BYTES),
            ("LoRA adapter", ["model.lora=true"], LORA_7B_BYTES),
        ):
            torch.manual_seed(0)
            model, tokenizer = build_model(load_config(RECIPE, [*overrides, *extra]))
            gc.collect()  # the GGUF conversion's leftovers: the workers need the memory
            size = sum(p.numel() * p.element_size() for p in trainable_parameters(model).values())
            medians = {}
            for way in WAYS:
                seconds = measure(model, tokenizer, [*overrides, *extra], way, args.repeats)
                medians[way] = statistics.median(seconds)
                print(f"  {name}, {way}: " + " ".join(f"{x:.3f}" for x in seconds), flush=True)
            rows.append((name, size, medians, bytes_7b))
            del model
    finally:
        ray.shutdown()

    print(f"\nseconds per sync to {args.workers} workers, median of {args.repeats} "
          "(all workers serve the learner's tensors after each)")  # fmt: skip
    print(f"{'trained tensors':<14} {'MB':>8} {'object store s':>15} {'broadcast s':>12} "
          f"{'store/bcast':>12} {'store GB/s':>11} {'bcast GB/s':>11}")  # fmt: skip
    for name, size, m, _ in rows:
        store, bcast = m["object_store"], m["broadcast"]
        print(f"{name:<14} {size / 1e6:8.1f} {store:15.3f} {bcast:12.3f} {store / bcast:11.2f}x "
              f"{size / store / 1e9:11.2f} {size / bcast / 1e9:11.2f}")  # fmt: skip
    print("\nprojection for a 7B model (not measured): the medians above scaled by bytes, "
          "i.e. this machine's bandwidth assumed to hold")  # fmt: skip
    for name, size, m, bytes_7b in rows:
        scale = bytes_7b / size
        print(f"{name:<14} {bytes_7b / 1e9:6.2f} GB: object store "
              f"{m['object_store'] * scale:7.1f} s, broadcast {m['broadcast'] * scale:7.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
