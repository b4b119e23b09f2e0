"""Opponent pools: drawing, running win rates, eviction, checkpoints, serving snapshots."""

import json
import os
import shutil
from dataclasses import replace

import pytest
import torch

from zerosum.config import OpponentsConfig, load_config
from zerosum.engines.hf import HFEngine
from zerosum.games.base import Outcome
from zerosum.league import OpponentPool, seat_players
from zerosum.prompts import Prompting
from zerosum.rollout import Episode, RolloutSettings, play_games, schedule_games
from zerosum.snapshot import Snapshot
from zerosum.train import train

from .test_rollout import PARAMS
from .test_train import FAST, RECIPE, read_metrics


def pool_of(tiny, **overrides) -> OpponentPool:
    return OpponentPool(replace(OpponentsConfig(pool_size=2), **overrides), tiny)


def test_the_pool_starts_with_the_initial_model_and_evicts_when_full(tiny):
    pool = pool_of(tiny, pool_every=2)
    assert [m.name for m in pool.members] == ["step-000000"]
    for step in (1, 2, 3, 4):
        pool.after_step(tiny, step)
    assert [m.name for m in pool.members] == ["step-000002", "step-000004"]  # oldest left
    weakest = pool_of(tiny, pool_every=1, evict="weakest")
    weakest.after_step(tiny, 1)
    weakest.members[0].win_rate = 0.9  # the initial model: beaten most
    weakest.members[1].win_rate = 0.3
    weakest.after_step(tiny, 2)
    assert [m.name for m in weakest.members] == ["step-000001", "step-000002"]


def test_pfsp_weights_favour_the_opponents_beaten_least(tiny):
    pool = pool_of(tiny, sampling="pfsp", pfsp_power=2.0, fixed=["random"])
    pool.members[0].win_rate = 0.9  # random: (1 - 0.9)^2 = 0.01
    pool.members[1].win_rate = 0.2  # initial model: 0.8^2 = 0.64
    assert pool.weights() == pytest.approx([0.01 / 0.65, 0.64 / 0.65])
    assert pool_of(tiny, fixed=["random"]).weights() == pytest.approx([0.5, 0.5])


def test_draws_follow_the_self_play_share_and_repeat_for_the_same_step(tiny):
    pool = pool_of(tiny, self_play=0.25, fixed=["random"])
    drawn = pool.assign(400, run_seed=3, step=7)
    against = [a for a in drawn if a.member is not None]
    # Binomial: 0.75 expected, standard error sqrt(0.75 * 0.25 / 400) = 0.022, so +-0.1 is
    # 4.6 standard errors (the draw is seeded: the same every run).
    assert 0.65 < len(against) / 400 < 0.85
    assert {a.member.name for a in against} == {"random", "step-000000"}
    assert {a.learner_seat for a in against} == {0, 1}
    again = pool.assign(400, run_seed=3, step=7)
    assert [(a.member and a.member.name, a.learner_seat) for a in again] == [
        (a.member and a.member.name, a.learner_seat) for a in drawn
    ]
    assert all(a.member is None for a in pool_of(tiny, self_play=1.0).assign(50, 0, 1))
    assert seat_players(pool_of(tiny, self_play=1.0).assign(5, 0, 1)) is None


def test_running_win_rate_is_an_ema_of_the_steps_mean_score(tiny):
    pool = pool_of(tiny, self_play=0.0, win_rate_decay=0.9)
    drawn = pool.assign(3, 0, 1)
    member = drawn[0].member
    episodes = []
    for a in drawn:  # the learner wins all three...
        ep = Episode("kuhn_poker", 0)
        returns = (1.0, -1.0) if a.learner_seat == 0 else (-1.0, 1.0)
        ep.outcome = Outcome(returns, 2)
        episodes.append(ep)
    episodes[2].outcome = Outcome((0.0, 0.0), 2)  # ...but the last, a draw: one half
    pool.record(drawn, episodes)
    assert member.win_rate == pytest.approx(0.9 * 0.5 + 0.1 * (1 + 1 + 0.5) / 3)
    assert member.games == 3


