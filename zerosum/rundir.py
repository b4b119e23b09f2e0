"""The run directory and its files: one writer at a time, writable before the model loads,
no stale leftovers; the per-step logs (metrics.jsonl, games.jsonl) and their one reader.

`zerosum train` holds an exclusive `flock` on RUN/.lock for the life of the run; the file
names the holder (pid, host) for the error a second process gets. The kernel drops the lock
when the holder's file descriptor closes, which includes any death (SIGKILL, OOM, power off
aside), so a stale lock needs no cleaning: the next run simply acquires it. Under the lock,
temporary checkpoint files left by a killed run are surely stale and are removed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

LOCK_NAME = ".lock"
# The run directory's files: its config, a line of metrics per step, the kept games, the id of
# the W&B run it logs to (`wandb_logger`).
CONFIG_NAME, METRICS_NAME, GAMES_NAME = "config.json", "metrics.jsonl", "games.jsonl"
WANDB_ID_NAME = "wandb-id"
STEP_NAME = re.compile(r"step-\d{6,}")  # a checkpoint directory in RUN/checkpoints
# What a run writes; `--overwrite` removes exactly these, never unrelated files in out_dir.
RUN_ENTRIES = (
    CONFIG_NAME, METRICS_NAME, GAMES_NAME, WANDB_ID_NAME, "checkpoints", "tensorboard",
    "report.html",
)  # fmt: skip
# Temporary names of killed writers: in RUN (config.json, probes) and in RUN/checkpoints.
STALE_IN_RUN = (".*.tmp-*", ".write-probe-*")
STALE_IN_CHECKPOINTS = (".tmp-step-*", ".latest-*")


class RunDirError(ValueError):
    """A run directory that cannot be used as asked; the message is one line."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that would run code or leave the run directory: never fallen back from."""


class RunStopped(RuntimeError):
    """A run that cannot go on (a learner rank or rollout worker lost for good); the
    message is one line and says how to resume."""


class RunLock:
    """An exclusive lock on a run directory, released by `release()` or by process death."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK_NAME
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 200, 0).decode(errors="replace").strip() or "unknown"
            self.release()
            raise RunDirError(
                f"run directory {str(run_dir)!r} is in use by another zerosum train "
                f"({holder}); wait for it to finish or stop it"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def check_writable(run_dir: Path) -> None:
    """Create `run_dir` and write, then remove, a probe file: a read-only or missing location
    fails here, before minutes of model loading, with a one-line error."""
    probe = run_dir / f".write-probe-{os.getpid()}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise RunDirError(
            f"run directory {str(run_dir)!r} is not writable: {err.strerror or err}"
        ) from None


def holds_run(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in RUN_ENTRIES)


def clear_run(run_dir: Path) -> None:
    for name in RUN_ENTRIES:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def remove_stale_temps(run_dir: Path) -> list[Path]:
    """Temporary checkpoint entries of killed runs (call only under the run lock)."""
    root = run_dir / "checkpoints"
    stale = [p for pattern in STALE_IN_RUN for p in run_dir.glob(pattern)]
    stale += [p for pattern in STALE_IN_CHECKPOINTS for p in root.glob(pattern)]
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return stale


def prepare_run_dir(run_dir: Path, resume: bool = False, overwrite: bool = False) -> RunLock:
    """Check, lock and tidy `run_dir` for a run; the returned lock must live as long as it.

    A directory that already holds a run is refused unless the run is resumed or `overwrite`
    clears it (after locking, so a live run is never cleared under its writer)."""
    run_dir = Path(run_dir)
    check_writable(run_dir)
    lock = RunLock(run_dir)
    try:
        if not resume and holds_run(run_dir):
            if not overwrite:
                raise RunDirError(
                    f"{str(run_dir)!r} already holds a run; continue it with --resume {run_dir} "
                    "or replace it with --overwrite"
                )
            clear_run(run_dir)
        remove_stale_temps(run_dir)
    except BaseException:
        lock.release()
        raise
    return lock


def check_free_space(directory: Path, needed: int) -> None:
    """Fail before writing `needed` bytes into `directory` if the disk cannot hold them, so a
    full disk never leaves a half-written checkpoint (or deletes the previous one)."""
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise OSError(
            errno.ENOSPC,
            f"not enough free space for a checkpoint: needs about {needed} bytes "
            f"({needed / 2**20:.1f} MiB), {free} bytes ({free / 2**20:.1f} MiB) free",
            str(directory),
        )


def write_atomic(path: Path, text: str, errors: str = "strict") -> None:
    """Replace `path` whole: a kill leaves the old or the new content, never half of one.

    Each writer has a temporary file of its own (threads and processes may write one path at
    once: the last rename wins, whole). `errors` as `str.encode` takes it (UTF-8)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors=errors) as out:
            out.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; this is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- the per-step logs ----------------------------------------------------------------


def read_jsonl(path: Path, *, strict: bool, what: str = "record") -> tuple[list[dict], int]:
    """The records of a file with one JSON object per line, each with an integer `step`, and
    how many lines were skipped. A missing file has none.

    Strict (a run resuming its own logs): a partial last line (a write cut by a kill, power
    loss or a full disk) is dropped with a warning; a bad line before it is an error naming
    its number and saying that it is not a `what`. Lenient (the report of a live or damaged
    run): every bad line is skipped and counted."""
    if not path.is_file():
        return [], 0
    lines = path.read_text(errors="replace").splitlines()
    records, skipped = [], 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise TypeError
        except (ValueError, TypeError):
            skipped += 1
            if not strict:
                continue
            if number == len(lines):
                print(f"zerosum: warning: {path} line {number} is incomplete; dropped",
                      file=sys.stderr)  # fmt: skip
                break
            raise ValueError(
                f"{path} line {number} is not a {what}; fix or delete that line"
            ) from None
        records.append(record)
    return records, skipped


