"""The example game plugin (examples/zerosum-nim), installed with pip as a user would, is
listed by `zerosum games`, passes the conformance checks, trains a step of the tiny recipe,
is evaluated against `random`, and plays in the arena: all in fresh processes that know the
game only through its entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NIM = ROOT / "examples" / "zerosum-nim"


@pytest.mark.slow
def test_the_example_plugin_installs_trains_evaluates_and_plays_in_the_arena(tmp_path):
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    source = shutil.copytree(NIM, tmp_path / "zerosum-nim")  # the build writes beside it
    subprocess.run([*pip, "--target", str(site), str(source)], check=True)
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}

    def zerosum(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "zerosum.cli", *args], env=env, cwd=tmp_path,
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    assert "source: plugin zerosum-nim" in zerosum("games")
    checked = zerosum("games", "--check", "nim", "--seeds", "10")
    assert checked.split() == ["nim", "ok", "(10", "random", "episodes;", "control", "tokens)"]
    run = tmp_path / "run"
    zerosum(
        "train", "--config", str(ROOT / "configs" / "tiny_kuhn_test.yaml"),
        "rollout.games={nim: 1.0}", "rollout.games_per_step=8", "rollout.max_concurrent=8",
        "run.steps=1", "run.eval_every=0", "eval.nash_conv=[]", "run.checkpoint_every=1",
        f"run.out_dir={run}",
    )  # fmt: skip
    step = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert step["rollout/games"] == 8 and step["rollout/invalid_rate"] == 0.0
    assert "rollout/nim/return_seat0" in step

    results = tmp_path / "eval.json"
    zerosum(
        "eval", "--model", str(run), "--games", "nim", "--opponents", "random", "--n", "4",
        "--answer-mode", "constrained", "--prompt-format", "plain", "--no-rules",
        "--out", str(results),
    )  # fmt: skip
    vs_random = json.loads(results.read_text())["games"]["nim"]["opponents"]["random"]
    assert vs_random["games"] == 4 and vs_random["invalid_rate"] == 0.0

    arena = tmp_path / "arena.yaml"
    arena.write_text(
        f"dir: {tmp_path / 'arena'}\ngames: [nim]\nn: 2\nplayers:\n  - random\n"
        f"  - {{kind: local, name: tiny, model: {run}, answer_mode: constrained,"
        " prompt_format: plain, include_rules: false}\n"
    )
    zerosum("arena", "--config", str(arena))
    rated = json.loads((tmp_path / "arena" / "results.json").read_text())
    assert "nim" in json.dumps(rated) and "tiny" in json.dumps(rated)