def test_pool_state_round_trips_through_a_checkpoint(tiny):
    pool = pool_of(tiny, pool_every=1, fixed=["random"])
    with torch.no_grad():
        next(tiny.parameters()).add_(1.0)  # the next snapshot differs from the initial one
    pool.after_step(tiny, 1)
    pool.members[0].win_rate, pool.members[0].games = 0.7, 12
    restored = OpponentPool(pool.cfg, tiny, pool.state_dict())
    assert [(m.name, m.win_rate, m.games) for m in restored.members] == [
        (m.name, m.win_rate, m.games) for m in pool.members
    ]
    for a, b in zip(pool.snapshots, restored.snapshots):
        assert a.snapshot.step == b.snapshot.step
        assert all(
            torch.equal(a.snapshot.weights[n], b.snapshot.weights[n]) for n in a.snapshot.weights
        )


def test_a_snapshot_seat_is_answered_with_its_weights_and_not_trained_on(tiny, tokenizer):
    """Every engine batch for the snapshot's seat runs with the snapshot's tensors in the
    model; the learner's batches and the model after the games have its own; only the
    learner's seat comes back as training turns."""
    snapshot = Snapshot(tiny)
    first = next(p for p in tiny.parameters() if p.requires_grad)
    own, snap = first.data.data_ptr(), snapshot.weights[next(iter(snapshot.weights))].data_ptr()
    seen = []
    engine = HFEngine(tiny, tokenizer, max_batch=8)
    generate = engine.generate

    def spy(prompts, *args, **kwargs):
        seen.append(first.data.data_ptr())
        return generate(prompts, *args, **kwargs)

    engine.generate = spy
    schedule = schedule_games({"kuhn_poker": 1.0}, 6, seed=0, step=1)
    opponents = [[None, snapshot] if i % 2 else [snapshot, None] for i in range(6)]
    settings = RolloutSettings(prompting=Prompting(answer_mode="constrained"))
    turns, episodes = play_games(
        engine, tokenizer, schedule, params=PARAMS, settings=settings, seed=0, opponents=opponents
    )
    assert set(seen) == {own, snap}
    assert first.data.data_ptr() == own
    assert turns and all(t.seat == 1 - t.episode % 2 for t in turns)  # the learner's seat only
    assert all(e.outcome is not None for e in episodes)


def test_pool_run_resumes_exactly(tmp_path):
    """A run resumed from its step-2 checkpoint (pool, win rates and snapshots inside)
    repeats steps 3 and 4 of the uninterrupted run exactly."""
    common = [
        *FAST, "run.steps=4", "run.checkpoint_every=2", "run.tensorboard=false",
        "opponents.self_play=0.0", "opponents.pool_size=2", "opponents.pool_every=1",
        "opponents.sampling=pfsp", "opponents.fixed=[random]",
    ]  # fmt: skip
    ref = tmp_path / "ref"
    train(load_config(RECIPE, [*common, f"run.out_dir={ref}"]))
    cut = tmp_path / "cut"
    shutil.copytree(ref, cut, symlinks=True)
    ckpts = cut / "checkpoints"
    shutil.rmtree(ckpts / "step-000004")
    (ckpts / "latest").unlink()
    os.symlink("step-000002", ckpts / "latest")
    config = json.loads((cut / "config.json").read_text())
    config["run"]["out_dir"] = str(cut)
    (cut / "config.json").write_text(json.dumps(config))
    train(load_config(cut / "config.json"), resume=True)
    rows = read_metrics(ref)
    assert read_metrics(cut) == rows
    assert [r["pool/size"] for r in rows] == [1, 2, 2, 2]
    assert all(r["pool/opponent_games"] == 12 for r in rows)
    assert any(k.startswith("pool/weight/step-") for k in rows[-1])
