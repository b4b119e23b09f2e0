"""Learner speed and memory: zerosum's `Learner.step` against a bare PyTorch loop on the same
tokens, in fp32 and bf16 autocast, at several micro-batch sizes, beside the matmul peak
measured in the same process.

The batch looks like a default-recipe step (configs/kuhn_poker_cpu.yaml): 12 turns of the
default model, 6 distinct Kuhn Poker prompts (chat template, rules included) each answered
twice, responses of 40-128 tokens. The bare loop runs the same micro-batches through
`model(...).logits`, a log-softmax, the REINFORCE loss, backward, clipping and AdamW: what a
hand-written learner must do at least. Every setting runs in turn, repeated, in one process;
figures are medians. Peak memory per micro-batch size comes from a child process each (the
resident-set high-water mark cannot be reset within a process).

    .venv/bin/python bench/bench_learner.py [--repeats 3] [--skip-memory] \
        [--precisions fp32,bf16] [--budgets 1024,2048,4096] [--device cuda] [--json OUT]

Model FLOPs: 6 x parameters x trained tokens per step (forward + backward, embedding
parameters excluded as they are lookups), against the 2048^3 matmul rate of the same dtype
(on a GPU, `--device cuda`: an 8192^3 matmul, which comes near the GPU's peak; the profile
and the per-process memory rows are CPU measurements and are left out there). `--json`
also writes the figures to a file (bench/gpu_check.sh reads them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from zerosum.hardware import cpu_model

BUDGETS = (1024, 2048, 4096)
MODEL = os.environ.get("ZEROSUM_BENCH_MODEL", "smollm2-135m-instruct")  # a smoke test: a tiny dir


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def make_batch(tokenizer, n_prompts: int = 6, answers: int = 2, seed: int = 0) -> list:
    import numpy as np

    from zerosum.games import load_game
    from zerosum.prompts import Prompting
    from zerosum.scoring import Sample

    rng = np.random.default_rng(seed)
    game = load_game("kuhn_poker")
    samples = []
    for i in range(n_prompts):
        state = game.new_episode(seed=i)
        if i % 2:  # half the prompts are second moves: longer histories
            state.apply_action(state.legal_actions()[0])
        prompt = Prompting().prompt(tokenizer, state, state.current_seat())
        for _ in range(answers):
            length = int(rng.integers(40, 129))
            response = rng.integers(100, tokenizer.vocab_size - 100, size=length).tolist()
            samples.append(Sample(prompt, response, float(rng.choice([-1.0, 1.0]))))
    return samples


def matmul_gflops(dtype, size: int = 2048, repeats: int = 3, device: str = "cpu") -> float:
    """The best rate of a `size`^3 matmul in `dtype` on `device` (GPU: synchronised)."""
    import torch

    def sync() -> None:
        if device != "cpu":
            torch.cuda.synchronize()

    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def peak_size(device: str) -> int:
    """The matmul that measures the peak: 2048^3 on a CPU, 8192^3 on a GPU (a smaller one
    does not fill a large GPU)."""
    return 2048 if device == "cpu" else 8192


def bare_step(model, optimizer, samples, budget: int, bf16: bool, pad_id: int) -> None:
    """The least a learner must do: padded micro-batches, logits, log-softmax, REINFORCE
    loss over response tokens, backward, clip, AdamW."""
    import torch

    from zerosum.batching import left_pad
    from zerosum.scoring import micro_batches

    device = next(model.parameters()).device
    optimizer.zero_grad(set_to_none=True)
    for idx in micro_batches([len(s) for s in samples], budget):
        mb = [samples[i] for i in idx]
        t_max = max(len(s.response_ids) for s in mb)
        ids, attn, positions = left_pad([s.prompt_ids + s.response_ids for s in mb], pad_id)
        ids, attn, positions = ids.to(device), attn.to(device), positions.to(device)
        targets = torch.zeros((len(mb), t_max), dtype=torch.long)
        mask = torch.zeros((len(mb), t_max))
        for i, s in enumerate(mb):
            targets[i, t_max - len(s.response_ids) :] = torch.tensor(s.response_ids)
            mask[i, t_max - len(s.response_ids) :] = 1
        targets, mask = targets.to(device), mask.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(
                input_ids=ids, attention_mask=attn, position_ids=positions, logits_to_keep=t_max + 1
            ).logits[:, :-1]
        logp = torch.log_softmax(logits.float(), -1).gather(-1, targets[:, :, None]).squeeze(-1)
        adv = torch.tensor([s.advantage for s in mb], device=device)[:, None]
        (-(adv * logp * mask).sum() / 4096).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def speed(repeats: int, precisions: list[str], budgets: list[int], device: str = "cpu") -> dict:
    """zerosum (with and without the shared-prefix forward) and bare learners in each
    precision and micro-batch budget, interleaved; the matmul peak is the best of a
    measurement before and after every repeat."""
    import torch

    from zerosum.learner import Learner, LearnerSettings
    from zerosum.models import enable_activation_checkpointing, load_model

    def sync() -> None:  # a GPU's work is queued: the clock stops when it is done
        if device != "cpu":
            torch.cuda.synchronize()

    model, tokenizer = load_model(MODEL)
    model.to(device)
    samples = make_batch(tokenizer)
    tokens = sum(len(s) for s in samples)
    pad = tokenizer.pad_token_id
    # Model FLOPs: 6 x non-embedding parameters for every token, plus 6 x the output
    # projection (vocabulary x hidden, tied to the embedding) for response tokens only, the
    # only ones whose logits are computed. Attention's own FLOPs are left out.
    embed = model.get_input_embeddings().weight.numel()
    body = sum(p.numel() for p in model.parameters()) - embed
    responses = sum(len(s.response_ids) for s in samples)
    flops = 6.0 * (body * tokens + embed * responses)
    flops_tok = flops / tokens
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    size = peak_size(device)
    peaks = {prec: matmul_gflops(dtypes[prec], size, device=device) for prec in precisions}
    opt_z = torch.optim.AdamW(model.parameters(), lr=1e-7, fused=True)
    opt_b = torch.optim.AdamW(model.parameters(), lr=1e-7, fused=True)
    settings = [(prec, budget) for prec in precisions for budget in budgets]
    # learner name -> optim.shared_prefix; "ckpt" is "prefix" with activation checkpointing
    # (switched on around its own steps only: it changes the shared model).
    kinds = {"zerosum": False, "prefix": True, "ckpt": True}
    learners = {
        (kind, prec, budget): Learner(
            model,
            opt_z,
            LearnerSettings(
                loss="reinforce",
                micro_batch_tokens=budget,
                bf16=prec == "bf16",
                shared_prefix=shared,
            ),  # fmt: skip
            pad_id=pad,
        )
        for prec, budget in settings
        for kind, shared in kinds.items()
    }
    times: dict[str, list[float]] = {}
    learners[("zerosum", *settings[0])].step(samples)  # warm-up (allocator, threads)
    for _ in range(repeats):
        for prec in precisions:
            peaks[prec] = max(peaks[prec], matmul_gflops(dtypes[prec], size, device=device))
        for prec, budget in settings:
            for kind in (*kinds, "bare"):
                sync()
                start = time.perf_counter()
                if kind == "ckpt":
                    enable_activation_checkpointing(model)
                    learners[(kind, prec, budget)].step(samples)
                    model.gradient_checkpointing_disable()
                elif kind in kinds:
                    learners[(kind, prec, budget)].step(samples)
                else:
                    bare_step(model, opt_b, samples, budget, prec == "bf16", pad)
                sync()
                times.setdefault(f"{kind} {prec} {budget}", []).append(time.perf_counter() - start)
    out = {"tokens": tokens, "flops_per_token": flops_tok, "peak_gflops": peaks,
           "peak_matmul": size, "rows": {}}  # fmt: skip
    for key, values in times.items():
        t = statistics.median(values)
        prec = key.split()[1]
        out["rows"][key] = {
            "s": t,
            "tok_s": tokens / t,
            "mfu": tokens * flops_tok / t / (peaks[prec] * 1e9),
        }
    return out


def profile(bf16: bool, budget: int) -> list[tuple[str, float]]:
    """The top operators of one zerosum learner step by self CPU time."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from zerosum.learner import Learner, LearnerSettings
    from zerosum.models import load_model

    model, tokenizer = load_model(MODEL)
    samples = make_batch(tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-7, fused=True)
    learner = Learner(
        model, opt, LearnerSettings(loss="reinforce", micro_batch_tokens=budget, bf16=bf16),
        tokenizer.pad_token_id,
    )  # fmt: skip
    learner.step(samples)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        learner.step(samples)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:8]
    return [(e.key, e.self_cpu_time_total / total) for e in top]


