"""Fault injection on `zerosum train`, driven through the CLI as a user would drive it.

Kills (SIGKILL, including in the middle of writing a checkpoint), truncated and doctored
checkpoint files, a damaged metrics log, a full disk, a read-only directory, two trainers on
one run. Every case must end in exactly one `zerosum: error:` line or in a correct resume (the
metrics of the uninterrupted run, exactly), and nothing already written may be lost.

Full and read-only disks are real tmpfs mounts where this process may mount (root with
CAP_SYS_ADMIN); elsewhere those tests skip, and the full-disk check is also covered by a
portable test that fakes `shutil.disk_usage`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from zerosum.cli import main

RECIPE = Path(__file__).parent.parent / "configs" / "tiny_kuhn_test.yaml"
QUICK = [
    "run.checkpoint_every=1", "run.eval_every=0", "rollout.games_per_step=8",
    "rollout.max_concurrent=8", "run.progress=false", "run.tensorboard=false",
    "model.tiny_hidden_size=32", "model.tiny_layers=1",
]  # fmt: skip
STEPS = 3


def train_args(run_dir: Path, steps: int = STEPS, *extra: str) -> list[str]:
    return ["train", "--config", str(RECIPE), *QUICK, f"run.steps={steps}",
            f"run.out_dir={run_dir}", *extra]  # fmt: skip


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def error_line(err: str) -> str:
    """The run's error: exactly one line, the last on stderr, and no traceback."""
    lines = err.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("zerosum: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert "Traceback" not in err, err
    return errors[0]


def metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]


def snapshot(run_dir: Path) -> dict[str, bytes | str]:
    """Every file of a run (the lock file aside) by relative path; symlinks by target."""
    out: dict[str, bytes | str] = {}
    for path in sorted(run_dir.rglob("*")):
        rel = str(path.relative_to(run_dir))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file() and path.name != ".lock":
            out[rel] = path.read_bytes()
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run of STEPS steps keeping every checkpoint; tests damage copies."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    assert main(train_args(run_dir, STEPS, f"run.keep_checkpoints={STEPS}")) == 0
    return run_dir


