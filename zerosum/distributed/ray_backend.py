"""`distributed.backend: ray`: rollout workers as Ray actors, the learner in this process.

Each step (sync mode) the learner splits the step's schedule into one contiguous slice per
worker, the workers play their slices concurrently, and the learner joins the results in
schedule order. Every answer is sampled with its own seed (`seeds.turn_seed`), so a game
plays exactly as it does in the local backend, whichever worker plays it: the two backends
give the same metrics for the same seed (tested). The model reaches the workers once, through
the object store (`weights.ModelPayload`: config and tensors, nothing is downloaded); after
each learner step the new trainable weights (LoRA: the adapter) are put there once and every
worker loads them (`distributed.weight_sync: object_store`, the default), or
(`weight_sync: broadcast`) the learner broadcasts them to the workers over a torch.distributed
group of its own (`zerosum.distributed.broadcast`: gloo, or nccl when the learner and every
worker have GPUs of their own).

Async mode (`distributed.mode: async`): the slices of the next `max_staleness` steps are
sent ahead, so the workers play them while the learner trains; a batch is then up to that
many policy versions old (`async/staleness_mean`, `_max`), and the learner weights each
token by truncated importance sampling against the engine's log-probabilities
(`loss.truncated_importance_weights`, `async/tis_clip_frac`).

Fault tolerance: workers are actors with `max_restarts`. Ray restarts a worker that dies as
an empty process; the learner loads the model into it again with the current weights. The
games of the slice it was playing (or was about to play) in that step are discarded: not
trained on, not in the step's `rollout/` metrics; the run goes on, and
`distributed/worker_restarts` and `distributed/games_discarded` count both per step.
(Replaying the slice instead would be possible, since a game is a function of its seed and
the weights, and would keep the run identical to an uninterrupted one; discarding follows
the design of the issue this implements.) In async mode its slices of later steps already
sent are sent again, to the restarted process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from zerosum.config import TrainConfig
from zerosum.distributed.broadcast import WeightSender, make_layout
from zerosum.distributed.placement import Placement, require_ray
from zerosum.distributed.rollouts import Opponents
from zerosum.distributed.weights import model_payload, trainable_state
from zerosum.distributed.worker import RolloutWorker
from zerosum.engines.base import SamplingParams
from zerosum.models import trainable_parameters
from zerosum.plan import StepPlan, plan_step
from zerosum.rollout import Episode, RolloutSettings, Turn
from zerosum.rundir import RunStopped

# Restarts Ray grants each worker: enough for preemptions over a long run, few enough that a
# worker failing at start-up (out of memory) stops the run instead of looping.
WORKER_MAX_RESTARTS = 8


def slices(n: int, parts: int) -> list[range]:
    """`n` scheduled games as `parts` contiguous slices, sizes differing by at most one."""
    bounds = np.linspace(0, n, parts + 1).round().astype(int)
    return [range(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


@dataclass
class _Step:
    """A step's games as sent to the workers: slice k of `schedule` is `parts[k]`, played
    by worker k, whose answer is `futures[k]`."""

    schedule: list[tuple[str, int]]
    parts: list[range]
    seed: int
    futures: list[Any]


class RayRollouts:
    """`cfg.distributed.rollout_workers` actors, each with its own `cfg.engine` over a copy of
    `model` (policy `version`: the optimizer steps behind it), each in its bundle of the
    run's `placement` (`distributed.placement`). A step calls `play`, then, after the
    learner's update, `publish`.

    Async mode (`distributed.mode: async`, lag K = `max_staleness`): the slices of steps up to
    K ahead are sent to the workers at once, and `publish` queues the new weights behind
    them without waiting, so the workers keep playing while the learner trains. An actor
    runs its calls in order, so step t's games are played by the policy after step t-1-K
    (staleness K once the pipeline is full, 0..K before, and again after a resume, which
    starts it empty): deterministic, like sync mode."""

    def __init__(self, cfg: TrainConfig, model, tokenizer, version: int, placement: Placement):
        ray = require_ray()
        d = cfg.distributed
        actor = ray.remote(max_restarts=WORKER_MAX_RESTARTS)(RolloutWorker)
        # "auto" inside an actor would be any GPU of its node: the learner's choice instead.
        device = cfg.model.device
        if device == "auto":
            device = "cuda" if placement.plan.learner_on_gpu else "cpu"
        self.workers = [
            # Small arguments only: Ray restarts a worker from them (the model comes by `load`),
            # in its bundle of the placement group.
            actor.options(**placement.options(slot)).remote(
                cfg.engine, cfg.rollout.max_concurrent, cfg.run.seed, device, cfg.vllm
            )
            for slot in placement.plan.workers
        ]
        if len(self.workers) != d.rollout_workers:
            raise ValueError(
                f"a placement of {len(self.workers)} rollout workers for {d.rollout_workers}"
            )
        self.cfg = cfg
        self.lag = d.max_staleness if d.mode == "async" else 0
        # The run's starting model, kept in the object store to rebuild restarted workers.
        self.payload = ray.put(model_payload(model, tokenizer))
        self.weights = None  # object-store ref of the trained weights of `version`, if any
        self.version = version
        self.incarnations = ray.get(
            [w.load.remote(self.payload, None, version) for w in self.workers]
        )
        self.restarts = 0  # seen since the step's `play`
        self.model = model  # trained in place; broadcast: a restarted worker loads it as it is
        self.sender: WeightSender | None = None
        if d.weight_sync == "broadcast":
            self.sender = WeightSender(
                ray.util.get_node_ip_address(), len(self.workers) + 1,
                make_layout(trainable_parameters(model)), broadcast_backend(model, placement),
            )  # fmt: skip
            self._form_group()
        self.inflight: dict[int, _Step] = {}  # steps sent to the workers, not yet collected
        self.syncs: list[tuple[int, Any]] = []  # async: weight loads not yet confirmed
        self.play_args: tuple[SamplingParams, RolloutSettings] | None = None  # the run's

    def pids(self) -> list[int]:
        """Each worker's process id."""
        import ray

        return ray.get([w.pid.remote() for w in self.workers])

    def visible_gpus(self) -> list[list[str]]:
        """Each worker's GPUs, as Ray gave them (its CUDA_VISIBLE_DEVICES)."""
        import ray

        return ray.get([w.visible_gpus.remote() for w in self.workers])

    def play(
        self,
        plan: StepPlan,
        params: SamplingParams,
        settings: RolloutSettings,
        opponents: Opponents | None = None,
    ) -> tuple[list[Turn], list[Episode], dict[str, float]]:
        """Training step `plan.step`'s games (`play_games` in one process would play the
        same games) over the workers, and in async mode the next steps' games sent ahead
        (planned by the same `plan_step`); the model's turns (schedule order) and the
        episodes of every slice that completed, with
        `distributed/games_discarded` (and `async/staleness_mean`, `_max` in async mode).
        (Workers do not serve opponent pools yet: the config refuses a pool here.)"""
        if opponents:
            raise ValueError("opponent pools are not supported by distributed.backend 'ray' yet")
        self.restarts = 0
        self._send(plan, params, settings)
        for ahead in range(plan.step + 1, min(plan.step + self.lag, self.cfg.run.steps) + 1):
            self._send(plan_step(self.cfg, ahead), params, settings)
        return self._collect(plan.step)

    def publish(self, model, version: int) -> dict[str, float]:
        """Send `model`'s trainable weights (policy `version`) to every worker: one put into
        the object store read by all, or one broadcast (`distributed.weight_sync`). Sync mode
        waits until every worker serves them; async mode queues them behind the workers'
        games in flight. With the step's `distributed/worker_restarts` (seen in `play` and
        here)."""
        import ray

        start = time.perf_counter()
        self.version = version
        self.model = model
        if self.sender is not None:
            self._broadcast_weights()
        else:
            self.weights = ray.put(trainable_state(model))
            loads = [
                (k, w.set_weights.remote(self.weights, version))
                for k, w in enumerate(self.workers)
            ]  # fmt: skip
            if self.lag:
                self.syncs += loads
            else:
                for k, future in loads:
                    answer = self._get(k, future)
                    if answer is not None:
                        self._note(k, answer[0])
                    if answer is None or not answer[1]:
                        self._bring_back(k)
        return {
            "distributed/worker_restarts": float(self.restarts),
            "perf/weight_sync_s": time.perf_counter() - start,
        }

    def _broadcast_weights(self) -> None:
        """`publish` by broadcast: queue every worker's receive of policy `self.version`,
        then broadcast. Sync mode waits for every worker's answer and, if the broadcast
        failed or a worker was restarted, brings the dead back, forms the group again and
        broadcasts again; async mode leaves the broadcast in flight (the next publish waits
        for it; a failure then forms the group again)."""
        sender = self.sender
        for _ in range(WORKER_MAX_RESTARTS + 1):
            if not sender.wait():  # async: the previous broadcast lost a member
                sender.drop()
            if sender.group is None:
                self._form_group()
            loads = [
                (k, w.receive_weights.remote(sender.generation, self.version))
                for k, w in enumerate(self.workers)
            ]  # fmt: skip
            # From the parameters where they are: a bucket at a time to the group's device.
            sent = sender.send(trainable_parameters(self.model), wait=not self.lag)
            if self.lag:
                self.syncs += loads
                return
            # The broadcast first: it fails at once if a member is gone, and leaving the
            # group then makes the members still waiting for it fail too (gloo closes the
            # connections), so that every worker answers.
            if not sent:
                sender.drop()
            answers = [self._get(k, future) for k, future in loads]
            restarted = [
                k for k, a in enumerate(answers) if a is None or self._note(k, a[0])
            ]  # fmt: skip
            if sent and all(a is not None and a[1] for a in answers):
                return
            sender.drop()
            for k in restarted:
                self._bring_back(k)
        raise RunStopped(
            f"the weight broadcast failed {WORKER_MAX_RESTARTS + 1} times in a row "
            "(distributed.weight_sync: object_store avoids it)"
        )

    def _form_group(self) -> None:
        """Form a new generation of the weight-sync group: every worker announces itself
        (behind the calls queued before, in async mode), then all join at once. A worker
        that dies or restarts first is brought back, and another generation is formed."""
        import ray

        sender = self.sender
        for _ in range(WORKER_MAX_RESTARTS + 1):
            generation = sender.next_generation()
            joins = [
                w.join_weight_sync.remote(
                    sender.address, generation, k + 1, sender.world, sender.layout,
                    sender.backend,
                )
                for k, w in enumerate(self.workers)
            ]  # fmt: skip
            failed: list[int] = []
            while not sender.ready() and not failed:
                # A join that answers before the group is formed did not join.
                done, _ = ray.wait(joins, num_returns=len(joins), timeout=0.5)
                failed = [k for k, f in enumerate(joins) if f in done]
            if failed:
                sender.abandon()
            else:
                try:
                    sender.join()
                except RuntimeError:  # a worker died between announcing itself and joining
                    failed = [-1]
                answers = [self._get(k, f) for k, f in enumerate(joins)]
                for k, answer in enumerate(answers):
                    if answer is not None:
                        self._note(k, answer[0])
                if not failed and all(a is not None and a[1] for a in answers):
                    return
                failed = [k for k, a in enumerate(answers) if a is None or not a[1]]
            sender.drop()
            for k in failed:
                self._bring_back(k)
        raise RunStopped(
            f"the rollout workers did not form the weight-sync group in "
            f"{WORKER_MAX_RESTARTS + 1} tries"
        )

    def _send(self, plan: StepPlan, params: SamplingParams, settings: RolloutSettings) -> None:
        """Give every worker its slice of step `plan.step` (once): the policy it must hold in
        sync mode, whatever it holds by then in async mode."""
        if plan.step in self.inflight:
            return
        schedule, seed, step = plan.schedule, plan.seed, plan.step
        version = None if self.lag else self.version
        games = _Step(list(schedule), slices(len(schedule), len(self.workers)), seed, [])
        games.futures = [
            w.play.remote(version, [schedule[i] for i in part], params, settings, seed)
            for w, part in zip(self.workers, games.parts)
        ]
        self.inflight[step] = games
        self.play_args = (params, settings)

    def _collect(self, step: int) -> tuple[list[Turn], list[Episode], dict[str, float]]:
        """Join step `step`'s slices; a dead or emptied worker's slice is discarded, the
        worker is brought back, and its slices of later steps are sent again."""
        games = self.inflight.pop(step)
        turns: list[Turn] = []
        episodes: list[Episode] = []
        staleness: list[int] = []  # per turn: policy versions behind the learner's
        discarded, slowest = 0, 0.0
        for k, (future, part) in enumerate(zip(games.futures, games.parts)):
            result = self._get(k, future)
            if result is not None:
                self._note(k, result.incarnation)
            if result is None or not result.played:  # died, or restarted empty meanwhile
                discarded += len(part)
                self._bring_back(k)
                self._resend(k)
                continue
            behind = (step - 1) - result.version
            if behind > self.lag:  # a failed broadcast left it on an older policy
                discarded += len(part)
                continue
            for t in result.turns:  # episode indices into the joined list
                t.episode += len(episodes)
            turns += result.turns
            episodes += result.episodes
            staleness += [behind] * len(result.turns)
            slowest = max(slowest, result.seconds)
        self._confirm_syncs()
        metrics = {
            "distributed/games_discarded": float(discarded),
            "perf/rollout_worker_max_s": slowest,
        }
        if self.lag:
            metrics["async/staleness_mean"] = sum(staleness) / max(len(staleness), 1)
            metrics["async/staleness_max"] = float(max(staleness, default=0))
        return turns, episodes, metrics

    def _resend(self, k: int) -> None:
        """Send worker `k` (just brought back) its slices of the steps still in flight."""
        params, settings = self.play_args
        for games in self.inflight.values():
            part = games.parts[k]
            games.futures[k] = self.workers[k].play.remote(
                None if self.lag else self.version, [games.schedule[i] for i in part], params,
                settings, games.seed,
            )  # fmt: skip

    def _confirm_syncs(self) -> None:
        """Async mode: note the answers of the weight loads done by now (a failed one shows
        again in that worker's next slice, which brings the worker back)."""
        import ray

        if not self.syncs:
            return
        futures = [f for _, f in self.syncs]
        done, _ = ray.wait(futures, num_returns=len(futures), timeout=0)
        done_ids = set(done)
        for k, future in [(k, f) for k, f in self.syncs if f in done_ids]:
            answer = self._get(k, future)
            if answer is not None:
                self._note(k, answer[0])
        self.syncs = [(k, f) for k, f in self.syncs if f not in done_ids]

    def close(self) -> None:
        """Stop the workers (the run's `Placement` releases their bundles and Ray), then
        leave the weight-sync group (a broadcast in flight fails with its members gone)."""
        import ray

        for w in self.workers:
            ray.kill(w, no_restart=True)
        self.workers = []
        if self.sender is not None:
            self.sender.close()

    def _get(self, k: int, future) -> Any:
        """Worker `k`'s answer to `future`, or None if the worker died meanwhile."""
        import ray

        try:
            return ray.get(future)
        except ray.exceptions.RayActorError:  # died (Ray restarts it) or unreachable
            return None

    def _bring_back(self, k: int) -> None:
        """Wait for Ray to restart worker `k` and load the current policy into it (with
        broadcast, through the object store, and the group must be formed again)."""
        import ray

        weights = self.weights
        if self.sender is not None:
            self.sender.drop()  # the restarted process is not a member
            weights = ray.put(trainable_state(self.model))
        for _ in range(WORKER_MAX_RESTARTS + 1):
            call = self.workers[k].load.remote(self.payload, weights, self.version)
            try:
                self._note(k, ray.get(call))
                return
            except ray.exceptions.RayActorError:  # died again, or for good
                time.sleep(1.0)
        raise RunStopped(
            f"rollout worker {k} did not come back after {WORKER_MAX_RESTARTS} restarts"
        )

    def _note(self, k: int, incarnation: str) -> bool:
        """Count a restart when worker `k` answers from a new process; whether it did."""
        if incarnation == self.incarnations[k]:
            return False
        self.incarnations[k] = incarnation
        self.restarts += 1
        return True


def broadcast_backend(model, placement: Placement) -> str:
    """The weight broadcast's torch.distributed backend: nccl when the learner's model is on
    a GPU and every worker has whole GPUs of its own (NCCL refuses two members on one GPU, as
    colocated or fractional workers would be), else gloo (through CPU memory)."""
    cuda = next(model.parameters()).device.type == "cuda"
    own_gpus = all(slot.gpus >= 1 for slot in placement.plan.workers)
    return "nccl" if cuda and own_gpus else "gloo"
