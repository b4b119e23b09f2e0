"""zerosum's on-disk cache of derived artefacts (converted models, CFR+ tables).

An entry is made once, on first use, even when threads (an arena's games) and processes
(Ray workers, parallel test runs) ask for it at the same time: `first_use` lets one maker in
per entry, threads of a process by a lock per path and processes by an `flock` on a lock
file beside the entry; the others wait, then find the entry made. Entries appear under their
final name by an atomic rename only, so a killed maker leaves nothing half written.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from zerosum.rundir import write_atomic

_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def cache_dir() -> Path:
    """Where zerosum caches derived artefacts: `$ZEROSUM_CACHE`, else ~/.cache/zerosum."""
    root = os.environ.get("ZEROSUM_CACHE") or Path.home() / ".cache" / "zerosum"
    return Path(root)


@contextmanager
def first_use(path: Path) -> Iterator[None]:
    """Held while the entry `path` is made: one maker at a time across threads and processes.
    Check again inside whether it exists: another maker may have made it meanwhile."""
    path = Path(os.path.abspath(path))
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(path, threading.Lock())
    with lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(f".{path.name}.lock"), "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)  # released when the file closes, or at death
            yield


def cached_text(path: Path, make: Callable[[], str]) -> str:
    """The text of the cache entry `path`; `make()` computes it on first use, once."""
    if path.is_file():
        return path.read_text()
    with first_use(path):
        if path.is_file():
            return path.read_text()
        text = make()
        write_atomic(path, text)
        return text
