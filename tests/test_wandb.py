"""Weights & Biases logging, offline: the run is read back with wandb's own reader of its
transaction log (`wandb leet inspect --json`), never with zerosum's code."""

import base64
import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerosum.config import ConfigError, config_from_dict, load_config
from zerosum.train import train

pytest.importorskip("wandb")

RECIPE = Path(__file__).parent.parent / "configs" / "tiny_kuhn_test.yaml"
FAST = ["rollout.games_per_step=8", "rollout.max_concurrent=8", "run.progress=false"]


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    """Every W&B file under tmp_path, nothing to the network or the home directory."""
    root = tmp_path / "wandb-home"
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR",
                "WANDB_ARTIFACT_DIR"):  # fmt: skip
        (root / var).mkdir(parents=True)
        monkeypatch.setenv(var, str(root / var))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return root / "WANDB_DIR"


def offline_runs(wandb_dir: Path) -> list[list[dict]]:
    """The records of each offline run under `wandb_dir`, oldest first, as wandb reads them."""
    runs = []
    for path in sorted(wandb_dir.glob("wandb/offline-run-*/run-*.wandb")):
        out = subprocess.run(
            [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(path)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        runs.append([json.loads(line) for line in out.stdout.splitlines() if line.strip()])
    return runs


def of_type(records: list[dict], kind: str) -> list[dict]:
    return [r[kind] for r in records if r["type"] == kind]


def history(records: list[dict]) -> dict[int, dict]:
    """Step -> the values logged at it (wandb's own keys, `_step` and such, dropped)."""
    rows: dict[int, dict] = {}
    for h in of_type(records, "history"):
        items = {k: v for k, v in h["item"].items() if not k.startswith("_")}
        rows.setdefault(h["step"]["num"], {}).update(items)
    return rows


def same(a, b) -> bool:
    return (isinstance(a, float) and math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


def test_offline_run_has_the_metrics_config_games_and_report(tmp_path, wandb_env):
    run_dir = tmp_path / "run"
    overrides = [*FAST, "run.steps=2", "run.checkpoint_every=1", "run.tensorboard=false",
                 f"run.out_dir={run_dir}", "run.keep_games=2", "wandb.mode=offline",
                 "wandb.project=zs-test"]  # fmt: skip
    train(load_config(RECIPE, overrides))
    (first,) = offline_runs(wandb_env)
    run_id = (run_dir / "wandb-id").read_text().strip()
    (start,) = of_type(first, "run")
    assert (start["run_id"], start["project"]) == (run_id, "zs-test")

    config: dict = {}
    for update in of_type(first, "config"):
        config.update(update["update"])
    saved = json.loads((run_dir / "config.json").read_text())
    assert {k: config[k] for k in saved} == saved  # every section, as the run resolved it

    logged = history(first)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert sorted(logged) == [1, 2]
    for row in metrics:
        values = {k: v for k, v in logged[row["step"]].items() if not k.startswith("games/")}
        assert values.keys() == row.keys() - {"step"}
        assert all(same(values[k], row[k]) for k in values), row["step"]

    games = [json.loads(line) for line in (run_dir / "games.jsonl").read_text().splitlines()]
    assert len(games) == 4  # two kept games of each step
    table_ref = {k.split(".", 1)[1]: v for k, v in logged[2].items() if k.startswith("games/")}
    assert (table_ref["_type"], table_ref["nrows"]) == ("table-file", len(games))
    table = json.loads(
        next(wandb_env.glob(f"wandb/*{run_id}/files/{table_ref['path']}")).read_text()
    )
    step, index, transcript = (table["columns"].index(c) for c in ("step", "index", "transcript"))
    assert [(r[step], r[index]) for r in table["data"]] == [(g["step"], g["index"]) for g in games]
    assert games[0]["turns"][0]["response"] in table["data"][0][transcript]

    (artifact,) = [a for a in of_type(first, "artifact") if a["type"] == "report"]
    (entry,) = artifact["manifest"]["contents"]
    report = (run_dir / "report.html").read_bytes()
    assert entry["path"] == "report.html"
    assert entry["digest"] == base64.b64encode(hashlib.md5(report).digest()).decode()
    assert of_type(first, "exit")[-1].get("exit_code", 0) == 0

    # --resume continues the same W&B run from the step after the checkpoint.
    resumed = load_config(run_dir / "config.json", [f"run.out_dir={run_dir}", "run.steps=3"])
    train(resumed, resume=True)
    first_again, second = offline_runs(wandb_env)
    (start2,) = of_type(second, "run")
    assert start2["run_id"] == run_id
    assert sorted(history(second)) == [3]
    assert (run_dir / "wandb-id").read_text().strip() == run_id


def test_disabled_needs_no_wandb_and_writes_nothing(tmp_path, wandb_env, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` fails
    overrides = [*FAST, "run.steps=1", "run.tensorboard=false", f"run.out_dir={tmp_path / 'r'}"]
    train(load_config(RECIPE, overrides))
    assert not (tmp_path / "r" / "wandb-id").exists()
    assert not list(wandb_env.rglob("*.wandb"))
    with pytest.raises(ValueError, match=r"wandb.mode.*'offline'.*pip install 'zerosum\[wandb\]'"):
        train(load_config(RECIPE, [*overrides, "wandb.mode=offline"]), overwrite=True)


@given(st.text(min_size=1, max_size=40))
def test_project_names_wandb_refuses_are_refused_in_one_line(name):
    bad = any(c in name for c in "/\\#?%:") or any(c.isspace() for c in name)
    try:
        cfg = config_from_dict({"wandb": {"project": name}})
    except ConfigError as err:
        assert bad
        assert "wandb.project" in str(err) and "\n" not in str(err)
    else:
        assert not bad and cfg.wandb.project == name
