"""The on-disk cache under concurrent first use: threads and processes asking for one entry
at once on an empty cache get the same entry, made once (zerosum.cache), and every atomic
write leaves whole files only (zerosum.rundir.write_atomic)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from zerosum.rundir import write_atomic

ROOT = Path(__file__).resolve().parent.parent

# A process of the test: N threads ask for one entry; each make() appends a line to a log.
WORKER = """
import sys, threading, time
from pathlib import Path
from zerosum.cache import cached_text
entry, log, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
def make():
    with open(log, "a") as f:
        f.write("made\\n")
    time.sleep(0.3)  # a slow computation: the others arrive while it runs
    return "the table"
out = []
threads = [threading.Thread(target=lambda: out.append(cached_text(entry, make))) for _ in range(n)]
[t.start() for t in threads]
[t.join() for t in threads]
print(",".join(out))
"""


def test_threads_and_processes_make_a_cache_entry_once(tmp_path):
    entry, log = tmp_path / "cache" / "cfr" / "table.json", tmp_path / "made.log"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(entry), str(log), "4"],
            stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )
        for _ in range(3)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert outputs == [",".join(["the table"] * 4)] * 3
    assert log.read_text() == "made\n"
    assert sorted(p.name for p in entry.parent.iterdir()) == [".table.json.lock", "table.json"]


def test_the_nash_table_is_computed_once_by_an_arenas_threads(tmp_path, monkeypatch):
    """The arena's games ask for the CFR+ table from several threads on a cold cache."""
    import zerosum.solvers as solvers

    monkeypatch.setenv("ZEROSUM_CACHE", str(tmp_path))
    solvers.cfr_policy_table.cache_clear()
    made = []
    real = solvers._cfr_plus
    monkeypatch.setattr(solvers, "_cfr_plus", lambda *a: made.append(a) or real(*a))
    tables: list[dict] = []
    barrier = threading.Barrier(6)

    def ask():
        barrier.wait()
        tables.append(solvers.cfr_policy_table("kuhn_poker", 200))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    solvers.cfr_policy_table.cache_clear()  # later tests read the suite's cache afresh
    assert len(tables) == 6 and all(t == tables[0] for t in tables)
    assert made == [("kuhn_poker", 200)]
    saved = json.loads((tmp_path / "cfr" / "kuhn_poker-cfrplus-200.json").read_text())
    assert saved == tables[0] and len(saved) == 12  # Kuhn Poker's 12 information sets


def test_concurrent_atomic_writes_leave_one_whole_file(tmp_path):
    path = tmp_path / "results.json"
    texts = [json.dumps({"writer": i, "pad": "x" * 200_000}) for i in range(8)]
    failed: list[BaseException] = []

    def write(text: str) -> None:
        try:
            write_atomic(path, text)
        except Exception as err:  # a writer whose temporary file another one renamed
            failed.append(err)

    threads = [threading.Thread(target=write, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failed == []
    assert path.read_text() in texts
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary left
