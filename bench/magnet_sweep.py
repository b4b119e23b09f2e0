"""Does regularised self-play converge? Exact NashConv of a tiny model's policy over training
for plain self-play (with and without RAE) and magnet settings, several seeds each.

Every run is `zerosum train` with the tiny learning-test recipe (configs/tiny_kuhn_test.yaml:
a random 2-layer model, constrained answers, so the policy at every information set is exact)
plus the setting's overrides, evaluated every `--eval-every` steps (`eval.nash_conv`). Runs
already finished are read, not repeated (an interrupted one resumes exactly), so the sweep can
be stopped and started again (`--report` trains nothing and tabulates the runs that have
finished; n = their seeds). Writes runs/, summary.md (table) and nash_conv.png (plot).

    .venv/bin/python bench/magnet_sweep.py --out bench/results/magnet_kuhn
    .venv/bin/python bench/magnet_sweep.py --game leduc_poker --steps 150 \\
        --out bench/results/magnet_leduc

Wall-clock per run is the sum of its steps' rollout, learning and evaluation times (as
`perf/` logs them), so runs are comparable even when the machine was busy between them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from zerosum.hardware import cpu_model

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "configs" / "tiny_kuhn_test.yaml"
COSINE = ["optim.lr_schedule=cosine", "optim.lr_final_ratio=0.1"]
# name -> overrides of the recipe. The recipe itself is plain self-play with RAE.
SETTINGS = {
    "none": [],
    "none_no_rae": ["algo.rae=false"],
    "magnet_a0.2_r0": ["algo.regularizer=magnet", "algo.magnet_alpha=0.2", "algo.magnet_reset=0"],
    "magnet_a0.2_r20": ["algo.regularizer=magnet", "algo.magnet_alpha=0.2", "algo.magnet_reset=20"],
    "magnet_a1_r20": ["algo.regularizer=magnet", "algo.magnet_alpha=1.0", "algo.magnet_reset=20"],
    # Without the recipe's entropy bonus (0.5): that bonus is itself a regulariser towards the
    # uniform policy, whose fixed point (a logit equilibrium) is far from Nash; the magnet
    # replaces it (its first magnet, the initial model, is close to uniform).
    "none_ent0": ["algo.entropy_coef=0"],
    **{
        f"magnet_a{alpha}_r{reset}_ent0": [
            "algo.entropy_coef=0",
            "algo.regularizer=magnet",
            f"algo.magnet_alpha={alpha}",
            f"algo.magnet_reset={reset}",
        ]  # fmt: skip
        for alpha, reset in ((0.5, 20), (0.2, 20), (0.5, 50), (1.0, 50))
    },
    # Without any bonus the tiny model collapses to a deterministic policy before it can tell
    # its cards apart (NashConv 0.667, where the policy gradient vanishes); a small bonus keeps
    # it exploring while its own fixed point (BENCHMARKS.md, entropy floor) stays near Nash.
    "none_ent0.05": ["algo.entropy_coef=0.05"],
    **{
        f"magnet_a{alpha}_r{reset}_ent{ent}": [
            f"algo.entropy_coef={ent}",
            "algo.regularizer=magnet",
            f"algo.magnet_alpha={alpha}",
            f"algo.magnet_reset={reset}",
        ]  # fmt: skip
        for alpha, reset, ent in ((0.5, 10, 0.05), (1.0, 10, 0.05), (0.2, 10, 0.05))
    },
    # The initial (near-uniform) model as the magnet, its weight annealed: the regularised
    # equilibrium is then a quantal response equilibrium that moves towards Nash as the
    # weight falls, and the policy follows it instead of cycling.
    **{
        f"anneal_a{alpha}_f{final}_n{n}": [
            "algo.entropy_coef=0",
            "algo.regularizer=magnet",
            f"algo.magnet_alpha={alpha}",
            "algo.magnet_reset=0",
            f"algo.magnet_anneal_steps={n}",
            f"algo.magnet_alpha_final={final}",
        ]  # fmt: skip
        for alpha, final, n in ((1.0, 0.02, 120), (1.0, 0.05, 120), (0.5, 0.02, 120))
    },
    # The same with the learning rate decaying to a tenth (cosine): in the tabular stand-in
    # (bench/tabular_selfplay.py) a decaying step damps the sampled updates' wander, but also
    # freezes the policy wherever it is when the step gets small (BENCHMARKS.md).
    "none_ent0.05_cos": ["algo.entropy_coef=0.05", *COSINE],
    "magnet_a1.0_r50_ent0_cos": [
        "algo.entropy_coef=0",
        "algo.regularizer=magnet",
        "algo.magnet_alpha=1.0",
        "algo.magnet_reset=50",
        *COSINE,
    ],  # fmt: skip
    "anneal_a1.0_f0.02_n120_cos": [
        "algo.entropy_coef=0",
        "algo.regularizer=magnet",
        "algo.magnet_alpha=1.0",
        "algo.magnet_reset=0",
        "algo.magnet_anneal_steps=120",
        "algo.magnet_alpha_final=0.02",
        *COSINE,
    ],  # fmt: skip
    # The magnet on the recipe as it is (RAE, entropy bonus 0.5): `none` plus the regulariser
    # alone, for games where the per-prompt baseline below has few turns per prompt (Leduc).
    "magnet_a0.5_r50": ["algo.regularizer=magnet", "algo.magnet_alpha=0.5", "algo.magnet_reset=50"],
    # The advantage's baseline: the leave-one-out mean return of the batch's other turns at the
    # same prompt (`algo.baseline: prompt`, an information set here) instead of RAE's per seat.
    "none_p": ["algo.baseline=prompt"],
    # The shipped recipe's settings without the magnet (plain self-play), and without RAE too
    # (raw returns as advantages: the per-prompt baseline needs RAE's fallback).
    "none_ent0_p": ["algo.baseline=prompt", "algo.entropy_coef=0"],
    "none_ent0_no_rae": ["algo.rae=false", "algo.entropy_coef=0"],
    **{
        f"magnet_a{alpha}_r{reset}_ent0_p": [
            "algo.baseline=prompt",
            "algo.entropy_coef=0",
            "algo.regularizer=magnet",
            f"algo.magnet_alpha={alpha}",
            f"algo.magnet_reset={reset}",
        ]  # fmt: skip
        for alpha, reset in ((1.0, 50), (0.5, 50), (1.0, 25), (2.0, 50))
    },
}


def run(name: str, seed: int, a: argparse.Namespace, out: Path) -> list[dict]:
    """Train one (setting, seed) unless finished (or `--report`); its metrics rows."""
    run_dir = out / "runs" / f"{name}_seed{seed}"
    metrics = run_dir / "metrics.jsonl"
    rows = [json.loads(x) for x in metrics.read_text().splitlines()] if metrics.exists() else []
    if len(rows) < a.steps and not a.report:
        cmd = [sys.executable, "-m", "zerosum.cli", "train"]
        if (run_dir / "checkpoints" / "latest").exists():
            cmd += ["--resume", str(run_dir)]
        else:
            cmd += [
                "--config", str(RECIPE), "--overwrite", *SETTINGS[name], *a.overrides,
                f"rollout.games={{{a.game}: 1.0}}", f"eval.nash_conv=[{a.game}]",
                f"run.steps={a.steps}", f"run.seed={seed}", f"run.eval_every={a.eval_every}",
                f"run.checkpoint_every={a.eval_every * 4}", f"run.out_dir={run_dir}",
                "run.progress=false",
            ]  # fmt: skip
        start = time.perf_counter()
        print(f"{name} seed {seed}: training", flush=True)
        with (out / "runs" / f"{name}_seed{seed}.log").open("w") as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        print(f"  {time.perf_counter() - start:.0f} s, load {os.getloadavg()[0]:.2f}", flush=True)
        rows = [json.loads(x) for x in metrics.read_text().splitlines()]
    return rows


def curve(rows: list[dict], game: str) -> tuple[list[int], list[float], list[float]]:
    """(steps, minutes of compute, NashConv) at every evaluation."""
    key = f"eval/{game}/nash_conv"
    steps, minutes, values, total = [], [], [], 0.0
    for r in rows:
        total += sum(
            v
            for k, v in r.items()
            if k.startswith("perf/") and k.endswith("_s") and "_per_" not in k
        )  # seconds of rollout, learning and evaluation (not the tokens-per-second rates)
        if key in r:
            steps.append(r["step"])
            minutes.append(total / 60)
            values.append(r[key])
    return steps, minutes, values


def summarise(results: dict, initial: dict, a: argparse.Namespace) -> str:
    lines = [
        f"{a.game}, tiny model (configs/tiny_kuhn_test.yaml), {a.steps} steps, seeds "
        f"{a.seeds}; CPU: {cpu_model()}. NashConv of the exact policy; last quarter = "
        "evaluations in the last 25% of steps; minutes = the run's own rollout, learning and "
        "evaluation time."
        + (f" Every run also had: `{' '.join(a.overrides)}`." if a.overrides else ""),
        "",
        "| setting | step 1 | final (mean over seeds) | last quarter mean / max | best | "
        "first step <= 0.05 (seeds reaching it) | minutes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, per_seed in results.items():
        finals, quarter, best, reach, mins = [], [], [], [], []
        for steps, minutes, values in per_seed:
            cut = a.steps * 3 / 4
            finals.append(values[-1])
            quarter += [v for s, v in zip(steps, values) if s > cut]
            best.append(min(values))
            hit = [s for s, v in zip(steps, values) if v <= 0.05]
            reach += hit[:1]
            mins.append(minutes[-1])
        reached = f"{statistics.mean(reach):.0f} ({len(reach)}/{len(per_seed)})" if reach else "-"
        lines.append(
            f"| {name} (n={len(per_seed)}) | {statistics.mean(initial[name]):.3f} "
            f"| {statistics.mean(finals):.3f} | {statistics.mean(quarter):.3f} / {max(quarter):.3f} | {min(best):.3f} "
            f"| {reached} | {statistics.mean(mins):.1f} |"
        )
    return "\n".join(lines)


def plot(results: dict, a: argparse.Namespace, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for i, (name, per_seed) in enumerate(results.items()):
        color = f"C{i}"
        for j, (steps, minutes, values) in enumerate(per_seed):
            label = name if j == 0 else None
            axes[0].plot(steps, values, color=color, alpha=0.7, label=label)
            axes[1].plot(minutes, values, color=color, alpha=0.7)
    axes[0].set_xlabel("step")
    axes[1].set_xlabel("minutes of compute (2-core CPU)")
    axes[0].set_ylabel(f"NashConv ({a.game})")
    for ax in axes:
        ax.axhline(0.05, color="grey", linestyle=":", linewidth=1)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "nash_conv.png", dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--game", default="kuhn_poker", choices=("kuhn_poker", "leduc_poker"))
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--settings", default=",".join(SETTINGS), help="names of SETTINGS, in order")
    p.add_argument("--out", default="bench/results/magnet_kuhn")
    p.add_argument(
        "--report", action="store_true", help="train nothing: tabulate the finished runs only"
    )
    p.add_argument("overrides", nargs="*", help="more section.field=value for every run")
    a = p.parse_args()
    # Paths relative to the repository (the working directory from here on), so results and
    # run configs record no machine's absolute paths.
    os.chdir(ROOT)
    out = Path(os.path.relpath((ROOT / a.out).resolve(), ROOT))
    (out / "runs").mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in a.seeds.split(",")]
    names = a.settings.split(",")
    results: dict = {name: [] for name in names}
    initial: dict = {name: [] for name in names}
    curves: list[str] = []
    # Seed-major: every setting gets its first seed before any gets its second.
    for seed in seeds:
        for name in names:
            rows = run(name, seed, a, out)
            if len(rows) < a.steps:  # `--report`: not finished, left out
                continue
            steps, minutes, values = curve(rows, a.game)
            results[name].append((steps, minutes, values))
            initial[name].append(values[0])
            curves += [
                f"{name},{seed},{t},{m:.3f},{v:.6f}" for t, m, v in zip(*curve(rows, a.game))
            ]
    results = {name: r for name, r in results.items() if r}
    table = summarise(results, initial, a)
    (out / "summary.md").write_text(table + "\n")
    # Every evaluation of every finished run: what the table and the plot are made of, small
    # enough to commit where a run's per-step metrics are not.
    (out / "curves.csv").write_text(
        "\n".join(["setting,seed,step,minutes,nash_conv", *curves]) + "\n"
    )
    print(table)
    plot(results, a, out)


if __name__ == "__main__":
    main()
