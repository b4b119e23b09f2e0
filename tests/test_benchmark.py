"""`zerosum benchmark`: a tiny suite end to end (two tiny random models and a bot row against
bots, a few games per cell, a small math set), its table checked against the games and
answers in its database; an interrupted suite resumes playing only what is missing and ends
with the uninterrupted table; the shipped suites load; the figures' functions against
hand-computed values; the multi-game recipe takes one step with a tiny model."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest, t

from zerosum.benchmark.run import (
    DB_NAME,
    RESULTS_JSON,
    RESULTS_MD,
    parse_models,
    plan,
    run_benchmark,
)
from zerosum.benchmark.suite import Suite, load_suite, packaged_suites
from zerosum.benchmark.table import game_difference, math_cell, paired
from zerosum.cli import main
from zerosum.config import load_config
from zerosum.evaluation.math import load_problems
from zerosum.games import game_names
from zerosum.report import write_report
from zerosum.train import train
from zerosum.typed_config import ConfigError

ROOT = Path(__file__).resolve().parent.parent
N = 4  # games per cell
# kuhn vs random, tic_tac_toe vs random and vs mcts:5: 3 cells x 4 games x 3 rows
GAMES = 36
MATH = 3  # gsm8k problems, one sample each, for each of the two models


@pytest.fixture(scope="module")
def models(tmp_path_factory, tokenizer) -> dict[str, Path]:
    from zerosum.models import tiny_model

    out = {}
    for label, seed in (("before", 0), ("after", 1)):
        path = tmp_path_factory.mktemp(label) / "model"
        tiny_model(tokenizer, hidden_size=32, layers=1, heads=2, seed=seed).save_pretrained(path)
        tokenizer.save_pretrained(path)
        out[label] = path
    return out


def suite_file(tmp: Path) -> Path:
    fields = {
        "name": "tiny", "in_domain": {"kuhn_poker": []},
        "held_out": {"tic_tac_toe": ["random", "mcts:5"], "simple_negotiation": []},
        "opponents": ["random"], "games_per_cell": N, "math": {"gsm8k": MATH},
        # constrained: the tiny models make legal moves, so their sampling decides the games
        "answer_mode": "constrained", "prompt_format": "plain", "include_rules": False,
        "temperature": 1.0, "top_p": 1.0, "math_max_new_tokens": 8, "max_batch": 2,
        "max_concurrent": 3,
    }  # fmt: skip
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(fields))
    return path


def model_list(models: dict[str, Path]) -> list[str]:
    return [f"before={models['before']}", f"after={models['after']}", "uniform=random"]


def games_of(out: Path) -> list[tuple]:
    with sqlite3.connect(out / DB_NAME) as db:
        return db.execute(
            "SELECT game, seat0, seat1, idx, seed, return0, return1, winner, forfeit_seat "
            "FROM games"
        ).fetchall()


def answers_of(out: Path) -> list[tuple]:
    with sqlite3.connect(out / DB_NAME) as db:
        return db.execute("SELECT model, bench, idx, sample, seed, correct FROM math").fetchall()


def wilson(k: int, n: int) -> list[float]:
    ci = binomtest(k, n).proportion_ci(method="wilson")
    return [round(ci.low, 4), round(ci.high, 4)]


def t95(values: list[float]) -> list[float]:
    mean = sum(values) / len(values)
    if len(set(values)) == 1:
        return [round(mean, 4)] * 2
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = t.ppf(0.975, len(values) - 1) * sd / math.sqrt(len(values))
    return [round(mean - half, 4), round(mean + half, 4)]


def sampler_threads() -> int:
    return sum(t.name == "arena-sampler" for t in threading.enumerate())


def test_a_tiny_suite_writes_the_table_of_its_games(tmp_path, models, capsys):
    out = tmp_path / "out"
    argv = ["benchmark", "--suite", str(suite_file(tmp_path)), "--models",
            ",".join(model_list(models)), "--out", str(out)]  # fmt: skip
    samplers_before = sampler_threads()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    # Each model's decoding thread ended once its games and answers were done.
    deadline = time.monotonic() + 30
    while sampler_threads() > samplers_before:
        assert time.monotonic() < deadline, "a model's sampler thread is still running"
        time.sleep(0.05)
    table = json.loads((out / RESULTS_JSON).read_text())
    assert (out / RESULTS_MD).read_text() in printed
    games, answers = games_of(out), answers_of(out)
    assert len(games) == GAMES and len(answers) == 2 * MATH
    assert table["complete"]
    assert [r["label"] for r in table["rows"]] == ["before", "after", "uniform"]

    # Every game cell, recomputed from the database's rows: the model's seat alternates.
    for label in ("before", "after", "uniform"):
        for column in table["columns"]:
            cid, cell = column["id"], table["cells"][label].get(column["id"])
            if column["name"] == "simple_negotiation":  # free text: neither plays it here
                assert cell is None and "finite legal actions" in table["skipped"][label][cid]
                continue
            if column["split"] == "math":
                rows = [a for a in answers if a[0] == label]
                if label == "uniform":  # a bot row plays games only
                    assert cell is None and not rows
                    continue
                correct = sum(a[5] for a in rows)
                assert cell["problems"] == MATH and cell["pass@1"] == round(correct / MATH, 4)
                assert cell["pass@1_ci95"] == wilson(correct, MATH)
                continue
            opp = column["opponent"]
            mine = sorted(
                (g for g in games if g[0] == column["name"] and {g[1], g[2]} == {label, opp}),
                key=lambda g: g[3],
            )
            assert [g[3] for g in mine] == list(range(N))
            seats = [0 if g[1] == label else 1 for g in mine]
            assert seats == [i % 2 for i in range(N)]
            returns = [g[5 + s] for g, s in zip(mine, seats)]
            wins = sum(g[7] == s for g, s in zip(mine, seats))
            forfeits = sum(g[8] == s for g, s in zip(mine, seats))
            assert (cell["games"], cell["wins"], cell["forfeits"]) == (N, wins, forfeits)
            assert cell["win_rate"] == round(wins / N, 4)
            assert cell["win_ci95"] == wilson(wins, N)
            assert cell["forfeit_ci95"] == wilson(forfeits, N)
            assert cell["mean_return"] == round(sum(returns) / N, 4)
            assert cell["mean_return_ci95"] == t95(returns)

    # Paired differences: the same seeds for every model in a cell, each game against its twin.
    for column in table["columns"]:
        if column["split"] == "math" or column["name"] == "simple_negotiation":
            continue
        cell_games = [g for g in games if g[0] == column["name"]]
        opp = column["opponent"]
        by = {
            label: {g[3]: g for g in cell_games if {g[1], g[2]} == {label, opp}}
            for label in ("before", "after")
        }
        assert [by["before"][i][4] for i in range(N)] == [by["after"][i][4] for i in range(N)]
        diff = table["differences"]["after - before"][column["id"]]
        ret = [
            by["after"][i][5 + i % 2] - by["before"][i][5 + i % 2] for i in range(N)
        ]  # the model's seat in game i is i % 2
        assert diff["return"]["mean"] == round(sum(ret) / N, 4)
        assert diff["return"]["ci95"] == t95(ret)
    math_diff = table["differences"]["after - before"]["math/gsm8k"]["pass@1"]
    seeds = {(a[0], a[2]): a[4] for a in answers}
    assert all(seeds["before", i] == seeds["after", i] for i in range(MATH))
    deltas = [
        next(a[5] for a in answers if a[:3] == ("after", "gsm8k", i))
        - next(a[5] for a in answers if a[:3] == ("before", "gsm8k", i))
        for i in range(MATH)
    ]
    assert math_diff == {"pairs": MATH, "mean": round(sum(deltas) / MATH, 4),
                                 "ci95": t95(deltas)}  # fmt: skip

    # The same table in `zerosum report`.
    html = write_report(out).read_text()
    assert "zerosum report: benchmark tiny" in html and "after - before (paired)" in html


def test_an_interrupted_suite_resumes_and_plays_only_the_missing_games(tmp_path, models):
    suite = load_suite(str(suite_file(tmp_path)))
    rows = parse_models(model_list(models), suite)
    whole = run_benchmark(suite, rows, tmp_path / "whole", say=lambda line: None)

    class Stop(Exception):
        pass

    def stop_after(n: int, counts: list[str]):
        def progress(kind: str) -> None:
            counts.append(kind)
            if len(counts) == n:
                raise Stop

        return progress

    out = tmp_path / "parts"
    # First stop: inside the first model's games; second: inside its math answers (after
    # its 12 games and one batch of 2 answers); then the rest.
    first: list[str] = []
    with pytest.raises(Stop):
        run_benchmark(suite, rows, out, say=lambda line: None, progress=stop_after(5, first))
    assert len(games_of(out)) == 5 and not answers_of(out)
    second: list[str] = []
    with pytest.raises(Stop):
        run_benchmark(suite, rows, out, say=lambda line: None, progress=stop_after(9, second))
    assert second == ["game"] * 7 + ["math"] * 2  # the 7 games the first model still owed
    assert len(games_of(out)) == 12 and len(answers_of(out)) == 2
    lines: list[str] = []
    rest: list[str] = []
    table = run_benchmark(suite, rows, out, say=lines.append, progress=rest.append)
    assert rest.count("game") == GAMES - 12 and rest.count("math") == 2 * MATH - 2
    assert "before: 0 games to play, 12 already played; 1 math answers to sample" in lines
    assert sorted(games_of(out)) == sorted(games_of(tmp_path / "whole"))
    assert sorted(answers_of(out)) == sorted(answers_of(tmp_path / "whole"))
    assert table == whole
    again: list[str] = []
    assert run_benchmark(suite, rows, out, say=lambda line: None, progress=again.append) == whole
    assert again == []  # nothing left to play


def test_the_shipped_suites_load_and_name_existing_games_and_math_sets():
    assert packaged_suites() == ["marshal", "spiral"]
    spiral = load_suite("spiral")
    assert list(spiral.in_domain) == ["tic_tac_toe", "kuhn_poker", "simple_negotiation"]
    assert set(spiral.held_out) == {"snake", "connect_four", "pig_dice", "liars_dice",
                                    "truth_and_deception"}  # fmt: skip
    assert set(spiral.math) == {"math500", "gsm8k", "aime24", "amc23"}
    for name, count in spiral.math.items():
        assert len(load_problems(name, count)) == count
    marshal = load_suite("marshal")
    assert marshal.cells() == [
        ("in_domain", "tic_tac_toe", "mcts:100"), ("in_domain", "tic_tac_toe", "mcts:1000"),
        ("in_domain", "kuhn_poker", "nash"), ("held_out", "connect_four", "mcts:100"),
        ("held_out", "connect_four", "mcts:1000"), ("held_out", "leduc_poker", "nash"),
    ]  # fmt: skip
    # An API model (or any opponent) named on the command line replaces every game's.
    swapped = load_suite("marshal", opponents=["random"])
    assert {opp for _, _, opp in swapped.cells()} == {"random"}
    # With random, the spiral suite plays its four games with finite moves, the rest are skipped.
    the_plan = plan(spiral, parse_models(["uniform=random"], spiral))
    assert set(the_plan.skipped["uniform"]) == {
        f"{split}/{g}/random"
        for split, g in (("in_domain", "simple_negotiation"), ("held_out", "snake"),
                         ("held_out", "pig_dice"), ("held_out", "truth_and_deception"))
    }  # fmt: skip
    assert len(the_plan.tasks["uniform"]) == 4 * spiral.games_per_cell


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--suite", "nope", "--models", "random"], "unknown suite 'nope'; valid: marshal, spiral"),
        (["--suite", "spiral", "--models", "random"], "is also an opponent's name"),
        (["--suite", "spiral", "--models", "a=random,a=mcts:5"], "each label once"),
        (["--suite", "spiral", "--models", "x=random", "games_per_cell=0"],
         "'games_per_cell' = 0 is invalid; allowed: an integer >= 1"),
        (["--suite", "spiral", "--models", "x=random", "math={gsm9k: 3}"], "unknown benchmark"),
        (["--suite", "spiral", "--models", "x=random", "colour=red"], "unknown config field"),
        (["--suite", "spiral", "--models", "x=random", "--opponents", "mcts:x"], "bad player"),
    ],
)  # fmt: skip
def test_bad_benchmark_input_is_a_one_line_error(argv, message, capsys):
    assert main(["benchmark", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_suite_names_the_field_of_a_bad_prompting_combination():
    with pytest.raises(ConfigError) as err:
        load_suite("spiral", ["answer_mode=constrained", "reasoning_prefix=I hold"])
    assert str(err.value).startswith(
        "config field 'reasoning_prefix' = 'I hold' needs answer_mode reasoned, not 'constrained'"
    )


@settings(max_examples=40, deadline=None)
@given(
    games=st.integers(-3, 50),
    count=st.one_of(st.integers(-2, 40), st.booleans(), st.text(max_size=3)),
    game=st.sampled_from(["kuhn_poker", "tic_tac_toe", "chess", "kuhn", "Go"]),
)
def test_suite_validation_accepts_exactly_the_valid_values(tmp_path_factory, games, count, game):
    path = tmp_path_factory.mktemp("suite") / "s.yaml"
    path.write_text(yaml.safe_dump({"held_out": {game: []}, "games_per_cell": games,
                                    "math": {"gsm8k": count}}))  # fmt: skip
    valid = (
        games >= 1
        and isinstance(count, int)
        and not isinstance(count, bool)
        and count >= 1
        and game in game_names()
    )
    if valid:
        suite = load_suite(str(path))
        assert suite.games_per_cell == games and suite.math == {"gsm8k": count}
    else:
        with pytest.raises(ConfigError) as err:
            load_suite(str(path))
        assert "\n" not in str(err.value)


# --- the figures' functions, against hand-computed values -------------------------------------


def test_pass_at_1_and_its_interval():
    # Four problems, one sample each, 1 correct: Wilson's interval of 1/4.
    one = math_cell({0: [1], 1: [0], 2: [0], 3: [0]}, 4, 1)
    assert one["pass@1"] == 0.25 and one["pass@1_ci95"] == wilson(1, 4)
    # Two samples each: per-problem shares 1, 0.5, 0, 0.5 -> mean 0.5, t interval over them.
    two = math_cell({0: [1, 1], 1: [1, 0], 2: [0, 0], 3: [0, 1]}, 4, 2)
    assert two["pass@1"] == 0.5 and two["samples"] == 8
    half = t.ppf(0.975, 3) * math.sqrt(0.5 / 3) / 2  # sd of (1, .5, 0, .5) is sqrt(1/6)
    assert two["pass@1_ci95"] == [round(0.5 - half, 4), round(0.5 + half, 4)]


def test_paired_differences_are_taken_game_by_game():
    # (score, return, forfeited) per game index; game 3 only the first model played.
    first = {0: (1.0, 1.0, False), 1: (0.0, -1.0, True), 2: (0.5, 0.0, False), 3: (1.0, 1, False)}
    later = {0: (1.0, 1.0, False), 1: (1.0, 1.0, False), 2: (0.0, -1.0, False)}
    d = game_difference(first, later)
    assert d["win"]["pairs"] == 3 and d["win"]["mean"] == round(1 / 3, 4)  # 0, +1, 0
    assert d["return"]["mean"] == round((0 + 2 - 1) / 3, 4)
    assert d["forfeit"]["mean"] == round(-1 / 3, 4)
    assert d["return"]["ci95"] == t95([0.0, 2.0, -1.0])
    assert paired([1, 2, 3], [2, 3, 4]) == {"pairs": 3, "mean": 1.0, "ci95": [1.0, 1.0]}


def test_suite_fields_have_help_and_cells_follow_the_suite_order():
    suite = Suite(in_domain={"kuhn_poker": ["nash"]}, held_out={"tic_tac_toe": []},
                  opponents=["random", "mcts:5"])  # fmt: skip
    assert suite.cells() == [("in_domain", "kuhn_poker", "nash"),
                             ("held_out", "tic_tac_toe", "random"),
                             ("held_out", "tic_tac_toe", "mcts:5")]  # fmt: skip


# --- the multi-game recipe --------------------------------------------------------------------


def test_the_multigame_recipe_takes_a_step_with_a_tiny_model(tmp_path):
    """configs/multigame_smollm2.yaml as it is, on a tiny random model, for one step of a few
    games of each of its three games (the recipe itself is a long SmolLM2 run)."""
    recipe = ROOT / "configs" / "multigame_smollm2.yaml"
    cfg = load_config(recipe, [
        "model.tiny=true", "model.tiny_hidden_size=32", "model.tiny_layers=1", "run.steps=1",
        "rollout.games_per_step=6", "rollout.max_concurrent=6", "sampling.max_new_tokens=8",
        "run.checkpoint_every=1", "run.progress=false", f"run.out_dir={tmp_path / 'run'}",
    ])  # fmt: skip
    assert set(cfg.rollout.games) == {"tic_tac_toe", "kuhn_poker", "simple_negotiation"}
    run_dir = train(cfg)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1]
    assert all(rows[0][f"rollout/{g}/games"] > 0 for g in cfg.rollout.games), rows[0]
    assert (run_dir / "checkpoints" / "step-000001").is_dir()  # what the suite then reads
