"""Chess over OpenSpiel: the rules and returns are OpenSpiel's (plus a ply limit), moves are
SAN with UCI accepted, and the `stockfish` bot (skipped without the binary)."""

import re

import numpy as np
import pyspiel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zerosum.games import IllegalActionError, load_game
from zerosum.games.openspiel_games import CHESS_MAX_PLIES, OpenSpielGame, chess_spec
from zerosum.games.parsing import parse_action
from zerosum.match import run_match
from zerosum.players import make_player, unsupported
from zerosum.players.stockfish import find_stockfish
from zerosum.prompts import read_answer

START_FEN = "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1"
NO_STOCKFISH = "the stockfish binary is not on PATH or in /usr/games (apt-get install stockfish)"


def chess(max_plies: int = CHESS_MAX_PLIES) -> OpenSpielGame:
    return OpenSpielGame(chess_spec(max_plies))


def play(moves: str, game: OpenSpielGame | None = None):
    state = (game or chess()).new_episode(0)
    for move in moves.split():
        state.apply_action(move)
    return state


def san_of(raw: pyspiel.State) -> dict[str, int]:
    """OpenSpiel's SAN of each legal action of a raw chess state."""
    return {raw.action_to_string(raw.current_player(), a): a for a in raw.legal_actions()}


def random_position(seed: int, plies: int):
    """The state after up to `plies` random moves (fewer if the game ends first)."""
    state, rng = chess(10_000).new_episode(0), np.random.default_rng(seed)
    for _ in range(plies):
        if state.is_terminal():
            break
        legal = state.legal_actions()
        state.apply_action(legal[int(rng.integers(len(legal)))])
    return state


def squares(fen: str) -> dict[str, str]:
    """Square name -> piece letter of a FEN's board."""
    out = {}
    for i, rank in enumerate(fen.split()[0].split("/")):
        cells = "".join("." * int(c) if c.isdigit() else c for c in rank)
        out.update({f"{'abcdefgh'[f]}{8 - i}": c for f, c in enumerate(cells) if c != "."})
    return out


def uci_from_boards(before: str, after: str) -> str:
    """The UCI of the move between two FENs, read off the boards alone (independent of
    OpenSpiel's move encoding): the king's squares when castling; a promotion's new piece."""
    b, a = squares(before), squares(after)
    white = before.split()[1] == "w"
    mine = (lambda p: p.isupper()) if white else (lambda p: p.islower())
    left = [s for s, p in b.items() if mine(p) and a.get(s) != p]
    arrived = [s for s, p in a.items() if mine(p) and b.get(s) != p]
    if len(left) == 2:  # castling: king and rook moved
        king = "K" if white else "k"
        left = [s for s in left if b[s] == king]
        arrived = [s for s in arrived if a[s] == king]
    (src,), (dst,) = left, arrived
    promotion = a[dst].lower() if b[src].lower() == "p" and a[dst].lower() != "p" else ""
    return src + dst + promotion


# --- rules and returns ------------------------------------------------------------------
@pytest.mark.parametrize("max_plies", [30, CHESS_MAX_PLIES, 2_000])
def test_random_games_end_with_openspiels_returns(max_plies):
    """Random SAN moves through the text layer, replayed by SAN on a raw OpenSpiel state:
    same legal moves at every ply, and the same result (White's and Black's returns), a draw
    where the ply limit ends the game first."""
    game = chess(max_plies) if max_plies != CHESS_MAX_PLIES else load_game("chess")
    white = pyspiel.load_game("chess").new_initial_state().current_player()
    endings, results = set(), set()
    for seed in range(6):
        state, rng = game.new_episode(seed), np.random.default_rng(seed)
        raw = pyspiel.load_game("chess").new_initial_state()
        plies = 0
        while not state.is_terminal():
            assert not raw.is_terminal() and plies < max_plies
            legal = state.legal_actions()
            assert sorted(legal) == sorted(san_of(raw))
            assert state.current_seat() == (0 if raw.current_player() == white else 1)
            move = legal[int(rng.integers(len(legal)))]
            state.apply_action(move)
            raw.apply_action(san_of(raw)[move])
            plies += 1
        assert raw.is_terminal() or plies == max_plies
        r = raw.returns()
        expected = (r[white], r[1 - white]) if raw.is_terminal() else (0.0, 0.0)
        assert state.returns() == expected, seed
        assert state.legal_actions() == []
        endings.add("rules" if raw.is_terminal() else "limit")
        results.add(expected)
    if max_plies == 30:
        assert endings == {"limit"}
    if max_plies == 2_000:  # OpenSpiel's rules end every game: some decisively, some drawn
        assert endings == {"rules"} and (0.0, 0.0) in results and len(results) > 1


