"""bench/gpu_check.sh on a machine without a CUDA GPU: it stops at once, with one line
saying so and a non-zero status, before it writes anything (the GPU stages themselves need
a GPU; `GPU_CHECK_DEVICE=cpu` runs them on the CPU, which is how the script was checked)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parent.parent / "bench" / "gpu_check.sh"


def run(tmp_path: Path, path: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": path, "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "out")], capture_output=True, text=True, env=env,
        timeout=60,  # a hang guard: it answers in about a second
    )  # fmt: skip


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has nvidia-smi")
def test_without_nvidia_smi_it_stops_with_one_line(tmp_path):
    out = run(tmp_path, os.environ["PATH"])
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "gpu_check: no CUDA GPU here (nvidia-smi not found); run it on a machine with one"
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch sees a CUDA GPU")
def test_with_a_torch_that_sees_no_gpu_it_stops_with_one_line(tmp_path):
    """nvidia-smi present (a stand-in here) but a CPU build of torch."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
    (fake / "nvidia-smi").chmod(0o755)
    out = run(tmp_path, f"{fake}:{os.environ['PATH']}")
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        f"gpu_check: {sys.executable}'s torch sees no CUDA GPU (torch.cuda.is_available() is "
        "False, or no torch)"
    ]
    assert not (tmp_path / "out").exists()
