"""Where a run's processes go on Ray and what each reserves (`distributed.placement`).

A run on Ray is the driver (the `zerosum train` process: learner rank 0, which holds the
model), the M-1 other learner ranks and the W rollout workers (both Ray actors).
`plan_resources` counts what they need, a pure function of the config and of whether the
learner is on a GPU; `shortfall` compares that with what a cluster has; `Placement` reserves
the plan as one Ray placement group and gives every actor its bundle.

- `split` (the default): one GPU per learner rank (the driver's included) and, for each
  worker, a CPU and `worker_gpus` GPUs of its own (1 unless set; a fraction packs several
  workers on a GPU, a whole number above 1 is for a tensor-parallel engine).
- `colocated`: one bundle per learner GPU; the workers are dealt round-robin over those
  GPUs (worker i to learner rank i mod M), and every actor on a GPU (the rank and its k
  workers) asks for 1/(k+1) of it, so Ray puts them on that GPU and nothing else beside
  them. Memory is the engines' affair: a vLLM engine that sleeps while the learner steps
  (`vllm.sleep`), as the single-GPU recipe does.
- Learner on the CPU: each worker reserves one CPU, the ranks nothing (in sync mode they work
  while the workers wait), in either mode.

The driver is not an actor, so Ray cannot place it: its bundle, pinned to the driver's node,
reserves its GPU, and a probe actor in that bundle reads which GPU Ray gave it; the driver
then trains on that GPU (`driver_cuda_index`, `torch.cuda.set_device`), so no worker or rank
is ever handed the driver's GPU.

Strategy PACK in both modes: it puts the bundles on as few nodes as possible, so the learner
ranks share a node (their all-reduce goes over NVLink, not the network) and the workers
stay near the learner (weight sync through the object store of one node), and it still
spills onto other nodes when one is full. SPREAD would scatter the ranks over the network
for nothing; STRICT_PACK would refuse a run larger than one node. A colocated worker's
GPU is fixed by its bundle, whichever strategy places the bundles.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zerosum.config import DistributedConfig

# How long a Ray started here may take to place a group it has the resources for.
READY_S = 60.0
# How often a cluster that cannot place the group yet is reported while zerosum waits.
WAIT_REPORT_S = 60.0
# The share of the driver's node resource its bundle takes: a pin, not a reservation.
_NODE_PIN = 0.001


def require_ray():
    """The `ray` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError(
            "distributed.backend 'ray' needs Ray: pip install 'zerosum[ray]'"
        ) from None
    return ray


@dataclass(frozen=True)
class Slot:
    """What one actor asks Ray for: its bundle of the placement group (None: no bundle, it
    reserves nothing), and the CPUs and GPUs it takes from it."""

    bundle: int | None
    cpus: float
    gpus: float


@dataclass(frozen=True)
class ResourcePlan:
    """A run's reservation: the placement group's `bundles`, the driver's bundle (None when
    the learner is on the CPU), the slots of learner ranks 1..M-1 and of the workers, and
    `needs`: per resource, what each part of the run needs (for the messages)."""

    learner_on_gpu: bool
    bundles: tuple[dict[str, float], ...]
    driver: int | None
    ranks: tuple[Slot, ...]
    workers: tuple[Slot, ...]
    needs: dict[str, dict[str, float]]

    def total(self, resource: str) -> float:
        """How much of `resource` ("CPU", "GPU") the run needs."""
        return sum(self.needs.get(resource, {}).values())


def gpu_share(actors: int) -> float:
    """Each actor's share of a GPU that `actors` share: 1/actors rounded down to Ray's
    4-decimal granularity, so the shares never add up to more than the GPU."""
    return math.floor(10_000 / actors) / 10_000