def memory_child(budget: int, bf16: bool, shared: bool, ckpt: bool = False) -> dict:
    """One default-recipe learner step (PPO, 2 epochs) at `budget`: time and peak RSS."""
    import torch

    from zerosum.hardware import peak_rss_gib
    from zerosum.learner import Learner, LearnerSettings
    from zerosum.models import load_model

    model, tokenizer = load_model(MODEL)
    samples = make_batch(tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-7, fused=True)
    settings = LearnerSettings(
        loss="ppo", epochs=2, micro_batch_tokens=budget, bf16=bf16, norm_constant=128,
        shared_prefix=shared, activation_checkpointing=ckpt,
    )  # fmt: skip
    learner = Learner(model, opt, settings, tokenizer.pad_token_id)
    start = time.perf_counter()
    learner.step(samples)
    took = time.perf_counter() - start
    return {"budget": budget, "shared": shared, "ckpt": ckpt, "s": took,
            "peak_rss_gib": peak_rss_gib()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated")
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="tokens")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--shared", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ckpt", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(memory_child(args.child, args.bf16, args.shared, args.ckpt)))
        return
    import torch

    from zerosum.hardware import native_bf16

    bf16, why = native_bf16(torch.device(args.device))
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.device != "cpu":
        print(f"GPU: {torch.cuda.get_device_name(args.device)}")
    print(f"precision auto: {'bf16' if bf16 else 'fp32'} ({why}); load average {load()}")
    precisions = args.precisions.split(",")
    budgets = [int(b) for b in args.budgets.split(",")]
    res = speed(args.repeats, precisions, budgets, args.device)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    peaks = res["peak_gflops"]
    n = res["peak_matmul"]
    print(f"\nmatmul {n}^3 peak: " + ", ".join(f"{p} {g:.0f} GFLOP/s" for p, g in peaks.items()))
    print(
        f"batch: 12 turns, {res['tokens']} tokens; model FLOPs/token {res['flops_per_token']:.3g}"
    )
    for prec in precisions:
        ceiling = peaks[prec] * 1e9 / res["flops_per_token"]
        print(f"roofline {prec}: at most {ceiling:.0f} trained tok/s at the matmul peak")
    print(
        f"\n{'learner':>8} {'prec':>5} {'budget':>6} {'s':>7} {'tok/s':>7} {'MFU':>6} {'vs bare':>8}"
    )
    print("(zerosum: optim.shared_prefix off, the same work as bare; prefix: on; ckpt: prefix "
          "with optim.activation_checkpointing)")  # fmt: skip
    for key, row in res["rows"].items():
        kind, prec, budget = key.split()
        bare = res["rows"][f"bare {prec} {budget}"]
        ratio = bare["s"] / row["s"]
        print(f"{kind:>8} {prec:>5} {budget:>6} {row['s']:7.1f} {row['tok_s']:7.1f} "
              f"{row['mfu']:6.1%} {ratio:7.2f}x")  # fmt: skip
    rows = res["rows"]
    for budget in budgets:
        if len(precisions) == 2:
            f32, b16 = rows[f"zerosum fp32 {budget}"], rows[f"zerosum bf16 {budget}"]
            print(f"budget {budget}: bf16 / fp32 speed {f32['s'] / b16['s']:.2f}x")
        for prec in precisions:
            off, on = rows[f"zerosum {prec} {budget}"], rows[f"prefix {prec} {budget}"]
            ckpt = rows[f"ckpt {prec} {budget}"]
            print(f"budget {budget} {prec}: shared prefix / whole prompts speed "
                  f"{off['s'] / on['s']:.2f}x; activation checkpointing / without "
                  f"{on['s'] / ckpt['s']:.2f}x")  # fmt: skip
    print(f"load average {load()}")
    if args.device != "cpu":  # the profile and peak RSS below are CPU measurements
        return
    chosen = "bf16" if bf16 else "fp32"
    print(f"\nprofile of one zerosum step ({chosen}, budget {budgets[0]}), share of self CPU time:")
    for name, share in profile(bf16, budgets[0]):
        print(f"  {share:6.1%}  {name}")
    if args.skip_memory:
        return
    print(f"\none default-recipe learner step (PPO, 2 epochs, {chosen}) per child process:")
    print(f"{'budget':>6} {'prefix':>7} {'ckpt':>5} {'s':>7} {'peak RSS GiB':>13}")
    for budget in budgets:
        for shared, ckpt in ((False, False), (True, False), (True, True)):
            cmd = [sys.executable, __file__, "--child", str(budget)]
            cmd += (["--bf16"] if bf16 else []) + (["--shared"] if shared else [])
            cmd += ["--ckpt"] if ckpt else []
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            print(f"{budget:>6} {'shared' if shared else 'whole':>7} {'on' if ckpt else 'off':>5} "
                  f"{row['s']:7.1f} {row['peak_rss_gib']:13.2f}")  # fmt: skip
    print(f"load average {load()}")


if __name__ == "__main__":
    main()
