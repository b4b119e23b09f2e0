"""The model families people train, as tiny random-weight builds from their transformers
configuration classes (nothing downloaded): each trains a step with full weights and with
LoRA, is evaluated online, exported and reloaded by transformers with the checkpoint's
logits."""

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from zerosum.config import load_config
from zerosum.export import export_run
from zerosum.models import TINY_FAMILIES, tiny_model
from zerosum.train import train

RECIPE = Path(__file__).parent.parent / "configs" / "tiny_kuhn_test.yaml"
FAST = ["rollout.games_per_step=4", "rollout.max_concurrent=4", "run.progress=false",
        "run.tensorboard=false", "run.steps=1", "run.keep_games=0", "model.tiny_hidden_size=32",
        "eval.games=[kuhn_poker]", "eval.opponents=[random]", "eval.n=2"]  # fmt: skip
# What each family's build must be (the architecture a from_pretrained of its export gets).
MODEL_TYPES = {"smollm2": "llama", "llama3": "llama", "qwen3": "qwen3", "gemma3": "gemma3_text"}


def test_the_families_are_their_own_architectures(tokenizer):
    assert set(MODEL_TYPES) == set(TINY_FAMILIES)
    built = {f: tiny_model(tokenizer, 32, 2, seed=0, family=f) for f in TINY_FAMILIES}
    assert {f: m.config.model_type for f, m in built.items()} == MODEL_TYPES
    llama3 = built["llama3"].config
    assert llama3.rope_parameters["rope_type"] == "llama3" and not llama3.tie_word_embeddings
    assert llama3.num_key_value_heads < llama3.num_attention_heads
    assert "sliding_attention" in built["gemma3"].config.layer_types
    with pytest.raises(ValueError, match="unknown tiny model family 'gpt2'; valid: smollm2"):
        tiny_model(tokenizer, 32, 2, family="gpt2")


def logits(model, tokenizer) -> torch.Tensor:
    # longer than Gemma 3's 32-token window: the sliding layers differ from full attention
    text = "Kuhn Poker: you hold the King and your opponent bet. Call or fold? " * 3
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).logits


# About 6-9 s each on 2 cores: two in the fast suite (the architectures furthest from the
# default, both ways of training), the whole matrix with the slow tests.
FAST_CASES = {("qwen3", False), ("gemma3", True)}
CASES = [
    pytest.param(family, lora, id=f"{family}-{'lora' if lora else 'full'}",
                 marks=() if (family, lora) in FAST_CASES else pytest.mark.slow)
    for family in TINY_FAMILIES
    for lora in (False, True)
]  # fmt: skip


@pytest.mark.parametrize(("family", "lora"), CASES)
def test_family_trains_evaluates_exports_and_reloads(family, lora, tmp_path, tokenizer):
    run = tmp_path / "run"
    overrides = [*FAST, f"run.out_dir={run}", f"model.tiny_family={family}"]
    if lora:
        overrides += ["model.lora=true", "model.lora_rank=4", "optim.lr=1e-2"]
    cfg = load_config(RECIPE, overrides)
    train(cfg)
    (row,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "loss/total" in row and 0 <= row["eval/kuhn_poker/random/win_rate"] <= 1
    assert "eval/kuhn_poker/nash_conv" in row

    out = tmp_path / "export"
    export_run(run, out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert AutoTokenizer.from_pretrained(out).get_vocab() == tokenizer.get_vocab()
    assert model.config.model_type == MODEL_TYPES[family]
    ckpt = run / "checkpoints" / "step-000001"
    if lora:
        reference = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(ckpt / "base"), ckpt / "model"
        )
    else:
        reference = AutoModelForCausalLM.from_pretrained(ckpt / "model")
    exported = logits(model, tokenizer)
    assert torch.allclose(exported, logits(reference, tokenizer), atol=1e-5)
    initial = tiny_model(tokenizer, 32, cfg.model.tiny_layers, seed=0, family=family)
    assert not torch.allclose(exported, logits(initial, tokenizer), atol=1e-5)  # it trained
