"""Weights & Biases as an optional second logger of a training run (the `wandb` section).

It receives what `rundir.MetricsLog` writes (the same namespaced metrics, per step), the run's
config once, and when the run ends the kept games (RUN/games.jsonl) as a table and the report
as an artifact. The W&B run's id is kept in RUN/wandb-id, so `zerosum train --resume`
continues the same W&B run; the steps a resume repeats are logged again (online, W&B keeps
the first values of a step it already has; a resumed run repeats them exactly anyway).

`wandb` is an optional dependency (the `wandb` extra), imported only when the mode is not
`disabled`. Offline runs are written under $WANDB_DIR if set, else the run directory
(RUN/wandb/offline-run-*), and uploaded later with `wandb sync`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from zerosum.rundir import GAMES_NAME, WANDB_ID_NAME, read_jsonl, write_atomic
from zerosum.tables import one_line
from zerosum.typed_config import Bound, fld
from zerosum.untrusted import for_display

WandbMode = Literal["disabled", "offline", "online"]
GAMES_KEY = "games/replays"
# W&B refuses these in project and entity names.
_NAME = re.compile(r"[^/\\#?%:\s]{1,128}")
_W_NAME = Bound(
    lambda v: _NAME.fullmatch(v) is not None,
    "null or 1-128 characters without spaces or any of / \\ # ? % :",
)


@dataclass
class WandbConfig:
    """`wandb`: Weights & Biases logging (the `wandb` extra; off by default)."""

    mode: WandbMode = fld(
        "disabled",
        "disabled: no W&B; offline: write the W&B run locally (upload with `wandb sync`); "
        "online: stream it to the W&B server (needs `wandb login` or WANDB_API_KEY)",
    )
    project: str = fld("zerosum", "W&B project", _W_NAME)
    entity: str | None = fld(None, "W&B entity (user or team); null: your default", _W_NAME)
    name: str | None = fld(
        None, "display name of the W&B run; null: the run directory's name", Bound(
            lambda v: 0 < len(v) <= 128, "null or 1-128 characters"
        ),
    )  # fmt: skip


def require_wandb(mode: str) -> None:
    """Fail in one line, before anything slow, when `mode` needs wandb and it is missing."""
    if mode == "disabled":
        return
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise ValueError(
            f"config field 'wandb.mode' = {mode!r} needs the wandb package: "
            "pip install 'zerosum[wandb]' (allowed without it: 'disabled')"
        ) from None


def run_id(run_dir: Path, resume: bool) -> str:
    """The W&B run id of `run_dir`: the kept one when resuming, else a new one (kept)."""
    path = run_dir / WANDB_ID_NAME
    if resume and path.is_file():
        kept = path.read_text().strip()
        if re.fullmatch(r"[a-z0-9]{1,64}", kept):
            return kept
    new = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    write_atomic(path, new + "\n")
    return new


class WandbLogger:
    """One W&B run mirroring a training run: a `rundir.MetricsSink`."""

    def __init__(
        self, settings: WandbConfig, run_dir: Path, config: dict[str, Any], resume: bool,
        report: Callable[[], Path] | None = None,
    ):  # fmt: skip
        """Start (or, `resume`, continue) the W&B run of `run_dir`; `report` writes the run's
        report and returns its path (called when the run ends)."""
        import wandb

        self.run_dir, self.report = run_dir, report
        self.last_step: int | None = None
        self.id = run_id(run_dir, resume)
        try:
            self.run = wandb.init(
                project=settings.project, entity=settings.entity, mode=settings.mode,
                name=settings.name or run_dir.resolve().name, id=self.id, resume="allow",
                dir=os.environ.get("WANDB_DIR") or str(run_dir), job_type="train",
            )  # fmt: skip
        except Exception as err:  # no login, no network, a server's refusal
            raise ValueError(
                f"wandb.mode {settings.mode!r}: W&B did not start ({one_line(err, 200)}); "
                "log in (wandb login) or use wandb.mode=offline"
            ) from None
        # A resumed run may extend run.steps: the config as it is now wins.
        self.run.config.update(config, allow_val_change=True)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(dict(metrics), step=step)
        self.last_step = step

    def close(self) -> None:
        """The run ended well: the kept games as a table, the report as an artifact."""
        if self.run is None:
            return
        import wandb

        games, _ = read_jsonl(self.run_dir / GAMES_NAME, strict=False)
        if games:
            table = wandb.Table(columns=list(GAME_COLUMNS), data=[game_row(g) for g in games])
            self.run.log({GAMES_KEY: table}, step=self.last_step)
        if self.report is not None:
            artifact = wandb.Artifact(f"report-{self.id}", type="report")
            artifact.add_file(str(self.report()), name="report.html")
            self.run.log_artifact(artifact)
        self._finish(0)

    def abort(self) -> None:
        """The run failed (or was never closed): finish the W&B run as failed."""
        self._finish(1)

    def _finish(self, code: int) -> None:
        if self.run is not None:
            self.run.finish(exit_code=code)
            self.run = None


GAME_COLUMNS = (
    "step", "index", "game", "seed", "players", "returns", "winner", "turns", "truncated",
    "transcript",
)  # fmt: skip


def game_row(game: dict[str, Any]) -> list[Any]:
    """A kept game (a line of RUN/games.jsonl) as a row of `GAME_COLUMNS`: its transcript is
    every turn's response and move as text (model text shown, never interpreted)."""
    outcome = game.get("outcome") or {}
    lines = [
        f"seat {t.get('seat')}: {t.get('response', '')}\n  -> move {t.get('move')!r}"
        f"{'' if t.get('valid', True) else ' (invalid)'}"
        for t in game.get("turns") or []
    ]
    return [
        game.get("step"), game.get("index"), game.get("game"), game.get("seed"),
        json.dumps(game.get("players")), json.dumps(outcome.get("returns")),
        outcome.get("winner"), outcome.get("turns"), outcome.get("truncated"),
        for_display("\n".join(lines)),
    ]  # fmt: skip
