from dataclasses import dataclass

import pytest

from zerosum.cli import main
from zerosum.games import load_game
from zerosum.match import play_episode, run_games, run_match
from zerosum.players import make_player
from zerosum.players.base import Move
from zerosum.rollout import InvalidMovePolicy
from zerosum.seeds import game_seed


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
    assert sum(a.stats[0].returns) == pytest.approx(-sum(a.stats[1].returns))


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
    assert (
        err.startswith("zerosum: error: unknown game 'chess9'; did you mean chess?")
        and "\n" not in err
    )
    assert main(["match", "--game", "kuhn_poker", "--players", "random", "gpt"]) == 2
    assert "unknown player 'gpt'" in capsys.readouterr().err


def test_cli_games_lists_every_game(capsys):
    assert main(["games"]) == 0
    out = capsys.readouterr().out
    for name in ("kuhn_poker", "leduc_poker", "tic_tac_toe", "connect_four", "liars_dice"):
        assert any(line.startswith(name) and len(line.split()) > 2 for line in out.splitlines())


def test_games_do_not_depend_on_their_order():
    """Each game's deal and players' choices come from its own seed: played in reverse order
    (or one at a time) the same games come out. A shared random stream would fail this."""
    game = load_game("liars_dice")
    players = (make_player("random"), make_player("random"))
    seeds = [game_seed(5, i) for i in range(30)]
    forward = run_games(game, [players] * 30, seeds, InvalidMovePolicy(), 50)
    backward = run_games(game, [players] * 30, seeds[::-1], InvalidMovePolicy(), 50)
    assert [e.moves for e in forward] == [e.moves for e in backward[::-1]]
    assert forward[7].moves == play_episode(game, players, seeds[7]).moves
    assert len({tuple(e.moves) for e in forward}) > 10  # the games really differ


def test_match_games_are_independent_of_the_run_seed_offset():
    """Game i of a match is seeded by a hash of (seed, i): runs with seeds 0 and 2 share no
    game (with seed + i they shared all but two)."""
    a = {game_seed(0, i) for i in range(2000)}
    b = {game_seed(2, i) for i in range(2000)}
    assert len(a) == len(b) == 2000 and not a & b
    game = load_game("kuhn_poker")
    players = (make_player("random"), make_player("random"))
    m0, m2 = run_match(game, players, 20, seed=0), run_match(game, players, 20, seed=2)
    assert [e.seed for e in m0.episodes] == [game_seed(0, i) for i in range(20)]
    assert [e.moves for e in m0.episodes[2:]] != [e.moves for e in m2.episodes[:-2]]
    with pytest.raises(ValueError, match="must be >= 0"):
        game_seed(-1, 0)


def test_cli_match_checks_players_against_the_game_before_playing(capsys, monkeypatch):
    monkeypatch.setattr("zerosum.cli.run_match", lambda *a, **k: pytest.fail("games were played"))
    assert main(["match", "--game", "simple_negotiation", "--players", "random", "random"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "zerosum: error: player 'random' cannot play 'simple_negotiation': "
        "'random' needs a game with finite legal actions"
    )
    assert main(["match", "--game", "tic_tac_toe", "--players", "perfect", "nash"]) == 2
    assert "player 'nash' cannot play 'tic_tac_toe'" in capsys.readouterr().err
    assert main(["match", "--game", "kuhn_poker", "--players", "nash:0", "random"]) == 2
    assert "bad player 'nash:0'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag, value, allowed",
    [
        ("--games", "0", "an integer >= 1"),
        ("--max-turns", "0", "an integer >= 1"),
        ("--games", "many", "an integer >= 1"),
        ("--seed", "-1", "an integer in [0, 2**32)"),
    ],
)
def test_cli_match_rejects_bad_numbers(capsys, flag, value, allowed):
    args = ["match", "--game", "kuhn_poker", "--players", "random", "random", flag, value]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        last == f"zerosum match: error: argument {flag}: {value!r} is invalid; allowed: {allowed}"
    )
