"""Run directories: one writer at a time, writable before the model loads, no stale leftovers.

`zerosum train` holds an exclusive `flock` on RUN/.lock for the life of the run; the file
names the holder (pid, host) for the error a second process gets. The kernel drops the lock
when the holder's file descriptor closes, which includes any death (SIGKILL, OOM, power off
aside), so a stale lock needs no cleaning: the next run simply acquires it. Under the lock,
temporary checkpoint files left by a killed run are surely stale and are removed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

LOCK_NAME = ".lock"
# The run directory's files: its config, a line of metrics per step, the kept games.
CONFIG_NAME, METRICS_NAME, GAMES_NAME = "config.json", "metrics.jsonl", "games.jsonl"
STEP_NAME = re.compile(r"step-\d{6,}")  # a checkpoint directory in RUN/checkpoints
# What a run writes; `--overwrite` removes exactly these, never unrelated files in out_dir.
RUN_ENTRIES = (CONFIG_NAME, METRICS_NAME, GAMES_NAME, "checkpoints", "tensorboard", "report.html")
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
