"""The arena: config errors, Bradley-Terry and OpenSkill ratings, the database, resuming by
config, reports from the database alone, and the batched local-model sampler."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml

from zerosum.arena.config import arena_config
from zerosum.arena.ratings import (
    ELO,
    Result,
    bradley_terry,
    openskill_ratings,
    resample_weights,
)
from zerosum.arena.report import build_results, section
from zerosum.arena.store import GameKey, GameRecord, Store
from zerosum.cli import main
from zerosum.config import ConfigError
from zerosum.players.stockfish import stockfish_elo


def write_config(path: Path, **fields) -> Path:
    path.write_text(yaml.safe_dump(fields))
    return path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def games_rows(directory: Path) -> list[tuple]:
    """Every game row except its timestamp, in key order."""
    with sqlite3.connect(directory / "arena.db") as db:
        rows = db.execute(
            "SELECT * FROM games ORDER BY game, seat0, seat1, idx"
        ).fetchall()  # finished_at is the last column
    return [row[:-1] for row in rows]


# --- configuration ---------------------------------------------------------------------------

GOOD = {"players": ["random", "mcts:5"], "games": ["tic_tac_toe"], "n": 2}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n": 0}, "'n' = 0 is invalid; allowed: an integer >= 1"),
        ({"n": True}, "'n' = True is invalid; allowed: int"),
        ({"prior_sigma": float("nan")}, "'prior_sigma' = nan is invalid; allowed: a finite number"),
        ({"colour": 1}, "unknown config field 'colour'"),
        ({"games": ["go"]}, "unknown game 'go'"),
        ({"players": ["random"]}, "at least two players"),
        ({"players": ["random", "random"]}, "the name 'random' is used twice"),
        ({"players": ["random", "mcts:0"]}, "MCTS simulations must be an integer >= 1"),
        ({"players": ["random", {"kind": "robot", "name": "x"}]}, "allowed: a bot spec"),
        ({"players": ["random", {"kind": "api", "name": "x", "model": "m"}]},
         "'players[1].base_url' is required"),
        ({"players": ["random", {"kind": "api", "name": "x", "model": "m",
                                 "base_url": "ftp://h", "timeout": 1}]},
         "'players[1].base_url' = 'ftp://h' is invalid; allowed: an http:// or https:// URL"),
        ({"players": ["random", {"kind": "api", "name": "x", "model": "m",
                                 "base_url": "http://h", "timeout": -1}]},
         "'players[1].timeout' = -1.0 is invalid; allowed: a number > 0"),
        ({"players": ["random", {"kind": "local", "name": "a b", "model": "m"}]},
         "'players[1].name' = 'a b' is invalid"),
        ({"players": ["random", {"kind": "local", "name": "m", "model": "m", "top_p": 0}]},
         "'players[1].top_p' = 0.0 is invalid; allowed: a number in (0, 1]"),
        ({"players": ["random", {"kind": "local", "name": "m", "model": "m",
                                 "reasoning_prefix": "I hold"}]},
         "config field 'players[1].reasoning_prefix' = 'I hold' needs answer_mode reasoned"),
    ],
)  # fmt: skip
def test_bad_config_values_are_one_line_errors(change, message):
    with pytest.raises(ConfigError) as err:
        arena_config({**GOOD, **change})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_player_entries_become_typed_players():
    cfg = arena_config({**GOOD, "players": ["random", "model:some/dir", {
        "kind": "api", "name": "remote", "base_url": "http://127.0.0.1:1/v1", "model": "m",
        "timeout": "2.5"}]})  # fmt: skip
    kinds = [(p.kind, p.name) for p in cfg.players]
    assert kinds == [("bot", "random"), ("local", "model:some/dir"), ("api", "remote")]
    assert cfg.players[1].model == "some/dir"
    assert cfg.players[2].timeout == 2.5
    assert "api_key_env" not in cfg.players[2].identity()  # where the key is is not who plays


def test_the_cli_reports_a_bad_config_in_one_line(tmp_path, capsys):
    path = write_config(tmp_path / "a.yaml", **{**GOOD, "n": -3})
    code, _, err = run_cli(capsys, "arena", "--config", str(path))
    assert code == 2
    assert err.strip().splitlines() == [
        "zerosum: error: config field 'n' = -3 is invalid; allowed: an integer >= 1"
    ]


# --- ratings ---------------------------------------------------------------------------------


def simulate(strengths: dict[str, float], n: int, seed: int = 0) -> list[Result]:
    """n games per ordered pair, won with Bradley-Terry probabilities."""
    rng = np.random.default_rng(seed)
    out = []
    for a, ra in strengths.items():
        for b, rb in strengths.items():
            if a != b:
                p = 1 / (1 + math.exp(rb - ra))
                out += [Result(a, b, float(rng.random() < p)) for _ in range(n)]
    return out


def test_ratings_recover_a_known_order_and_intervals_shrink_with_more_games():
    strengths = {"a": 1.5, "b": 0.5, "c": -0.5, "d": -1.5}
    players = sorted(strengths)
    widths = []
    for n in (10, 200):
        bt = bradley_terry(players, simulate(strengths, n), 2.0, 100, seed=0)
        assert sorted(players, key=lambda p: -bt[p]["rating"]) == ["a", "b", "c", "d"]
        widths.append({p: bt[p]["ci95"][1] - bt[p]["ci95"][0] for p in players})
        assert all(bt[p]["ci95"][0] <= bt[p]["rating"] <= bt[p]["ci95"][1] for p in players)
    assert all(widths[1][p] < widths[0][p] / 2 for p in players), widths


def test_a_player_that_wins_everything_ranks_first_with_a_finite_rating():
    results = []
    for other in ("b", "c"):
        results += [Result("ace", other, 1.0)] * 5 + [Result(other, "ace", 0.0)] * 5
    results += [Result("b", "c", s) for s in (1.0, 0.0, 0.5, 1.0)]
    bt = bradley_terry(["ace", "b", "c"], results, 2.0, 50, seed=0)
    ace = bt["ace"]
    assert max(bt, key=lambda p: bt[p]["rating"]) == "ace"
    assert math.isfinite(ace["rating"]) and all(math.isfinite(x) for x in ace["ci95"])
    assert bt["b"]["rating"] < ace["ci95"][0]
    loser = bradley_terry(["x", "y"], [Result("x", "y", 0.0)] * 8, 2.0, 20, seed=0)["x"]
    assert math.isfinite(loser["rating"]) and loser["rating"] < 1000


@pytest.mark.parametrize(("wins", "games"), [(7, 10), (3, 12), (10, 10)])
def test_two_player_ratings_are_the_prior_shrunk_logit(wins, games):
    """MAP of a 2-player case: with r_a = -r_b = x/2 the stationarity condition is
    wins - games * sigmoid(x) = x / (2 sigma^2); without a prior, x = logit(wins/games)."""
    results = [Result("a", "b", 1.0)] * wins + [Result("a", "b", 0.0)] * (games - wins)
    for sigma in (0.5, 2.0):
        bt = bradley_terry(["a", "b"], results, sigma, 0, seed=0)
        x = bt["a"]["logit"] - bt["b"]["logit"]
        # Float64 fits (gtol 1e-9) reported to 4 places (logits) and 1 (ratings): each logit is
        # off by up to 5e-5 and x by 1e-4, which moves the residual below by at most 5e-4 (its
        # slope is at most games/4 + 1/(2 sigma^2) = 5) and ELO * x by 0.02, beside the 0.1 of
        # two rounded ratings; the flat prior's x below is off by up to 1e-4 as well.
        assert bt["a"]["logit"] == pytest.approx(-bt["b"]["logit"], abs=1e-4)
        assert wins - games / (1 + math.exp(-x)) == pytest.approx(x / (2 * sigma**2), abs=1e-3)
        assert bt["a"]["rating"] - bt["b"]["rating"] == pytest.approx(ELO * x, abs=0.2)
    if wins < games:  # a flat prior: the plain maximum-likelihood logit
        x = bradley_terry(["a", "b"], results, 1e4, 0, seed=0)["a"]["logit"] * 2
        assert x == pytest.approx(math.log(wins / (games - wins)), abs=1e-3)


def test_draws_count_as_half_wins():
    draws = bradley_terry(["a", "b"], [Result("a", "b", 0.5)] * 4, 2.0, 0, seed=0)
    split = bradley_terry(["a", "b"], [Result("a", "b", 1.0), Result("a", "b", 0.0)] * 2, 2.0, 0, 0)
    assert draws["a"]["rating"] == draws["b"]["rating"] == 1000
    assert draws == split
    skill = openskill_ratings(["a", "b"], [Result("a", "b", 1.0)] * 3 + [Result("b", "a", 0.5)])
    assert skill["a"]["mu"] > 25 > skill["b"]["mu"]


def test_ratings_anchored_to_stated_elos_match_the_closed_form():
    """One fitted player against anchored ones, with a flat prior (sigma 1e4): the maximum-
    likelihood rating solves sum(score - sigmoid(r - r_anchor)) = 0. Against one anchor at
    1500 with 3 wins in 4: r = 1500 + 400 log10(3). Two draws each against anchors at 1500 and
    1900: halfway, 1700. A tight prior holds the fitted player at the anchors' mean."""
    wins = [Result("llm", "sf", 1.0)] * 3 + [Result("sf", "llm", 1.0)]
    bt = bradley_terry(["llm", "sf"], wins, 1e4, 0, seed=0, anchors={"sf": 1500.0})
    assert bt["sf"]["rating"] == 1500.0
    assert bt["llm"]["rating"] == pytest.approx(1500 + 400 * math.log10(3), abs=0.1)
    draws = [Result("llm", a, 0.5) for a in ("lo", "hi") for _ in range(2)]
    two = bradley_terry(["hi", "llm", "lo"], draws, 1e4, 30, seed=0,
                        anchors={"lo": 1500.0, "hi": 1900.0})  # fmt: skip
    assert (two["lo"]["rating"], two["hi"]["rating"]) == (1500.0, 1900.0)
    assert two["llm"]["rating"] == pytest.approx(1700.0, abs=0.1)
    assert two["lo"]["ci95"] == [1500.0, 1500.0]  # an anchor does not move in a resample
    tight = bradley_terry(["llm", "sf"], wins, 0.01, 0, seed=0, anchors={"sf": 1500.0})
    assert tight["llm"]["rating"] == pytest.approx(1500.0, abs=1.0)
    free = bradley_terry(["llm", "sf"], wins, 1e4, 0, seed=0)  # no anchor: they sum to 2000
    assert free["llm"]["rating"] + free["sf"]["rating"] == pytest.approx(2000.0, abs=0.2)


