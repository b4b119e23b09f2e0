"""Self-play dynamics of a tabular softmax policy on Kuhn Poker: a seconds-fast stand-in for
the tiny-model sweep (bench/magnet_sweep.py), to see which ingredient stops convergence.

One logit pair per information set (12), both seats played by the same table. The update
is the learner's: REINFORCE with a per-seat EMA baseline (RAE, decay 0.9, batch means), plus
`alpha` times the exact KL to a magnet (a frozen copy of the table, replaced every `reset`
steps; 0 keeps the initial, near-uniform table), optionally annealed geometrically to
`--anneal-to`; Adam (beta2 0.95 as in the recipes, or `--beta1/--beta2`) or plain SGD.
`--exact` replaces the sampled games by the expected gradient (every history weighted by its
reach probability), so sampling noise can be switched off. Prints NashConv (OpenSpiel) every 10
steps: its minimum, the last quarter's mean and max, and the curve.

    .venv/bin/python bench/tabular_selfplay.py --exact --optimizer sgd --lr 1 \\
        --alpha 0.2 --reset 50 --steps 1000
    .venv/bin/python bench/tabular_selfplay.py --optimizer adam --lr 0.01 --alpha 1 \\
        --reset 50 --games 64 --steps 1000
"""

from __future__ import annotations

import argparse

import numpy as np
import pyspiel
from open_spiel.python import policy as osp
from open_spiel.python.algorithms import exploitability

GAME = pyspiel.load_game("kuhn_poker")
TABLE = osp.TabularPolicy(GAME)
INDEX = {k: i for i, k in enumerate(TABLE.state_lookup)}


def softmax(theta: np.ndarray) -> np.ndarray:
    e = np.exp(theta - theta.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def expected_gradient(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per information set: the reach-weighted policy gradient of the acting seat's expected
    return (w.r.t. the logits) and the reach probability."""
    grad, reach = np.zeros_like(p), np.zeros(len(p))

    def walk(state, r: float) -> np.ndarray:
        if state.is_terminal():
            return np.array(state.returns())
        if state.is_chance_node():
            return sum(q * walk(state.child(a), r * q) for a, q in state.chance_outcomes())
        seat, i = state.current_player(), INDEX[state.information_state_string()]
        values = [walk(state.child(a), r * p[i][a]) for a in range(2)]
        v = sum(p[i][a] * values[a] for a in range(2))
        reach[i] += r
        for a in range(2):
            grad[i, a] += r * p[i][a] * (values[a][seat] - v[seat])
        return v

    walk(GAME.new_initial_state(), 1.0)
    return grad, reach


def sampled_gradient(
    p: np.ndarray, games: int, baseline: list[float], rng, infoset_baseline: bool = False
) -> tuple:
    """The REINFORCE gradient of `games` sampled games with the RAE baseline (updated in
    place), averaged over decisions; and each information set's share of the decisions."""
    decisions = []
    for _ in range(games):
        state, trail = GAME.new_initial_state(), []
        while not state.is_terminal():
            if state.is_chance_node():
                actions, probs = zip(*state.chance_outcomes())
                state.apply_action(rng.choice(actions, p=probs))
                continue
            i = INDEX[state.information_state_string()]
            a = rng.choice(2, p=p[i])
            trail.append((state.current_player(), i, a))
            state.apply_action(a)
        returns = state.returns()
        decisions += [(seat, i, a, returns[seat]) for seat, i, a in trail]
    grad, share = np.zeros_like(p), np.zeros(len(p))
    totals, counts = np.zeros(len(p)), np.zeros(len(p))
    for _, i, _, ret in decisions:
        totals[i] += ret
        counts[i] += 1
    for seat, i, a, ret in decisions:
        onehot = -p[i].copy()
        onehot[a] += 1.0  # d log p(a) / d logits
        b = baseline[seat]
        if infoset_baseline and counts[i] > 1:  # leave-one-out mean of the same prompt
            b = (totals[i] - ret) / (counts[i] - 1)
        grad[i] += (ret - b) * onehot / len(decisions)
        share[i] += 1.0 / len(decisions)
    for seat in (0, 1):
        rets = [d[3] for d in decisions if d[0] == seat]
        if rets:
            baseline[seat] = 0.9 * baseline[seat] + 0.1 * float(np.mean(rets))
    return grad, share


def run(a: argparse.Namespace) -> list[float]:
    rng = np.random.default_rng(a.seed)
    theta = rng.normal(0.0, 0.01, (len(INDEX), 2))
    magnet = theta.copy()
    m, v, baseline, curve = np.zeros_like(theta), np.zeros_like(theta), [0.0, 0.0], []
    for t in range(1, a.steps + 1):
        if a.reset and t > 1 and (t - 1) % a.reset == 0:
            magnet = theta.copy()
        alpha = a.alpha
        if a.anneal_to is not None:
            alpha = a.alpha * (a.anneal_to / a.alpha) ** ((t - 1) / max(a.steps - 1, 1))
        p, mu = softmax(theta), softmax(magnet)
        if a.exact:
            ascent, weight = expected_gradient(p)
        else:
            ascent, weight = sampled_gradient(p, a.games, baseline, rng, a.baseline == "prompt")
        log_ratio = np.log(p) - np.log(mu)
        kl_grad = p * (log_ratio - (p * log_ratio).sum(1, keepdims=True))
        grad = -ascent + alpha * weight[:, None] * kl_grad  # of the loss
        lr = a.lr
        if a.lr_final is not None:  # cosine decay to lr_final over the run
            lr = a.lr_final + (a.lr - a.lr_final) * 0.5 * (1 + np.cos(np.pi * (t - 1) / a.steps))
        if a.optimizer == "adam":
            b1, b2 = a.beta1, a.beta2
            m = b1 * m + (1 - b1) * grad
            v = b2 * v + (1 - b2) * grad**2
            theta -= lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + 1e-8)
        else:
            theta -= lr * grad
        if t % 10 == 0:
            TABLE.action_probability_array[:] = softmax(theta)
            curve.append(exploitability.nash_conv(GAME, TABLE))
    return curve


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--exact", action="store_true", help="expected gradients, no sampling")
    p.add_argument("--games", type=int, default=64, help="sampled games per step")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--beta1", type=float, default=0.9, help="Adam's")
    p.add_argument("--beta2", type=float, default=0.95, help="Adam's (the recipes' value)")
    p.add_argument("--lr-final", type=float, default=None, help="cosine decay to this lr")
    p.add_argument("--alpha", type=float, default=0.0, help="weight of the KL to the magnet")
    p.add_argument("--reset", type=int, default=0, help="replace the magnet every N steps")
    p.add_argument("--anneal-to", type=float, default=None, help="final alpha (geometric)")
    p.add_argument(
        "--baseline",
        choices=("seat", "prompt"),
        default="seat",
        help="RAE's per-seat EMA, or the leave-one-out mean of the same prompt",
    )
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    curve = run(a)
    quarter = curve[3 * len(curve) // 4 :]
    print(f"NashConv min {min(curve):.3f}, last quarter mean {np.mean(quarter):.3f} "
          f"max {max(quarter):.3f}")  # fmt: skip
    print("every 10 steps: " + " ".join(f"{x:.2f}" for x in curve))


if __name__ == "__main__":
    main()
