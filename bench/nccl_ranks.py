"""Two learner ranks over nccl, one GPU each: the path `distributed.learner_ranks` takes on
GPUs, without Ray. Each rank steps zerosum's `Learner` on its half of bench_learner.py's
batch (the default model, full fine-tuning, fp32 so that the comparison is about the
gradient sum and not bf16 rounding) with the token count and gradients summed over the
ranks (`TorchDistributedSync`); then the ranks' weights must be bitwise equal, and rank 0
compares them with a single-process learner's after the same steps on the whole batch.
Also times one all-reduce of a gradient-sized buffer. bench/gpu_check.sh runs it:

    python -m torch.distributed.run --nproc-per-node 2 bench/nccl_ranks.py

(`--cpu`: gloo on the CPU instead, to check this script itself where there is no GPU, with
ZEROSUM_BENCH_MODEL naming a small model directory.)
Rank 0 prints one JSON line: ranks_equal, max_abs_diff (against the single process),
step_s (median of the steps after the first), allreduce_ms and allreduce_gb.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_learner import MODEL, make_batch  # noqa: E402

from zerosum.distributed.learner_group import TorchDistributedSync, shard  # noqa: E402
from zerosum.learner import Learner, LearnerSettings  # noqa: E402
from zerosum.models import load_model  # noqa: E402
from zerosum.scoring import merge_duplicates  # noqa: E402

STEPS = 3


def main() -> None:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    cpu = "--cpu" in sys.argv[1:]
    device = torch.device("cpu") if cpu else torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    if cpu:
        dist.init_process_group("gloo")
    else:
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)

    def sync() -> None:  # a GPU's work is queued: the clock stops when it is done
        if not cpu:
            torch.cuda.synchronize()

    model, tokenizer = load_model(MODEL)
    model.to(device)
    samples = merge_duplicates(make_batch(tokenizer))
    settings = LearnerSettings(loss="reinforce", micro_batch_tokens=4096, bf16=False)

    def learner(m, sync=None) -> Learner:
        optimizer = torch.optim.AdamW(m.parameters(), lr=1e-5)
        return Learner(m, optimizer, settings, tokenizer.pad_token_id, sync=sync)

    single = learner(copy.deepcopy(model)) if rank == 0 else None
    ranked = learner(model, TorchDistributedSync())
    times = []
    for step in range(STEPS):
        sync()
        dist.barrier()
        start = time.perf_counter()
        torch.manual_seed(step)
        ranked.step(shard(samples, rank, world))
        sync()
        times.append(time.perf_counter() - start)
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    equal = all(torch.equal(gathered[0], g) for g in gathered[1:])
    buffer = torch.ones_like(flat)
    dist.all_reduce(buffer)  # warm-up
    sync()
    start = time.perf_counter()
    dist.all_reduce(buffer)
    sync()
    allreduce_ms = (time.perf_counter() - start) * 1000
    if rank == 0:
        for step in range(STEPS):
            torch.manual_seed(step)
            single.step(samples)
        reference = torch.cat([p.detach().reshape(-1) for p in single.model.parameters()])
        result = {
            "ranks_equal": equal,
            "max_abs_diff": float((reference - flat).abs().max()),
            "step_s": statistics.median(times[1:]),
            "allreduce_ms": allreduce_ms,
            "allreduce_gb": flat.numel() * flat.element_size() / 1e9,
        }
        print(json.dumps(result), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
