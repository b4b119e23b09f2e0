"""The Ray backend (`distributed.backend: ray`): rollout workers rebuilt from the learner's
weights, sync runs equal to the local backend's, and a killed worker restarted mid-run.

Tests that start Ray skip when it is not installed (`pip install 'zerosum[ray]'`); they share
one Ray instance with 2 CPUs (one per rollout worker: conftest's `ray_cpus`)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from zerosum.config import load_config
from zerosum.distributed.weights import load_trainable, model_payload, trainable_state
from zerosum.distributed.worker import RolloutWorker
from zerosum.engines import SamplingParams
from zerosum.engines.hf import HFEngine
from zerosum.prompts import Prompting
from zerosum.rollout import RolloutSettings, play_games, schedule_games

RECIPE = Path(__file__).parent.parent / "configs" / "tiny_kuhn_test.yaml"
FAST = [
    "rollout.games_per_step=12", "rollout.max_concurrent=12", "run.progress=false",
    "run.steps=3", "run.tensorboard=false",
]  # fmt: skip
RAY = ["distributed.backend=ray", "distributed.rollout_workers=2"]
# The two-rank learner's statistics against the single process: relative 1e-5 for the losses
# and norms, and for the magnet KL, a small mean of log-probability differences whose rounding
# is absolute, also 1e-6: float32 rounds one log-probability by up to eps * |log p|
# (1.2e-7 * 10.8 for this 49,152-token vocabulary, 1.3e-6). Measured: 2.1e-8 on an Intel Xeon
# with AMX (relative 1.2e-5), 4.2e-9 on an AMD EPYC (relative 2.5e-6); the losses and norms
# differ by at most 2e-7 relative on the AMD EPYC.
KL_ROUNDING = 1e-6
# An on-policy step's mean TIS weight, exp(learner - engine log-prob) over its tokens: the hf
# engine matches the learner within 9.5e-7 a token (test_engine's smaller model, AMD EPYC), so
# the mean is 1 within about 1e-6; 1e-4 is a hundredfold margin, and a stale step exceeds it.
TIS_ROUNDING = 1e-4
SETTINGS = RolloutSettings(
    prompting=Prompting(answer_mode="constrained", prompt_format="plain", include_rules=False)
)


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def without(rows: list[dict], *prefixes: str) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(prefixes)} for r in rows]


def test_slices_are_contiguous_and_balanced():
    from zerosum.distributed.ray_backend import slices

    assert slices(12, 2) == [range(0, 6), range(6, 12)]
    assert [len(s) for s in slices(5, 3)] == [2, 1, 2]
    assert [i for s in slices(7, 4) for i in s] == list(range(7))


@pytest.mark.parametrize("lora", [False, True])
def test_a_worker_rebuilds_the_policy_and_plays_as_the_learner_would(tiny, tokenizer, lora):
    """A worker's model, built from the payload alone, has the learner's tensors and plays
    the learner's games; after an update only the trainable weights (LoRA: the adapter)
    travel, and the worker then plays as the updated learner."""
    model = tiny
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(tiny, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    worker = RolloutWorker("hf", max_batch=16, seed=0, device="cpu")
    worker.load(model_payload(model, tokenizer), None, version=0)
    assert model.state_dict().keys() == worker.model.state_dict().keys()
    assert all(torch.equal(t, worker.model.state_dict()[n]) for n, t in model.state_dict().items())

    schedule = schedule_games({"kuhn_poker": 1.0}, 6, seed=0, step=1)
    params = SamplingParams(temperature=1.0, max_new_tokens=4)

    def learner_games():
        turns, episodes = play_games(HFEngine(model, tokenizer), tokenizer, schedule, params=params,
                                     settings=SETTINGS, seed=3)  # fmt: skip
        return [t.response_ids for t in turns], [e.moves for e in episodes]

    def worker_games(version):
        result = worker.play(version, schedule, params, SETTINGS, seed=3)
        assert result.played
        return [t.response_ids for t in result.turns], [e.moves for e in result.episodes]

    assert worker_games(0) == learner_games()
    assert not worker.play(1, schedule, params, SETTINGS, seed=3).played  # not that version

    with torch.no_grad():  # an "update": every trainable weight moves
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.5)
    weights = trainable_state(model)
    names = {n for n, p in model.named_parameters()}
    assert set(weights) < names if lora else set(weights) == names
    assert all("lora_" in n for n in weights) == lora
    assert worker.set_weights(weights, 1) == (worker.incarnation, True)
    assert all(torch.equal(t, worker.model.state_dict()[n]) for n, t in model.state_dict().items())
    assert worker_games(1) == learner_games()
    with pytest.raises(ValueError, match="weights for 1 unknown parameters"):
        load_trainable(worker.model, {"nonsense.weight": torch.zeros(1)})


def test_ray_is_required_with_a_one_line_error(tmp_path, monkeypatch):
    """Without Ray installed, the Ray backend stops before the model loads."""
    import builtins

    from zerosum.train import train

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    cfg = load_config(RECIPE, [*FAST, *RAY, f"run.out_dir={tmp_path / 'run'}"])
    with pytest.raises(ValueError, match=r"needs Ray: pip install 'zerosum\[ray\]'"):
        train(cfg)


@pytest.mark.parametrize("weight_sync", ["object_store", "broadcast"])
def test_sync_run_on_ray_equals_the_local_run(tmp_path, ray_cpus, weight_sync):
    """3 steps with 2 rollout workers give exactly the local backend's metrics (every
    rollout/, adv/, loss/ and eval/ value; perf/ timings aside, and the Ray backend's own
    distributed/ counts, which show no restart and no discarded game). Each answer is
    seeded from its game, so a worker playing half the games samples what the single
    engine samples for them; the learner joins the halves in schedule order. The same
    with the weights broadcast to the workers instead of put into the object store."""
    from zerosum.train import train

    common = [*FAST, "run.eval_every=2", "eval.nash_conv=[kuhn_poker]"]
    train(load_config(RECIPE, [*common, f"run.out_dir={tmp_path / 'local'}"]))
    ray = [*RAY, f"distributed.weight_sync={weight_sync}"]
    train(load_config(RECIPE, [*common, *ray, f"run.out_dir={tmp_path / 'ray'}"]))
    local, on_ray = read_metrics(tmp_path / "local"), read_metrics(tmp_path / "ray")
    assert [r["step"] for r in on_ray] == [1, 2, 3]
    assert [
        (r["distributed/worker_restarts"], r["distributed/games_discarded"]) for r in on_ray
    ] == [(0.0, 0.0)] * 3
    assert not any(k.startswith("distributed/") for r in local for k in r)
    assert without(on_ray, "perf/", "distributed/") == without(local, "perf/")
    assert len({r["loss/total"] for r in local}) == 3  # the weights moved between steps


@pytest.mark.parametrize(
    "mode, weight_sync, restarts, games",
    [
        # sync: step 2's slice is the one in flight, and is lost
        ("sync", "object_store", [0, 1, 0], [12, 6, 12]),
        # with broadcast the group is formed again at step 2's sync, and step 3 plays all
        ("sync", "broadcast", [0, 1, 0], [12, 6, 12]),
        # async (max_staleness 1): step 2's slices were played during step 1's update; the
        # kill hits step 3's, sent just before; step 4's is sent again to the new process
        ("async", "object_store", [0, 0, 1, 0], [12, 12, 6, 12]),
        # broadcast: step 2's broadcast goes out with worker 0 already dead. Worker 1's
        # receive is queued behind its step 3 slice: if that slice ends before the learner
        # drops the group (at step 3's join) the receive succeeds and step 4 plays all 12;
        # if not, the receive fails, worker 1 keeps policy 1 and its step 4 slice, two
        # policies behind, is discarded.
        # Which comes first is the machine's timing, so step 4 may be either.
        ("async", "broadcast", [0, 0, 1, 0], [12, 12, 6, {6, 12}]),
    ],
)
def test_a_worker_killed_mid_step_is_restarted_and_the_run_goes_on(
    tmp_path, ray_cpus, monkeypatch, mode, weight_sync, restarts, games
):
    """SIGKILL to rollout worker 0's process just after step 2's slices are sent (while it
    plays): the games of its slice in flight are discarded, Ray restarts it, the learner
    loads the current weights into it, and the next step plays all 12 games again (with
    `weight_sync: broadcast` the group is formed again with the new process; in sync mode
    a worker serving other weights than the step's would not play its slice)."""
    from zerosum.distributed.ray_backend import RayRollouts
    from zerosum.train import train

    killed: list[int] = []
    play = RayRollouts.play

    def play_and_kill(self, plan, *args, **kwargs):
        if plan.step == 2:
            pid = self.pids()[0]  # answered once the worker's queued calls are done
            get = self._get

            def kill_then_get(k, future):  # the slices have been sent: worker 0 is playing
                if k == 0 and not killed:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                return get(k, future)

            self._get = kill_then_get
        try:
            return play(self, plan, *args, **kwargs)
        finally:
            self.__dict__.pop("_get", None)

    monkeypatch.setattr(RayRollouts, "play", play_and_kill)
    out = tmp_path / "run"
    steps = len(games)
    options = [f"run.steps={steps}", f"distributed.mode={mode}", f"run.out_dir={out}",
               f"distributed.weight_sync={weight_sync}"]  # fmt: skip
    train(load_config(RECIPE, [*FAST, *RAY, *options]))
    rows = read_metrics(out)
    assert killed and [r["step"] for r in rows] == list(range(1, steps + 1))
    assert [r["distributed/worker_restarts"] for r in rows] == restarts
    played = [r["rollout/games"] for r in rows]
    assert all(p in (g if isinstance(g, set) else {g}) for p, g in zip(played, games))
    assert [r["distributed/games_discarded"] for r in rows] == [12 - p for p in played]
    assert rows[-1]["progress/games"] == sum(played)
    assert (out / "checkpoints" / f"step-{steps:06d}" / "model").is_dir()


def fixed_batch(model, tokenizer, n_games: int = 8) -> list:
    """The turns of a few Kuhn Poker games as training samples, advantages +-1 and 0.5."""
    from zerosum.scoring import Sample

    schedule = schedule_games({"kuhn_poker": 1.0}, n_games, seed=0, step=1)
    params = SamplingParams(temperature=1.0, max_new_tokens=4)
    turns, _ = play_games(
        HFEngine(model, tokenizer), tokenizer, schedule, params=params, settings=SETTINGS, seed=0
    )
    advantages = [(1.0, -1.0, 0.5)[i % 3] for i in range(len(turns))]
    return [Sample(t.prompt_ids, t.response_ids, a, t.allowed) for t, a in zip(turns, advantages)]


@pytest.mark.parametrize(
    "loss, regularizer", [("ppo", "none"), ("reinforce", "none"), ("ppo", "magnet")]
)
def test_two_learner_ranks_equal_the_single_process_learner(
    tiny, tokenizer, ray_cpus, loss, regularizer
):
    """The 2-rank learner (this process and a Ray actor, gloo) on a fixed batch, two steps:
    both ranks end with bitwise the same parameters, and they equal the single-process
    learner's within 1e-6 (float rounding: the ranks sum their halves' gradients in another
    order). `mean` aggregation checks the whole batch's token count normalises both halves.
    The step's learning rate (`optim.lr_schedule`) is not the optimizer's initial one: every
    rank uses it. With the magnet, every rank holds rank 0's and pulls to it with the step's
    weight (annealed), and replaces it after step 1 as rank 0 does: the KL of step 2 is to
    the policy after step 1 on every rank."""
    import copy

    from zerosum.distributed.learner_group import LearnerGroup
    from zerosum.learner import Learner, LearnerSettings, build_optimizer
    from zerosum.magnet import Magnet

    cfg = load_config(None, [
        "optim.bf16=false", f"algo.loss={loss}", "algo.ppo_epochs=2", "algo.aggregation=mean",
        "algo.entropy_coef=0.1", "optim.lr=3e-4", "model.device=cpu",
        f"algo.regularizer={regularizer}", "algo.magnet_alpha=2.0", "algo.magnet_reset=1",
        "algo.magnet_anneal_steps=1", "algo.magnet_alpha_final=1.0",
    ])  # fmt: skip
    samples = fixed_batch(tiny, tokenizer)
    assert len(samples) >= 16

    def learner(model) -> Learner:
        optimizer = build_optimizer(cfg.optim, model)
        magnet = Magnet.from_config(cfg.algo, model) if regularizer == "magnet" else None
        settings = LearnerSettings.from_config(cfg)
        return Learner(model, optimizer, settings, tokenizer.pad_token_id, magnet)

    def params(model) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in model.named_parameters()}

    initial = params(tiny)
    single = learner(copy.deepcopy(tiny))
    single_stats, reference = [], []
    for step in (1, 2):
        torch.manual_seed(7 + step)
        single_stats.append(single.step(samples, lr=1e-3, step=step))
        reference.append(params(single.model))

    rank0 = learner(tiny)  # trains `tiny` itself
    group = LearnerGroup(cfg, rank0, tokenizer, world=2)
    stats, trained, rank1 = [], [], []
    try:
        for step in (1, 2):
            stats.append(group.step(samples, seed=7 + step, lr=1e-3, step=step))
            trained.append(params(tiny))
            rank1.append(ray_cpus.get(group.ranks[0].parameters.remote()))
    finally:
        group.close()
    for ours, theirs in zip(trained, rank1):
        assert theirs.keys() == ours.keys()
        assert all(torch.equal(ours[n], p) for n, p in theirs.items())  # the copies agree
    moved = max(float((reference[0][n] - initial[n]).abs().max()) for n in initial)
    diffs = [max(float((t[n] - r[n]).abs().max()) for n in t) for t, r in zip(trained, reference)]
    # Float rounding of the summed gradient reaches the weights through Adam's normalised
    # steps, so it scales with the learning rate: 3.5e-7 a step here at 1e-3 on an AMD EPYC
    # (1.04e-6 at 3e-3, with or without the magnet).
    assert moved > 1e-4 and max(diffs) <= 1e-6, (moved, diffs)
    keys = ["loss/total", "loss/entropy", "loss/grad_norm", "perf/duplicate_turns"]
    if regularizer == "magnet":
        keys += ["loss/magnet_kl", "magnet/alpha", "magnet/age"]
        assert [s["magnet/alpha"] for s in stats] == [2.0, 1.0]  # annealed, not summed
        assert stats[1]["loss/magnet_kl"] > 0
    for got, want in zip(stats, single_stats):
        assert got["loss/tokens"] == want["loss/tokens"]  # the halves add up
        for key in keys:
            assert got[key] == pytest.approx(want[key], rel=1e-5, abs=KL_ROUNDING), key


