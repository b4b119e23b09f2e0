"""What a training step does, decided before it starts: a function of the config and the step
alone (never of what earlier steps computed), so a resumed run repeats the uninterrupted one
and the Ray backend can send the games of later steps ahead of the loop."""

from __future__ import annotations

from dataclasses import dataclass

from zerosum.config import TrainConfig
from zerosum.learner import learning_rate
from zerosum.rollout import schedule_games
from zerosum.seeds import eval_seed, step_seed


@dataclass(frozen=True)
class StepPlan:
    """Step `step`'s games, seeds and learning rate."""

    step: int
    schedule: list[tuple[str, int]]  # the (game, game seed) pairs self-play plays
    seed: int  # seeds the step's sampling, the learner's dropout and its kept games' replays
    eval_seed: int  # seeds the evaluation after the step
    lr: float


def plan_step(cfg: TrainConfig, step: int) -> StepPlan:
    """The plan of training step `step` (1-based) of `cfg`."""
    r, seed = cfg.rollout, cfg.run.seed
    return StepPlan(
        step=step,
        schedule=schedule_games(r.games, r.games_per_step, seed, step),
        seed=step_seed(seed, step),
        eval_seed=eval_seed(seed, step),
        lr=learning_rate(step, cfg.optim, cfg.run.steps),
    )
