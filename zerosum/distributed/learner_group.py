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

`distributed.fsdp` shards instead (FSDP2, `fully_shard` per decoder layer and the whole
model): every rank, rank 0 included, trains a sharded copy, holding 1/M of the trained
weights, their gradients and the optimizer state; FSDP gathers each layer's weights for its
forward and backward pass and reduce-scatters (sums) the gradients. Rank 0 also keeps the
full model it had, which plays, evaluates, publishes and is checkpointed as without FSDP:
after every step the ranks gather the new trained weights into it, and before a checkpoint
the optimizer state too (released again after the save).
"""

from __future__ import annotations

import copy
import os
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta

import torch

from zerosum.config import TrainConfig
from zerosum.distributed.placement import Placement, Slot
from zerosum.distributed.weights import ModelPayload, build_model, model_payload
from zerosum.distributed.worker import visible_gpus
from zerosum.learner import Learner, LearnerSettings, build_optimizer
from zerosum.magnet import Magnet
from zerosum.models import is_lora, trainable_parameters
from zerosum.rundir import RunStopped
from zerosum.scoring import Sample, merge_duplicates
from zerosum.tables import one_line

# Stats that are the same on every rank (the whole batch's), not shares to add up.
_SHARED_STATS = {"loss/grad_norm", "magnet/alpha", "magnet/age"}
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

    def micro_batches(self, count: int) -> int:
        return count  # one all-reduce per epoch, however many passes each rank made

    @staticmethod
    def _device() -> torch.device:
        import torch.distributed as dist

        return torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")


class FsdpSync(TorchDistributedSync):
    """`learner.GradientSync` of FSDP-sharded ranks: FSDP sums the gradients itself, in a
    reduce-scatter at every backward pass, so every rank runs as many passes."""

    def sum_grads(self, params: Sequence[torch.nn.Parameter]) -> None:
        pass  # already summed by FSDP (gradient divide factor 1)

    def micro_batches(self, count: int) -> int:
        import torch.distributed as dist

        t = torch.tensor([count], dtype=torch.int64, device=self._device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())


def shard_model(model, world: int):
    """`model` sharded in place over the `world` ranks (FSDP2): one unit per decoder layer,
    and the whole model (embeddings, final norm, output layer) as the root unit."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule, fully_shard

    mesh = init_device_mesh(next(model.parameters()).device.type, (world,))
    base = model.get_base_model() if is_lora(model) else model
    for layer in base.get_decoder().layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    for module in model.modules():
        if isinstance(module, FSDPModule):  # each rank's loss is a share of the batch's: sum
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)  # gloo has no pre-scaled sum
    return model


def sharded_learner(cfg: TrainConfig, model, optimizer_state: dict, pad_id: int, world: int):
    """A `Learner` training `model` sharded over the ranks, its optimizer starting from
    `optimizer_state` (a full optimizer's `state_dict()`, as rank 0 holds it)."""
    from dataclasses import replace

    from torch.distributed.tensor import DTensor, distribute_tensor

    model = shard_model(model, world)
    optimizer = build_optimizer(cfg.optim, model)
    params = list(trainable_parameters(model).values())
    for i, p in enumerate(params):
        saved = optimizer_state["state"].get(i, {})
        optimizer.state[p] = {
            # Every rank holds the whole tensor: each keeps its own shard, no communication.
            k: distribute_tensor(v.to(p.device), p.device_mesh, p.placements, src_data_rank=None)
            if isinstance(p, DTensor) and v.shape == p.shape
            else v.clone()
            for k, v in saved.items()
        }
    # The shared-prefix forward runs the decoder alone, outside the sharded model's forward.
    settings = replace(LearnerSettings.from_config(cfg), shared_prefix=False)
    return Learner(model, optimizer, settings, pad_id, sync=FsdpSync())


def gather_trainable(model) -> dict[str, torch.Tensor]:
    """The sharded `model`'s trained weights, whole (a collective: every rank calls it)."""
    return {n: p.full_tensor() for n, p in trainable_parameters(model).items()}


def gather_optimizer_state(learner: Learner) -> dict[int, dict]:
    """The sharded optimizer's per-parameter state, whole, keyed as a full optimizer's
    `state_dict()["state"]` (a collective: every rank calls it)."""
    params = list(trainable_parameters(learner.model).values())
    return {
        i: {
            k: v.full_tensor() if hasattr(v, "full_tensor") else v.clone()
            for k, v in learner.optimizer.state[p].items()
        }  # fmt: skip
        for i, p in enumerate(params)
        if p in learner.optimizer.state
    }


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
        self.world = world
        self.cuda = cuda
        self.learner: Learner | None = None
        self.fsdp = False

    def load(
        self,
        cfg: TrainConfig,
        payload: ModelPayload,
        optimizer_state: dict,
        magnet_state: dict | None = None,
    ) -> None:
        """Build the model from rank 0's `payload` and an optimizer with its state (with
        FSDP, this rank's shards of both), and rank 0's magnet from `magnet_state`."""
        # Rank 0's device type ("auto" here would be any GPU of this node; Ray set the one).
        model = build_model(payload, torch.device("cuda" if self.cuda else "cpu"))
        pad_id = payload.tokenizer.pad_token_id
        self.fsdp = cfg.distributed.fsdp
        if self.fsdp:
            self.learner = sharded_learner(cfg, model, optimizer_state, pad_id, self.world)
            return
        optimizer = build_optimizer(cfg.optim, model)
        optimizer.load_state_dict(optimizer_state)
        settings = LearnerSettings.from_config(cfg)
        magnet = None
        if magnet_state is not None:
            magnet = Magnet.from_config(cfg.algo, model, magnet_state)
        self.learner = Learner(
            model, optimizer, settings, pad_id, magnet, sync=TorchDistributedSync()
        )

    def step(self, samples: list[Sample], seed: int, lr: float, step: int) -> dict[str, float]:
        """`Learner.step` of training step `step` on this rank's share, seeded as rank 0 is
        (with FSDP, then the gather of the new weights into rank 0's full copy)."""
        torch.manual_seed(seed)
        stats = self.learner.step(samples, lr=lr, step=step)
        if self.fsdp:
            gather_trainable(self.learner.model)
        return stats

    def gather_optimizer_state(self) -> None:
        """With FSDP: this rank's part in gathering the optimizer state to rank 0."""
        gather_optimizer_state(self.learner)

    def parameters(self) -> dict[str, torch.Tensor]:
        """The rank's trainable parameters (tests compare them with rank 0's); with FSDP,
        this rank's shards."""
        model = self.learner.model
        local = {n: getattr(p, "to_local", p.detach)() for n, p in
                 trainable_parameters(model).items()}  # fmt: skip
        return {n: t.detach().cpu() for n, t in local.items()}

    def pid(self) -> int:
        return os.getpid()

    def visible_gpus(self) -> list[str]:
        """The GPUs Ray gave this rank (its CUDA_VISIBLE_DEVICES)."""
        return visible_gpus()

    def close(self) -> None:
        import torch.distributed as dist

        dist.destroy_process_group()


