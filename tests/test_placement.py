"""Where a Ray run's processes go and what they reserve (`distributed.placement`): the plan
as a pure function against hand-computed cases, and on a Ray with declared GPUs (Ray hands
out GPU ids without real GPUs; no model is moved to CUDA here: the learner and the engines
stay on the CPU, only the reservations are those of a GPU learner)."""

import json
import os
import subprocess
import sys
import time
from itertools import product
from pathlib import Path

import pytest

from zerosum.config import load_config
from zerosum.distributed.placement import (
    Slot,
    driver_cuda_index,
    gpu_share,
    plan_resources,
    shortfall,
)

RECIPE = Path(__file__).parent.parent / "configs" / "tiny_kuhn_test.yaml"
RAY = ["distributed.backend=ray"]


def dist(ranks: int, workers: int, *extra: str):
    return load_config(None, [
        *RAY, f"distributed.learner_ranks={ranks}", f"distributed.rollout_workers={workers}",
        f"rollout.games_per_step={max(workers, 16)}", *extra,
    ]).distributed  # fmt: skip


def test_on_the_cpu_each_worker_reserves_a_cpu_and_nothing_else_does():
    for extra in ([], ["distributed.placement=colocated"]):
        plan = plan_resources(dist(2, 3, *extra), learner_on_gpu=False)
        assert plan.bundles == ({"CPU": 1.0},) * 3
        assert plan.driver is None
        assert plan.ranks == (Slot(None, 0.0, 0.0),)
        assert plan.workers == (Slot(0, 1.0, 0.0), Slot(1, 1.0, 0.0), Slot(2, 1.0, 0.0))
        assert (plan.total("CPU"), plan.total("GPU")) == (3.0, 0.0)
    assert shortfall(plan, {"CPU": 3.0}) is None
    assert shortfall(plan, {"CPU": 2.0}) == (
        "distributed: needs 3 CPUs (rollout workers 3); the Ray cluster has 2 (lower "
        "distributed.rollout_workers or distributed.learner_ranks)"
    )


def test_split_gives_every_rank_and_worker_gpus_of_its_own():
    """4 ranks (the driver and 3 actors), 4 workers: 8 GPUs, bundle 0 the driver's."""
    plan = plan_resources(dist(4, 4), learner_on_gpu=True)
    assert plan.bundles == ({"GPU": 1.0},) * 4 + ({"CPU": 1.0, "GPU": 1.0},) * 4
    assert plan.driver == 0
    assert plan.ranks == (Slot(1, 0.0, 1.0), Slot(2, 0.0, 1.0), Slot(3, 0.0, 1.0))
    assert plan.workers == tuple(Slot(b, 1.0, 1.0) for b in (4, 5, 6, 7))
    assert (plan.total("GPU"), plan.total("CPU")) == (8.0, 4.0)
    assert shortfall(plan, {"GPU": 8.0, "CPU": 4.0}) is None
    # half a GPU per worker: two workers share one
    plan = plan_resources(dist(2, 4, "distributed.worker_gpus=0.5"), learner_on_gpu=True)
    assert plan.workers == tuple(Slot(b, 1.0, 0.5) for b in (2, 3, 4, 5))
    assert plan.needs["GPU"] == {"driver": 1.0, "learner ranks": 1.0, "rollout workers": 2.0}
    # two GPUs per worker (a tensor-parallel engine), one rank
    plan = plan_resources(dist(1, 2, "distributed.worker_gpus=2"), learner_on_gpu=True)
    assert plan.bundles == ({"GPU": 1.0}, {"CPU": 1.0, "GPU": 2.0}, {"CPU": 1.0, "GPU": 2.0})
    assert plan.total("GPU") == 5.0


