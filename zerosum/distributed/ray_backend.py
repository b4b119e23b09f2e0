"""`distributed.backend: ray`: rollout workers as Ray actors, the learner in this process.

Each step (sync mode) the learner splits the step's schedule into one contiguous slice per
worker, the workers play their slices concurrently, and the learner joins the results in
schedule order. Every answer is sampled with its own seed (`seeds.turn_seed`), so a game
plays exactly as it does in the local backend, whichever worker plays it: the two backends
give the same metrics for the same seed (tested). The model reaches the workers once, through
the object store (`weights.ModelPayload`: config and tensors, nothing is downloaded); after
each learner step the new trainable weights (LoRA: the adapter) are put there once and every
worker loads them.

Fault tolerance: workers are actors with `max_restarts`. Ray restarts a worker that dies as
an empty process; the learner loads the model into it again with the current weights. The
games of the slice it was playing (or was about to play) in that step are discarded: not
trained on, not in the step's `rollout/` metrics; the run goes on, and
`distributed/worker_restarts` and `distributed/games_discarded` count both per step.
(Replaying the slice instead would be possible, since a game is a function of its seed and
the weights, and would keep the run identical to an uninterrupted one; discarding follows
the design of the issue this implements.)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from zerosum.config import TrainConfig
from zerosum.distributed import Opponents
from zerosum.distributed.weights import model_payload, trainable_state
from zerosum.distributed.worker import RolloutWorker
from zerosum.engines import SamplingParams
from zerosum.rollout import Episode, RolloutSettings, Turn

# Restarts Ray grants each worker: enough for preemptions over a long run, few enough that a
# worker failing at start-up (out of memory) stops the run instead of looping.
WORKER_MAX_RESTARTS = 8


def require_ray():
    """The `ray` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError(
            "distributed.backend 'ray' needs Ray: pip install 'zerosum[ray]'"
        ) from None
    return ray


