"""Does self-play make a real model better? SmolLM2-135M-Instruct before and after a
self-play run, judged on games it trained on and on math it never saw.

Stages (each skipped when its output exists, so the script resumes after an interruption):
  1. `zerosum eval` of the base model: GAME against `random` and a strong bot (200 games
     each, seats alternating, Wilson intervals), GSM8K (200 problems) and MATH500 (100).
  2. `zerosum train` with the recipe (configs/kuhn_poker_selfplay.yaml by default).
  3. The same evaluation of the run's final checkpoint.
  4. A summary table (markdown) and plots of the run's metrics over steps.

    .venv/bin/python bench/selfplay_evidence.py --out bench/results/kuhn_selfplay
    .venv/bin/python bench/selfplay_evidence.py --game tic_tac_toe --opponent mcts:200 \
        --config configs/tic_tac_toe_selfplay.yaml --out bench/results/ttt_selfplay

`--engine vllm` evaluates with vLLM from `.venv-vllm` (make .venv-vllm/.installed): the
same settings, 2-4x faster on this CPU; training keeps the recipe's engine (a recipe with
`engine: vllm` trains in `.venv-vllm` too).

Evaluation samples at SPIRAL's evaluation settings (temperature 0.6, top-p 0.95) with the
recipe's answer parser and length cap, so before and after differ only in the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MATH = {"gsm8k": 200, "math500": 100}


def zerosum(*args: str, log: Path, python: str = sys.executable) -> None:
    cmd = [python, "-m", "zerosum.cli", *args]
    print("$ zerosum " + " ".join(args), flush=True)
    start = time.perf_counter()
    with log.open("w") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)


def venv_python(engine: str) -> str:
    """The interpreter for `engine`: vLLM lives in its own environment (`.venv-vllm`)."""
    return str(ROOT / ".venv-vllm/bin/python") if engine == "vllm" else sys.executable


def evaluate(model: str, tag: str, a: argparse.Namespace, out: Path) -> None:
    game_json = out / f"{tag}_{a.game}.json"
    common = ["--model", model, "--seed", "1", "--temperature", "0.6", "--top-p", "0.95"]
    common += ["--engine", a.engine, "--max-concurrent", str(a.max_concurrent)]
    python = venv_python(a.engine)
    if not game_json.exists():
        zerosum(
            "eval", *common, "--games", a.game, "--opponents", f"random,{a.opponent}",
            "--n", str(a.n), "--parser-fallback", a.parser_fallback,
            "--max-new-tokens", str(a.max_new_tokens), "--out", str(game_json),
            log=out / f"{tag}_{a.game}.log", python=python,
        )  # fmt: skip
    for bench, limit in MATH.items():
        path = out / f"{tag}_{bench}.json"
        if a.math and not path.exists():
            zerosum(
                "eval", *common, "--math", bench, "--limit", str(limit),
                "--max-new-tokens", str(a.math_tokens), "--out", str(path),
                log=out / f"{tag}_{bench}.log", python=python,
            )  # fmt: skip


def final_model(run_dir: Path, step: int | None) -> str:
    """The model of checkpoint `step`, or of the newest one."""
    if step is not None:
        return str(run_dir / "checkpoints" / f"step-{step:06d}" / "model")
    latest = run_dir / "checkpoints" / "latest"
    name = os.readlink(latest) if latest.is_symlink() else latest.read_text().strip()
    return str(run_dir / "checkpoints" / name / "model")


def fmt_rate(r: dict, key: str) -> str:
    lo, hi = r[f"{key}_ci95"]
    return f"{r[f'{key}_rate']:.3f} [{lo:.3f}, {hi:.3f}]"


def checkpoint_tags(out: Path, game: str) -> list[str]:
    """Tags of results kept from earlier checkpoints (`stepN_GAME.json`: an evaluation of
    checkpoint N, renamed when the run went on), in step order."""
    tags = [p.name.split("_")[0] for p in out.glob(f"step*_{game}.json")]
    return sorted(tags, key=lambda t: int(t.removeprefix("step")))


def summary(a: argparse.Namespace, out: Path) -> str:
    lines = [
        f"| {a.game} vs | | games | win [95% CI] | loss [95% CI] | invalid | mean return |",
        "|---|---|---|---|---|---|---|",
    ]
    for tag in ("before", *checkpoint_tags(out, a.game), "after"):
        res = json.loads((out / f"{tag}_{a.game}.json").read_text())
        for spec, r in res["games"][a.game]["opponents"].items():
            lines.append(
                f"| {spec} | {tag} | {r['games']} | {fmt_rate(r, 'win')} | {fmt_rate(r, 'loss')} "
                f"| {r['invalid_rate']:.3f} | {r['mean_return']:+.3f} |"
            )
    if a.math:
        from zerosum.evaluation.games import wilson_interval

        lines += [
            "",
            "| benchmark | before pass@1 [95% CI] | after pass@1 [95% CI] |",
            "|---|---|---|",
        ]
        for bench in MATH:
            cells = []
            for tag in ("before", "after"):
                r = json.loads((out / f"{tag}_{bench}.json").read_text())["math"][bench]
                k = sum(r["correct_per_problem"])  # one sample per problem
                lo, hi = wilson_interval(k, r["problems"])
                cells.append(f"{r['pass@1']:.3f} [{lo:.3f}, {hi:.3f}] ({k}/{r['problems']})")
            lines.append(f"| {bench} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def plots(run_dir: Path, out: Path, game: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x]
    steps = [r["step"] for r in rows]
    panels = [
        ("rollout/invalid_rate", "invalid answers (share of turns)"),
        ("rollout/response_tokens", "response length (tokens)"),
        (f"rollout/{game}/return_seat0", "self-play return, seat 0"),
        ("loss/entropy", "token entropy"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for ax, (key, title) in zip(axes, panels):
        ax.plot(steps, [r.get(key, float("nan")) for r in rows], marker=".")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "training.png", dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--game", default="kuhn_poker")
    p.add_argument("--opponent", default="nash", help="the strong bot (nash, mcts:200, ...)")
    p.add_argument("--config", default="configs/kuhn_poker_selfplay.yaml")
    p.add_argument("--out", default="bench/results/kuhn_selfplay")
    p.add_argument("--n", type=int, default=200, help="games per opponent")
    p.add_argument("--parser-fallback", default="last_mention")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--math-tokens", type=int, default=384)
    p.add_argument("--engine", choices=("hf", "vllm"), default="hf", help="evaluation engine")
    p.add_argument("--max-concurrent", type=int, default=32, help="evaluation games in flight")
    p.add_argument(
        "--stop-at", type=int, help="evaluate this checkpoint step once it exists, not the end"
    )
    p.add_argument("--no-math", dest="math", action="store_false")
    a = p.parse_args()
    # Paths relative to the repository (the working directory from here on), so results and
    # run configs record no machine's absolute paths.
    os.chdir(ROOT)
    out = Path(os.path.relpath((ROOT / a.out).resolve(), ROOT))
    out.mkdir(parents=True, exist_ok=True)
    evaluate("smollm2-135m-instruct", "before", a, out)
    run_dir = out / "run"
    # A finished run resumes to nothing; an interrupted one continues exactly.
    stopped = a.stop_at is not None and Path(final_model(run_dir, a.stop_at)).exists()
    resume = ["--resume", str(run_dir)] if (run_dir / "config.json").exists() else []
    args = resume or ["--config", a.config, f"run.out_dir={run_dir}", "run.progress=false"]
    if not stopped:
        from zerosum.config import load_config

        recipe = load_config(run_dir / "config.json" if resume else a.config, [])
        zerosum("train", *args, log=out / "train.log", python=venv_python(recipe.engine))
    evaluate(final_model(run_dir, a.stop_at), "after", a, out)
    table = summary(a, out)
    (out / "summary.md").write_text(table + "\n")
    print(table)
    plots(run_dir, out, a.game)


if __name__ == "__main__":
    main()
