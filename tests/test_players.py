import numpy as np
import pytest
from open_spiel.python.algorithms import expected_game_score, exploitability

from zerosum.games import load_game
from zerosum.match import run_match
from zerosum.players import make_player
from zerosum.solvers import cfr_policy_table, minimax_values, optimal_actions, tabular_policy


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ZEROSUM_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_random_player_only_plays_legal_moves():
    game = load_game("connect_four")
    player = make_player("random")
    rng = np.random.default_rng(0)
    state = game.new_episode(0)
    while not state.is_terminal():
        move = player.act(state, rng)
        assert move.action in state.legal_actions()
        state.apply_action(move.action)


def test_minimax_knows_tic_tac_toe_is_a_draw():
    values = minimax_values("tic_tac_toe")
    state = load_game("tic_tac_toe").new_episode(0)
    assert values[str(state.spiel_state)] == 0.0
    assert len(values) == 5478  # every reachable position
    # x in a corner, o on an edge next to it loses by force: o's reply must be the centre.
    state.apply_action("0")
    assert optimal_actions(state) == ["4"]


@pytest.mark.parametrize("opponent", ["random", "mcts:50"])
def test_perfect_tic_tac_toe_never_loses(opponent):
    result = run_match(
        load_game("tic_tac_toe"), (make_player("perfect"), make_player(opponent)), 200, seed=1
    )
    perfect = result.stats[0]
    assert perfect.games == 200
    assert perfect.losses == 0
    if opponent == "random":
        assert perfect.wins > 150  # it also punishes mistakes


def test_mcts_beats_random_at_connect_four():
    result = run_match(
        load_game("connect_four"), (make_player("mcts:100"), make_player("random")), 10, seed=0
    )
    assert result.stats[0].wins >= 8


def test_cfr_kuhn_value_is_minus_one_eighteenth():
    game = load_game("kuhn_poker").spiel_game
    policy = tabular_policy(game, cfr_policy_table("kuhn_poker"))
    value = expected_game_score.policy_value(game.new_initial_state(), [policy, policy])[0]
    # Float64 CFR+, 1000 iterations, measured on an AMD EPYC: the value 3.6e-7 from -1/18 and
    # NashConv 1.7e-4, so both bounds are loose.
    assert value == pytest.approx(-1 / 18, abs=0.01)
    assert exploitability.nash_conv(game, policy) < 0.01


def test_cfr_table_is_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("ZEROSUM_CACHE", str(tmp_path))
    cfr_policy_table.cache_clear()
    table = cfr_policy_table("kuhn_poker", 200)
    files = list((tmp_path / "cfr").glob("*.json"))
    assert [f.name for f in files] == ["kuhn_poker-cfrplus-200.json"]
    cfr_policy_table.cache_clear()
    assert cfr_policy_table("kuhn_poker", 200) == table  # read back from disk


def test_nash_player_beats_random_at_kuhn():
    result = run_match(
        load_game("kuhn_poker"), (make_player("nash"), make_player("random")), 2000, seed=0
    )
    # Nash exploits uniform random in expectation: 0.147 a game over both seats (exact, from
    # the CFR+ policy), standard deviation 1.39, so a standard error of 0.031 over 2000 games:
    # 0.05 is 3.1 standard errors below, and a random player's 0 is 4.7 below.
    assert result.stats[0].mean_return > 0.05


@pytest.mark.parametrize(
    "spec, message",
    [
        ("alphazero", "unknown player 'alphazero'; valid: random"),
        ("mcts:lots", "bad player 'mcts:lots': MCTS simulations must be an integer >= 1"),
        ("mcts:0", "bad player 'mcts:0': MCTS simulations must be an integer >= 1, got '0'"),
        ("mcts:-5", "MCTS simulations must be an integer >= 1, got '-5'"),
        ("mcts:", "MCTS simulations must be an integer >= 1, got ''"),
        # Zero CFR+ iterations would be the uniform policy playing under the name "nash".
        ("nash:0", "bad player 'nash:0': CFR\\+ iterations must be an integer >= 1, got '0'"),
        ("nash:-1", "CFR\\+ iterations must be an integer >= 1, got '-1'"),
        ("nash:1.5", "CFR\\+ iterations must be an integer >= 1, got '1.5'"),
        ("random:3", "unknown player 'random:3'"),
    ],
)
def test_bad_player_specs(spec, message):
    with pytest.raises(ValueError, match=message) as err:
        make_player(spec)
    assert "\n" not in str(err.value)


def test_players_refuse_games_they_cannot_play():
    state = load_game("kuhn_poker").new_episode(0)
    with pytest.raises(ValueError, match="perfect-information"):
        make_player("mcts:10").act(state, np.random.default_rng(0))
    with pytest.raises(
        ValueError,
        match="a Nash policy is available for kuhn_poker, leduc_poker only, not 'tic_tac_toe'",
    ):
        make_player("nash").act(load_game("tic_tac_toe").new_episode(0), np.random.default_rng(0))


def test_what_a_bot_can_play_follows_the_games_declared_capabilities(monkeypatch):
    """`unsupported` reads the game's spec, not its name: the same tic-tac-toe declared
    without `minimax` refuses perfect play, and Kuhn Poker declared without `nash` refuses
    the Nash player."""
    import dataclasses

    import zerosum.players as players

    assert players.unsupported("perfect", "tic_tac_toe") is None
    assert players.unsupported("nash", "kuhn_poker") is None
    real = load_game

    class Undeclared:
        def __init__(self, game):
            self.game = game
            self.capabilities = dataclasses.replace(game.capabilities, minimax=False, nash=False)

    monkeypatch.setattr(players, "load_game", lambda name: Undeclared(real(name)))
    assert "perfect play is available" in players.unsupported("perfect", "tic_tac_toe")
    assert "Nash policies exist" in players.unsupported("nash", "kuhn_poker")


@pytest.mark.parametrize("mode, fmt", [("free", "chat"), ("constrained", "plain")])
def test_a_model_player_asks_and_reads_as_its_prompting_says(mode, fmt):
    """A checkpoint as an opponent sees the prompt the learner of the same settings sees
    (answer mode, prompt format, rules) and, in constrained mode, decodes only legal moves."""
    from zerosum.engines.base import Generation
    from zerosum.models import load_tokenizer
    from zerosum.players.model import ModelPlayer
    from zerosum.prompts import Prompting, encode_prompt

    tokenizer = load_tokenizer()
    state = load_game("kuhn_poker").new_episode(3)
    seen = []

    def generate(prompt, choices, seed):
        seen.append((prompt, choices))
        text = "bet" if mode == "constrained" else "I hold a card. \\boxed{bet}"
        return Generation([1], [0.0], "stop", text)

    prompting = Prompting(answer_mode=mode, prompt_format=fmt, include_rules=False)
    move = ModelPlayer("m", tokenizer, generate, prompting).act(state, np.random.default_rng(0))
    assert move.action == "bet"
    prompt, choices = seen[0]
    assert prompt == encode_prompt(tokenizer, prompting.content(state, 0), fmt)  # the rollout's
    assert choices == (["check", "bet"] if mode == "constrained" else None)
