"""`zerosum eval`: one model against fixed opponents on several games, plus the exact
exploitability of its policy where the game is small enough (constrained-answer mode).

The results JSON holds everything needed to reproduce the run: model, settings, seeds,
package versions, and per-game figures with intervals.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from tqdm import tqdm

from zerosum.engines import VLLMConfig, make_engine
from zerosum.engines.base import ENGINES, SamplingParams
from zerosum.evaluation.games import evaluate_against
from zerosum.evaluation.math import evaluate_math, load_problems
from zerosum.evaluation.move_quality import answer_positions, fixed_positions, move_quality
from zerosum.evaluation.policy import exploitability_report, model_policy, sampled_policy
from zerosum.evaluation.settings import EvalSettings
from zerosum.games import load_game
from zerosum.models import load_model, resolve_device
from zerosum.players import make_player, unsupported
from zerosum.rollout import EVAL_INVALID, RolloutSettings
from zerosum.tables import reason_lines, table_row
from zerosum.typed_config import check_choice, check_fields


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("zerosum", "torch", "transformers", "open_spiel", "textarena", "peft"):
        try:
            out[pkg] = metadata.version(pkg.replace("_", "-"))
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


@contextmanager
def stage(what: str) -> Iterator[None]:
    """A progress line on stderr when a part of the evaluation ends (they can take minutes)."""
    start = time.perf_counter()
    yield
    print(f"zerosum eval: {what}: done in {time.perf_counter() - start:.0f} s", file=sys.stderr)


def run_eval(s: EvalSettings) -> dict:
    """Evaluate; returns the results dictionary (also what `--out` writes)."""
    if not s.games and not s.math:
        raise ValueError("nothing to evaluate: give --games and/or --math")
    # Every bad value fails here, before anything loads or plays.
    check_fields(s)
    params = SamplingParams(s.temperature, s.top_p, s.max_new_tokens)
    settings = RolloutSettings.from_config(s, invalid=EVAL_INVALID)
    for game in s.games:
        load_game(game)  # bad names and files fail before the model loads
    benchmarks = {_bench_name(path): load_problems(path, s.limit) for path in s.math}
    check_choice("engine", s.engine, ENGINES)

    device = resolve_device(s.device, "--device")  # a bad device fails before any loading
    # A `model:PATH` opponent is asked and read as the evaluated model is.
    players = {spec: make_player(spec, s.prompting, params) for spec in s.opponents}
    model, tokenizer = load_model(s.model)
    model = model.to(device)
    engine = make_engine(
        s.engine, model, tokenizer, max_batch=s.max_concurrent, seed=s.seed,
        vllm=VLLMConfig(enforce_eager=s.vllm_eager),
    )  # fmt: skip
    results: dict = {"settings": asdict(s), "versions": _versions(), "games": {}}
    for game in s.games:
        per_game: dict = {"opponents": {}, "skipped": {}}
        for spec, player in players.items():
            reason = unsupported(spec, game)
            if reason:
                per_game["skipped"][spec] = reason
                continue
            what = f"{game} against {spec}, {s.n} games"
            # A bar on a terminal only; logs get the stage's closing line.
            with stage(what), tqdm(total=s.n, desc=what, disable=None, leave=False) as bar:
                per_game["opponents"][spec] = evaluate_against(
                    engine, tokenizer, game, player, n=s.n, seed=s.seed, params=params,
                    settings=settings,
                    on_finish=lambda: bar.update(1),
                )  # fmt: skip
        can = load_game(game).capabilities
        if can.minimax:
            decisions = answer_positions(
                engine, tokenizer, fixed_positions(game), params, prompting=s.prompting,
                seed=s.seed,
            )  # fmt: skip
            per_game["move_quality_fixed_positions"] = move_quality(decisions)
        if can.nash and s.prompting.answer_mode == "constrained":
            policy = model_policy(model, tokenizer, game, s.temperature, s.prompting)
            per_game["exploitability"] = exploitability_report(game, policy)
        elif can.nash:
            with stage(f"{game} policy, {s.exploit_k} samples per information set"):
                policy, sampling = sampled_policy(
                    engine, tokenizer, game, params, s.exploit_k, prompting=s.prompting,
                    seed=s.seed,
                )  # fmt: skip
            per_game["exploitability"] = {**exploitability_report(game, policy), **sampling}
        results["games"][game] = per_game
    results["math"] = {}
    for name, problems in benchmarks.items():
        with stage(f"{name}, {len(problems)} problems"):
            results["math"][name] = evaluate_math(
                engine, tokenizer, problems, params, k=s.math_k, seed=s.seed
            )
    return results


def _bench_name(source: str) -> str:
    return source.split(":")[1].split("/")[-1] if source.startswith("hf:") else Path(source).stem


def format_results(results: dict) -> str:
    """A readable table of `run_eval` results."""
    lines = []
    widths = (-14, 5, 16, 16, 16, 7, 7)
    for game, per_game in results["games"].items():
        lines.append(f"{game}")
        header = ("opponent", "games", "win", "draw", "loss", "invalid", "return")
        lines.append(table_row(header, widths, "  "))
        for spec, r in per_game["opponents"].items():
            rates = [
                f"{r[f'{k}_rate']:.2f} [{r[f'{k}_ci95'][0]:.2f},{r[f'{k}_ci95'][1]:.2f}]"
                for k in ("win", "draw", "loss")
            ]
            figures = f"{r['invalid_rate']:.2f}", f"{r['mean_return']:.3f}"
            cells = (spec, r["games"], *rates, *figures)
            lines.append(table_row(cells, widths, "  "))
            v = r["valid"]
            if r["invalid_rate"] > 0:  # the games the model answered throughout
                lines.append(
                    f"{'':17s}games without a forfeit: {v['games']}, win {v['win_rate']:.2f} "
                    f"[{v['win_ci95'][0]:.2f},{v['win_ci95'][1]:.2f}], return {v['mean_return']:.3f}"
                )
            lines += reason_lines(r["invalid_reasons"].items(), " " * 17)
        for spec, reason in per_game["skipped"].items():
            lines.append(f"  {spec:14s} skipped: {reason}")
        qualities = [
            (f"vs {spec}, in play", r["move_quality_in_play"])
            for spec, r in per_game["opponents"].items()
            if "move_quality_in_play" in r
        ]
        if "move_quality_fixed_positions" in per_game:
            qualities.append(("fixed positions", per_game["move_quality_fixed_positions"]))
        for label, q in qualities:
            lines.append(
                f"  {label}: optimal moves {q['optimal_rate']:.2f}, blunders "
                f"{q['blunder_rate']:.2f}, invalid {q['invalid_rate']:.2f} ({q['positions']} positions)"
            )
        if "exploitability" in per_game:
            e = per_game["exploitability"]
            if "samples_per_infoset" in e:
                lines.append(
                    f"  policy sampled: {e['samples_per_infoset']:.0f} answers per information set, "
                    f"invalid {e['invalid_rate']:.2f}, std error mean {e['mean_std_error']:.3f} "
                    f"max {e['max_std_error']:.3f}"
                )
            lines.append(
                f"  NashConv {e['nash_conv']:.4f} (best-response gain seat 0 "
                f"{e['best_response_gain_seat0']:.4f}, seat 1 {e['best_response_gain_seat1']:.4f}); "
                f"return vs Nash: seat 0 {e['return_vs_nash_seat0']:+.4f}, seat 1 {e['return_vs_nash_seat1']:+.4f}"
            )
    for name, r in results.get("math", {}).items():
        lines.append(
            f"{name}: pass@1 {r['pass@1']:.3f} over {r['problems']} problems x "
            f"{r['samples_per_problem']} samples (mean {r['mean_response_tokens']:.0f} tokens)"
        )
    return "\n".join(lines)


def check_writable(path: str | Path) -> None:
    """Fail now, in one line, if the results file cannot be written (a missing directory, a
    directory in its place, no permission), rather than after the evaluation has run."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"--out {str(p)!r} is a directory; give a file path")
    if not p.parent.is_dir():
        what = "is not a directory" if p.parent.exists() else "does not exist"
        raise ValueError(f"--out {str(p)!r}: {str(p.parent)!r} {what}")
    existed = p.exists()
    try:
        with open(p, "a"):  # opening for append changes nothing in an existing file
            pass
    except OSError as err:
        raise ValueError(f"--out {str(p)!r} is not writable: {err.strerror}") from None
    if not existed:
        os.unlink(p)


def write_results(results: dict, path: str | Path) -> None:
    """The results JSON (`--out`)."""
    Path(path).write_text(json.dumps(results, indent=2))
