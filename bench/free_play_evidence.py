"""Does self-play teach a model to play, not only to answer? Models before and after training,
beside a uniformly random player, on the same opponents.

For each `--model TAG=MODEL` (a model name or a checkpoint's model directory): `zerosum eval`
against each opponent (`--n` games, seats alternating) in free-text mode (or
`--answer-mode reasoned`), with the sampled
policy's NashConv where the game is solved (`--exploit-k` answers per information set);
kept as OUT/TAG.json and not repeated. The random player plays the same opponents through
`zerosum.match` (`--baseline-games` games). The summary (OUT/summary.md) has, per model and
opponent: win rate and mean return over all games and over the games the model did not forfeit
(95% Wilson and Student-t intervals), the forfeit rate, and for Kuhn Poker the sampled NashConv,
the sampled policy's exact return against the Nash policy, and the model's action frequencies
per card. Where the game is solved the random player's exact figures stand beside its sampled
games: its expected return against the Nash policy (Kuhn Poker), its win, draw and loss
probabilities against `random` and `perfect` (tic-tac-toe); all seats averaged.

    .venv/bin/python bench/free_play_evidence.py --out bench/results/kuhn_free_smollm2 \\
        --model before=smollm2-135m-instruct \\
        --model seed0=bench/results/kuhn_free_smollm2/seed0/checkpoints/step-000150/model
    .venv/bin/python bench/free_play_evidence.py --game tic_tac_toe \\
        --opponents random,mcts:200 --out bench/results/ttt_selfplay --baseline-only

Evaluation samples at SPIRAL's evaluation settings (temperature 0.6, top-p 0.95) with the
recipe's parser fallback and length cap, so models differ only in their weights.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from zerosum.evaluation.games import summary
from zerosum.games import load_game
from zerosum.match import run_match
from zerosum.players import make_player

ROOT = Path(__file__).resolve().parent.parent
CARDS = "JQK"
# Kuhn Poker's information states by what the player faces: (label, history after the card,
# the action whose frequency is shown). Seat 0 acts at "" and "pb", seat 1 at "p" and "b".
KUHN_SPOTS = (
    ("first to act: bet", "", "bet"),
    ("after a check: bet", "p", "bet"),
    ("facing a bet: call", "b", "call"),
    ("check, then a bet: call", "pb", "call"),
)


def evaluate(tag: str, model: str, a: argparse.Namespace, out: Path) -> dict:
    path = out / f"{tag}.json"
    if not path.exists():
        cmd = [
            a.python, "-m", "zerosum.cli", "eval", "--model", model, "--games", a.game,
            "--opponents", a.opponents, "--n", str(a.n), "--seed", str(a.seed),
            "--temperature", "0.6", "--top-p", "0.95", "--max-new-tokens", str(a.max_new_tokens),
            "--parser-fallback", a.parser_fallback, "--exploit-k", str(a.exploit_k),
            "--answer-mode", a.answer_mode, "--reasoning-prefix", a.reasoning_prefix,
            "--engine", a.engine, "--max-concurrent", str(a.max_concurrent),
            "--out", str(path),
        ]  # fmt: skip
        print(f"$ zerosum eval --model {model} ...", flush=True)
        start = time.perf_counter()
        with (out / f"{tag}.log").open("w") as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        print(f"  {tag}: done in {time.perf_counter() - start:.0f} s", flush=True)
    return json.loads(path.read_text())["games"][a.game]


def random_baseline(a: argparse.Namespace, out: Path) -> dict:
    """The random player's summary against each opponent, as `zerosum eval` reports a model's."""
    path = out / "random_player.json"
    if path.exists():
        return json.loads(path.read_text())
    game, results = load_game(a.game), {}
    for spec in a.opponents.split(","):
        match = run_match(
            game, (make_player("random"), make_player(spec)), a.baseline_games, a.seed
        )
        results[spec] = summary(match.stats[0])
    path.write_text(json.dumps(results, indent=2))
    return results


def cell(r: dict, key: str, digits: int = 3) -> str:
    """A rate or mean with its interval, or "-" where the results lack it."""
    value, ci = r.get(key), r.get(f"{key.removesuffix('_rate')}_ci95")
    if value is None:
        return "-"
    if key == "mean_return":
        ci = r.get("mean_return_ci95")
    sign = "+" if key == "mean_return" else ""
    text = f"{value:{sign}.{digits}f}"
    return f"{text} [{ci[0]:{sign}.{digits}f}, {ci[1]:{sign}.{digits}f}]" if ci else text


def uniform_report(game: str) -> dict:
    """The uniformly random policy's exact NashConv, seat gains and returns against the Nash
    policy (`exploitability_report`)."""
    from open_spiel.python import policy as os_policy

    from zerosum.evaluation.policy import exploitability_report

    spiel = load_game(game).spiel_game
    return exploitability_report(game, os_policy.UniformRandomPolicy(spiel).to_tabular())


def exact_random_outcomes(game: str, opponent: str) -> tuple[float, float, float] | None:
    """A uniformly random player's exact (win, draw, loss) probabilities against `random` or
    `perfect` (uniform over the minimax-optimal moves) in a solved perfect-information game,
    seats alternating; None for other opponents and games."""
    from zerosum.solvers import minimax_values

    spec = load_game(game)
    if opponent not in ("random", "perfect") or not spec.capabilities.minimax:
        return None
    values = minimax_values(game) if opponent == "perfect" else {}
    memo: dict[tuple[str, int], tuple[float, float, float]] = {}

    def outcomes(state, seat: int) -> tuple[float, float, float]:
        key = (str(state), seat)
        if key not in memo:
            if state.is_terminal():
                r = state.returns()[seat]
                memo[key] = (float(r > 0), float(r == 0), float(r < 0))
            else:
                actions = state.legal_actions()
                mover = state.current_player()
                if mover != seat and opponent == "perfect":
                    sign = 1.0 if mover == 0 else -1.0
                    scores = {a: sign * values[str(state.child(a))] for a in actions}
                    actions = [a for a in actions if scores[a] == max(scores.values())]
                rows = [outcomes(state.child(a), seat) for a in actions]
                memo[key] = tuple(sum(col) / len(rows) for col in zip(*rows))
        return memo[key]

    root = spec.spiel_game.new_initial_state()
    seats = [outcomes(root, 0), outcomes(root, 1)]
    return tuple((a + b) / 2 for a, b in zip(*seats))


def return_vs_nash(report: dict) -> float:
    """A policy's exact expected return against the Nash policy, seats alternating."""
    return (report["return_vs_nash_seat0"] + report["return_vs_nash_seat1"]) / 2