@pytest.mark.parametrize("games, lora", [(8, False), (1, False), (8, True)])
def test_fsdp_ranks_equal_the_single_process_learner(tiny, tokenizer, ray_cpus, games, lora):
    """`distributed.fsdp` on a fixed batch, after one single-process step (so the optimizer
    state that gets sharded is not empty), two more steps: rank 0's full model, into which
    the ranks gather the new weights, equals the single-process learner's within 1e-5, and
    rank 1 holds the second half of every weight; the optimizer state gathered for a
    checkpoint equals the single-process one and is released after it. Small micro-batches
    give the ranks different numbers of passes (with 1 game, rank 1 has at most one sample
    and idles through the others' passes). With LoRA only the adapter is trained and
    gathered; the frozen base is sharded too."""
    import copy

    from zerosum.distributed.learner_group import LearnerGroup
    from zerosum.learner import Learner, LearnerSettings, build_optimizer
    from zerosum.models import trainable_parameters

    cfg = load_config(None, [
        "optim.bf16=false", "algo.loss=ppo", "algo.ppo_epochs=2", "algo.aggregation=mean",
        "algo.entropy_coef=0.1", "optim.lr=1e-3", "model.device=cpu", "optim.shared_prefix=false",
        "optim.micro_batch_tokens=200", *RAY, "distributed.learner_ranks=2", "distributed.fsdp=true",
    ])  # fmt: skip
    samples = fixed_batch(tiny, tokenizer, games)
    if lora:
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(0)  # B non-zero: the adapter's gradients depend on the whole graph
        config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        tiny = get_peft_model(tiny, config)
    settings = LearnerSettings.from_config(cfg)
    rank0 = Learner(tiny, build_optimizer(cfg.optim, tiny), settings, tokenizer.pad_token_id)
    rank0.step(samples)
    single = copy.deepcopy(rank0)
    group = LearnerGroup(cfg, rank0, tokenizer, world=2)
    try:
        assert not rank0.optimizer.state  # rank 0's full optimizer hands its state to the shards
        stats = [group.step(samples, seed=7 + k, lr=cfg.optim.lr, step=k + 1) for k in range(2)]
        rank1 = ray_cpus.get(group.ranks[0].parameters.remote())
        with group.full_optimizer():
            gathered = copy.deepcopy(rank0.optimizer.state_dict()["state"])
        assert not rank0.optimizer.state
    finally:
        group.close()
    reference_stats = []
    for k in range(2):
        torch.manual_seed(7 + k)
        reference_stats.append(single.step(samples))
    trained = {n: p.detach() for n, p in trainable_parameters(tiny).items()}
    reference = {n: p.detach() for n, p in trainable_parameters(single.model).items()}
    assert all("lora_" in n for n in trained) == lora
    diff = max(float((trained[n] - reference[n]).abs().max()) for n in trained)
    # Float rounding: the ranks sum their halves' gradients in another order, and Adam's
    # normalised steps carry it into the weights (1.7e-6 with LoRA on an Intel Xeon, under
    # 1e-6 on an AMD EPYC); the weights move by about 1e-3 a step.
    assert diff <= 1e-5, diff
    assert rank1.keys() == trained.keys()
    assert all(torch.equal(rank1[n], trained[n].chunk(2)[1]) for n in trained)
    expected = single.optimizer.state_dict()["state"]
    assert gathered.keys() == expected.keys() and len(expected) == len(trained)
    # Adam's moments sum the gradients and their squares, so they carry the gradients' relative
    # rounding (the 2-rank learner's grad norm: 2e-7 on an AMD EPYC, see KL_ROUNDING; twice
    # that for the squares; not measured for the moments): rtol 1e-5 is a 25-fold margin,
    # atol 1e-7 covers entries near 0. The losses and norms: as KL_ROUNDING's, relative 1e-5.
    for i, state in expected.items():
        for key, value in state.items():
            assert torch.allclose(gathered[i][key], value, atol=1e-7, rtol=1e-5), (i, key)
    for got, want in zip(stats, reference_stats):
        assert got["loss/tokens"] == want["loss/tokens"]
        assert got["loss/total"] == pytest.approx(want["loss/total"], rel=1e-5)
        assert got["loss/grad_norm"] == pytest.approx(want["loss/grad_norm"], rel=1e-5)
        assert got["perf/fsdp_gather_s"] > 0


