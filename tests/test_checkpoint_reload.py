"""Checkpoints load back anywhere: LoRA adapters of tiny models carry their random base, an
adapter names its base portably (the default model's alias, not a cache path), and a run
directory or its `checkpoints/latest` serves as a model path."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from zerosum import models
from zerosum.cli import main

RECIPE = Path(__file__).parent.parent / "configs" / "tiny_kuhn_test.yaml"
LORA = [
    "run.steps=2", "run.checkpoint_every=1", "run.eval_every=0", "rollout.games_per_step=8",
    "rollout.max_concurrent=8", "run.progress=false", "run.tensorboard=false",
    "model.tiny_hidden_size=32", "model.tiny_layers=1", "model.lora=true", "model.lora_rank=4",
    "optim.lr=1e-2",
]  # fmt: skip


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("lora") / "run"
    assert main(["train", "--config", str(RECIPE), *LORA, f"run.out_dir={run_dir}"]) == 0
    return run_dir


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([[1, 2, 3, 4, 5]])).logits


def test_tiny_lora_checkpoint_loads_from_the_run_directory(lora_run):
    """Its random base is saved beside the adapter: nothing to fetch from the hub."""
    from peft import PeftModel

    from zerosum.assembly import build_tiny
    from zerosum.config import load_config

    ckpt = lora_run / "checkpoints" / "step-000002"
    assert (ckpt / "base" / "model.safetensors").is_file()
    cfg = load_config(RECIPE, LORA)
    base = build_tiny(cfg, models.load_tokenizer(cfg.model.name))
    expected = logits(PeftModel.from_pretrained(base, ckpt / "model"))
    assert not torch.allclose(expected, logits(build_tiny(cfg, models.load_tokenizer())))
    latest = lora_run / "checkpoints" / "latest"
    for path in (lora_run, latest, latest / "model", ckpt, ckpt / "model"):
        model, _ = models.load_model(str(path))
        # load_model merges the adapter (W + BA, rounded once in float32) where the reference
        # adds B(Ax) as it runs: eps 1.2e-7 relative per weight (not measured), which
        # assert_close's float32 defaults (atol 1e-5, rtol 1.3e-6) allow.
        torch.testing.assert_close(logits(model), expected)


def test_text_file_latest_of_older_runs_still_works(lora_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(lora_run, run, symlinks=True)
    latest = run / "checkpoints" / "latest"
    latest.unlink()
    latest.write_text("step-000001\n")
    one, _ = models.load_model(str(run / "checkpoints" / "step-000001"))
    for path in (run, latest):
        model, _ = models.load_model(str(path))
        torch.testing.assert_close(logits(model), logits(one))
    assert main(["train", "--resume", str(run)]) == 0, capsys.readouterr().err
    assert os.readlink(latest) == "step-000002"  # rewritten as a symlink


def test_a_run_copied_without_symlinks_resumes(lora_run, tmp_path, capsys):
    """A copy that follows symlinks (`cp -rL`, some sync tools) turns `latest` into a copy of
    the newest step: resume still finds that step and puts the link back."""
    run = tmp_path / "run"
    shutil.copytree(lora_run, run, symlinks=False)
    latest = run / "checkpoints" / "latest"
    assert latest.is_dir() and not latest.is_symlink()
    step2 = run / "checkpoints" / "step-000002" / "model" / "adapter_model.safetensors"
    written = step2.stat().st_mtime_ns
    assert main(["train", "--resume", str(run), "run.steps=3"]) == 0, capsys.readouterr().err
    assert os.readlink(latest) == "step-000003"
    assert step2.stat().st_mtime_ns == written  # resumed after step 2, not started over


def test_truncated_adapter_falls_back_and_redoes_the_step(lora_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(lora_run, run, symlinks=True)
    adapter = run / "checkpoints" / "step-000002" / "model" / "adapter_model.safetensors"
    good = adapter.read_bytes()
    adapter.write_bytes(good[: len(good) // 2])
    assert main(["train", "--resume", str(run)]) == 0
    assert "resuming from step-000001" in capsys.readouterr().err
    assert adapter.read_bytes() == good  # the same step, trained again, identically


def test_adapter_naming_the_default_alias_loads_on_its_local_copy(
    tmp_path, monkeypatch, tiny, tokenizer
):
    from peft import LoraConfig, get_peft_model

    converted = tmp_path / "converted"  # stands for the default model's converted cache copy
    tiny.save_pretrained(converted)
    tokenizer.save_pretrained(converted)
    monkeypatch.setattr(models, "_converted_dir", lambda: converted)
    peft = get_peft_model(
        tiny, LoraConfig(r=2, target_modules="all-linear", init_lora_weights=False)
    )
    peft.peft_config["default"].base_model_name_or_path = models.DEFAULT_MODEL
    peft.save_pretrained(tmp_path / "adapter", save_embedding_layers=False)
    model, _ = models.load_model(str(tmp_path / "adapter"))
    torch.testing.assert_close(logits(model), logits(peft))  # merged vs not, as above


def test_lora_adapter_names_the_model_the_user_gave(monkeypatch, tiny, tokenizer):
    from zerosum.assembly import build_model
    from zerosum.config import load_config

    monkeypatch.setattr(models, "load_model", lambda name, dtype: (tiny, tokenizer))
    cfg = load_config(None, ["model.lora=true", "model.device=cpu"])
    model, _ = build_model(cfg)
    assert model.peft_config["default"].base_model_name_or_path == models.DEFAULT_MODEL


def test_run_without_a_checkpoint_is_a_clear_model_error(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(ValueError, match="has no checkpoint yet"):
        models.load_model(str(tmp_path))


def test_eval_of_a_run_killed_before_its_first_checkpoint_says_so(tmp_path, capsys):
    """A run stopped before its first checkpoint holds its config, metrics and lock only."""
    from zerosum.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"run": {"steps": 10}}')
    (run / "metrics.jsonl").write_text("")
    (run / ".lock").write_text("")
    assert main(["eval", "--model", str(run), "--games", "kuhn_poker", "--n", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"run directory {str(run)!r} has no checkpoint yet" in err