def results_table(
    game: str, rows: list[tuple[str, dict]], baseline: dict, uniform: dict | None = None
) -> list[str]:
    lines = [
        f"| {game} vs | player | games | win [95% CI] | mean return [95% CI] | forfeits "
        "| valid games | valid: win | valid: mean return |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for spec, ref in baseline.items():
        lines.append(
            f"| {spec} | uniformly random | {ref['games']} | {cell(ref, 'win_rate')} "
            f"| {cell(ref, 'mean_return')} | - | - | - | - |"
        )
        if spec == "nash" and uniform:
            lines.append(
                f"| {spec} | uniformly random, exact | - | - "
                f"| {return_vs_nash(uniform):+.3f} | - | - | - | - |"
            )
        for tag, res in rows:
            r = res["opponents"].get(spec)
            if r is None:
                continue
            v = r.get("valid", {})
            lines.append(
                f"| {spec} | {tag} | {r['games']} | {cell(r, 'win_rate')} "
                f"| {cell(r, 'mean_return')} | {r['invalid_rate']:.3f} | {v.get('games', '-')} "
                f"| {cell(v, 'win_rate')} | {cell(v, 'mean_return')} |"
            )
    return lines


def exact_table(game: str, opponents: list[str]) -> list[str]:
    """The random player's exact outcome probabilities, where the game is solved."""
    rows = [(spec, exact_random_outcomes(game, spec)) for spec in opponents]
    rows = [(spec, p) for spec, p in rows if p is not None]
    if not rows:
        return []
    lines = [
        "",
        f"| {game} vs | uniformly random, exact: win | draw | loss | win or draw |",
        "|---|---|---|---|---|",
    ]
    for spec, (win, draw, loss) in rows:
        lines.append(f"| {spec} | {win:.4f} | {draw:.4f} | {loss:.4f} | {win + draw:.4f} |")
    return lines


def kuhn_tables(rows: list[tuple[str, dict]], uniform: dict) -> list[str]:
    """Sampled NashConv and exact return against Nash per model, beside the uniform policy's,
    and each model's action frequencies per card."""
    u = uniform
    lines = [
        "",
        "| sampled policy | NashConv | gain seat 0 | gain seat 1 | return vs Nash (exact) "
        "| answers per set | invalid | std error mean / max |",
        "|---|---|---|---|---|---|---|---|",
        f"| uniformly random | {u['nash_conv']:.3f} | {u['best_response_gain_seat0']:.3f} "
        f"| {u['best_response_gain_seat1']:.3f} | {return_vs_nash(u):+.3f} | - | - | - |",
    ]
    for tag, res in rows:
        e = res.get("exploitability")
        if e:
            exact = f"{return_vs_nash(e):+.3f}" if "return_vs_nash_seat0" in e else "-"
            lines.append(
                f"| {tag} | {e['nash_conv']:.3f} | {e['best_response_gain_seat0']:.3f} "
                f"| {e['best_response_gain_seat1']:.3f} | {exact} "
                f"| {e.get('samples_per_infoset', 0):.0f} | {e.get('invalid_rate', 0):.3f} "
                f"| {e.get('mean_std_error', 0):.3f} / {e.get('max_std_error', 0):.3f} |"
            )
    lines += [
        "",
        "| action frequency | model | J | Q | K |",
        "|---|---|---|---|---|",
    ]
    for label, history, action in KUHN_SPOTS:
        for tag, res in rows:
            policy = res.get("exploitability", {}).get("policy")
            if policy:
                freqs = [policy[f"{c}{history}"][action] for c in range(len(CARDS))]
                lines.append(f"| {label} | {tag} | " + " | ".join(f"{p:.2f}" for p in freqs) + " |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--game", default="kuhn_poker")
    p.add_argument("--opponents", default="random,nash")
    p.add_argument("--model", action="append", default=[], help="TAG=MODEL, repeatable")
    p.add_argument("--out", default="bench/results/kuhn_free_smollm2")
    p.add_argument("--n", type=int, default=400, help="evaluation games per opponent")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--baseline-games", type=int, default=4000)
    p.add_argument("--baseline-only", action="store_true", help="only the random player")
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--parser-fallback", default="last_mention")
    p.add_argument("--answer-mode", choices=("free", "reasoned"), default="free")
    p.add_argument("--reasoning-prefix", default="", help="reasoned: the reasoning's first words")
    p.add_argument("--exploit-k", type=int, default=64)
    p.add_argument("--engine", choices=("hf", "vllm"), default="hf")
    p.add_argument("--max-concurrent", type=int, default=64)
    a = p.parse_args()
    os.chdir(ROOT)  # results record paths relative to the repository
    a.python = str(ROOT / ".venv-vllm/bin/python") if a.engine == "vllm" else sys.executable
    out = Path(os.path.relpath((ROOT / a.out).resolve(), ROOT))
    out.mkdir(parents=True, exist_ok=True)
    baseline = random_baseline(a, out)
    rows = []
    for spec in [] if a.baseline_only else a.model:
        tag, _, model = spec.partition("=")
        if not model:
            p.error(f"--model {spec!r}: give TAG=MODEL")
        rows.append((tag, evaluate(tag, model, a, out)))
    uniform = uniform_report(a.game) if a.game == "kuhn_poker" else None
    lines = results_table(a.game, rows, baseline, uniform)
    lines += exact_table(a.game, a.opponents.split(","))
    if uniform and rows:
        lines += kuhn_tables(rows, uniform)
    text = "\n".join(lines) + "\n"
    (out / ("random_player.md" if a.baseline_only else "summary.md")).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
