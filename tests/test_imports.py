"""Import hygiene: light modules stay light (checked in fresh interpreters)."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module, banned",
    [
        ("zerosum.models", ["pyspiel", "open_spiel", "zerosum.players", "torch"]),
    ],
)
def test_module_does_not_import_heavy_dependencies(module, banned):
    code = f"import sys, {module}; print(' '.join(m for m in {banned!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing {module} imported {out.stdout.strip()}"