def test_fools_mate_is_a_win_for_black_and_scholars_mate_for_white():
    state = play("f3 e5 g4 Qh4#")
    assert state.is_terminal() and state.returns() == (-1.0, 1.0)
    state = play("e4 e5 Bc4 Nc6 Qh5 Nf6 Qxf7#")
    assert state.is_terminal() and state.returns() == (1.0, -1.0)
    assert state.move_history()[:2] == [(0, "e4"), (1, "e5")]


def test_the_ply_limit_makes_a_draw():
    state = play("e4 e5 Nf3 Nc6", chess(4))
    assert state.is_terminal() and state.returns() == (0.0, 0.0)
    assert state.legal_actions() == []
    assert "the limit of 4 moves (plies) was reached, a draw" in state.observation(0)
    with pytest.raises(IllegalActionError, match="game is over"):
        state.apply_action("Bc4")
    assert not play("e4 e5 Nf3 Nc6", chess(5)).is_terminal()
    # The limit counts plies: mate on the last allowed ply is still a win.
    assert play("f3 e5 g4 Qh4#", chess(4)).returns() == (-1.0, 1.0)
    assert "200 moves (plies" in load_game("chess").rules()


# --- answers: SAN and UCI -------------------------------------------------------------------
def parsed(answer: str, state, fallback="last_bracket"):
    return parse_action(answer, state.legal_actions(), fallback)


def test_castling_and_promotion_in_san_and_uci():
    state = play("e4 e5 Nf3 Nc6 Bc4 Bc5")
    for answer in (r"\boxed{O-O}", r"\boxed{0-0}", r"\boxed{o-o}", r"\boxed{e1g1}", "[O-O]"):
        assert parsed(answer, state).action == "O-O", answer
    state = play("a4 b5 axb5 a6 bxa6 Bb7 axb7 Nf6")
    for answer in ("bxa8=Q", "b7a8q", "bxa8Q", "bxa8=q", "B7A8Q"):
        assert parsed(rf"\boxed{{{answer}}}", state).action == "bxa8=Q", answer
    assert parsed(r"\boxed{b7a8n}", state).action == "bxa8=N"
    state.apply_action("bxa8=Q")
    assert squares(state.spiel_state.board().to_fen())["a8"] == "Q"


def test_check_suffix_may_be_left_out_or_added():
    state = play("e4 e5 Bc4 Nc6 Qh5 Nf6")
    assert "Qxf7#" in state.legal_actions()
    for answer in ("Qxf7#", "Qxf7", "h5f7", "qxf7"):
        assert parsed(rf"\boxed{{{answer}}}", state).action == "Qxf7#", answer
    state = play("e4 f5")
    assert "Qh5+" in state.legal_actions()
    assert parsed(r"\boxed{Qh5}", state).action == "Qh5+"


def test_case_decides_between_pawn_and_bishop_captures():
    state = play("e3 c5 b3 c4")
    assert {"bxc4", "Bxc4"} <= set(state.legal_actions())
    assert parsed(r"\boxed{bxc4}", state).action == "bxc4"
    assert parsed(r"\boxed{Bxc4}", state).action == "Bxc4"
    assert parsed(r"\boxed{b3c4}", state).action == "bxc4"
    assert parsed(r"\boxed{f1c4}", state).action == "Bxc4"
    ambiguous = parsed(r"\boxed{BXC4}", state)
    assert ambiguous.action is None and "ambiguous: Bxc4 or bxc4" in ambiguous.reason


def test_illegal_moves_and_garbage_are_invalid_with_a_reason():
    state = chess().new_episode(0)
    for answer in ("e2e5", "Ke4", "e5", "Nf6", "e7e5", "O-O"):
        result = parsed(rf"\boxed{{{answer}}}", state)
        assert result.action is None and "is not a legal action" in result.reason, answer
    assert "is not a legal action" in parsed(r"\boxed{hello there}", state).reason
    assert parsed("", state).reason == "empty response"
    assert "no \\boxed{}" in parsed("I like the Sicilian", state, "none").reason
    with pytest.raises(IllegalActionError, match="illegal action 'e2e4'"):
        state.apply_action("e2e4")  # the game takes canonical SAN only; the parser maps UCI