def slices(n: int, parts: int) -> list[range]:
    """`n` scheduled games as `parts` contiguous slices, sizes differing by at most one."""
    bounds = np.linspace(0, n, parts + 1).round().astype(int)
    return [range(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _check_resources(ray, workers: int, gpus_each: int, owned: bool) -> None:
    """Each worker reserves a CPU (and a GPU with a GPU learner); Ray would wait forever for
    more than the cluster has. An error on a Ray started here; a warning on a cluster, whose
    autoscaler may still add nodes."""
    have = ray.cluster_resources()
    for name, need in (("CPU", workers), ("GPU", workers * gpus_each)):
        if need and have.get(name, 0) < need:
            message = (
                f"distributed.rollout_workers = {workers} needs {need} {name}s (one per worker); "
                f"the Ray cluster has {have.get(name, 0):g}"
            )
            if owned:
                raise ValueError(message)
            print(f"zerosum: warning: {message}; waiting for more", file=sys.stderr)


class RayRollouts:
    """`cfg.distributed.rollout_workers` actors, each with its own `cfg.engine` over a copy of
    `model` (policy `version`: the optimizer steps behind it). A step calls `play`, then,
    after the learner's update, `publish`."""

    def __init__(self, cfg: TrainConfig, model, tokenizer, version: int):
        ray = require_ray()
        d = cfg.distributed
        # A Ray already running in this process (a test, a notebook) is used and left running.
        self.owns_ray = not ray.is_initialized()
        if self.owns_ray:
            options: dict[str, Any] = {"address": d.ray_address}
            if d.ray_address is None:  # a new single-machine Ray
                options["include_dashboard"] = False
            ray.init(**options)
        gpus = 1 if next(model.parameters()).device.type == "cuda" else 0
        try:
            _check_resources(ray, d.rollout_workers, gpus, self.owns_ray)
        except ValueError:
            ray.shutdown()  # (only raised for a Ray started here)
            raise
        actor = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=WORKER_MAX_RESTARTS)(
            RolloutWorker
        )
        self.workers = [
            # Small arguments only: Ray restarts a worker from them (the model comes by `load`).
            actor.remote(
                cfg.engine, cfg.rollout.max_concurrent, cfg.run.seed, cfg.model.device, cfg.vllm
            )
            for _ in range(d.rollout_workers)
        ]
        # The run's starting model, kept in the object store to rebuild restarted workers.
        self.payload = ray.put(model_payload(model, tokenizer))
        self.weights = None  # object-store ref of the trained weights of `version`, if any
        self.version = version
        self.incarnations = ray.get(
            [w.load.remote(self.payload, None, version) for w in self.workers]
        )
        self.restarts = 0  # seen since the step's `play`

    def pids(self) -> list[int]:
        """Each worker's process id."""
        import ray

        return ray.get([w.pid.remote() for w in self.workers])

    def play(
        self,
        schedule: Sequence[tuple[str, int]],
        params: SamplingParams,
        settings: RolloutSettings,
        seed: int,
        opponents: Opponents | None = None,
    ) -> tuple[list[Turn], list[Episode], dict[str, float]]:
        """Play `schedule` over the workers, as `play_games(..., seed)` plays it in one
        process; the model's turns (schedule order) and the episodes of every slice that
        completed, with `distributed/games_discarded`. (Workers do not serve opponent pools
        yet: the config refuses a pool with this backend.)"""
        if opponents:
            raise ValueError("opponent pools are not supported by distributed.backend 'ray' yet")
        self.restarts = 0
        parts = slices(len(schedule), len(self.workers))
        futures = [
            w.play.remote(self.version, [schedule[i] for i in part], params, settings, seed)
            for w, part in zip(self.workers, parts)
        ]
        turns: list[Turn] = []
        episodes: list[Episode] = []
        discarded, slowest = 0, 0.0
        for k, (future, part) in enumerate(zip(futures, parts)):
            result = self._get(k, future)
            if result is not None:
                self._note(k, result.incarnation)
            if result is None or not result.played:  # died, or restarted empty meanwhile
                discarded += len(part)
                self._bring_back(k)
                continue
            for t in result.turns:  # episode indices into the joined list
                t.episode += len(episodes)
            turns += result.turns
            episodes += result.episodes
            slowest = max(slowest, result.seconds)
        return (
            turns,
            episodes,
            {
                "distributed/games_discarded": float(discarded),
                "perf/rollout_worker_max_s": slowest,
            },
        )

    def publish(self, model, version: int) -> dict[str, float]:
        """Send `model`'s trainable weights (policy `version`) to every worker, one put into
        the object store read by all, and wait until each serves them; with the step's
        `distributed/worker_restarts` (seen in `play` and here)."""
        import ray

        start = time.perf_counter()
        self.weights = ray.put(trainable_state(model))
        self.version = version
        futures = [w.set_weights.remote(self.weights, version) for w in self.workers]
        for k, future in enumerate(futures):
            answer = self._get(k, future)
            if answer is not None:
                self._note(k, answer[0])
            if answer is None or not answer[1]:
                self._bring_back(k)
        return {
            "distributed/worker_restarts": float(self.restarts),
            "perf/weight_sync_s": time.perf_counter() - start,
        }

    def close(self) -> None:
        """Stop the workers (and Ray, if this run started it)."""
        import ray

        for w in self.workers:
            ray.kill(w, no_restart=True)
        self.workers = []
        if self.owns_ray:
            ray.shutdown()

    def _get(self, k: int, future) -> Any:
        """Worker `k`'s answer to `future`, or None if the worker died meanwhile."""
        import ray

        try:
            return ray.get(future)
        except ray.exceptions.RayActorError:  # died (Ray restarts it) or unreachable
            return None

    def _bring_back(self, k: int) -> None:
        """Wait for Ray to restart worker `k` and load the current policy into it."""
        import ray

        for _ in range(WORKER_MAX_RESTARTS + 1):
            call = self.workers[k].load.remote(self.payload, self.weights, self.version)
            try:
                self._note(k, ray.get(call))
                return
            except ray.exceptions.RayActorError:  # died again, or for good
                time.sleep(1.0)
        raise RuntimeError(
            f"rollout worker {k} did not come back after {WORKER_MAX_RESTARTS} restarts; "
            "the run stops (resume it from its last checkpoint)"
        )

    def _note(self, k: int, incarnation: str) -> None:
        """Count a restart when worker `k` answers from a new process."""
        if incarnation != self.incarnations[k]:
            self.incarnations[k] = incarnation
            self.restarts += 1