def test_stockfish_anchor_ratings_invert_stockfish_own_elo_fit():
    # Stockfish maps an Elo to a skill level by its cubic fit; the anchor is its inverse.
    assert (stockfish_elo(0), stockfish_elo(3), stockfish_elo(18)) == (1347.0, 1729.0, 3176.0)
    assert stockfish_elo(19) is None and stockfish_elo(20) is None
    for level in range(19):
        e = (stockfish_elo(level) - 1320) / (3190 - 1320)
        assert ((37.2473 * e - 40.8525) * e + 22.2943) * e - 0.311438 == pytest.approx(
            level, abs=0.03
        )  # the Elo is rounded to an integer


def record(game: str, a: str, b: str, idx: int, winner: int | None) -> GameRecord:
    returns = (0.0, 0.0) if winner is None else ((1.0, -1.0) if winner == 0 else (-1.0, 1.0))
    return GameRecord(GameKey(game, a, b, idx), idx, returns, winner, 3, False, None, [], [], [])


def test_the_rating_across_games_is_one_fit_and_chess_is_anchored_to_stockfish(tmp_path):
    """a beats b 3 of 4 at kuhn_poker and loses 3 of 4 at tic_tac_toe: the per-game ratings
    differ, the one fit over all games scores them 4 of 8, equal (1000 each, the prior being
    symmetric). At chess, llm wins 3 of 4 against stockfish:3 (anchored at 1729, Stockfish's
    fit; flat prior): 1729 + 400 log10(3); the arena's stated anchor for it wins."""
    store = Store(tmp_path / "arena.db")
    store.set_meta({"seed": 0, "prior_sigma": 1e4, "bootstrap": 20})
    store.register("sf", {"kind": "bot", "spec": "stockfish:3"})
    games = [record("kuhn_poker", "a", "b", i, 0 if i < 3 else 1) for i in range(4)]
    games += [record("tic_tac_toe", "a", "b", i, 1 if i < 3 else 0) for i in range(4)]
    games += [record("chess", "llm", "sf", i, 0 if i < 3 else 1) for i in range(4)]
    for g in games:
        store.add(g)
    results = build_results(store)
    kuhn = {r["player"]: r["rating"] for r in results["per_game"]["kuhn_poker"]["leaderboard"]}
    assert kuhn["a"] - kuhn["b"] == pytest.approx(ELO * math.log(3), abs=0.2)
    everything = {r["player"]: r for r in results["all"]["leaderboard"]}
    assert everything["a"]["rating"] == everything["b"]["rating"] == pytest.approx(1000, abs=0.1)
    assert results["all"]["anchors"] == {}  # games of different kinds share no scale to anchor
    # Its bootstrap resamples within each game (the stratified fit, not the plain one).
    meta = {**store.meta(), "anchors": "{}"}
    strata = [g.key.game for g in store.records()]
    records = list(store.records())
    assert results["all"] == section(records, meta, "all", strata=strata)
    assert results["all"] != section(records, meta, "all")
    chess = {r["player"]: r for r in results["per_game"]["chess"]["leaderboard"]}
    assert results["per_game"]["chess"]["anchors"] == {"sf": 1729.0}
    assert chess["sf"]["rating"] == 1729.0 and chess["sf"]["anchor"] == 1729.0
    assert chess["llm"]["rating"] == pytest.approx(1729 + 400 * math.log10(3), abs=0.1)
    store.set_meta({"anchors": json.dumps({"sf": 1500.0})})
    stated = build_results(store)["per_game"]["chess"]["leaderboard"]
    assert {r["player"]: r["rating"] for r in stated}["sf"] == 1500.0
    store.close()


