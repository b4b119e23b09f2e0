"""`zerosum report` and the games a training run keeps for it: games.jsonl is written without
changing the run and survives a resume; the HTML of a run, an evaluation and an arena is one
offline file with plots and replays, and shows untrusted text as text."""

from __future__ import annotations

import html
import importlib.util
import io
import json
import os
import re
import shutil
from contextlib import redirect_stdout
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerosum.arena.config import arena_config
from zerosum.arena.report import report as arena_results
from zerosum.arena.run import run_arena
from zerosum.arena.store import DB_NAME, GameKey, GameRecord, Store
from zerosum.cli import main
from zerosum.config import load_config
from zerosum.evaluation.run import run_eval, write_results
from zerosum.evaluation.settings import EvalSettings
from zerosum.report import detect, write_report
from zerosum.report.training import shown_replays
from zerosum.rollout import schedule_games
from zerosum.rundir import kept_step
from zerosum.seeds import step_seed
from zerosum.train import train
from zerosum.untrusted import BIDI_CONTROLS, for_display

RECIPE = Path(__file__).parent.parent / "configs" / "tiny_kuhn_test.yaml"
STEPS, PER_STEP, KEEP = 3, 8, 2
COMMON = [
    f"run.steps={STEPS}", f"rollout.games_per_step={PER_STEP}", "rollout.max_concurrent=8",
    "run.progress=false", "run.tensorboard=false", "run.checkpoint_every=2", "run.eval_every=2",
    "eval.games=[kuhn_poker]", "eval.opponents=[random]", "eval.n=4",
]  # fmt: skip
EVIL = [
    "<script>window.pwned=1</script>",
    '<img src=x onerror="window.pwned=1">',
    "**bold** [link](javascript:window.pwned=1) <b>markup</b> &amp; </pre></details><h1>x</h1>",
    "I fold\u202e\u2066dlot uoy\u2069 (bidi controls) and a terminal \x1b[2J escape",
]


def read_metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]


def read_games(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "games.jsonl").read_text().splitlines()]