def test_a_split_run_that_does_not_fit_names_what_is_missing():
    plan = plan_resources(dist(4, 5), learner_on_gpu=True)
    assert shortfall(plan, {"GPU": 8.0, "CPU": 16.0}) == (
        "distributed: needs 9 GPUs (driver 1, learner ranks 3, rollout workers 5); the Ray "
        "cluster has 8 (lower distributed.rollout_workers or distributed.learner_ranks, or "
        "distributed.placement: colocated)"
    )
    assert shortfall(plan, {"GPU": 8.0, "CPU": 2.0}) == (
        "distributed: needs 9 GPUs (driver 1, learner ranks 3, rollout workers 5) and 5 CPUs "
        "(rollout workers 5); the Ray cluster has 8 GPUs and 2 CPUs (lower "
        "distributed.rollout_workers or distributed.learner_ranks, or distributed.placement: "
        "colocated)"
    )
    one = plan_resources(dist(1, 1), learner_on_gpu=True)  # the learner and a worker
    assert shortfall(one, {"GPU": 1.0, "CPU": 8.0}).startswith(
        "distributed: needs 2 GPUs (driver 1, rollout workers 1); the Ray cluster has 1 "
    )
    assert shortfall(one, {"CPU": 8.0}) == (
        "distributed: needs 2 GPUs (driver 1, rollout workers 1); the Ray cluster has 0 (the "
        "learner is on a GPU: model.device cpu, or a Ray cluster with GPUs)"
    )


def test_colocated_deals_the_workers_over_the_learner_gpus():
    """2 ranks, 3 workers: workers 0 and 2 on the driver's GPU (bundle 0), worker 1 beside
    rank 1 (bundle 1); at most 2 workers and a rank on a GPU: a third of it each."""
    plan = plan_resources(dist(2, 3, "distributed.placement=colocated"), learner_on_gpu=True)
    assert plan.bundles == ({"GPU": 1.0, "CPU": 2.0}, {"GPU": 1.0, "CPU": 1.0})
    assert plan.driver == 0
    assert plan.ranks == (Slot(1, 0.0, 0.3333),)
    assert plan.workers == (Slot(0, 1.0, 0.3333), Slot(1, 1.0, 0.3333), Slot(0, 1.0, 0.3333))
    assert plan.needs == {
        "CPU": {"rollout workers": 3.0},
        "GPU": {"driver": 1.0, "learner ranks": 1.0},
    }
    assert shortfall(plan, {"GPU": 2.0, "CPU": 3.0}) is None
    assert shortfall(plan, {"GPU": 1.0, "CPU": 3.0}) == (
        "distributed: needs 2 GPUs (driver 1, learner ranks 1); the Ray cluster has 1 (lower "
        "distributed.rollout_workers or distributed.learner_ranks)"
    )
    # the single-GPU recipe's shape: the learner and one engine on one GPU, half each
    one = plan_resources(dist(1, 1, "distributed.placement=colocated"), learner_on_gpu=True)
    assert one.bundles == ({"GPU": 1.0, "CPU": 1.0},)
    assert one.workers == (Slot(0, 1.0, 0.5),) and one.ranks == ()
    assert shortfall(one, {"GPU": 1.0, "CPU": 1.0}) is None
    # 8 ranks, 8 workers: one worker per GPU
    eight = plan_resources(dist(8, 8, "distributed.placement=colocated"), learner_on_gpu=True)
    assert eight.total("GPU") == 8.0
    assert [w.bundle for w in eight.workers] == list(range(8))
    assert {w.gpus for w in eight.workers} == {s.gpus for s in eight.ranks} == {0.5}


@pytest.mark.parametrize(
    "ranks, workers, mode", list(product(range(1, 9), range(1, 9), ["split", "colocated"]))
)
def test_every_plan_fits_its_bundles_and_exactly_its_count(ranks, workers, mode):
    """1-8 GPUs' worth of ranks and workers: what the actors take from a bundle never
    exceeds it (with the driver's GPU left whole in split mode), the bundles hold the counted
    total, and the plan fits a cluster of exactly that total but not one GPU less."""
    plan = plan_resources(dist(ranks, workers, f"distributed.placement={mode}"), True)
    used = [[0.0, 0.0] for _ in plan.bundles]
    for slot in (*plan.ranks, *plan.workers):
        used[slot.bundle][0] += slot.cpus
        used[slot.bundle][1] += slot.gpus
    for bundle, (cpus, gpus) in zip(plan.bundles, used):
        assert cpus == bundle.get("CPU", 0.0)
        assert gpus <= bundle["GPU"] + 1e-9 and all(v > 0 for v in bundle.values())
    assert used[plan.driver][1] == pytest.approx(
        0.0 if mode == "split" else workers_on(0, ranks, workers)
    )
    assert sum(b.get("GPU", 0.0) for b in plan.bundles) == plan.total("GPU")
    assert sum(b.get("CPU", 0.0) for b in plan.bundles) == plan.total("CPU") == workers
    assert plan.total("GPU") == ranks + (workers if mode == "split" else 0)
    cluster = {"GPU": plan.total("GPU"), "CPU": float(workers)}
    assert shortfall(plan, cluster) is None
    assert shortfall(plan, {**cluster, "GPU": cluster["GPU"] - 1}).startswith(
        f"distributed: needs {plan.total('GPU'):g} GPU"
    )


