"""A rollout worker: one process (a Ray actor) with its own copy of the policy and its own
engine, playing the slices of each step's games it is given.

The class is plain Python; `zerosum.distributed.ray_backend` wraps it with `ray.remote`, so
this module imports without Ray and a worker can be driven directly. A worker starts empty:
the learner `load`s the model into it (at the start of the run, and again whenever Ray has
restarted the process), so its state always comes from the learner, never from a stale copy.
After each step the learner's new trainable weights come either through the object store
(`set_weights`) or by a broadcast of the learner's weight-sync group (`join_weight_sync`,
then `receive_weights`); both load them with `weights.load_trainable`.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from zerosum.distributed.broadcast import (
    BroadcastGroup,
    Layout,
    announce,
    client_store,
    receive_buffers,
)
from zerosum.distributed.weights import ModelPayload, build_model, load_trainable
from zerosum.engines import make_engine
from zerosum.engines.base import EngineName, SamplingParams, VLLMConfig
from zerosum.models import resolve_device
from zerosum.rollout import Episode, RolloutSettings, Turn, play_games


def visible_gpus() -> list[str]:
    """This process's CUDA_VISIBLE_DEVICES as a list (empty when unset or empty)."""
    return [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]


@dataclass
class SliceResult:
    """A worker's answer to `play`: `played` is False when it did not hold the policy version
    asked for (it was restarted since and is empty), and then holds nothing else.
    `incarnation` identifies the worker's process start, `version` the policy that played."""

    incarnation: str
    played: bool
    version: int | None = None
    turns: list[Turn] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)
    seconds: float = 0.0


class RolloutWorker:
    """An engine of kind `engine` (with `vllm` options) over a policy the learner loads."""

    def __init__(
        self,
        engine: EngineName,
        max_batch: int,
        seed: int,
        device: str,
        vllm: VLLMConfig | None = None,
    ):
        # A new id per process start: the learner counts restarts by it (a PID may repeat).
        self.incarnation = uuid.uuid4().hex
        self.tokenizer = None
        self.engine_name, self.max_batch, self.seed = engine, max_batch, seed
        self.device, self.vllm = device, vllm
        self.model = self.engine = None
        self.version: int | None = None
        # distributed.weight_sync broadcast: this worker's member of the learner's group
        self.sync_group: BroadcastGroup | None = None
        self.sync_layout: Layout | None = None
        self.sync_buffers: list[torch.Tensor] = []  # two buckets' room, kept between syncs

    def pid(self) -> int:
        """The worker's process id (the fault-tolerance test kills it)."""
        return os.getpid()

    def visible_gpus(self) -> list[str]:
        """The GPUs this process may use: its CUDA_VISIBLE_DEVICES, which Ray sets to the ids
        of the GPUs it gave the actor (empty: none set)."""
        return visible_gpus()

    def load(self, payload: ModelPayload, weights: dict | None, version: int) -> str:
        """Build the policy from `payload`, then (if given) put the trained `weights` in,
        which make it policy `version`, and start the engine; returns the incarnation."""
        self.tokenizer = payload.tokenizer
        self.model = build_model(payload, resolve_device(self.device))
        if weights is not None:
            load_trainable(self.model, weights)
        self.engine = make_engine(
            self.engine_name, self.model, self.tokenizer, max_batch=self.max_batch,
            seed=self.seed, vllm=self.vllm,
        )  # fmt: skip
        self.version = version
        return self.incarnation

    def set_weights(self, weights: dict, version: int) -> tuple[str, bool]:
        """Serve the learner's trainable weights of policy `version`; the incarnation, and
        False if there is no policy to update (a restarted worker needs `load`)."""
        if self.model is None:
            return self.incarnation, False
        load_trainable(self.model, weights)
        self.engine.sync_weights()
        self.version = version
        return self.incarnation, True

    def join_weight_sync(
        self,
        address: tuple[str, int],
        generation: int,
        rank: int,
        world: int,
        layout: Layout,
        backend: str,
    ) -> tuple[str, bool]:
        """Join `generation`'s weight-sync group (its store at `address`) as `rank` of
        `world`, to receive tensors ordered by `layout` (gloo: through CPU memory; nccl: on
        this worker's GPU); returns once every member has joined, with the incarnation, or
        False if it did not join (restarted since and empty, or the learner gave the
        generation up)."""
        self.sync_group = None  # an older generation's, if any
        if self.model is None:
            return self.incarnation, False
        store = client_store(*address)
        if not announce(store, generation, rank):
            return self.incarnation, False
        try:
            self.sync_group = BroadcastGroup(store, generation, rank, world, backend)
        except RuntimeError:  # a member died before the group was formed
            return self.incarnation, False
        cuda = backend == "nccl"  # gloo: through CPU memory, whatever the model's device
        device = next(self.model.parameters()).device if cuda else torch.device("cpu")
        if self.sync_layout != layout or not self.sync_buffers:
            self.sync_buffers = receive_buffers(layout, device)
        self.sync_layout = layout
        return self.incarnation, True

    def receive_weights(self, generation: int, version: int) -> tuple[str, bool]:
        """Receive the learner's broadcast of policy `version`'s trainable weights on
        `generation`'s group, bucket by bucket, and serve them (as `set_weights` does); the
        incarnation, and False if this worker is not in that group (restarted since) or the
        broadcast failed. A broadcast that fails after some buckets were loaded leaves no
        policy (the learner loads it again, as into a restarted worker), never a mix."""
        group = self.sync_group
        if self.model is None or group is None or group.generation != generation:
            return self.incarnation, False
        loaded = 0
        try:
            for part in group.receive(self.sync_layout, self.sync_buffers):
                load_trainable(self.model, part)
                loaded += 1
        except RuntimeError:  # a member died: the learner forms the group again
            self.sync_group = None
            if loaded:
                self.model = self.engine = None
                self.version = None
            return self.incarnation, False
        self.engine.sync_weights()
        self.version = version
        return self.incarnation, True

    def parameters(self) -> dict[str, torch.Tensor]:
        """The policy's every parameter and buffer, on the CPU (tests compare them with the
        learner's; through Ray a copy, called directly the live tensors)."""
        return {n: t.detach().cpu() for n, t in self.model.state_dict().items()}

    def play(
        self,
        version: int | None,
        schedule: Sequence[tuple[str, int]],
        params: SamplingParams,
        settings: RolloutSettings,
        seed: int,
    ) -> SliceResult:
        """Play `schedule` (a slice of the step's games) with policy `version` (None: the one
        it holds, async mode), seeded as the whole step is (`play_games`'s per-answer seeds
        make the slice's games independent of the rest), unless this worker holds no policy
        or another version."""
        if self.model is None or version not in (None, self.version):
            return SliceResult(self.incarnation, played=False)
        start = time.perf_counter()
        turns, episodes = play_games(
            self.engine, self.tokenizer, schedule, params=params, settings=settings, seed=seed
        )
        seconds = time.perf_counter() - start
        return SliceResult(self.incarnation, True, self.version, turns, episodes, seconds)
