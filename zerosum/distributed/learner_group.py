"""A data-parallel learner of `distributed.learner_ranks` ranks: the `zerosum train` process
is rank 0 (it keeps the model, optimizer and checkpoints as always) and ranks 1..M-1 are Ray
actors with copies of both, joined in one torch.distributed group (gloo on CPUs, nccl on
GPUs).

Each step the batch's samples are dealt round-robin to the ranks; every rank runs the usual
`Learner.step` on its share, with the token count and the gradients summed over the ranks
before clipping (`TorchDistributedSync`). The losses are normalised by the whole batch, so
the summed gradient is exactly the single-process gradient up to float rounding, and every
rank clips and steps on the same numbers: the copies stay identical (tested against the
single-process learner on a fixed batch). The gradient sum is one all-reduce of a flattened
buffer per epoch, not DDP's bucketed overlap with the backward pass: simpler, and the same
arithmetic.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from datetime import timedelta

import torch

from zerosum.config import TrainConfig
from zerosum.distributed.weights import ModelPayload, build_model
from zerosum.learner import Learner, LearnerSettings, Sample
from zerosum.models import one_line, trainable_parameters
from zerosum.rundir import RunStopped

# Stats that are the same on every rank (the whole batch's), not shares to add up.
_SHARED_STATS = {"loss/grad_norm"}
# How long ranks wait for each other to join the group.
_JOIN_TIMEOUT = timedelta(minutes=10)
# How long a rank may take to answer a ping (or to close) before it counts as lost.
_PING_TIMEOUT_S = 10.0


class TorchDistributedSync:
    """`learner.GradientSync` over the default torch.distributed process group."""

    def sum(self, value: float) -> float:
        import torch.distributed as dist

        t = torch.tensor([float(value)], dtype=torch.float64, device=self._device())
        dist.all_reduce(t)
        return float(t.item())

    def sum_grads(self, params: Sequence[torch.nn.Parameter]) -> None:
        import torch.distributed as dist

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])  # one all-reduce, not one per tensor
        dist.all_reduce(flat)
        offset = 0
        for p, g in zip(params, grads):
            p.grad = flat[offset : offset + g.numel()].view_as(g)
            offset += g.numel()

    @staticmethod
    def _device() -> torch.device:
        import torch.distributed as dist

        return torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")


def join_group(address: str, rank: int, world: int, cuda: bool) -> None:
    """Join the learner's process group (rendezvous at `address`, tcp://host:port)."""
    import torch.distributed as dist

    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(
        backend, init_method=address, rank=rank, world_size=world, timeout=_JOIN_TIMEOUT
    )


def shard(samples: Sequence[Sample], rank: int, world: int) -> list[Sample]:
    """Rank `rank`'s share of a batch: every `world`-th sample, so lengths spread evenly."""
    return list(samples[rank::world])


def merge_stats(per_rank: Sequence[dict[str, float]]) -> dict[str, float]:
    """One step's stats from every rank's: the loss statistics are shares of the whole
    batch's and add up (a rank without samples has none); `loss/grad_norm` is the same on
    every rank; `perf/` ratios are averaged over the ranks, counts added."""
    out: dict[str, float] = {}
    ratios: dict[str, list[float]] = {}
    for stats in per_rank:
        for key, value in stats.items():
            if key in _SHARED_STATS or key == "loss/skipped_empty_batch":
                out[key] = value
            elif key.startswith("perf/") and key.endswith("_fraction"):
                ratios.setdefault(key, []).append(value)
            else:
                out[key] = out.get(key, 0.0) + value
    out.update({k: sum(v) / len(v) for k, v in ratios.items()})
    return out