@pytest.fixture
def run(reference, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(reference, copy, symlinks=True)
    return copy


def checkpoint(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step-{step:06d}"


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def point_latest(run_dir: Path, name: str) -> None:
    latest = run_dir / "checkpoints" / "latest"
    latest.unlink()
    latest.symlink_to(name)


# --- what --resume trusts --------------------------------------------------------------------


class Payload:
    """Unpickling this creates `marker`: any code a pickle names runs at load time."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_doctored_trainer_state_is_refused_and_never_run(run, tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    state = checkpoint(run, STEPS) / "trainer_state.pt"
    blob = torch.load(state, weights_only=True)
    torch.save({**blob, "extra": Payload(marker)}, state)

    code, err = run_cli(capsys, "train", "--resume", str(run), f"run.steps={STEPS + 1}")
    line = error_line(err)
    assert code == 2 and "refusing" in line and str(state) in line and "io.open" in line
    assert not marker.exists()
    torch.load(state, weights_only=False)  # the payload is live: the old loader ran it
    assert marker.exists()


def test_trainer_state_of_an_older_version_resumes(run, reference, capsys):
    """Older runs saved a `turns_trained` counter in the training state: it is ignored."""
    state = checkpoint(run, STEPS) / "trainer_state.pt"
    blob = torch.load(state, weights_only=True)
    blob["state"]["turns_trained"] = 123
    torch.save(blob, state)
    code, err = run_cli(capsys, "train", "--resume", str(run), f"run.steps={STEPS + 1}")
    assert code == 0 and "warning" not in err, err  # step 3 itself, not a fallback to step 2
    assert metrics(run)[:STEPS] == metrics(reference) and len(metrics(run)) == STEPS + 1
    saved = torch.load(checkpoint(run, STEPS + 1) / "trainer_state.pt", weights_only=True)
    assert saved["state"]["step"] == STEPS + 1 and "turns_trained" not in saved["state"]


@pytest.mark.parametrize("kind", ["symlink", "text file", "absolute symlink"])
def test_latest_pointing_outside_the_run_is_refused(reference, tmp_path, capsys, kind):
    other, run = tmp_path / "other", tmp_path / "run"
    shutil.copytree(reference, other, symlinks=True)
    shutil.copytree(reference, run, symlinks=True)
    latest = run / "checkpoints" / "latest"
    latest.unlink()
    target = "../../other/checkpoints/step-000002"
    if kind == "text file":
        latest.write_text(target)
    else:
        latest.symlink_to(target if kind == "symlink" else other / "checkpoints" / "step-000002")
    before = snapshot(run)

    code, err = run_cli(capsys, "train", "--resume", str(run), f"run.steps={STEPS + 1}")
    assert code == 2 and "refusing to follow it" in error_line(err)
    assert snapshot(run) == before


def test_a_step_directory_that_is_a_symlink_is_never_loaded(reference, tmp_path, capsys):
    other, run = tmp_path / "other", tmp_path / "run"
    shutil.copytree(reference, other, symlinks=True)
    shutil.copytree(reference, run, symlinks=True)
    shutil.rmtree(checkpoint(run, 3))
    checkpoint(run, 3).symlink_to(checkpoint(other, 3))

    code, err = run_cli(capsys, "train", "--resume", str(run))
    assert code == 2 and "refusing to follow it" in error_line(err)


# --- one run per directory -------------------------------------------------------------------


def test_existing_run_is_refused_unless_resumed_or_overwritten(run, capsys):
    before = snapshot(run)
    code, err = run_cli(capsys, *train_args(run, 1))
    line = error_line(err)
    assert code == 2 and str(run) in line and f"--resume {run}" in line and "--overwrite" in line
    assert snapshot(run) == before

    (run / "notes.txt").write_text("mine")  # not part of the run: --overwrite keeps it
    code, err = run_cli(capsys, *train_args(run, 1), "--overwrite")
    assert code == 0, err
    assert [r["step"] for r in metrics(run)] == [1]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step-000001"]
    assert (run / "notes.txt").read_text() == "mine"


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from zerosum.rundir import RunLock
lock = RunLock(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(600)
"""


def test_locked_run_is_refused_naming_the_holder_until_it_dies(run, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(run)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, err = run_cli(capsys, "train", "--resume", str(run))
        line = error_line(err)
        assert code == 2 and f"pid {holder.pid} " in line and str(run) in line
    finally:
        holder.kill()  # SIGKILL: the kernel releases its flock, no stale lock to clean
        holder.wait()
    code, err = run_cli(capsys, "train", "--resume", str(run), f"run.steps={STEPS + 1}")
    assert code == 0, err
    assert [r["step"] for r in metrics(run)] == [1, 2, 3, 4]


def test_stale_temporaries_are_removed_at_start(run, capsys):
    root = run / "checkpoints"
    (root / ".tmp-step-000004-4242" / "model").mkdir(parents=True)
    (root / ".tmp-step-000004-4242" / "model" / "model.safetensors").write_bytes(b"\0" * 100)
    (root / ".latest-4242").symlink_to("step-000004")
    (run / ".config.json.tmp-4242").write_text("{")
    code, err = run_cli(capsys, "train", "--resume", str(run))
    assert code == 0, err
    assert sorted(p.name for p in root.iterdir()) == [
        "latest",
        "step-000001",
        "step-000002",
        "step-000003",
    ]
    assert not list(run.glob(".*.tmp-*"))


# --- kills -----------------------------------------------------------------------------------

# Runs the CLI with save_checkpoint pausing just before it publishes step 2: the temporary
# checkpoint is complete on disk, `latest` still names step 1.
PAUSED_TRAINER = """
import sys, time
from pathlib import Path
import zerosum.checkpoint as ck
publish = ck._publish
def paused(tmp, final):
    if final.name == "step-000002":
        Path(sys.argv[1]).write_text("paused")
        time.sleep(600)
    publish(tmp, final)
ck._publish = paused
from zerosum.cli import main
sys.exit(main(sys.argv[2:]))
"""


def wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300  # a guard against a hung child, not a timing assertion
    while not path.exists():
        assert proc.poll() is None, "the trainer ended early"
        assert time.monotonic() < deadline, "the trainer never got there"
        time.sleep(0.05)


def test_kill_mid_checkpoint_then_resume(reference, tmp_path, capsys):
    """SIGKILL while step 2's checkpoint is half published; meanwhile a second trainer on the
    same run is refused. The resume cleans the leftovers and repeats the run exactly."""
    run, paused = tmp_path / "run", tmp_path / "paused"
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSED_TRAINER, str(paused), *train_args(run)],
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(paused, proc)
        code, err = run_cli(capsys, "train", "--resume", str(run))
        assert code == 2 and f"pid {proc.pid} " in error_line(err)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert os.readlink(run / "checkpoints" / "latest") == "step-000001"
    assert list((run / "checkpoints").glob(".tmp-step-000002-*"))
    written = metrics(run)
    assert [r["step"] for r in written] == [1, 2]

    code, err = run_cli(capsys, "train", "--resume", str(run))
    assert code == 0, err
    assert metrics(run) == metrics(reference)
    assert metrics(run)[: len(written)] == written
    assert not list((run / "checkpoints").glob(".*"))
    assert os.readlink(run / "checkpoints" / "latest") == f"step-{STEPS:06d}"


@pytest.fixture(scope="module")
def child_seconds(tmp_path_factory) -> float:
    """How long an uninterrupted training process lives, start-up included."""
    start = time.monotonic()
    run = tmp_path_factory.mktemp("timed") / "run"
    subprocess.run(
        [sys.executable, "-m", "zerosum.cli", *train_args(run)], check=True,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return time.monotonic() - start


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kill_at_a_random_moment_then_resume(reference, child_seconds, tmp_path, capsys, seed):
    """SIGKILL at a random moment of the process's life (start-up, a step, a checkpoint...),
    drawn within the first 80% of an uninterrupted process's time, and the process is
    checked to be alive when it is killed. Either the resume repeats the uninterrupted run,
    or (killed before the first checkpoint) it is one line."""
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "zerosum.cli", *train_args(run)], stderr=subprocess.DEVNULL
    )
    time.sleep(random.Random(seed).uniform(0.1, 0.8) * child_seconds)
    assert proc.poll() is None, "the run ended before it was killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = metrics(run) if (run / "metrics.jsonl").exists() else []
    code, err = run_cli(capsys, "train", "--resume", str(run))
    if code == 0:
        assert metrics(run) == metrics(reference)
        assert metrics(run)[: len(written)] == written
    else:
        line = error_line(err)
        assert "no checkpoint to resume from" in line or "not a run directory" in line


# --- damaged files ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["trainer_state.pt", "model/model.safetensors"])
def test_truncated_checkpoint_falls_back_to_the_previous_one(run, reference, capsys, name):
    truncate(checkpoint(run, STEPS) / name)
    code, err = run_cli(capsys, "train", "--resume", str(run))
    assert code == 0, err
    warnings = [ln for ln in err.splitlines() if ln.startswith("zerosum: warning:")]
    assert any(name.split("/")[-1] in w and "unreadable" in w for w in warnings), err
    assert any(f"resuming from step-{STEPS - 1:06d}" in w for w in warnings), err
    assert metrics(run) == metrics(reference)  # step 3 done again, identically
    weights = "model/model.safetensors"
    assert (checkpoint(run, STEPS) / weights).read_bytes() == (
        checkpoint(reference, STEPS) / weights
    ).read_bytes()


def test_no_loadable_checkpoint_is_one_line_and_changes_nothing(run, capsys):
    for step in range(1, STEPS + 1):
        truncate(checkpoint(run, step) / "trainer_state.pt")
    before = snapshot(run)
    code, err = run_cli(capsys, "train", "--resume", str(run))
    assert code == 2 and "no loadable checkpoint" in error_line(err)
    assert snapshot(run) == before


def test_partial_last_metrics_line_is_dropped(run, reference, capsys):
    """Power loss in step 3: its metrics line is half written, its checkpoint never made."""
    shutil.rmtree(checkpoint(run, STEPS))
    point_latest(run, f"step-{STEPS - 1:06d}")
    path = run / "metrics.jsonl"
    text = path.read_text()
    last = text.splitlines()[-1]
    path.write_text(text[: len(text) - 1 - len(last) // 2])  # no newline, half the record
    code, err = run_cli(capsys, "train", "--resume", str(run))
    assert code == 0, err
    assert f"metrics.jsonl line {STEPS} is incomplete" in err
    assert metrics(run) == metrics(reference)


def test_corrupt_metrics_line_in_the_middle_is_one_line_naming_it(run, capsys):
    path = run / "metrics.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1][:10]
    path.write_text("\n".join(lines) + "\n")
    before = snapshot(run)
    code, err = run_cli(capsys, "train", "--resume", str(run), f"run.steps={STEPS + 1}")
    line = error_line(err)
    assert code == 2 and "metrics.jsonl line 2 " in line
    assert snapshot(run) == before


# --- full and read-only disks ----------------------------------------------------------------


def test_full_disk_fails_before_writing_a_checkpoint(run, capsys, monkeypatch):
    """Portable: `shutil.disk_usage` reports 1 MB free."""
    free = shutil.disk_usage(run)._replace(free=2**20)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: free)
    before = snapshot(run)
    code, err = run_cli(capsys, "train", "--resume", str(run), f"run.steps={STEPS + 1}")
    line = error_line(err)
    assert code == 1 and str(run / "checkpoints") in line and f"{2**20} bytes" in line
    assert "needs about" in line
    after = snapshot(run)
    logs = ("metrics.jsonl", "games.jsonl", "config.json")
    assert {k: v for k, v in after.items() if k not in logs} == {
        k: v for k, v in before.items() if k not in logs
    }
    assert after["metrics.jsonl"].startswith(before["metrics.jsonl"])  # step 4 appended
    assert after["games.jsonl"].startswith(before["games.jsonl"])  # its kept games too

    monkeypatch.undo()  # space freed: the resume redoes step 4 from step 3
    code, err = run_cli(capsys, "train", "--resume", str(run), f"run.steps={STEPS + 1}")
    assert code == 0, err
    assert [r["step"] for r in metrics(run)] == [1, 2, 3, 4]


@pytest.fixture
def mount_tmpfs():
    """Mount a tmpfs (options e.g. `size=64m`, `ro`) at a path; skips where that is denied."""
    mounted: list[Path] = []

    def mount(path: Path, options: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        if shutil.which("mount") is None:
            pytest.skip("no mount command")
        cmd = ["mount", "-t", "tmpfs", "-o", options, "zerosum-test", str(path)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.parametrize("estimate", ["real", "too optimistic"])
def test_small_disk_fills_up(reference, tmp_path, capsys, monkeypatch, mount_tmpfs, estimate):
    """A real 100 MiB disk, partly taken by another file: the first checkpoint (about 22 MB)
    fits, the second does not. The free-space check refuses it before writing (needed: the
    tensors plus 32 MiB); were the estimate wrong, the write's own ENOSPC is one line too and
    its partial files are removed. Once the other file is gone, the run resumes."""
    disk = mount_tmpfs(tmp_path / "disk", "size=100m")
    ballast = disk / "other-file"
    ballast.write_bytes(b"\0" * (40 if estimate == "real" else 70) * 10**6)
    if estimate == "too optimistic":
        monkeypatch.setattr("zerosum.checkpoint.checkpoint_bytes", lambda *a, **k: 0)
    run = disk / "run"
    code, err = run_cli(capsys, *train_args(run))
    line = error_line(err)
    assert code == 1 and str(run / "checkpoints") in line
    assert ("needs about" in line) == (estimate == "real"), line
    written = metrics(run)
    assert [r["step"] for r in written] == [1, 2]
    assert os.readlink(run / "checkpoints" / "latest") == "step-000001"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step-000001"]

    if estimate != "real":
        return  # the resume below is the same in both cases
    ballast.unlink()
    code, err = run_cli(capsys, "train", "--resume", str(run))
    assert code == 0, err
    assert metrics(run) == metrics(reference)
    assert metrics(run)[:2] == written


@pytest.fixture
def read_only_dir(tmp_path, mount_tmpfs) -> Path:
    """chmod does not stop root from writing: as root, a read-only tmpfs mount instead."""
    if os.geteuid() == 0:
        yield mount_tmpfs(tmp_path / "ro", "ro,size=1m")
        return
    path = tmp_path / "ro"
    path.mkdir()
    path.chmod(0o555)
    yield path
    path.chmod(0o755)


def test_read_only_out_dir_fails_before_the_model_loads(read_only_dir, capsys, monkeypatch):
    ro = read_only_dir

    def no_model(cfg):
        raise AssertionError("the model was loaded before the directory was checked")

    monkeypatch.setattr("zerosum.assembly.build_model", no_model)
    for out_dir in (ro, ro / "run"):  # the mount point itself, and a directory to create in it
        code, err = run_cli(capsys, *train_args(out_dir))
        line = error_line(err)
        assert code == 2 and f"{str(out_dir)!r} is not writable" in line
        assert "Read-only file system" in line or "Permission denied" in line


def test_os_errors_are_one_line_and_other_errors_keep_their_traceback(monkeypatch, capsys):
    def failing(exc: Exception):
        def cmd(args):
            raise exc

        return cmd

    denied = PermissionError(13, "Permission denied", "runs/x/metrics.jsonl")
    monkeypatch.setattr("zerosum.cli.cmd_train", failing(denied))
    code, err = run_cli(capsys, "train")
    assert code == 1
    assert error_line(err) == "zerosum: error: Permission denied: 'runs/x/metrics.jsonl'"
    monkeypatch.setattr("zerosum.cli.cmd_train", failing(TypeError("a bug")))
    with pytest.raises(TypeError):
        main(["train"])