def test_a_run_with_two_learner_ranks_matches_the_local_run_up_to_rounding(tmp_path, ray_cpus):
    """2 rollout workers and a 2-rank learner (this process and one Ray actor): the run
    completes, and since the ranks' summed gradient is the single-process one up to float
    rounding, it plays the local run's games (every rollout/ metric equal; a sample would
    have to fall within about 1e-7 of a probability boundary to differ) and its losses agree
    to 1e-4."""
    from zerosum.train import train

    train(load_config(RECIPE, [*FAST, f"run.out_dir={tmp_path / 'local'}"]))
    ranks = [*RAY, "distributed.learner_ranks=2"]
    train(load_config(RECIPE, [*FAST, *ranks, f"run.out_dir={tmp_path / 'ray'}"]))
    local, on_ray = read_metrics(tmp_path / "local"), read_metrics(tmp_path / "ray")
    assert [r["step"] for r in on_ray] == [1, 2, 3]
    assert all("perf/learner_rank_wait_s" in r for r in on_ray)
    for a, b in zip(local, on_ray):
        assert {k: v for k, v in a.items() if k.startswith("rollout/")} == {
            k: v for k, v in b.items() if k.startswith("rollout/")
        }
        # Same games, and weights within 1e-6 of the local run's after a step (the fixed-batch
        # test above, whose losses agree to 2e-7 relative on an AMD EPYC): 1e-4 leaves room
        # for three steps' drift (not measured in these runs).
        for key in ("loss/total", "loss/entropy", "loss/grad_norm", "loss/tokens"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), (a["step"], key)


