from dataclasses import dataclass

import numpy as np
import pytest

from zerosum.cli import main
from zerosum.games import load_game
from zerosum.match import play_episode, run_match
from zerosum.players import make_player
from zerosum.players.base import Move
from zerosum.rollout import InvalidMovePolicy


@dataclass
class Scripted:
    """Answers with a fixed list of moves, then plays the first legal action."""

    answers: list
    name: str = "scripted"

    def act(self, state, rng, feedback=None):
        if self.answers:
            answer = self.answers.pop(0)
            return Move(answer, reason=None if answer else "no \\boxed{} answer")
        return Move(state.legal_actions()[0])


def test_forfeit_uses_configured_rewards():
    policy = InvalidMovePolicy("forfeit", loss=-1.5, win=0.5)
    rec = play_episode(load_game("kuhn_poker"), [Scripted([None]), Scripted([])], 0, policy)
    assert rec.outcome.returns == (-1.5, 0.5)
    assert rec.outcome.forfeit_seat == 0
    assert rec.invalid == [(0, "no \\boxed{} answer")]


def test_retry_then_forfeit():
    policy = InvalidMovePolicy("retry", retries=2)
    rec = play_episode(
        load_game("kuhn_poker"), [Scripted([None, None, "bet"]), Scripted([])], 0, policy
    )
    assert rec.outcome.forfeit_seat is None and rec.moves[0] == (0, "bet")
    assert len(rec.invalid) == 2
    rec = play_episode(
        load_game("kuhn_poker"), [Scripted([None, None, None]), Scripted([])], 0, policy
    )
    assert rec.outcome.forfeit_seat == 0 and len(rec.invalid) == 3


def test_random_substitution_keeps_playing():
    rec = play_episode(
        load_game("tic_tac_toe"), [Scripted([None]), Scripted([])], 0, InvalidMovePolicy("random")
    )
    assert rec.outcome.forfeit_seat is None
    assert rec.invalid == [(0, "no \\boxed{} answer")]
    assert len(rec.moves) >= 5


def test_truncated_games_are_draws():
    players = [make_player("random"), make_player("random")]
    rec = play_episode(load_game("connect_four"), players, 0, max_turns=4)
    assert (
        rec.outcome.truncated and rec.outcome.returns == (0.0, 0.0) and rec.outcome.winner is None
    )


def test_bad_invalid_policy():
    with pytest.raises(
        ValueError, match="unknown invalid-move mode 'ignore'; valid: forfeit, retry, random"
    ):
        InvalidMovePolicy("ignore")


def test_match_alternates_seats_and_is_reproducible():
    game = load_game("kuhn_poker")
    a = run_match(game, (make_player("random"), make_player("random")), 40, seed=3)
    b = run_match(game, (make_player("random"), make_player("random")), 40, seed=3)
    assert [e.moves for e in a.episodes] == [e.moves for e in b.episodes]
    c = run_match(game, (make_player("random"), make_player("random")), 40, seed=4)
    assert [e.moves for e in a.episodes] != [e.moves for e in c.episodes]
    for st in a.stats:
        assert sum(st.seat_wdl[0].values()) == sum(st.seat_wdl[1].values()) == 20
    assert a.stats[0].total_return == pytest.approx(-a.stats[1].total_return)


def test_cli_match_prints_table(capsys):
    assert (
        main(["match", "--game", "tic_tac_toe", "--players", "perfect", "random", "--games", "20"])
        == 0
    )
    out = capsys.readouterr().out
    assert "perfect" in out and "seat 0:" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("perfect"))
    assert int(line.split()[3]) == 0  # no losses


def test_cli_errors_are_one_line(capsys):
    assert main(["match", "--game", "chess9", "--players", "random", "random"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("zerosum: error: unknown game 'chess9'; valid games:") and "\n" not in err
    assert main(["match", "--game", "kuhn_poker", "--players", "random", "gpt"]) == 2
    assert "unknown player 'gpt'" in capsys.readouterr().err


def test_cli_games_lists_every_game(capsys):
    assert main(["games"]) == 0
    out = capsys.readouterr().out
    for name in ("kuhn_poker", "leduc_poker", "tic_tac_toe", "connect_four", "liars_dice"):
        assert any(line.startswith(name) and len(line.split()) > 2 for line in out.splitlines())


def test_rng_is_per_episode():
    # A player's RNG stream is derived from the game seed: reordering games changes nothing.
    game = load_game("liars_dice")
    players = [make_player("random"), make_player("random")]
    assert play_episode(game, players, 11).moves == play_episode(game, players, 11).moves
    assert np.random.default_rng([11, 1]).integers(100) == np.random.default_rng([11, 1]).integers(
        100
    )