def test_the_bootstrap_across_games_keeps_each_game_count():
    rng = np.random.default_rng(0)
    strata = np.array(["kuhn"] * 3 + ["ttt"] * 7)
    for _ in range(20):
        w = resample_weights(rng, strata)
        assert (w[:3].sum(), w[3:].sum()) == (3, 7)  # without strata the split would vary
    flat = [resample_weights(rng, np.array([""] * 10))[:3].sum() for _ in range(50)]
    assert len(set(flat)) > 1


# --- arenas of bots: the database, config changes, reports --------------------------------------


@pytest.fixture
def bot_arena(tmp_path) -> tuple[Path, dict]:
    fields = {"dir": str(tmp_path / "arena"), "games": ["tic_tac_toe", "kuhn_poker"], "n": 2,
              "players": ["random", "mcts:5", "perfect"], "bootstrap": 20, "max_concurrent": 3}  # fmt: skip
    return tmp_path, fields


def test_every_pair_plays_both_seat_orders_and_the_report_counts_every_game(bot_arena, capsys):
    tmp, fields = bot_arena
    code, out, _ = run_cli(capsys, "arena", "--config", str(write_config(tmp / "a.yaml", **fields)))
    assert code == 0, out
    rows = games_rows(tmp / "arena")
    # tic_tac_toe: 3 players, 6 ordered pairs x 2; kuhn_poker: only random plays it, skipped.
    assert len(rows) == 12 and {r[0] for r in rows} == {"tic_tac_toe"}
    assert "skipped: perfect does not play kuhn_poker" in out
    pairs = {(r[1], r[2]) for r in rows}
    assert pairs == {(a, b) for a in ("random", "mcts:5", "perfect")
                     for b in ("random", "mcts:5", "perfect") if a != b}  # fmt: skip
    seeds = {(r[1], r[2], r[3]): r[4] for r in rows}
    assert seeds["random", "perfect", 0] == seeds["perfect", "random", 0]  # the same deal
    assert seeds["random", "perfect", 0] != seeds["random", "perfect", 1]
    results = json.loads((tmp / "arena" / "results.json").read_text())
    board = {r["player"]: r for r in results["per_game"]["tic_tac_toe"]["leaderboard"]}
    assert all(
        r["games"] == 8 and r["wins"] + r["draws"] + r["losses"] == 8 for r in board.values()
    )
    assert board["perfect"]["rank"] == 1 and board["perfect"]["losses"] == 0
    cell = results["all"]["matrix"]["perfect"]["random"]
    assert cell["games"] == 4
    # Wilson's score interval of the cell's wins, from its formula (z = 1.96).
    n, k, z = 4, round(cell["win_rate"] * 4), 1.959964
    centre = (k / n + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(k / n * (1 - k / n) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert cell["win_ci95"] == pytest.approx([centre - half, centre + half], abs=5e-5)  # 4 places
    csv_lines = (tmp / "arena" / "leaderboard.csv").read_text().splitlines()
    assert csv_lines[0].startswith("scope,rank,player,rating") and len(csv_lines) == 1 + 3 + 3


def test_report_is_reproducible_from_the_database_alone(bot_arena, capsys):
    tmp, fields = bot_arena
    run_cli(capsys, "arena", "--config", str(write_config(tmp / "a.yaml", **fields)))
    arena = tmp / "arena"
    saved = {name: (arena / name).read_text() for name in
             ("results.json", "leaderboard.csv", "crossplay.csv")}  # fmt: skip
    for name in saved:
        (arena / name).unlink()
    code, out, _ = run_cli(capsys, "arena", "--report", "--dir", str(arena))
    assert code == 0 and "perfect" in out
    assert {name: (arena / name).read_text() for name in saved} == saved


def test_changing_the_config_adds_only_the_missing_games(bot_arena, capsys):
    tmp, fields = bot_arena
    run_cli(capsys, "arena", "--config", str(write_config(tmp / "a.yaml", **fields)))
    first = games_rows(tmp / "arena")
    with sqlite3.connect(tmp / "arena" / "arena.db") as db:
        stamps = dict(db.execute("SELECT seat0 || seat1 || idx, finished_at FROM games"))
    more = {**fields, "n": 3, "players": fields["players"] + ["nash"]}
    code, out, err = run_cli(capsys, "arena", "--config", str(write_config(tmp / "b.yaml", **more)))
    assert code == 0 and "games to play, 12 already played" in out, err
    rows = games_rows(tmp / "arena")
    assert set(first) <= set(rows)
    # tic_tac_toe: 6 pairs x 3 games; kuhn_poker: random and nash, 2 seat orders x 3 games.
    assert len(rows) == 18 + 6
    with sqlite3.connect(tmp / "arena" / "arena.db") as db:
        after = dict(db.execute("SELECT seat0 || seat1 || idx, finished_at FROM games"))
    assert all(after[k] == v for k, v in stamps.items())  # the old games were not replayed


def test_a_changed_player_under_an_old_name_or_a_new_seed_is_refused(bot_arena, capsys):
    tmp, fields = bot_arena
    run_cli(capsys, "arena", "--config", str(write_config(tmp / "a.yaml", **fields)))
    renamed = {**fields, "players": ["random", {"kind": "bot", "name": "mcts:5", "spec": "mcts:9"}]}
    code, _, err = run_cli(
        capsys, "arena", "--config", str(write_config(tmp / "b.yaml", **renamed))
    )
    assert code == 2 and "player 'mcts:5' was" in err and "give the new player another name" in err
    code, _, err = run_cli(
        capsys, "arena", "--config", str(write_config(tmp / "c.yaml", **{**fields, "seed": 5}))
    )
    assert code == 2 and "arena setting 'seed' = 5 differs" in err


def test_report_needs_a_database(tmp_path, capsys):
    code, _, err = run_cli(capsys, "arena", "--report", "--dir", str(tmp_path))
    assert code == 2 and "no arena database at" in err


# --- local models ------------------------------------------------------------------------------


def test_batched_sampler_rows_match_sampling_each_prompt_alone(tokenizer, tiny):
    """Each row is sampled as HFEngine samples it alone with its seed, whatever the batch."""
    from zerosum.arena.local import BatchedSampler, _Request
    from zerosum.engines.base import SamplingParams
    from zerosum.engines.hf import HFEngine

    params = SamplingParams(1.0, 0.95, 12)
    sampler, engine = BatchedSampler(tiny, tokenizer, params, 8), HFEngine(tiny, tokenizer)
    texts = ["Hello there, how are", "Tic tac", "A much longer prompt about poker", "x"]
    choices = [None, ["bet", "check"], None, ["1", "2", "13"]]
    requests = [
        _Request(tokenizer.encode(t, add_special_tokens=False), c, 100 + k)
        for k, (t, c) in enumerate(zip(texts, choices))
    ]
    batched = sampler.sample(requests)
    reversed_batch = sampler.sample(requests[::-1])[::-1]
    for r, gen, other in zip(requests, batched, reversed_batch):
        alone = engine.generate([r.prompt], params, None if r.choices is None else [r.choices],
                                seed=r.seed)[0]  # fmt: skip
        assert gen.token_ids == alone.token_ids == other.token_ids
        assert gen.allowed == alone.allowed and gen.finish_reason == alone.finish_reason
        # Batched rounding: HFEngine's batched rows equal its rows alone bitwise on an AMD EPYC
        # (test_engine); 1e-4, the engine-vs-learner tolerance, allows other CPUs' kernels.
        assert gen.logprobs == pytest.approx(alone.logprobs, abs=1e-4)
    assert len({tuple(g.token_ids) for g in batched}) == 4


def test_prompt_content_is_the_text_model_prompts_wrap(tokenizer):
    from zerosum.games import load_game
    from zerosum.prompts import Prompting, chat_prompt

    state = load_game("kuhn_poker").new_episode(3)
    asking = Prompting()
    content = asking.content(state, 0, "Your last answer was invalid.")
    assert content.startswith(state.observation(0, True) + "\n\n")
    assert content.endswith("\\boxed{check}.\nYour last answer was invalid.")
    ids = asking.prompt(tokenizer, state, 0, "Your last answer was invalid.")
    assert ids == chat_prompt(tokenizer, content)


def test_the_example_config_loads_with_its_api_player_uncommented(tmp_path):
    from zerosum.arena.config import load_arena_config

    example = Path(__file__).parent.parent / "configs" / "arena_example.yaml"
    cfg = load_arena_config(example)
    assert [p.kind for p in cfg.players] == ["bot"] * 4 + ["local"]
    head, sep, api = example.read_text().partition("  # - name: served")
    lines = [line.replace("  # ", "  ", 1) for line in (sep + api).splitlines()]
    text = head + "\n".join(lines)
    cfg = load_arena_config(write_config(tmp_path / "x.yaml", **yaml.safe_load(text)))
    assert cfg.players[-1].kind == "api" and cfg.players[-1].api_key_env == "OPENAI_API_KEY"
