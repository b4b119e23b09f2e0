"""`zerosum export`: tiny runs (full weights and LoRA) exported and read back by transformers,
PEFT and huggingface_hub's model card parser; the logits must be the checkpoint's."""

import json
import re
from importlib import metadata
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from peft import PeftModel
from scipy.stats import binomtest
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from zerosum.cli import main
from zerosum.config import load_config
from zerosum.export import export_run
from zerosum.train import train

RECIPE = Path(__file__).parent.parent / "configs" / "tiny_kuhn_test.yaml"
FAST = ["rollout.games_per_step=8", "rollout.max_concurrent=8", "run.progress=false",
        "run.tensorboard=false", "run.steps=2", "run.checkpoint_every=1", "run.keep_games=0",
        "eval.games=[kuhn_poker]", "eval.opponents=[random]", "eval.n=6",
        "eval.temperature=0.7", "eval.top_p=0.9"]  # fmt: skip


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("full") / "kuhn-full"
    train(load_config(RECIPE, [*FAST, f"run.out_dir={run}"]))
    return run


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("lora") / "kuhn-lora"
    overrides = [*FAST, f"run.out_dir={run}", "model.lora=true", "model.lora_rank=4",
                 "optim.lr=1e-2"]  # fmt: skip
    train(load_config(RECIPE, overrides))
    return run


def logits(model, tokenizer) -> torch.Tensor:
    ids = tokenizer("Kuhn Poker: you hold the King. Bet or check?", return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).logits


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def wilson(p: float, n: int) -> str:
    ci = binomtest(round(p * n), n).proportion_ci(method="wilson")
    return f"{p:.3f} [{ci.low:.3f}, {ci.high:.3f}]"


def test_full_run_exports_a_transformers_model_with_a_card(full_run, tmp_path):
    out = tmp_path / "export"
    export_run(full_run, out)
    ckpt = full_run / "checkpoints" / "step-000002" / "model"
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    reference = AutoModelForCausalLM.from_pretrained(ckpt)
    assert torch.equal(logits(model, tokenizer), logits(reference, tokenizer))
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    gen = GenerationConfig.from_pretrained(out)
    assert (gen.do_sample, gen.temperature, gen.top_p, gen.max_new_tokens) == (True, 0.7, 0.9, 4)
    assert gen.eos_token_id == tokenizer.eos_token_id

    card = ModelCard.load(out / "README.md")
    assert card.data.license == "apache-2.0" and card.data.library_name == "transformers"
    assert "kuhn_poker" in card.data.tags and "base_model" not in card.data.to_dict()
    text = card.text
    assert f"with zerosum {metadata.version('zerosum')}:" in text
    assert "Steps: 2 of 2 (8 games per step), 16 games" in text
    row = next(r for r in metrics(full_run) if "eval/kuhn_poker/random/win_rate" in r)
    assert row["step"] == 1
    evaluated = f"| kuhn_poker | random | 6 | {wilson(row['eval/kuhn_poker/random/win_rate'], 6)} |"
    assert evaluated in text
    assert f"| kuhn_poker | {row['eval/kuhn_poker/nash_conv']:.4f} |" in text
    saved = json.loads((out / "zerosum_config.json").read_text())
    assert saved["run"]["out_dir"] == "kuhn-full" and saved["eval"]["n"] == 6


def test_an_earlier_step_and_an_eval_file(full_run, tmp_path):
    """--step 1 exports that checkpoint; a `zerosum eval --out` file's rates and intervals go
    into the card as it wrote them."""
    results = tmp_path / "eval.json"
    assert main(["eval", "--model", str(full_run), "--games", "kuhn_poker", "--opponents",
                 "random", "--n", "4", "--answer-mode", "constrained", "--out",
                 str(results)]) == 0  # fmt: skip
    out = tmp_path / "step1"
    assert main(["export", str(full_run), "--step", "1", "--out", str(out), "--eval",
                 str(results), "--license", "mit"]) == 0  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(out)
    reference = AutoModelForCausalLM.from_pretrained(full_run / "checkpoints/step-000001/model")
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert torch.equal(logits(model, tokenizer), logits(reference, tokenizer))
    card = ModelCard.load(out / "README.md")
    assert card.data.license == "mit"
    assert "Steps: 1 of 2" in card.text
    o = json.loads(results.read_text())["games"]["kuhn_poker"]["opponents"]["random"]
    win = f"{o['win_rate']:.3f} [{o['win_ci95'][0]:.3f}, {o['win_ci95'][1]:.3f}]"
    assert f"| kuhn_poker | random | 4 | {win} |" in card.text


def test_lora_run_merged(lora_run, tmp_path):
    out = tmp_path / "merged"
    export_run(lora_run, out)
    assert not (out / "adapter_config.json").exists()
    ckpt = lora_run / "checkpoints" / "step-000002"
    reference = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(ckpt / "base"), ckpt / "model"
    )
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    merged, expected = logits(model, tokenizer), logits(reference, tokenizer)
    assert torch.allclose(merged, expected, atol=1e-5)
    base_only = logits(AutoModelForCausalLM.from_pretrained(ckpt / "base"), tokenizer)
    assert not torch.allclose(merged, base_only, atol=1e-5)  # the adapter is in the weights
    assert "the LoRA adapter merged" in (out / "README.md").read_text()


def test_lora_run_keeps_its_adapter(lora_run, tmp_path):
    out = tmp_path / "adapter"
    assert main(["export", str(lora_run), "--out", str(out), "--keep-adapter"]) == 0
    assert (out / "adapter_model.safetensors").is_file() and not (
        out / "model.safetensors"
    ).exists()
    ckpt = lora_run / "checkpoints" / "step-000002"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(out / "base"), out)
    reference = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(ckpt / "base"), ckpt / "model"
    )
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert torch.equal(logits(model, tokenizer), logits(reference, tokenizer))
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "peft" and "rank 4" in card.text


def test_bad_requests_fail_in_one_line(full_run, tmp_path, capsys):
    cases = [
        (["--step", "7", "--out", str(tmp_path / "a")], "--step 7: .* has: 1, 2"),
        (["--keep-adapter", "--out", str(tmp_path / "b")], "holds full weights"),
    ]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    cases.append((["--out", str(tmp_path / "full")], "exists and is not empty"))
    for args, message in cases:
        assert main(["export", str(full_run), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert re.search(message, err), err
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "c")]) == 2
    assert "not a training run directory" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_card_names_an_opponent_that_can_play_the_game():
    from zerosum.export import _try_it

    assert "--players model:PATH random`" in _try_it("kuhn_poker")
    red = _try_it("redteam")  # `random` cannot write a request or a reply
    assert "random" not in red and "--players model:PATH model:BASE`" in red