def run(out: Path, *overrides: str) -> Path:
    train(load_config(RECIPE, [*COMMON, f"run.out_dir={out}", *overrides]))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The same tiny run keeping 2 games per step (and its report every 2 steps), and, by
    `zerosum train`, keeping none."""
    root = tmp_path_factory.mktemp("runs")
    off, stdout = root / "off", io.StringIO()
    with redirect_stdout(stdout):
        code = main(["train", "--config", str(RECIPE), *COMMON, f"run.out_dir={off}",
                     "run.keep_games=0"])  # fmt: skip
    assert code == 0
    (root / "train_stdout.txt").write_text(stdout.getvalue())
    return {"kept": run(root / "kept", f"run.keep_games={KEEP}", "run.report_every=2"), "off": off}


# --- kept games -------------------------------------------------------------------------------


def test_kept_games_are_the_first_of_each_steps_schedule(runs):
    games = read_games(runs["kept"])
    assert [(g["step"], g["index"]) for g in games] == [
        (s, i) for s in range(1, STEPS + 1) for i in range(KEEP)
    ]
    for g in games:
        schedule = schedule_games({"kuhn_poker": 1.0}, PER_STEP, 0, g["step"])
        assert (g["game"], g["seed"]) == schedule[g["index"]]  # replays from its seed
        assert g["rollout_seed"] == step_seed(0, g["step"])
        assert g["players"] == ["self", "self"]
        assert g["outcome"]["turns"] == len(g["moves"]) == len(g["turns"]) >= 2
        assert sum(g["outcome"]["returns"]) == 0
        for t in g["turns"]:
            assert f"You are Player {t['seat']} in a game of Kuhn Poker" in t["prompt"]
            assert t["move"] == t["response"].strip() and t["valid"]  # constrained answers
        assert [[t["seat"], t["move"]] for t in g["turns"]] == g["moves"]


def test_keeping_games_changes_no_training_result(runs):
    assert not (runs["off"] / "games.jsonl").exists()
    kept, off = read_metrics(runs["kept"]), read_metrics(runs["off"])
    assert [r["step"] for r in kept] == [1, 2, 3]
    assert kept == off


@given(st.integers(1, 5000), st.integers(1, 200))
def test_kept_steps_are_bounded_and_spread_over_the_run(steps, n):
    kept = [s for s in range(1, steps + 1) if kept_step(s, steps, n)]
    assert kept[0] == 1 and kept[-1] == steps
    assert len(kept) <= n + 1
    if steps <= n:
        assert kept == list(range(1, steps + 1))
    else:  # evenly spaced: no gap more than twice the mean
        gaps = [b - a for a, b in zip(kept, kept[1:])]
        assert max(gaps) <= 2 * steps / len(gaps) + 1


@given(st.lists(st.integers(1, 4), min_size=1, max_size=12), st.integers(1, 30))
def test_replays_show_the_first_kept_step_and_the_latest(per_step, max_replays):
    """A long run's report shows how the model played before training, not only lately."""
    games = [{"step": s, "index": i} for s, n in enumerate(per_step, 1) for i in range(n)]
    shown = shown_replays(games, max_replays)
    assert len(shown) == min(len(games), max_replays)
    positions = [games.index(g) for g in shown]
    assert positions == sorted(set(positions))  # in order, each once
    assert shown[-1] == games[-1]  # the latest
    first_step = [g for g in shown if g["step"] == 1]
    assert len(first_step) >= min(per_step[0], max_replays // 2)  # before training
    latest = shown[len(first_step) :]
    assert latest == games[len(games) - len(latest) :]  # the rest, the latest ones


def test_resume_keeps_games_jsonl_consistent(runs, tmp_path):
    """Killed in step 3 after its games were written (the last line half written), resumed
    from the step-2 checkpoint: games.jsonl is the uninterrupted run's, line for line."""
    ref = runs["kept"]
    cut = tmp_path / "cut"
    shutil.copytree(ref, cut, symlinks=True, ignore=shutil.ignore_patterns("report.html"))
    shutil.rmtree(cut / "checkpoints" / f"step-{STEPS:06d}")
    latest = cut / "checkpoints" / "latest"
    latest.unlink()
    latest.symlink_to(f"step-{STEPS - 1:06d}")
    text = (cut / "games.jsonl").read_text()
    (cut / "games.jsonl").write_text(text + text.splitlines()[0][:50])  # a cut write
    train(load_config(cut / "config.json", [f"run.out_dir={cut}"]), resume=True)
    assert (cut / "games.jsonl").read_text() == (ref / "games.jsonl").read_text()
    assert read_metrics(cut) == read_metrics(ref)


# --- the training report ----------------------------------------------------------------------


def svgs(page: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", page, flags=re.S)


def data_paths(svg: str) -> list[int]:
    """Vertex counts of the drawn data (clipped to the axes, not grid lines)."""
    out = []
    for m in re.finditer(r'<path d="([^"]*)" clip-path="[^"]*" style="([^"]*)"', svg):
        if "stroke: #b0b0b0" not in m.group(2):
            out.append(len(re.findall(r"[ML] ", m.group(1))))
    return out


class References(HTMLParser):
    """The elements' attributes that can name a resource: src, href (xlink:href too), and
    url(...) anywhere in an attribute (a style, a clip-path)."""

    def __init__(self):
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            value = value or ""
            if name.split(":")[-1] in ("src", "href", "action", "formaction", "poster", "data"):
                self.refs.append(value)
            self.refs += re.findall(r"url\(\s*['\"]?([^'\")]*)", value)


def network_references(page: str) -> list[str]:
    """Every reference of an element that does not point inside the page."""
    parser = References()
    parser.feed(page)
    assert parser.refs, "no reference found at all: the parser missed the plots"
    return [r for r in parser.refs if not r.startswith("#")]


def test_training_report_is_one_offline_file_with_plots_and_replays(runs, tmp_path):
    run_dir = runs["kept"]
    out = write_report(run_dir, tmp_path / "r.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]  # nothing beside it
    page = out.read_text()
    plots = svgs(page)
    assert len(plots) >= 12
    assert all(data_paths(svg) for svg in plots), "a plot without data"
    assert any(STEPS in data_paths(svg) for svg in plots)  # a curve through every step
    for title in ("kuhn_poker: NashConv of the policy", "kuhn_poker: against fixed opponents",
                  "Invalid answers and forfeits", "RAE baselines per game and seat", "Entropy",
                  "Learning rate", "Throughput", "Generated tokens per game"):  # fmt: skip
        assert title in page, title
    assert f"n = {PER_STEP} games of kuhn_poker per step." in page  # rates carry their counts
    assert "forfeited (either seat)" in page  # beside the self-play win rates
    assert "n = 4 games per point" in page and "forfeit [95% CI]" in page
    game = read_games(run_dir)[-1]
    turn = game["turns"][0]
    assert (
        html.escape(turn["prompt"]) in page
        and f"<pre>{html.escape(turn['response'])}</pre>" in page
    )
    assert page.count('<details class="game">') == len(read_games(run_dir))
    assert f"seed {game['seed']}" in page
    assert "http://" not in page and "https://" not in page
    assert network_references(page) == []
    assert "<script" not in page.lower()
    assert '"keep_games"' not in page and "run.keep_games" in page  # the config table


def test_train_ends_with_the_report_and_the_next_commands(runs):
    """`zerosum train` writes RUN/report.html and says where; `run.report_every` writes it
    from `train` itself, during the run."""
    off = runs["off"]
    lines = (off.parent / "train_stdout.txt").read_text().splitlines()
    assert lines[-3:-1] == [
        f"run saved in {off}",
        f"report: {off / 'report.html'} (open it in a browser)",
    ]
    assert lines[-1].startswith(f"next: zerosum eval --model {off} --games kuhn_poker")
    assert f"zerosum match --game kuhn_poker --players model:{off} random" in lines[-1]
    assert "No kept games (run.keep_games is 0)" in (off / "report.html").read_text()
    assert f"{STEPS} steps logged" in (runs["kept"] / "report.html").read_text()


def test_cli_report_writes_the_default_file_and_prints_it(runs, tmp_path, capsys):
    for name in ("config.json", "metrics.jsonl", "games.jsonl"):
        shutil.copy(runs["kept"] / name, tmp_path / name)
    assert main(["report", str(tmp_path), "--replays", "1"]) == 0
    assert capsys.readouterr().out.strip() == f"report written to {tmp_path / 'report.html'}"
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count('<details class="game">') == 1


def test_unknown_inputs_fail_in_one_line(tmp_path, capsys):
    (tmp_path / "x.json").write_text("{}")
    for source in (tmp_path, tmp_path / "x.json", tmp_path / "missing"):
        assert main(["report", str(source)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("zerosum: error:") and "\n" not in err and str(source) in err


# --- untrusted text ---------------------------------------------------------------------------


def evil_run(runs: dict[str, Path], directory: Path) -> Path:
    """A copy of the kept run whose model wrote markup, scripts and Markdown everywhere."""
    directory.mkdir()
    for name in ("config.json", "metrics.jsonl"):
        shutil.copy(runs["kept"] / name, directory / name)
    metrics = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
    for row in metrics:
        row[f"rollout/invalid_reason/{EVIL[0]}"] = 0.5
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
    games = read_games(runs["kept"])
    g = games[0]
    g["players"] = [EVIL[1], "self"]
    g["invalid"] = [[0, EVIL[2]]]
    g["outcome"]["forfeit_seat"] = 0
    g["moves"] = [[0, EVIL[0]]]
    for t in g["turns"]:
        t.update(prompt="\n".join(EVIL), response="\n".join(EVIL), move=EVIL[1], reason=EVIL[0])
    (directory / "games.jsonl").write_text("".join(json.dumps(x) + "\n" for x in games))
    return directory


def assert_escaped(page: str, texts: list[str] = EVIL[:3]) -> None:
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert "<h1>x</h1>" not in page and "<b>markup</b>" not in page
    assert "<strong>" not in page and "<a href" not in page.replace('<a href="#', "")
    for text in texts:
        assert html.escape(for_display(text)) in page, text
    assert not set(BIDI_CONTROLS) & set(page) and "\x1b" not in page
    assert "**bold** [link](javascript:window.pwned=1)" in page  # Markdown stays literal


def test_untrusted_text_in_a_run_shows_as_text(runs, tmp_path):
    page = write_report(evil_run(runs, tmp_path / "evil")).read_text()
    assert_escaped(page, EVIL)  # the bidi and escape text is in the replays' turns
    assert network_references(page) == []


# --- evaluation results and arenas ------------------------------------------------------------


@pytest.fixture(scope="module")
def eval_file(runs, tmp_path_factory) -> Path:
    """`zerosum eval` of the kept run's checkpoint: 4 games against each opponent."""
    settings = EvalSettings(
        model=str(runs["kept"]), games=["kuhn_poker"], opponents=["random", "nash"], n=4,
        answer_mode="constrained", include_rules=False, prompt_format="plain",
    )  # fmt: skip
    path = tmp_path_factory.mktemp("eval") / "results.json"
    write_results(run_eval(settings), path)
    return path


def test_eval_report_has_counts_and_forfeits_beside_every_win_rate(eval_file, tmp_path):
    assert detect(eval_file) == "eval"
    page = write_report(eval_file, tmp_path / "eval.html").read_text()
    results = json.loads(eval_file.read_text())
    header = re.search(r"<thead>(.*?)</thead>", page).group(1)
    cols = re.findall(r"<th[^>]*>(.*?)</th>", header)
    assert cols[cols.index("win [95% CI]") + 1] == "forfeit [95% CI]"
    assert "games without a forfeit" in cols
    rows = re.findall(r"<tr>(.*?)</tr>", page.split("<tbody>", 1)[1].split("</tbody>")[0])
    assert len(rows) == 6  # random and nash: both seats, seat 0, seat 1
    for row in rows:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        n = cells[2]
        assert n in ("4", "2") and cells[3].endswith(f"n={n}</span>") and f"n={n}" in cells[4]
    r = results["games"]["kuhn_poker"]["opponents"]["random"]
    assert f"{r['win_rate']:.2f} [{r['win_ci95'][0]:.2f}, {r['win_ci95'][1]:.2f}]" in page
    # Tokens per game: a constrained answer is the action and its end token (2-3 per turn).
    assert cols[-1] == "tokens per game"
    assert 2 <= r["game_tokens"] <= 3 * 3 and r["seat0"]["game_tokens"] > 0
    assert r["game_tokens"] == (r["seat0"]["game_tokens"] + r["seat1"]["game_tokens"]) / 2
    assert re.findall(r"<td[^>]*>(.*?)</td>", rows[0])[-1] == f"{r['game_tokens']:.1f}".rstrip(
        "0"
    ).rstrip(".")
    assert f"{results['games']['kuhn_poker']['exploitability']['nash_conv']:.4f}" in page
    assert len(svgs(page)) == 1 and all(data_paths(s) for s in svgs(page))
    assert network_references(page) == [] and "https://" not in page


def test_untrusted_text_in_eval_results_shows_as_text(eval_file, tmp_path):
    results = json.loads(eval_file.read_text())
    per_game = results["games"]["kuhn_poker"]
    per_game["opponents"]["random"]["invalid_reasons"] = {EVIL[0]: 1, EVIL[2]: 2}
    per_game["skipped"] = {EVIL[1]: EVIL[0]}
    results["settings"]["model"] = EVIL[1]
    bad = tmp_path / "evil.json"
    bad.write_text(json.dumps(results))
    assert_escaped(write_report(bad).read_text())


@pytest.fixture(scope="module")
def arena_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("arena")
    cfg = arena_config({
        "dir": str(directory), "games": ["tic_tac_toe"], "n": 2,
        "players": ["random", "perfect"], "bootstrap": 10,
    })  # fmt: skip
    run_arena(cfg, say=lambda line: None)
    arena_results(directory)  # results.json, as `zerosum arena` writes it
    return directory


def test_arena_report_has_leaderboards_crossplay_and_replays(arena_dir, tmp_path):
    assert detect(arena_dir) == "arena"
    page = write_report(arena_dir, tmp_path / "arena.html").read_text()
    assert page.count("<h3>Leaderboard (4 games)</h3>") == 2  # all games, tic_tac_toe
    assert page.count("<h3>Cross-play</h3>") == 2
    assert page.count('<details class="game">') == 4
    assert "forfeit [95% CI]" in page and "forfeit 0.00" in page
    assert re.search(
        r"\d\.\d\d \[\d\.\d\d, \d\.\d\d\] <span class=muted>n=4</span><br>", page
    )  # cross-play
    assert network_references(page) == [] and "https://" not in page


def test_arena_report_from_results_json_alone(arena_dir, tmp_path):
    (tmp_path / "results.json").write_text((arena_dir / "results.json").read_text())
    page = write_report(tmp_path).read_text()
    assert page.count("<h3>Leaderboard (4 games)</h3>") == 2
    assert '<details class="game">' not in page and "no replays" in page


def test_untrusted_text_in_arena_transcripts_shows_as_text(arena_dir, tmp_path):
    directory = tmp_path / "arena"
    shutil.copytree(arena_dir, directory)
    store = Store(directory / DB_NAME)
    transcript = [{"seat": 0, "reply": "\n".join(EVIL), "action": None, "reason": EVIL[2]}]
    store.add(GameRecord(
        GameKey("tic_tac_toe", "perfect", "random", 99), 1, (-1.0, 1.0), 1, 1, False, 0,
        [], [[0, EVIL[2]]], transcript,
    ))  # fmt: skip
    store.close()
    page = write_report(directory).read_text()
    assert_escaped(page)
    assert "forfeit 0.20" in page  # perfect forfeited 1 of its 5 games against random
    # The win random got from that forfeit is labelled in the leaderboard.
    board = page.split("<h3>Leaderboard (5 games)</h3>", 1)[1].split("</table>", 1)[0]
    cols = re.findall(r"<th[^>]*>(.*?)</th>", board)
    at = cols.index(html.escape("wins by the opponent's forfeit"))
    rows = {
        cells[1]: cells[at]
        for cells in (
            re.findall(r"<td[^>]*>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", board)
        )
        if cells
    }
    assert rows == {"random": "1", "perfect": "0"}


# --- a real browser ---------------------------------------------------------------------------


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def browser_missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install -e '.[browser]')"
    if chromium() is None:
        return "no Chromium on PATH (Debian: apt-get install chromium)"
    return None


@pytest.mark.slow
@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
def test_report_in_a_headless_browser(runs, tmp_path):
    """Chromium opens the report of a run whose model wrote scripts: no console error, no
    request but the file itself, the plots drawn, a replay opened shows a turn, no script ran.
    Needs Playwright (`pip install playwright`) and a Chromium (Debian: `apt-get install
    chromium`); skipped otherwise."""
    from playwright import sync_api

    browser_path = chromium()
    report = write_report(evil_run(runs, tmp_path / "evil"))
    url = report.resolve().as_uri()
    errors, requests = [], []
    with sync_api.sync_playwright() as p:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        browser = p.chromium.launch(executable_path=browser_path, args=args)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url, wait_until="load")
        plots = page.locator("figure svg")
        assert plots.count() >= 12
        for i in range(plots.count()):
            box = plots.nth(i).bounding_box()
            assert box and box["width"] > 200 and box["height"] > 100
            assert plots.nth(i).locator("path[clip-path]").count() > 0
        game = page.locator("details.game").first
        assert game.get_attribute("open") is None
        turn = game.locator("li.turn").first
        assert not turn.is_visible()
        game.locator("summary").first.click()
        assert game.get_attribute("open") == "" and turn.is_visible()
        turn.locator("details.prompt summary").click()
        shown = turn.locator("pre").first.inner_text()
        # the literal text, as written, less bidi and control characters (`for_display`)
        assert shown == for_display("\n".join(EVIL))
        assert page.evaluate("typeof window.pwned") == "undefined"
        assert page.locator("img, script, iframe, object, embed").count() == 0
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert requests == [url]


def test_what_a_game_measures_is_plotted_beside_its_results():
    """The game's own measures (and the share of reasonings naming the card) get a plot per
    game, one line each, through the steps that report them; a game measuring nothing beyond
    its results gets none."""
    from zerosum.report.training import Curves, selfplay_section

    rows = [
        {"step": s, "rollout/games": 8.0, "rollout/turns": 16.0,
         "rollout/kuhn_poker/win_rate_seat0": 0.5, "rollout/kuhn_poker/games": 8.0,
         "rollout/tic_tac_toe/win_rate_seat0": 0.5, "rollout/tic_tac_toe/games": 8.0,
         **({"rollout/kuhn_poker/reasoning_names_private": 0.25 * s} if s != 2 else {})}
        for s in (1, 2, 3)
    ]  # fmt: skip
    page = selfplay_section(Curves(rows))
    assert "kuhn_poker: what the game measures" in page
    assert "tic_tac_toe: what the game measures" not in page
    (figure,) = [f for f in page.split("<figure>") if "kuhn_poker: what the game measures" in f]
    assert "reasonings naming the seat's private information (per turn)" in figure
    assert data_paths(figure) == [2]  # one line, through steps 1 and 3


def test_the_next_commands_name_an_opponent_that_can_play_the_game():
    from zerosum.cli import next_commands

    kuhn = next_commands(Path("runs/r"), {"kuhn_poker": 1.0}, "smollm2-135m-instruct")
    assert "--opponents random" in kuhn and "model:runs/r random" in kuhn
    red = next_commands(Path("runs/r"), {"redteam": 1.0}, "smollm2-135m-instruct")
    assert "random" not in red  # it cannot write a request or a reply
    assert "--opponents model:smollm2-135m-instruct" in red
