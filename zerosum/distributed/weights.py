"""The policy's weights as plain data: what a rollout worker builds its model from, and what
reaches it after every optimizer step.

A worker never downloads or converts the model: it rebuilds the architecture from the
learner's config (and LoRA config) and loads the learner's tensors, sent once through the Ray
object store. After each step only the trainable parameters travel: all of them in full
fine-tuning, the adapter alone with LoRA (the frozen base never changes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from zerosum.models import is_lora, trainable_parameters


@dataclass
class ModelPayload:
    """Everything a worker needs to rebuild the learner's policy, and its tokenizer."""

    config: Any  # transformers PretrainedConfig of the base model
    generation_config: Any  # its GenerationConfig (end-of-sequence ids)
    lora: Any | None  # peft LoraConfig, when the policy is a LoRA adapter
    dtype: torch.dtype
    state: dict[str, torch.Tensor]  # every parameter and persistent buffer, on the CPU
    tokenizer: Any


def model_payload(model, tokenizer) -> ModelPayload:
    """The payload of `model` as it is now, with its `tokenizer`."""
    base = model.get_base_model() if is_lora(model) else model
    lora = model.peft_config["default"] if is_lora(model) else None
    state = {n: t.detach().cpu() for n, t in model.state_dict().items()}
    dtype = next(model.parameters()).dtype
    return ModelPayload(base.config, base.generation_config, lora, dtype, state, tokenizer)


def build_model(payload: ModelPayload, device: torch.device):
    """A model equal to the learner's (same architecture, LoRA wrapping and tensors), in
    eval mode on `device`."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(payload.config, dtype=payload.dtype)
    model.generation_config = payload.generation_config
    if payload.lora is not None:
        from peft import get_peft_model

        model = get_peft_model(model, payload.lora)
    model.load_state_dict(payload.state, strict=True)
    return model.to(device).eval()


def trainable_state(model) -> dict[str, torch.Tensor]:
    """The parameters an optimizer step changes (the adapter alone with LoRA), on the CPU."""
    return {n: p.detach().cpu() for n, p in trainable_parameters(model).items()}


@torch.no_grad()
def load_trainable(model, weights: dict[str, torch.Tensor]) -> None:
    """Copy `trainable_state` of the learner into `model` (in place: an engine holding the
    module sees the new weights)."""
    params = dict(model.named_parameters())
    missing = set(weights) - set(params)
    if missing:
        raise ValueError(f"weights for {len(missing)} unknown parameters, e.g. {min(missing)!r}")
    for name, tensor in weights.items():
        params[name].copy_(tensor)
