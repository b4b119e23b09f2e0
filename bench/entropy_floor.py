"""How close to Nash can entropy-regularised self-play get? The NashConv of the regularised
equilibrium of Kuhn Poker (the fixed point of `alpha * entropy`-regularised play, a logit
quantal-response equilibrium) for several `alpha`, computed exactly with OpenSpiel's
magnetic mirror descent (`mmd_dilated.MMDDilatedEnt`, uniform magnet, dilated entropy).

A policy-gradient learner with an entropy bonus `algo.entropy_coef = alpha` (or a magnet
that is never reset, when the initial policy is near uniform) converges at best to this
point, so its NashConv cannot fall below the table's value; only a magnet that moves
(`algo.magnet_reset`) can approach Nash. Seconds on a CPU.

    .venv/bin/python bench/entropy_floor.py [--game kuhn_poker] [--iterations 2000]
"""

from __future__ import annotations

import argparse

import pyspiel
from open_spiel.python.algorithms import exploitability, mmd_dilated


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--game", default="kuhn_poker")
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--alphas", default="1.0,0.5,0.2,0.1,0.05,0.02")
    a = p.parse_args()
    game = pyspiel.load_game(a.game)
    print(f"{a.game}: NashConv of the entropy-regularised equilibrium ({a.iterations} MMD steps)")
    print(f"{'alpha':>6} {'NashConv':>9}")
    for alpha in (float(x) for x in a.alphas.split(",")):
        solver = mmd_dilated.MMDDilatedEnt(game, alpha, stepsize=1.0)
        for _ in range(a.iterations):
            solver.update_sequences()
        print(f"{alpha:>6g} {exploitability.nash_conv(game, solver.get_policies()):>9.4f}")


if __name__ == "__main__":
    main()
