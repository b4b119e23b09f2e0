"""API players against real HTTP servers on loopback.

The first tests run a small `http.server` in this process that answers like an
OpenAI-compatible chat endpoint, or with 500s, 429s, 401s, garbage or too slowly: the client
under test is the real `openai` client talking HTTP. The `slow` tests at the end start vLLM's
OpenAI server (the `.venv-vllm` environment, `make test-vllm`; skipped
elsewhere) serving a model made by `zerosum export` from a tiny training run, as a user would
serve one: a short tournament, then the server killed mid-tournament. Every test checks that
the API key never reaches the arena's files or output.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from zerosum.cli import main
from zerosum.players.api import reply_usage
from zerosum.report import write_report

KEY = "sk-arena-test-3f9c1d2e7b"
KEY_ENV = "ZEROSUM_TEST_API_KEY"
DEADLINE = 600  # seconds; a guard against hanging, never a measurement


class ChatServer(http.server.ThreadingHTTPServer):
    """Answers POST /v1/chat/completions according to `mode`; records every request."""

    daemon_threads = True

    def __init__(self, mode: str):
        super().__init__(("127.0.0.1", 0), ChatHandler)
        self.mode, self.requests, self.lock = mode, [], threading.Lock()
        self.in_flight = self.max_in_flight = 0
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def handle_error(self, request, client_address) -> None:
        pass  # a client that timed out and hung up: expected in these tests

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


def completion(content: str, usage: dict | None = None) -> bytes:
    return json.dumps({
        "id": "c", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
        **({"usage": usage} if usage else {}),
    }).encode()  # fmt: skip


def usage_of(prompt: str, reply: str) -> dict:
    """What the test server reports: a character per prompt token, a word per reply token."""
    n, m = len(prompt), len(reply.split())
    return {"prompt_tokens": n, "completion_tokens": m, "total_tokens": n + m}


class ChatHandler(http.server.BaseHTTPRequestHandler):
    server: ChatServer

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv = self.server
        with srv.lock:
            srv.requests.append({"auth": self.headers.get("Authorization"), "body": body})
            number = len(srv.requests)
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        code, payload = self.answer(srv.mode, number, body["messages"][0]["content"])
        with srv.lock:  # before the reply: once it is sent, the client may send its next request
            srv.in_flight -= 1
        self.reply(code, payload)

    def answer(self, mode: str, number: int, prompt: str) -> tuple[int, bytes]:
        if mode == "flaky" and number <= 2:  # a 429, then a 503, then answers
            return 429 if number == 1 else 503, b"{}"
        if mode in ("play", "flaky"):
            time.sleep(0.02)  # long enough for concurrent requests to overlap
            example = re.search(r"for example \\boxed\{(.*?)\}", prompt).group(1)
            reply = f"Let me think.\n\\boxed{{{example}}}"
            return 200, completion(reply, usage_of(prompt, reply))
        if mode == "slow":
            time.sleep(1.0)  # the client's timeout is far shorter
            return 200, completion("\\boxed{check}")
        if mode == "garbage":
            return 200, b"<html>not json</html>"
        return int(mode), b'{"error": "nope"}'

    def reply(self, code: int, payload: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def api_player(url: str, model: str = "m", **extra) -> dict:
    return {"kind": "api", "name": "remote", "base_url": url, "model": model,
            "api_key_env": KEY_ENV, "timeout": 5, "max_retries": 2, "backoff": 0.01,
            "max_tokens": 64, **extra}  # fmt: skip


def write_arena(tmp: Path, player: dict, n: int = 2, games=("kuhn_poker",), **extra) -> Path:
    fields = {"dir": str(tmp / "arena"), "games": list(games), "n": n, "bootstrap": 10,
              "max_concurrent": 6, "players": ["random", player], **extra}  # fmt: skip
    path = tmp / "arena.yaml"
    path.write_text(yaml.safe_dump(fields))
    return path


def games(directory: Path) -> list[dict]:
    with sqlite3.connect(directory / "arena.db") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM games ORDER BY game, seat0, seat1, idx").fetchall()
    return [dict(r) for r in rows]


def api_forfeits(rows: list[dict]) -> list[str]:
    """The reason of every game the API player forfeited."""
    out = []
    for r in rows:
        seat = 0 if r["seat0"] == "remote" else 1
        if r["forfeit_seat"] == seat:
            out.append(json.loads(r["invalid"])[-1][1])
    return out


def assert_key_absent(directory: Path, *texts: str) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    for text in texts:
        assert KEY not in text


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def test_api_player_plays_a_tournament_within_its_concurrency_limit(tmp_path, key_env, capsys):
    server = ChatServer("play")
    cfg = write_arena(tmp_path, api_player(server.url, concurrency=2), n=3,
                      games=("kuhn_poker", "tic_tac_toe"))  # fmt: skip
    assert main(["arena", "--config", str(cfg)]) == 0
    out, err = capsys.readouterr()
    rows = games(tmp_path / "arena")
    assert len(rows) == 12 and api_forfeits(rows) == []
    assert server.max_in_flight <= 2
    assert {r["auth"] for r in server.requests} == {f"Bearer {KEY}"}
    body = server.requests[0]["body"]
    assert body["model"] == "m" and body["max_tokens"] == 64 and isinstance(body["seed"], int)
    assert "Think step by step" in body["messages"][0]["content"]
    transcript = json.loads(rows[0]["transcript"])
    assert any(t["reply"].startswith("Let me think.") for t in transcript)
    assert_key_absent(tmp_path / "arena", out, err)
    # Each answer's token counts are the ones the API reported, and the report shows them.
    asked = sorted(len(r["body"]["messages"][0]["content"]) for r in server.requests)
    api_turns = [t for r in rows for t in json.loads(r["transcript"]) if t.get("reply")]
    assert api_turns and all(t["counted_by"] == "api" for t in api_turns)
    assert all(t["tokens"] == len(t["reply"].split()) for t in api_turns)
    assert sorted(t["prompt_tokens"] for t in api_turns) == asked
    page = write_report(tmp_path / "arena").read_text()
    per_game = sum(t["tokens"] for t in api_turns) / len(rows)
    assert "<td>the API (usage)</td>" in page and f"<td>{per_game:.1f}</td>" in page


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 12, "completion_tokens": 3}, (12, 3)),
        (None, (None, None)),  # the server reported none
        ({"prompt_tokens": "lots", "completion_tokens": -1}, (None, None)),  # not counts
        ({"prompt_tokens": True, "completion_tokens": 2**40}, (None, None)),
    ],
)
def test_reply_usage_keeps_only_counts(usage, expected):
    reply = SimpleNamespace(usage=None if usage is None else SimpleNamespace(**usage))
    got = reply_usage(reply)
    assert (got.prompt, got.generated, got.counted_by) == (*expected, "api")


@pytest.mark.parametrize(
    ("mode", "reason", "requests_per_game"),
    [
        ("500", "api: HTTP 500 (3 attempts)", 3),
        ("429", "api: HTTP 429 (3 attempts)", 3),
        ("401", "api: HTTP 401", 1),
        ("garbage", "api: malformed response (JSONDecodeError)", 1),
        ("slow", "api: timeout (2 attempts)", 2),
    ],
)
def test_failing_servers_forfeit_each_game_with_the_reason(
    tmp_path, key_env, capsys, mode, reason, requests_per_game
):
    server = ChatServer(mode)
    extra = {"timeout": 0.2, "max_retries": 1} if mode == "slow" else {}
    cfg = write_arena(tmp_path, api_player(server.url, **extra))
    assert main(["arena", "--config", str(cfg)]) == 0  # the tournament goes on
    out, err = capsys.readouterr()
    rows = games(tmp_path / "arena")
    assert len(rows) == 4
    assert api_forfeits(rows) == [reason] * 4  # the first API turn of each game fails
    assert len(server.requests) == 4 * requests_per_game
    results = json.loads((tmp_path / "arena" / "results.json").read_text())
    remote = next(r for r in results["all"]["leaderboard"] if r["player"] == "remote")
    assert remote["forfeits"] == 4 and remote["forfeit_reasons"] == {reason: 4}
    assert_key_absent(tmp_path / "arena", out, err)


def test_retries_recover_from_429_and_5xx(tmp_path, key_env, capsys):
    server = ChatServer("flaky")
    cfg = write_arena(tmp_path, api_player(server.url, concurrency=1), n=1)
    assert main(["arena", "--config", str(cfg)]) == 0
    rows = games(tmp_path / "arena")
    assert len(rows) == 2 and api_forfeits(rows) == []
    assert len(server.requests) > 2


def test_a_missing_key_is_a_one_line_error_before_any_game(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(KEY_ENV, raising=False)
    server = ChatServer("play")
    code = main(["arena", "--config", str(write_arena(tmp_path, api_player(server.url)))])
    err = capsys.readouterr().err
    assert code == 2 and server.requests == []
    assert err.strip() == (
        f"zerosum: error: player 'remote': environment variable '{KEY_ENV}' (api_key_env) is not set"
    )


def test_match_plays_an_api_player_from_its_file(tmp_path, key_env, capsys):
    server = ChatServer("play")
    spec = tmp_path / "remote.yaml"
    spec.write_text(yaml.safe_dump(api_player(server.url)))
    code = main(["match", "--game", "kuhn_poker", "--players", f"api:{spec}", "random",
                 "--games", "4"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0 and "remote" in out and "invalid" not in out
    assert len(server.requests) >= 4
    assert KEY not in out + err


# --- vLLM's OpenAI server (slow; the vllm CI stage) ---------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    """vLLM's OpenAI server on a model exported from a one-step tiny training run (`zerosum
    export`: safetensors, tokenizer, chat template, card), behind the test key; killed at the
    end."""
    pytest.importorskip("vllm", reason="vLLM not installed: pip install 'zerosum[vllm]'")
    from zerosum.config import load_config
    from zerosum.train import train

    tmp = tmp_path_factory.mktemp("vllm")
    run, model_dir = tmp / "run", tmp / "tiny"
    recipe = Path(__file__).parent.parent / "configs" / "tiny_kuhn_test.yaml"
    train(load_config(recipe, ["run.steps=1", "rollout.games_per_step=8", "run.eval_every=0",
                               "run.progress=false", f"run.out_dir={run}"]))  # fmt: skip
    assert main(["export", str(run), "--out", str(model_dir)]) == 0
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "README.md").is_file()
    port, log = free_port(), (tmp / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
         "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port),
         "--api-key", KEY, "--enforce-eager", "--max-model-len", "2048"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    wait_ready(url, proc, tmp / "server.log")
    yield url, proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def wait_ready(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + DEADLINE
    request = urllib.request.Request(f"{url}/models", headers={"Authorization": f"Bearer {KEY}"})
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except OSError:
            time.sleep(1)
    pytest.fail("vLLM's server did not start")


@pytest.mark.slow
def test_a_short_tournament_against_vllms_server(vllm_server, tmp_path, key_env, capsys):
    url, _ = vllm_server
    cfg = write_arena(tmp_path, api_player(url, "tiny", max_tokens=16), n=3)
    assert main(["arena", "--config", str(cfg)]) == 0
    out, err = capsys.readouterr()
    rows = games(tmp_path / "arena")
    assert len(rows) == 6
    # The tiny random model writes no legal move: every reply arrived and failed to parse.
    reasons = api_forfeits(rows)
    assert len(reasons) == 6 and not any(r.startswith("api:") for r in reasons)
    replies = [t["reply"] for r in rows for t in json.loads(r["transcript"]) if t["reply"]]
    assert len(replies) == 6 and all(len(r) > 0 for r in replies)
    assert_key_absent(tmp_path / "arena", out, err)


@pytest.mark.slow
def test_server_killed_mid_tournament_forfeits_the_rest_and_loses_nothing(
    vllm_server, tmp_path, key_env
):
    """Runs last: it kills the module's server."""
    url, server = vllm_server
    player = api_player(url, "tiny", max_tokens=16, concurrency=1, max_retries=1, timeout=10)
    cfg = write_arena(tmp_path, player, n=15, max_concurrent=1)
    arena = subprocess.Popen(
        [sys.executable, "-m", "zerosum.cli", "arena", "--config", str(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + DEADLINE
    while count(tmp_path / "arena") < 3:
        assert arena.poll() is None, arena.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    arena.send_signal(signal.SIGSTOP)  # no game ends while the server dies
    before = games(tmp_path / "arena")
    os.killpg(server.pid, signal.SIGKILL)
    server.wait()
    arena.send_signal(signal.SIGCONT)
    out, err = arena.communicate(timeout=DEADLINE)
    assert arena.returncode == 0, err
    rows = games(tmp_path / "arena")
    assert len(rows) == 30 and 3 <= len(before) < 30
    assert all(row in rows for row in before)
    reasons = api_forfeits(rows)
    assert len(reasons) == 30
    lost = [r for r in reasons if r.startswith("api: connection error")]
    assert len(lost) >= 30 - len(before) - 1  # all but a reply in flight at the kill
    assert set(lost) == {"api: connection error (2 attempts)"}
    assert_key_absent(tmp_path / "arena", out, err)


def count(directory: Path) -> int:
    try:
        with sqlite3.connect(directory / "arena.db") as db:
            return db.execute("SELECT COUNT(*) FROM games").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