def workers_on(gpu: int, ranks: int, workers: int) -> float:
    """What the colocated workers on learner GPU `gpu` take of it."""
    per_gpu = [len(range(g, workers, ranks)) for g in range(ranks)]
    return per_gpu[gpu] * gpu_share(max(per_gpu) + 1)


def test_gpu_shares_never_add_up_to_more_than_a_gpu():
    assert [gpu_share(n) for n in (1, 2, 3, 7)] == [1.0, 0.5, 0.3333, 0.1428]
    assert all(n * gpu_share(n) <= 1.0 for n in range(1, 200))


def test_the_driver_trains_on_the_gpu_of_its_bundle():
    assert driver_cuda_index("3", None) == 3
    assert driver_cuda_index("3", "") == 3
    assert driver_cuda_index("3", "2,3") == 1
    assert driver_cuda_index("GPU-b", "GPU-a, GPU-b") == 1
    with pytest.raises(ValueError, match=r"GPU 5, which this process does not see "
                       r"\(CUDA_VISIBLE_DEVICES=2,3\)"):  # fmt: skip
        driver_cuda_index("5", "2,3")


# --- on a Ray with 4 declared GPUs ----------------------------------------------------------


@pytest.fixture(scope="module")
def ray_gpus():
    """A Ray with 4 CPUs and 4 declared GPUs for this module (no real GPU is used)."""
    ray = pytest.importorskip("ray", reason="the Ray backend needs pip install 'zerosum[ray]'")
    ray.init(num_cpus=4, num_gpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.timeout(300)  # a hang guard: an actor outside its bundle waits forever
def test_a_split_run_gives_the_driver_each_rank_and_each_worker_a_gpu_of_its_own(
    ray_gpus, tiny, tokenizer
):
    """2 learner ranks and 2 workers planned for a GPU learner on 4 declared GPUs: the
    driver's bundle, rank 1 and both workers hold one GPU each, all different; the workers
    (engines on the CPU) load the policy and play a step; closing gives every GPU back."""
    from zerosum.distributed.learner_group import LearnerGroup
    from zerosum.distributed.placement import Placement
    from zerosum.distributed.ray_backend import RayRollouts
    from zerosum.engines import SamplingParams
    from zerosum.learner import Learner, LearnerSettings, build_optimizer
    from zerosum.plan import StepPlan
    from zerosum.prompts import Prompting
    from zerosum.rollout import RolloutSettings, schedule_games

    cfg = load_config(RECIPE, [
        *RAY, "distributed.learner_ranks=2", "distributed.rollout_workers=2", "model.device=cpu",
        "rollout.games_per_step=4", "rollout.max_concurrent=4",
    ])  # fmt: skip
    placement = Placement(cfg.distributed, learner_on_gpu=True)
    try:
        learner = Learner(tiny, build_optimizer(cfg.optim, tiny), LearnerSettings.from_config(cfg),
                          tokenizer.pad_token_id)  # fmt: skip
        rollouts = RayRollouts(cfg, tiny, tokenizer, 0, placement)
        group = LearnerGroup(cfg, learner, tokenizer, 2, placement)
        try:
            workers, ranks = rollouts.visible_gpus(), group.visible_gpus()
            schedule = schedule_games({"kuhn_poker": 1.0}, 4, seed=0, step=1)
            asking = Prompting(answer_mode="constrained", prompt_format="plain")
            settings = RolloutSettings(prompting=asking)
            params = SamplingParams(temperature=1.0, max_new_tokens=4)
            plan = StepPlan(step=1, schedule=schedule, seed=1, eval_seed=0, lr=0.0)
            turns, episodes, stats = rollouts.play(plan, params, settings)
        finally:
            group.close()
            rollouts.close()
    finally:
        placement.close()
    assert [len(ids) for ids in (*workers, *ranks)] == [1, 1, 1]
    assert sorted([placement.driver_gpu, *(ids[0] for ids in (*workers, *ranks))]) == [
        "0",
        "1",
        "2",
        "3",
    ]
    assert len(episodes) == 4 and stats["distributed/games_discarded"] == 0.0 and turns
    deadline = time.monotonic() + 30  # a guard, not a timing assertion
    while ray_gpus.available_resources().get("GPU", 0.0) < 4.0:
        assert time.monotonic() < deadline, ray_gpus.available_resources()
        time.sleep(0.2)


def test_colocated_workers_share_the_gpus_of_the_driver_and_the_ranks(ray_gpus):
    """2 ranks, 3 workers colocated: workers 0 and 2 are given the driver's GPU, worker 1
    and rank 1 the other one; the other two declared GPUs stay free."""
    from zerosum.distributed.placement import Placement
    from zerosum.distributed.worker import RolloutWorker

    d = dist(2, 3, "distributed.placement=colocated")
    placement = Placement(d, learner_on_gpu=True)
    try:
        actor = ray_gpus.remote(RolloutWorker)
        actors = [
            actor.options(**placement.options(slot)).remote("hf", 1, 0, "cpu")
            for slot in (*placement.plan.workers, *placement.plan.ranks)
        ]
        # (an actor outside its bundle would wait forever for the resources the group holds)
        seen = ray_gpus.get([a.visible_gpus.remote() for a in actors], timeout=120)
        free = ray_gpus.available_resources().get("GPU", 0.0)
    finally:
        placement.close()
    driver = placement.driver_gpu
    assert seen[0] == seen[2] == [driver]
    assert seen[1] == seen[3] != [driver] and len(seen[1]) == 1
    assert free == 2.0  # the group holds two whole GPUs, whatever its actors take of them


# Runs in a process of its own, where zerosum starts Ray itself (with the resources that
# RAY_OVERRIDE_RESOURCES declares) as `zerosum train` does.
OWN_RAY = """
import sys, time
from zerosum.config import load_config
from zerosum.distributed.placement import Placement
import ray
start = time.monotonic()
try:
    Placement(load_config(None, sys.argv[1:]).distributed, learner_on_gpu=True)
except ValueError as err:
    print(err)
    print(ray.is_initialized(), round(time.monotonic() - start))
    sys.exit(3)
"""


@pytest.mark.ray
def test_a_run_that_does_not_fit_a_ray_started_here_is_one_line_at_once():
    """5 GPUs asked of a Ray started with 2 declared: a ValueError of one line naming the
    shortfall, raised before anything waits, and Ray is stopped again."""
    pytest.importorskip("ray", reason="the Ray backend needs pip install 'zerosum[ray]'")
    env = {**os.environ, "RAY_OVERRIDE_RESOURCES": json.dumps({"CPU": 4, "GPU": 2})}
    overrides = [*RAY, "distributed.learner_ranks=2", "distributed.rollout_workers=3"]
    out = subprocess.run(
        [sys.executable, "-c", OWN_RAY, *overrides], capture_output=True, text=True, env=env,
        timeout=300,  # a guard against a hang: the refusal comes before anything waits
    )  # fmt: skip
    assert out.returncode == 3, out.stderr[-2000:]
    message, after = out.stdout.strip().splitlines()
    assert message == (
        "distributed: needs 5 GPUs (driver 1, learner ranks 1, rollout workers 3); the Ray "
        "cluster has 2 (lower distributed.rollout_workers or distributed.learner_ranks, or "
        "distributed.placement: colocated)"
    )
    assert after.split()[0] == "False"  # Ray stopped