class LearnerGroup:
    """Ranks 1..`world`-1 as Ray actors beside this process's `learner` (rank 0), which must
    be at the run's current model and optimizer state."""

    def __init__(
        self,
        cfg: TrainConfig,
        learner: Learner,
        tokenizer,
        world: int,
        placement: Placement | None = None,
    ):
        import ray

        self.world = world
        self.fsdp = cfg.distributed.fsdp
        model = learner.model
        cuda = next(model.parameters()).device.type == "cuda"
        address = f"tcp://{_node_ip()}:{_free_port()}"
        actor = ray.remote(LearnerRank)
        # Sync mode: the ranks work while the rollout workers wait, so they reserve no CPU.
        # Without a placement (tests driving a group directly), a GPU each on GPUs.
        slots = placement.plan.ranks if placement else [Slot(None, 0.0, float(cuda))] * (world - 1)
        if len(slots) != world - 1:
            raise ValueError(f"a placement of {len(slots) + 1} learner ranks for {world} ranks")
        self.ranks = [
            actor.options(**(placement.options(s) if placement else _plain(s))).remote(
                address, r, world, cuda
            )
            for r, s in enumerate(slots, 1)
        ]
        join_group(address, 0, world, cuda)  # returns once every rank has joined
        payload = ray.put(model_payload(model, tokenizer))
        optimizer_state = learner.optimizer.state_dict()
        state_ref = ray.put(optimizer_state)
        magnet = learner.magnet.state_dict() if learner.magnet is not None else None
        loading = [r.load.remote(cfg, payload, state_ref, magnet) for r in self.ranks]
        self.full_model = model  # rank 0's: plays, evaluates, publishes, is checkpointed
        self.rank0_optimizer = learner.optimizer
        if self.fsdp:  # sharding is collective: alongside the other ranks' `load`
            self.learner = sharded_learner(
                cfg, copy.deepcopy(model), optimizer_state, tokenizer.pad_token_id, world
            )
            learner.optimizer.state.clear()  # the shards hold it now
        else:
            learner.sync = TorchDistributedSync()
            self.learner = learner
        ray.get(loading)

    def step(self, samples: Sequence[Sample], seed: int, lr: float, step: int) -> dict[str, float]:
        """Training step `step`'s update on the whole batch at learning rate `lr`, every rank
        on its share (each with its copy of the magnet); the merged stats."""
        import ray

        # Merged before sharding, so the ranks score the rows the single learner would.
        turns = len(samples)
        samples = merge_duplicates(samples)
        futures = [r.step.remote(shard(samples, k, self.world), seed, lr, step) for k, r in
                   enumerate(self.ranks, 1)]  # fmt: skip
        torch.manual_seed(seed)
        try:
            own = self.learner.step(shard(samples, 0, self.world), lr=lr, step=step)
            if self.fsdp:  # the new weights, whole, into the model rank 0 plays with
                start = time.perf_counter()
                with torch.no_grad():
                    full = gather_trainable(self.learner.model)
                    for n, p in trainable_parameters(self.full_model).items():
                        p.copy_(full[n])
                own["perf/fsdp_gather_s"] = time.perf_counter() - start
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
        stats["perf/duplicate_turns"] = 1.0 - len(samples) / max(turns, 1)
        stats["perf/learner_rank_wait_s"] = time.perf_counter() - start
        return stats

    @contextmanager
    def full_optimizer(self) -> Iterator[None]:
        """Inside, rank 0's optimizer holds the whole optimizer state (to checkpoint it): with
        FSDP gathered from the shards and released on leaving; without, it always does."""
        if not self.fsdp:
            yield
            return
        import ray

        futures = [r.gather_optimizer_state.remote() for r in self.ranks]
        state = self.rank0_optimizer.state_dict()
        state["state"] = gather_optimizer_state(self.learner)
        ray.get(futures)
        self.rank0_optimizer.load_state_dict(state)
        try:
            yield
        finally:
            self.rank0_optimizer.state.clear()

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

    def visible_gpus(self) -> list[list[str]]:
        """Ranks 1..M-1's GPUs, as Ray gave them."""
        import ray

        return ray.get([r.visible_gpus.remote() for r in self.ranks])

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


def _plain(slot: Slot) -> dict[str, float]:
    return {"num_cpus": slot.cpus, "num_gpus": slot.gpus}


def _node_ip() -> str:
    import ray

    return ray.util.get_node_ip_address()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]