def plan_resources(d: DistributedConfig, learner_on_gpu: bool) -> ResourcePlan:
    """What `d`'s run needs from Ray (module docstring), with the learner on a GPU or not."""
    ranks, workers = d.learner_ranks, d.rollout_workers
    if not learner_on_gpu:
        return ResourcePlan(
            learner_on_gpu, tuple({"CPU": 1.0} for _ in range(workers)), None,
            tuple(Slot(None, 0.0, 0.0) for _ in range(1, ranks)),
            tuple(Slot(i, 1.0, 0.0) for i in range(workers)),
            {"CPU": {"rollout workers": float(workers)}, "GPU": {}},
        )  # fmt: skip
    gpus = {"driver": 1.0, "learner ranks": float(ranks - 1)}
    if d.placement == "split":
        each = 1.0 if d.worker_gpus is None else d.worker_gpus
        bundles = [{"GPU": 1.0} for _ in range(ranks)]
        bundles += [{"CPU": 1.0, "GPU": each} for _ in range(workers)]
        rank_slots = [Slot(r, 0.0, 1.0) for r in range(1, ranks)]
        worker_slots = [Slot(ranks + i, 1.0, each) for i in range(workers)]
        gpus["rollout workers"] = workers * each
    else:  # colocated: worker i on learner GPU i mod M
        per_gpu = [len(range(g, workers, ranks)) for g in range(ranks)]
        share = gpu_share(max(per_gpu) + 1)  # the rank and its workers
        bundles = [{"GPU": 1.0, **({"CPU": float(n)} if n else {})} for n in per_gpu]
        rank_slots = [Slot(r, 0.0, share) for r in range(1, ranks)]
        worker_slots = [Slot(i % ranks, 1.0, share) for i in range(workers)]
    return ResourcePlan(
        learner_on_gpu, tuple(bundles), 0, tuple(rank_slots), tuple(worker_slots),
        {"CPU": {"rollout workers": float(workers)}, "GPU": gpus},
    )  # fmt: skip


def shortfall(plan: ResourcePlan, cluster: Mapping[str, float]) -> str | None:
    """One line naming what `plan` needs beyond `cluster` (`ray.cluster_resources()`), or
    None if it fits by count (on one node that is enough; across nodes a bundle must also
    fit on one node, which only placing the group shows)."""
    short = [
        (name, plan.total(name), float(cluster.get(name, 0.0)))
        for name in ("GPU", "CPU")
        if plan.total(name) > cluster.get(name, 0.0) + 1e-9
    ]
    if not short:
        return None

    def amount(n: float, name: str) -> str:
        return f"{n:g} {name}" + ("" if n == 1 else "s")

    needs = " and ".join(
        f"{amount(need, name)} ("
        + ", ".join(f"{part} {n:g}" for part, n in plan.needs[name].items() if n)
        + ")"
        for name, need, _ in short
    )
    if len(short) == 1:
        has = f"{short[0][2]:g}"
    else:
        has = " and ".join(amount(have, name) for name, _, have in short)
    hint = "lower distributed.rollout_workers or distributed.learner_ranks"
    gpus = [have for name, _, have in short if name == "GPU"]
    if gpus and gpus[0] < 1:
        hint = "the learner is on a GPU: model.device cpu, or a Ray cluster with GPUs"
    elif gpus and plan.needs["GPU"].get("rollout workers"):
        hint += ", or distributed.placement: colocated"
    return f"distributed: needs {needs}; the Ray cluster has {has} ({hint})"


def driver_cuda_index(gpu_id: str, visible: str | None) -> int:
    """The CUDA device index, in this process, of the GPU Ray calls `gpu_id`: its position in
    this process's CUDA_VISIBLE_DEVICES (`visible`), or the id itself when that is unset
    (Ray numbers a node's GPUs as the process that started it sees them)."""
    if not visible:
        return int(gpu_id)
    ids = [v.strip() for v in visible.split(",") if v.strip()]
    if gpu_id not in ids:
        raise ValueError(
            f"distributed: Ray gave the learner GPU {gpu_id}, which this process does not see "
            f"(CUDA_VISIBLE_DEVICES={visible}); start Ray with the same CUDA_VISIBLE_DEVICES"
        )
    return ids.index(gpu_id)


