"""Each game added beside the original seven trains a step, is evaluated and plays in the
arena through the command line, as a user would run them (a tiny random model: its answers
are mostly unreadable and forfeit, which the pipeline must survive)."""

from __future__ import annotations

import json

import pytest

from zerosum.cli import main
from zerosum.games import load_game

GAMES = [
    "chess", "chess_unlisted", "adversarial_taboo", "password_game", "redteam", "debate",
    "ta_tic_tac_toe", "othello",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("game", GAMES)
def test_a_new_game_trains_evaluates_and_plays_in_the_arena(game, tmp_path, capsys):
    assert main(["games", "--check", game]) == 0
    assert f"{game}  " in capsys.readouterr().out
    run = tmp_path / "run"
    assert main([
        "train", "--config", "configs/tiny_kuhn_test.yaml", f"rollout.games={{{game}: 1.0}}",
        "rollout.answer_mode=free", "rollout.games_per_step=4", "rollout.max_concurrent=4",
        "sampling.max_new_tokens=8", "run.steps=1", "run.eval_every=0", "eval.nash_conv=[]",
        "run.checkpoint_every=1", "run.keep_games=2", "run.tensorboard=false",
        f"run.out_dir={run}",
    ]) == 0  # fmt: skip
    step = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert step["rollout/games"] == 4 and f"rollout/{game}/return_seat0" in step
    # Bots where the game has them; otherwise the checkpoint plays a copy of itself.
    finite = load_game(game).capabilities.finite_actions
    opponent = "random" if finite else f"model:{run}"
    results = tmp_path / "eval.json"
    assert main([
        "eval", "--model", str(run), "--games", game, "--opponents", opponent, "--n", "2",
        "--max-new-tokens", "8", "--out", str(results),
    ]) == 0  # fmt: skip
    scored = json.loads(results.read_text())["games"][game]["opponents"][opponent]
    assert scored["games"] == 2
    arena = tmp_path / "arena.yaml"
    arena.write_text(
        f"dir: {tmp_path / 'arena'}\ngames: [{game}]\nn: 1\nplayers:\n  - {opponent}\n"
        f"  - {{kind: local, name: tiny, model: {run}, max_new_tokens: 8}}\n"
    )
    assert main(["arena", "--config", str(arena)]) == 0
    rated = json.loads((tmp_path / "arena" / "results.json").read_text())
    assert game in json.dumps(rated) and "tiny" in json.dumps(rated)
    capsys.readouterr()