def test_an_async_run_with_two_learner_ranks(tmp_path, ray_cpus):
    """Async mode, max_staleness 1, 2 rollout workers, 2 learner ranks: the workers play
    step t+1 while the learner trains on step t, so step 1 comes from the initial policy
    (staleness 0: the local run's first step exactly, TIS weights 1) and steps 2 and 3 from
    the policy one update behind the learner (staleness 1), corrected by TIS."""
    from zerosum.train import train

    train(load_config(RECIPE, [*FAST, f"run.out_dir={tmp_path / 'local'}"]))
    async_run = [*RAY, "distributed.learner_ranks=2", "distributed.mode=async"]
    train(load_config(RECIPE, [*FAST, *async_run, f"run.out_dir={tmp_path / 'async'}"]))
    local, rows = read_metrics(tmp_path / "local"), read_metrics(tmp_path / "async")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert [r["async/staleness_mean"] for r in rows] == [0.0, 1.0, 1.0]
    assert [r["async/staleness_max"] for r in rows] == [0.0, 1.0, 1.0]
    first = {k: v for k, v in rows[0].items() if k.startswith("rollout/")}
    assert first == {k: v for k, v in local[0].items() if k.startswith("rollout/")}
    assert rows[0]["async/tis_weight_mean"] == pytest.approx(1.0, abs=TIS_ROUNDING)
    assert rows[0]["async/tis_clip_frac"] == 0.0
    assert all(abs(r["async/tis_weight_mean"] - 1.0) > TIS_ROUNDING for r in rows[1:])  # stale
    assert all(r["distributed/games_discarded"] == 0.0 for r in rows)