class _Probe:
    """An actor in the driver's bundle, asked which GPU the bundle holds."""

    def gpu_ids(self) -> list[str]:
        import ray

        return [str(i) for i in ray.get_gpu_ids()]


class Placement:
    """`plan_resources` of `d` reserved on Ray: Ray is started here if none is running in
    this process (and stopped by `close`); a plan the Ray started here cannot hold is a
    one-line `ValueError` before anything waits (on a cluster, which may still grow, a
    warning, then zerosum waits for it); then one placement group holds every bundle, and
    `driver_gpu` is the GPU id of the driver's bundle (None on the CPU)."""

    def __init__(self, d: DistributedConfig, learner_on_gpu: bool):
        ray = require_ray()
        self.plan = plan_resources(d, learner_on_gpu)
        self.group = None
        self.driver_gpu: str | None = None
        # A Ray already running in this process (a test, a notebook) is used and left running.
        self.owns_ray = not ray.is_initialized()
        if self.owns_ray:
            options: dict[str, Any] = {"address": d.ray_address}
            if d.ray_address is None:  # a new single-machine Ray
                options["include_dashboard"] = False
            ray.init(**options)
        try:
            cluster = ray.cluster_resources()
            if message := shortfall(self.plan, cluster):
                if self.owns_ray and d.ray_address is None:
                    raise ValueError(message)
                print(f"zerosum: warning: {message}; waiting for more", file=sys.stderr)
            self.group = self._reserve(ray, cluster, wait=self.owns_ray and not d.ray_address)
            if self.plan.driver is not None:
                self.driver_gpu = self._driver_gpu(ray)
        except BaseException:
            self.close()
            raise

    def _reserve(self, ray, cluster: Mapping[str, float], wait: bool):
        """The placement group of the plan's bundles, placed (None when there are none).
        `wait`: a Ray started here, which places it at once or never."""
        from ray.util.placement_group import placement_group

        bundles = [dict(b) for b in self.plan.bundles]
        if not bundles:
            return None
        pin = f"node:{ray.util.get_node_ip_address()}"
        if self.plan.driver is not None and pin in cluster:
            bundles[self.plan.driver][pin] = _NODE_PIN  # the driver's GPU is on its own node
        group = placement_group(bundles, strategy="PACK")
        if wait:
            try:
                ray.get(group.ready(), timeout=READY_S)
            except ray.exceptions.GetTimeoutError:
                ray.util.remove_placement_group(group)
                raise ValueError(
                    f"distributed: Ray did not place the run's bundles {bundles} within "
                    f"{READY_S:g} s, though it counts enough CPUs and GPUs"
                ) from None
            return group
        while not ray.wait([group.ready()], timeout=WAIT_REPORT_S)[0]:
            print(
                f"zerosum: waiting for the Ray cluster to place the run's bundles: {bundles}",
                file=sys.stderr,
            )
        return group

    def _driver_gpu(self, ray) -> str:
        probe = ray.remote(_Probe).options(**self.options(Slot(self.plan.driver, 0.0, 1e-4)))
        actor = probe.remote()
        try:
            return ray.get(actor.gpu_ids.remote())[0]
        finally:
            ray.kill(actor)

    def options(self, slot: Slot) -> dict[str, Any]:
        """The `actor.options(...)` of `slot`: its CPUs, GPUs and bundle."""
        opts: dict[str, Any] = {"num_cpus": slot.cpus, "num_gpus": slot.gpus}
        if slot.bundle is not None:
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                self.group, placement_group_bundle_index=slot.bundle
            )
        return opts

    def close(self) -> None:
        """Release the placement group (Ray stops the actors still in it), and Ray if this
        run started it."""
        import ray

        if self.group is not None and ray.is_initialized():
            ray.util.remove_placement_group(self.group)
        self.group = None
        if self.owns_ray and ray.is_initialized():
            ray.shutdown()
        self.owns_ray = False
