"""Atomic checkpoints: Hugging Face weights (or a PEFT adapter) plus the training state.

Layout: RUN/checkpoints/step-000010/{model/, trainer_state.pt}. A checkpoint is written to a
temporary directory and renamed into place, and RUN/checkpoints/latest names the newest
complete one (also replaced atomically), so a run killed at any moment leaves the last good
checkpoint intact. Resuming reloads weights, optimizer, RAE baselines and the step; every
random choice of a step is derived from (seed, step), so the resumed run repeats the
uninterrupted one exactly.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass
class TrainState:
    step: int = 0
    baselines: dict[str, float] = field(default_factory=dict)
    games_played: int = 0
    turns_trained: int = 0


def _is_peft(model) -> bool:
    return hasattr(model, "peft_config")


def save_checkpoint(
    run_dir: Path, model, tokenizer, optimizer, state: TrainState, config: dict, keep: int = 2
) -> Path:
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{state.step:06d}"
    tmp = root / f".tmp-step-{state.step:06d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp / "model")
    tokenizer.save_pretrained(tmp / "model")
    torch.save(
        {
            "state": state.__dict__,
            "optimizer": optimizer.state_dict(),
            "config": config,
            "rng": {"torch": torch.get_rng_state()},
        },
        tmp / "trainer_state.pt",
    )
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    latest_tmp = root / f".latest-{os.getpid()}"
    latest_tmp.write_text(final.name)
    os.replace(latest_tmp, root / "latest")
    for old in sorted(root.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    root = Path(run_dir) / "checkpoints"
    pointer = root / "latest"
    if not pointer.exists():
        return None
    path = root / pointer.read_text().strip()
    return path if (path / "trainer_state.pt").exists() else None


def load_checkpoint(path: Path, model, optimizer) -> tuple[TrainState, dict]:
    """Restore weights and optimizer in place; returns the training state and saved config."""
    from safetensors.torch import load_file

    model_dir = Path(path) / "model"
    if _is_peft(model):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(model_dir / "adapter_model.safetensors"))
    else:
        weights = load_file(model_dir / "model.safetensors")
        missing, unexpected = model.load_state_dict(weights, strict=False)
        tied = set(getattr(model, "_tied_weights_keys", None) or {})
        untied_missing = [k for k in missing if k not in tied and "lm_head" not in k]
        if untied_missing or unexpected:
            raise ValueError(
                f"checkpoint {path} does not fit the model: missing {untied_missing[:3]}, unexpected {unexpected[:3]}"
            )
        if hasattr(model, "tie_weights"):
            model.tie_weights()
    # On the CPU first (a GPU run resumes anywhere); the optimizer moves its state to the params.
    blob = torch.load(Path(path) / "trainer_state.pt", weights_only=False, map_location="cpu")
    optimizer.load_state_dict(blob["optimizer"])
    torch.set_rng_state(blob["rng"]["torch"])
    return TrainState(**blob["state"]), blob["config"]