def test_uci_reaches_every_reader_through_the_legal_actions():
    """The aliases travel with `legal_actions()`, so the model's, API players' and the
    fallbacks' readers accept UCI without being told about chess."""
    state = chess().new_episode(0)
    assert read_answer(r"so \boxed{e2e4}", state.legal_actions(), "free") == ("e4", None)
    assert parsed("I'll play [g1f3]", state).action == "Nf3"
    assert parsed("I'll play g1f3, then see.", state, "last_mention").action == "Nf3"
    assert parsed("I'll play g1f3, then see.", state, "last_bracket").action is None


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**16), st.integers(0, 120))
def test_every_legal_move_parses_from_san_and_uci(seed, plies):
    """In random positions, each legal move's SAN, SAN without +/#, and UCI (read off the
    boards before and after the move) all parse to that move."""
    state = random_position(seed, plies)
    if state.is_terminal():
        return
    fen = state.spiel_state.board().to_fen()
    for san in state.legal_actions():
        after = state.spiel_state.clone()
        after.apply_action(san_of(after)[san])
        uci = uci_from_boards(fen, after.board().to_fen())
        for answer in (san, san.rstrip("+#"), uci, uci.upper()):
            assert parsed(rf"\boxed{{{answer}}}", state).action == san, (fen, answer)


# --- what a seat sees ----------------------------------------------------------------------
def test_the_observation_shows_fen_board_turn_and_legal_moves():
    state = chess().new_episode(0)
    view = state.observation(0)
    assert view.startswith("You are White in a game of Chess")
    assert f"Position (FEN): {START_FEN}" in view
    assert "8 r n b q k b n r 8\n7 p p p p p p p p 7\n6 . . . . . . . . 6" in view
    assert "1 R N B Q K B N R 1\n  a b c d e f g h" in view
    assert "White to move." in view and "No moves have been made yet." in view
    legal = re.search(r"It is your turn\. Legal actions: (.*)", view).group(1)
    assert re.findall(r"\[([^\]]+)\]", legal) == state.legal_actions() and "[Nf3]" in legal
    assert "It is your turn" not in state.observation(1)
    assert state.observation(1).startswith("You are Black")
    state.apply_action("e4")
    view = state.observation(1)
    assert f"Position (FEN): {state.spiel_state.board().to_fen()}" in view
    assert "/4P3/8/PPPP1PPP/RNBQKBNR b KQkq " in view and "Black to move." in view
    assert "4 . . . . P . . . 4" in view and "Moves so far: 1. e4" in view
    assert "Legal actions: [a6]" in view
    state.apply_action("e5")
    state.apply_action("Nf3")
    assert "Moves so far: 1. e4 e5 2. Nf3" in state.observation(0)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**16), st.integers(0, 150))
def test_the_diagram_is_the_fens_board(seed, plies):
    state = random_position(seed, plies)
    fen = state.spiel_state.board().to_fen()
    view = state.observation(0)
    rows = re.findall(r"^([1-8]) ((?:[.prnbqkPRNBQK] ){8})\1$", view, flags=re.M)
    assert [int(r) for r, _ in rows] == list(range(8, 0, -1))
    board = {
        f"{'abcdefgh'[f]}{rank}": c for rank, cells in rows for f, c in enumerate(cells.split())
    }
    assert {s: c for s, c in board.items() if c != "."} == squares(fen)
    side = "White" if fen.split()[1] == "w" else "Black"
    assert state.is_terminal() or f"{side} to move." in view


# --- players ---------------------------------------------------------------------------------
def test_bots_chess_supports():
    assert unsupported("random", "chess") is None
    assert unsupported("mcts:2", "chess") is None
    assert "Nash policies exist for kuhn_poker" in unsupported("nash", "chess")
    assert "perfect play is available for tic_tac_toe" in unsupported("perfect", "chess")
    assert unsupported("stockfish:5", "chess") is None
    assert unsupported("stockfish:5", "tic_tac_toe") == "Stockfish plays chess only"
    assert unsupported("stockfish", "simple_negotiation") == "Stockfish plays chess only"


def test_random_and_mcts_play_chess_against_each_other():
    result = run_match(
        load_game("chess"), (make_player("random"), make_player("mcts:2")), 2, max_turns=16
    )
    assert len(result.episodes) == 2 and result.names == ("random", "mcts:2")
    for episode in result.episodes:
        assert episode.invalid == [] and episode.outcome.turns == len(episode.moves) == 16
        assert [seat for seat, _ in episode.moves] == [0, 1] * 8
        replay = play(" ".join(move for _, move in episode.moves))
        assert replay.move_history() == episode.moves


