"""Atomic checkpoints: Hugging Face weights (or a PEFT adapter) plus the training state.

Layout: RUN/checkpoints/step-000010/{model/, trainer_state.pt} (plus base/, the random base
weights, for LoRA on a tiny model). A checkpoint is written to a temporary directory, synced
and renamed into place, and RUN/checkpoints/latest, a relative symlink to the newest complete
one, is replaced atomically; a run killed at any moment leaves the last good checkpoint intact.
Resuming reloads weights, optimizer, RAE baselines and the step; every random choice of a step
is derived from (seed, step), so the resumed run repeats the uninterrupted one exactly.

What a resume trusts: only a plain `step-NNNNNN` name inside this run's checkpoints directory,
and a `trainer_state.pt` that holds tensors and plain data (`torch.load(weights_only=True)`).
A checkpoint is validated whole before the model is touched; an unreadable one (truncated by a
full disk or power loss) is skipped with a warning for the previous one.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from zerosum.models import is_lora, trainable_parameters
from zerosum.rundir import (
    CheckpointError,
    UnsafeCheckpointError,
    check_free_space,
    latest_checkpoint,
    step_dirs,
)
from zerosum.tables import one_line

# Tokenizer files, configs and the pickle's own bytes, beyond the tensors counted exactly.
_SPACE_MARGIN = 32 * 2**20


@dataclass
class TrainState:
    """What a run carries from step to step besides weights and optimizer (checkpointed)."""

    step: int = 0
    baselines: dict[str, float] = field(default_factory=dict)  # RAE, per (game, seat)
    games_played: int = 0
    magnet: dict | None = None  # regularizer magnet: `Snapshot.state_dict()` (step, weights)
    pool: dict | None = None  # opponent pool: `OpponentPool.state_dict()` (members, snapshots)

    @classmethod
    def from_dict(cls, saved: dict) -> TrainState:
        """The state saved in a checkpoint; keys this version no longer has (such as the
        `turns_trained` counter of older runs) are ignored."""
        if not isinstance(saved, dict):
            raise TypeError(f"expected a mapping, got {type(saved).__name__}")
        return cls(**{f.name: saved[f.name] for f in fields(cls) if f.name in saved})


# --- writing -----------------------------------------------------------------------------


def save_checkpoint(
    run_dir: Path,
    model,
    tokenizer,
    optimizer,
    state: TrainState,
    config: dict,
    keep: int = 2,
    base_model=None,
) -> Path:
    """Write step `state.step` atomically, point `latest` at it, keep the newest `keep`.

    `base_model` (LoRA on a tiny model) is saved beside the adapter, whose base path then
    resolves relative to it. A full disk fails before writing; a failed write removes its
    temporary directory and leaves every earlier checkpoint as it was."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{state.step:06d}"
    tmp = root / f".tmp-step-{state.step:06d}-{os.getpid()}"
    snapshots = [state.magnet] + [m["snapshot"] for m in (state.pool or {}).get("members", [])]
    extra = sum(t.nbytes for s in snapshots if s for t in s["weights"].values())
    check_free_space(root, checkpoint_bytes(model, optimizer, base_model) + extra)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write(tmp, model, tokenizer, optimizer, state, config, base_model)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)  # give back the space of a failed write
        behind = _os_error_behind(err, root) if isinstance(err, Exception) else None
        if behind is not None:
            raise behind from err
        raise
    _publish(tmp, final)
    _point_latest(root, final)
    for old in step_dirs(root)[max(keep, 1) :]:  # never the checkpoint just written
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_bytes(model, optimizer, base_model=None) -> int:
    """About the bytes a checkpoint takes: the saved weights and the optimizer state."""
    if is_lora(model):  # the adapter only
        saved = list(trainable_parameters(model).values())
    else:
        saved = [*model.parameters(), *model.buffers()]
    if base_model is not None:
        saved += list(base_model.parameters())
    saved += [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    unique = {id(t): t for t in saved}.values()  # tied weights are stored once
    total = sum(t.nelement() * t.element_size() for t in unique)
    return total + total // 20 + _SPACE_MARGIN


@contextmanager
def _quiet_saves():
    # transformers draws a "Writing model shards" bar per save, over our own progress bar.
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _write(tmp: Path, model, tokenizer, optimizer, state, config, base_model) -> None:
    with _quiet_saves():
        # LoRA targets linear layers only; "auto" would look for the base config to decide.
        extra = {"save_embedding_layers": False} if is_lora(model) else {}
        model.save_pretrained(tmp / "model", **extra)
        tokenizer.save_pretrained(tmp / "model")
        if base_model is not None:
            base_model.save_pretrained(tmp / "base")
    blob = {
        "state": dict(state.__dict__),
        "optimizer": optimizer.state_dict(),
        "config": config,
        "rng": {"torch": torch.get_rng_state()},
    }
    # Unbuffered, so a failed write's OSError (say ENOSPC) is the context of torch's error.
    with open(tmp / "trainer_state.pt", "wb", buffering=0) as f:
        torch.save(blob, f)
    _fsync_tree(tmp)  # data on disk before the rename makes it visible


def _os_error_behind(err: BaseException, path: Path) -> OSError | None:
    """The OS error behind a library's failed write, naming `path`: torch raises RuntimeError
    with the OSError as context, safetensors an error whose text says "os error 28"."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno:
            return OSError(cause.errno, os.strerror(cause.errno), str(path))
        cause = cause.__cause__ or cause.__context__
    found = re.search(r"os error (\d+)", str(err))
    if found:
        code = int(found.group(1))
        return OSError(code, os.strerror(code), str(path))
    return None


def _fsync(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in [*files, "."]:
            _fsync(os.path.join(dirpath, name))


def _publish(tmp: Path, final: Path) -> None:
    if final.exists():  # an unusable checkpoint of this step, from before a fallback
        shutil.rmtree(final)
    os.replace(tmp, final)


def _point_latest(root: Path, final: Path) -> None:
    """`latest` -> step-N, a relative symlink (so `latest/model` loads anywhere the run is
    copied), swapped in by one rename. A `latest` directory (a copy of the run that followed
    the link) is a duplicate of a step and goes first."""
    latest = root / "latest"
    if latest.is_dir() and not latest.is_symlink():
        shutil.rmtree(latest)
    tmp = root / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    try:
        os.symlink(final.name, tmp)
    except OSError:  # a filesystem without symlinks (FAT, some shares): a text pointer
        tmp.write_text(final.name)
    os.replace(tmp, latest)
    _fsync(root)  # both renames reach the disk before the run goes on


# --- finding -----------------------------------------------------------------------------


def resume_candidates(run_dir: Path) -> list[Path]:
    """The checkpoint `latest` names, then the older ones, newest first (checked before the
    model loads: a bad pointer or an empty run fails in a second, not after minutes)."""
    latest = latest_checkpoint(run_dir)
    older = step_dirs(Path(run_dir) / "checkpoints")
    if latest is not None:
        step = int(latest.name[5:])
        older = [latest, *(p for p in older if int(p.name[5:]) < step)]
    if not older:
        raise CheckpointError(
            f"no checkpoint to resume from in {str(run_dir)!r}; start over with --overwrite"
        )
    return older


# --- loading -----------------------------------------------------------------------------


def resume_from(candidates: list[Path], model, optimizer) -> TrainState:
    """Restore the first loadable checkpoint of `candidates` into `model` and `optimizer`.

    An unreadable checkpoint is skipped with a warning line on stderr; an unsafe one stops
    the resume; so does having no loadable checkpoint at all."""
    skipped = []
    for path in candidates:
        try:
            state, _ = load_checkpoint(path, model, optimizer)
        except UnsafeCheckpointError:
            raise
        except CheckpointError as err:
            print(f"zerosum: warning: {err}; trying the previous checkpoint", file=sys.stderr)
            skipped.append(path.name)
            continue
        if skipped:
            print(
                f"zerosum: warning: resuming from {path.name} ({', '.join(skipped)} unusable)",
                file=sys.stderr,
            )
        return state
    raise CheckpointError(
        f"no loadable checkpoint in {str(candidates[0].parent)!r} "
        f"({', '.join(skipped)} unusable; see the warnings above)"
    )


def load_checkpoint(path: Path, model, optimizer) -> tuple[TrainState, dict]:
    """Restore weights, optimizer and RNG in place; returns the training state and the saved
    config. Both files are read and checked against the model before anything is changed."""
    path = Path(path)
    blob = read_trainer_state(path / "trainer_state.pt")
    weights = _read_weights(path, model)
    _check_optimizer(path, blob["optimizer"], optimizer)
    if is_lora(model):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, weights)
    else:
        model.load_state_dict(weights, strict=False)
        if hasattr(model, "tie_weights"):
            model.tie_weights()
    # The state was loaded on the CPU (a GPU run resumes anywhere); the optimizer moves it.
    optimizer.load_state_dict(blob["optimizer"])
    torch.set_rng_state(blob["rng"]["torch"])
    return TrainState.from_dict(blob["state"]), blob["config"]


def read_trainer_state(file: Path) -> dict:
    """`trainer_state.pt`, read as tensors and plain data only: a pickle that names any
    other global (code) is refused, never executed."""
    try:
        blob = torch.load(file, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if unsafe:
            raise UnsafeCheckpointError(
                f"refusing {file}: it holds {unsafe.group(1)}, not only tensors and plain data "
                "(was it tampered with?)"
            ) from None
        raise CheckpointError(f"{file} is unreadable: {one_line(err, 200)}") from None
    except FileNotFoundError:
        raise CheckpointError(f"{file} is missing") from None
    except Exception as err:  # truncated or corrupt: zip, EOF and OS errors from torch
        raise CheckpointError(
            f"{file} is unreadable ({type(err).__name__}: {one_line(err, 200)})"
        ) from None
    rng = blob.get("rng", {}).get("torch") if isinstance(blob, dict) else None
    if not isinstance(rng, torch.Tensor) or not {"state", "optimizer", "config"} <= set(blob):
        raise CheckpointError(f"{file} is not a zerosum trainer state")
    try:
        TrainState.from_dict(blob["state"])
    except TypeError as err:
        raise CheckpointError(f"{file} holds an unknown training state: {err}") from None
    return blob


def _read_weights(path: Path, model) -> dict[str, torch.Tensor]:
    """The saved weights, checked to fit `model` (names and shapes) without touching it."""
    from safetensors.torch import load_file

    name = "adapter_model.safetensors" if is_lora(model) else "model.safetensors"
    file = path / "model" / name
    try:
        weights = load_file(file)
    except FileNotFoundError:
        raise CheckpointError(f"{file} is missing") from None
    except Exception as err:  # SafetensorError (truncated header or data), OSError
        raise CheckpointError(f"{file} is unreadable: {one_line(err, 200)}") from None
    if is_lora(model):
        from peft import get_peft_model_state_dict

        expected = get_peft_model_state_dict(model, save_embedding_layers=False)
        optional: set[str] = set()
    else:
        expected = model.state_dict()
        # Tied output embeddings are saved once, under the input embeddings' name.
        optional = {k for k in expected if "lm_head" in k} | set(
            getattr(model, "_tied_weights_keys", None) or {}
        )
    missing = [k for k in expected if k not in weights and k not in optional]
    unexpected = [k for k in weights if k not in expected]
    wrong = [k for k, v in weights.items() if k in expected and v.shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{file} does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"wrong shape {wrong[:3]}"
        )
    return weights


def _check_optimizer(path: Path, saved: dict, optimizer) -> None:
    params = [p for g in optimizer.param_groups for p in g["params"]]
    try:
        ids = [i for g in saved["param_groups"] for i in g["params"]]
        shapes_fit = len(ids) == len(params) and all(
            not torch.is_tensor(v) or v.dim() == 0 or v.shape == p.shape
            for i, p in zip(ids, params)
            for v in saved["state"].get(i, {}).values()
        )
    except (KeyError, TypeError, AttributeError):
        shapes_fit = False
    if not shapes_fit:
        raise CheckpointError(
            f"{path / 'trainer_state.pt'}: optimizer state does not fit the model"
        )
