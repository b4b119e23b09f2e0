"""Where a training step's self-play games are played: in this process (`distributed.backend:
local`, the default) or by rollout workers on Ray (`ray`, `zerosum.distributed.ray_backend`).

Both are `Rollouts`: `play` a step's schedule, then, after the learner's update, `publish`
the new weights. Every answer is seeded on its own (`seeds.turn_seed`), so both give the same
games for the same seed and weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from zerosum.engines.base import Engine, SamplingParams
from zerosum.plan import StepPlan
from zerosum.players.base import Player
from zerosum.rollout import Episode, RolloutSettings, Turn, play_games
from zerosum.snapshot import Snapshot

Opponents = Sequence[Sequence[Player | Snapshot | None]]


class Rollouts(Protocol):
    def play(
        self,
        plan: StepPlan,
        params: SamplingParams,
        settings: RolloutSettings,
        opponents: Opponents | None = None,
    ) -> tuple[list[Turn], list[Episode], dict[str, float]]:
        """`play_games` of training step `plan.step`'s schedule, seeded `plan.seed`: the
        model's turns (schedule order), the episodes, and the backend's own metrics
        (`distributed/...`, `perf/...`, `async/...`)."""
        ...

    def publish(self, model, version: int) -> dict[str, float]:
        """Serve `model`'s weights (policy `version`, after that many optimizer steps) to
        whatever generates; the backend's metrics."""
        ...

    def close(self) -> None:
        """Release workers and engines the backend started."""
        ...


class LocalRollouts:
    """The single-process backend: games are played by the run's own `engine` (which the
    training loop keeps in sync with the learner)."""

    def __init__(self, engine: Engine, tokenizer):
        self.engine, self.tokenizer = engine, tokenizer

    def play(self, plan, params, settings, opponents=None):
        turns, episodes = play_games(
            self.engine, self.tokenizer, plan.schedule, params=params, settings=settings,
            seed=plan.seed, opponents=opponents,
        )  # fmt: skip
        return turns, episodes, {}

    def publish(self, model, version: int) -> dict[str, float]:
        return {}  # `train_step` syncs the run's engine itself (evaluation uses it too)

    def close(self) -> None:
        return None