def _append_lines(path: Path, records: Sequence[dict]) -> None:
    # One write per call: a kill leaves at most a partial last line, which resume drops.
    with path.open("a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in records))


def _keep_steps_to(path: Path, last_step: int, what: str) -> None:
    """Drop the records of steps after `last_step` (the checkpoint a run resumes from: the
    repeated steps write theirs again)."""
    if path.exists():
        records, _ = read_jsonl(path, strict=True, what=what)
        kept = [json.dumps(r) + "\n" for r in records if r["step"] <= last_step]
        write_atomic(path, "".join(kept))


class MetricsSink(Protocol):
    """Another logger of a run's metrics (W&B: `wandb_logger.WandbLogger`)."""

    def log(self, step: int, metrics: dict[str, float]) -> None: ...

    def close(self) -> None:
        """The run ended well (not called when it fails)."""
        ...


class MetricsLog:
    """A line of namespaced metrics per step in RUN/metrics.jsonl (and TensorBoard, and each
    of `sinks`)."""

    def __init__(
        self, run_dir: Path, tensorboard: bool, resume_step: int, sinks: Sequence[MetricsSink] = ()
    ):
        self.path = run_dir / METRICS_NAME
        self.sinks = list(sinks)
        _keep_steps_to(self.path, resume_step, "metrics record")  # a damaged log fails here
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step + 1)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        _append_lines(self.path, [{"step": step, **metrics}])
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, step)
            self.writer.flush()
        for sink in self.sinks:
            sink.log(step, metrics)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        for sink in self.sinks:
            sink.close()


def kept_step(step: int, steps: int, n_steps: int) -> bool:
    """Whether the games of step `step` (of `steps`) are kept, `n_steps` steps in all
    (`run.keep_games_steps`): step 1, every ceil(steps / n_steps)-th after it and the last. A
    function of the step, so a resumed run keeps the steps the uninterrupted one keeps."""
    stride = max(1, math.ceil(steps / n_steps))
    return (step - 1) % stride == 0 or step == steps


class GamesLog:
    """A sample of the self-play games, whole, in RUN/games.jsonl (the report's replays): the
    first `keep_games` games of each kept step, in the schedule's order. Nothing is drawn at
    random, so keeping games changes nothing the run computes. Resuming drops the lines of
    steps after the checkpoint, as `MetricsLog` does, and the repeated steps write them again."""

    def __init__(
        self, run_dir: Path, resume_step: int, *, keep_games: int, steps: int,
        keep_games_steps: int,
    ):  # fmt: skip
        self.path = run_dir / GAMES_NAME
        self.keep_games, self.steps, self.keep_games_steps = keep_games, steps, keep_games_steps
        _keep_steps_to(self.path, resume_step, "kept game")

    def wanted(self, step: int, played: int) -> int:
        """How many of the `played` games of step `step` are kept (0: none)."""
        if not self.keep_games or not kept_step(step, self.steps, self.keep_games_steps):
            return 0
        return min(self.keep_games, played)

    def write(self, step: int, rollout_seed: int, games: Sequence[dict]) -> None:
        """Append step `step`'s kept `games` (played with `rollout_seed`: with each game's
        seed and the weights before the step it replays them)."""
        _append_lines(self.path, [
            {"step": step, "index": i, "rollout_seed": rollout_seed, **game}
            for i, game in enumerate(games)
        ])  # fmt: skip


# --- finding checkpoints -------------------------------------------------------------


def is_run_dir(path: Path) -> bool:
    """Whether `path` is a training run's directory (its config beside its metrics, its
    checkpoints or its lock), not a saved model, which also has a config.json."""
    if (path / "checkpoints").is_dir():
        return True
    return (path / CONFIG_NAME).is_file() and any(
        (path / name).exists() for name in (METRICS_NAME, LOCK_NAME)
    )


def step_dirs(root: Path) -> list[Path]:
    """Complete checkpoints in `root` (RUN/checkpoints), newest first; symlinks are ignored,
    so nothing outside the run is ever taken for one of its checkpoints."""
    found = [
        p
        for p in root.glob("step-*")
        if STEP_NAME.fullmatch(p.name) and p.is_dir() and not p.is_symlink()
    ]
    return sorted(found, key=lambda p: int(p.name[5:]), reverse=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint `latest` names (a symlink, or a text file in runs before symlinks), or
    None without one. Anything but a plain step-NNNNNN name inside this run is refused."""
    root = Path(run_dir) / "checkpoints"
    pointer = root / "latest"
    if pointer.is_symlink():
        name = os.readlink(pointer)
    elif pointer.is_file():
        name = pointer.read_text().strip()
    else:
        return None
    path = root / name
    if not STEP_NAME.fullmatch(name) or path.is_symlink():
        raise UnsafeCheckpointError(
            f"{pointer} points to {name!r}, not a step-NNNNNN checkpoint inside this run; "
            "refusing to follow it"
        )
    return path