@pytest.mark.parametrize("fsdp", [False, True])
def test_a_dying_learner_rank_stops_the_run_and_resume_finishes_it(
    tmp_path, ray_cpus, monkeypatch, capsys, fsdp
):
    """SIGKILL to learner rank 1's process as step 3's update starts: the run stops with
    one line naming the rank, the last step done and the checkpoint to resume from (step
    2's, intact); `--resume` then finishes the run (2 rollout workers, 2 ranks again), and
    its games are those of an uninterrupted local run (the 2-rank learner equals the
    single-process one up to rounding, so every rollout/ metric is equal). With FSDP the
    checkpoint holds the optimizer state gathered from the shards, and the resumed run
    shards it again."""
    from zerosum.cli import main
    from zerosum.distributed.learner_group import LearnerGroup
    from zerosum.train import train

    killed: list[int] = []
    step = LearnerGroup.step

    def step_and_kill(self, samples, seed, lr, number):
        if number == 3 and not killed:  # step 3's update
            killed.append(self.pids()[0])
            os.kill(killed[0], signal.SIGKILL)
        return step(self, samples, seed, lr, number)

    monkeypatch.setattr(LearnerGroup, "step", step_and_kill)
    out = tmp_path / "run"
    options = [*FAST, *RAY, "distributed.learner_ranks=2", "run.steps=4"]
    options += ["run.checkpoint_every=2", f"distributed.fsdp={str(fsdp).lower()}"]
    code = main(["train", "--config", str(RECIPE), *options, f"run.out_dir={out}"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert killed and code == 1
    assert err.startswith("zerosum: error: learner rank 1 died")
    assert (
        f"stops after step 2 (its last checkpoint is step-000002): zerosum train --resume {out}"
        in err
    )
    assert [r["step"] for r in read_metrics(out)] == [1, 2]

    monkeypatch.setattr(LearnerGroup, "step", step)
    assert main(["train", "--resume", str(out)]) == 0
    train(load_config(RECIPE, [*FAST, "run.steps=4", f"run.out_dir={tmp_path / 'local'}"]))
    rows, local = read_metrics(out), read_metrics(tmp_path / "local")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for a, b in zip(local, rows):
        assert {k: v for k, v in a.items() if k.startswith("rollout/")} == {
            k: v for k, v in b.items() if k.startswith("rollout/")
        }


# `zerosum train` in a process of its own, which stops for good once `latest` points at
# step 2's checkpoint (and says so in the file argv[1]): the test SIGKILLs it there.
PAUSED_AFTER_STEP_2 = """
import sys, time
from pathlib import Path
import zerosum.checkpoint as ck
point = ck._point_latest
def point_then_pause(root, final):
    point(root, final)
    if final.name == "step-000002":
        Path(sys.argv[1]).write_text("paused")
        time.sleep(600)
ck._point_latest = point_then_pause
from zerosum.cli import main
sys.exit(main(sys.argv[2:]))
"""


def killed_after_step_2(out: Path, tmp_path: Path, options: list[str]) -> None:
    """Run `zerosum train` to the end of step 2 in a child process, then SIGKILL it."""
    paused = tmp_path / "paused"
    argv = ["train", "--config", str(RECIPE), *options, f"run.out_dir={out}"]
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSED_AFTER_STEP_2, str(paused), *argv],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300  # a guard against a hung child, not a timing assertion
        while not paused.exists():
            assert proc.poll() is None, "the trainer ended early"
            assert time.monotonic() < deadline, "the trainer never finished step 2"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert [r["step"] for r in read_metrics(out)] == [1, 2]
    assert os.readlink(out / "checkpoints" / "latest") == "step-000002"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_killed_ray_run_resumes(tmp_path, ray_cpus, mode):
    """SIGKILL to the `zerosum train` process of a Ray run (2 workers, 4 steps, a checkpoint
    every step) once step 2 is checkpointed, then `--resume`.

    Sync: the resumed run writes exactly the uninterrupted local run's metrics (perf/ and the
    Ray backend's distributed/ counts aside): Ray workers start from the checkpoint's
    weights, and every game is a function of its seed and those weights.

    Async (max_staleness 1): the pipeline starts again empty on resume, so the staleness
    schedule restarts (0, 1, 0, 1 where an uninterrupted run has 0, 1, 1, 1); the first step
    after the resume is played by the checkpoint's own policy, so its games are exactly
    those a sync run resumed from the same checkpoint plays."""
    from zerosum.cli import main

    out = tmp_path / "run"
    options = [*FAST, *RAY, "run.steps=4", "run.checkpoint_every=1", "run.keep_checkpoints=4"]
    killed_after_step_2(out, tmp_path, [*options, f"distributed.mode={mode}"])
    if mode == "async":
        shutil.copytree(out, tmp_path / "as_sync", symlinks=True)
    assert main(["train", "--resume", str(out)]) == 0
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(r["distributed/games_discarded"] == 0.0 for r in rows)
    if mode == "sync":
        local = tmp_path / "local"
        train_local = ["train", "--config", str(RECIPE), *FAST, "run.steps=4"]
        assert main([*train_local, f"run.out_dir={local}"]) == 0
        assert without(rows, "perf/", "distributed/") == without(read_metrics(local), "perf/")
        return
    assert [r["async/staleness_mean"] for r in rows] == [0.0, 1.0, 0.0, 1.0]
    as_sync = tmp_path / "as_sync"
    assert main(["train", "--resume", str(as_sync), "distributed.mode=sync"]) == 0
    sync_rows = read_metrics(as_sync)
    rollout = [{k: v for k, v in r.items() if k.startswith("rollout/")} for r in rows]
    assert rollout[2] == {k: v for k, v in sync_rows[2].items() if k.startswith("rollout/")}
    assert rows[2]["async/tis_weight_mean"] == pytest.approx(1.0, abs=TIS_ROUNDING)  # on-policy
