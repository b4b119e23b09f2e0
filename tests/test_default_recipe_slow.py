"""The default recipe end to end on the real SmolLM2-135M-Instruct (slow: `make test-slow`)."""

import json
from pathlib import Path

import pytest

from zerosum.config import load_config
from zerosum.train import train

RECIPE = Path(__file__).parent.parent / "configs" / "kuhn_poker_cpu.yaml"


@pytest.mark.slow
def test_default_recipe_runs_one_iteration(tmp_path):
    from transformers import AutoModelForCausalLM

    cfg = load_config(RECIPE, ["run.steps=1", f"run.out_dir={tmp_path}", "run.progress=false"])
    train(cfg)
    row = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert row["step"] == 1 and row["rollout/games"] == cfg.rollout.games_per_step
    assert row["rollout/response_tokens"] > 0
    assert row["rollout/turns"] >= cfg.rollout.games_per_step
    # A real update happened unless every advantage was zero.
    assert row["loss/tokens"] > 0 or row["adv/kept_fraction"] == 0
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "checkpoints" / "step-000001" / "model")
    assert model.config.model_type == "llama"