class LearnerRank:
    """Rank `rank` (>= 1) of the learner: a model and optimizer equal to rank 0's."""

    def __init__(self, address: str, rank: int, world: int, cuda: bool):
        join_group(address, rank, world, cuda)
        self.learner: Learner | None = None

    def load(self, cfg: TrainConfig, payload: ModelPayload, optimizer_state: dict) -> None:
        """Build the model from rank 0's `payload` and an optimizer with its state."""
        from zerosum.models import resolve_device
        from zerosum.train import build_optimizer

        model = build_model(payload, resolve_device(cfg.model.device))
        optimizer = build_optimizer(cfg.optim, model)
        optimizer.load_state_dict(optimizer_state)
        pad_id = payload.tokenizer.pad_token_id
        settings = LearnerSettings.from_config(cfg)
        self.learner = Learner(model, optimizer, settings, pad_id, sync=TorchDistributedSync())

    def step(self, samples: list[Sample], seed: int) -> dict[str, float]:
        """`Learner.step` on this rank's share, seeded as rank 0 is."""
        torch.manual_seed(seed)
        return self.learner.step(samples)

    def parameters(self) -> dict[str, torch.Tensor]:
        """The rank's trainable parameters (tests compare them with rank 0's)."""
        model = self.learner.model
        return {n: p.detach().cpu() for n, p in trainable_parameters(model).items()}

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        import torch.distributed as dist

        dist.destroy_process_group()


class LearnerGroup:
    """Ranks 1..`world`-1 as Ray actors beside this process's `learner` (rank 0), which must
    be at the run's current model and optimizer state."""

    def __init__(self, cfg: TrainConfig, learner: Learner, tokenizer, world: int):
        import ray

        from zerosum.distributed.weights import model_payload

        self.world = world
        model = learner.model
        cuda = next(model.parameters()).device.type == "cuda"
        address = f"tcp://{_node_ip()}:{_free_port()}"
        actor = ray.remote(num_cpus=0, num_gpus=1 if cuda else 0)(LearnerRank)
        # Sync mode: the ranks work while the rollout workers wait, so they reserve no CPU.
        self.ranks = [actor.remote(address, r, world, cuda) for r in range(1, world)]
        join_group(address, 0, world, cuda)  # returns once every rank has joined
        learner.sync = TorchDistributedSync()
        self.learner = learner
        payload = ray.put(model_payload(model, tokenizer))
        state = ray.put(learner.optimizer.state_dict())
        ray.get([r.load.remote(cfg, payload, state) for r in self.ranks])

    def step(self, samples: Sequence[Sample], seed: int) -> dict[str, float]:
        """One update on the whole batch, every rank on its share; the merged stats."""
        import ray

        futures = [r.step.remote(shard(samples, k, self.world), seed) for k, r in
                   enumerate(self.ranks, 1)]  # fmt: skip
        torch.manual_seed(seed)
        try:
            own = self.learner.step(shard(samples, 0, self.world))
            start = time.perf_counter()
            others = ray.get(futures)
        except (RuntimeError, ray.exceptions.RayError) as err:
            # A dead rank breaks the collective (gloo: the peer's connection closes) or its
            # future. Ranks are not restarted: a new one would need the optimizer state of
            # the step it died in. Other errors are the learner's own and go up as they are.
            if lost := self.lost_ranks():
                raise RunStopped(f"learner rank {lost[0]} died ({one_line(err, 200)})") from err
            raise
        stats = merge_stats([own, *others])
        stats["perf/learner_rank_wait_s"] = time.perf_counter() - start
        return stats

    def lost_ranks(self) -> list[int]:
        """The ranks (1..M-1) whose actor no longer answers."""
        import ray

        lost = []
        for k, r in enumerate(self.ranks, 1):
            try:
                ray.get(r.pid.remote(), timeout=_PING_TIMEOUT_S)
            except (ray.exceptions.RayError, TimeoutError):
                lost.append(k)
        return lost

    def pids(self) -> list[int]:
        """Ranks 1..M-1's process ids."""
        import ray

        return ray.get([r.pid.remote() for r in self.ranks])

    def close(self) -> None:
        """Stop the ranks; one that died already is skipped, so closing never hides why."""
        import ray
        import torch.distributed as dist

        ray.wait([r.close.remote() for r in self.ranks], num_returns=len(self.ranks),
                 timeout=_PING_TIMEOUT_S)  # fmt: skip
        for r in self.ranks:
            ray.kill(r)
        self.ranks = []
        self.learner.sync = None
        dist.destroy_process_group()


def _node_ip() -> str:
    import ray

    return ray.util.get_node_ip_address()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]