def test_stockfish_without_the_binary_is_a_one_line_error(monkeypatch):
    import zerosum.players.stockfish as stockfish

    monkeypatch.setattr(stockfish, "find_stockfish", lambda: None)
    with pytest.raises(ValueError) as err:
        make_player("stockfish:5")
    assert str(err.value) == (
        "bad player 'stockfish:5': the stockfish binary is not on PATH or in /usr/games "
        "(Debian: apt-get install stockfish)"
    )
    for bad in ("stockfish:21", "stockfish:-1", "stockfish:x"):
        with pytest.raises(ValueError, match="skill level must be an integer in \\[0, 20\\]"):
            make_player(bad)


@pytest.mark.slow  # the slow stage installs Debian's stockfish where it may (make system-deps)
@pytest.mark.skipif(find_stockfish() is None, reason=NO_STOCKFISH)
def test_stockfish_mates_in_one_and_beats_random():
    player = make_player("stockfish:20")
    try:
        state = play("e4 e5 Bc4 Nc6 Qh5 Nf6")
        assert player.act(state, np.random.default_rng(0)).action == "Qxf7#"
        state = play("f3 e5 g4")  # Black to move: Qh4#
        assert player.act(state, np.random.default_rng(0)).action == "Qh4#"
        result = run_match(load_game("chess"), (player, make_player("random")), 2)
        assert result.stats[0].wins == 2, [e.outcome for e in result.episodes]
        with pytest.raises(ValueError, match="plays chess only"):
            player.act(load_game("tic_tac_toe").new_episode(0), np.random.default_rng(0))
    finally:
        player.close()


def test_a_constrained_answer_keeps_its_case():
    """Constrained decoding yields a legal action verbatim; reading it back must not swap
    the pawn capture for the bishop capture that differs only in case."""
    legal = play("e3 c5 b3 c4").legal_actions()
    assert read_answer("bxc4", legal, "constrained") == ("bxc4", None)
    assert read_answer("Bxc4", legal, "constrained") == ("Bxc4", None)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), plies=st.integers(0, 30))
def test_zerosumevals_setting_lists_no_legal_move(seed, plies):
    """`chess_unlisted`: the same position, history and rules, but neither the view nor the
    prompt's instruction names a legal move; the parser still accepts any legal move (SAN or
    UCI) and rejects an illegal one."""
    from zerosum.prompts import Prompting

    listed, unlisted = load_game("chess"), load_game("chess_unlisted")
    a, b = listed.new_episode(0), unlisted.new_episode(0)
    rng = np.random.default_rng(seed)
    for _ in range(plies):
        if a.is_terminal():
            break
        move = a.legal_actions()[rng.integers(len(a.legal_actions()))]
        a.apply_action(move)
        b.apply_action(move)
    if a.is_terminal():
        return
    seat = a.current_seat()
    assert "Legal actions:" in a.observation(seat)
    view = b.observation(seat)
    assert "Legal actions:" not in view and "the legal moves are not listed" in view
    assert a.legal_actions() == b.legal_actions() and not b.legal_actions().listed
    content = Prompting(answer_mode="free").content(b, seat)
    instruction = content.split("\n\n")[-1]
    assert "for example" not in instruction and "\\boxed{}" in instruction
    position = [v.split("Position (FEN)")[1].split("It is your turn.")[0] for v in
                (view, a.observation(seat))]  # fmt: skip
    assert position[0] == position[1]  # the same board, turn and moves so far
    move = b.legal_actions()[0]
    assert parse_action(f"\\boxed{{{move}}}", b.legal_actions()).action == move
    assert parse_action("\\boxed{e9}", b.legal_actions()).action is None


@pytest.mark.parametrize("name", ["chess", "chess_unlisted"])
def test_threefold_repetition_ends_the_game_as_a_draw(name):
    """OpenSpiel's rule (ZeroSumEval's automatic draw is fivefold): the start position a third
    time, after 8 plies, ends the game."""
    state = load_game(name).new_episode(0)
    moves = ["Nf3", "Nf6", "Ng1", "Ng8"] * 2
    for i, move in enumerate(moves):
        assert not state.is_terminal(), i
        state.apply_action(move)
    assert state.is_terminal() and state.returns() == (0.0, 0.0)
