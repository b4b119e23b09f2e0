"""An OpenAI-compatible chat API as a player: vLLM's server, OpenAI, any compatible endpoint.

The prompt is the text model players get (`Prompting.content`: the seat's view and the
free-answer instruction) as one user message, with chat control strings broken up
(`untrusted.for_server`: the server applies its own template to the text); the reply is
untrusted text, cut to a bounded tail and read as a free answer (`Prompting.read`:
`games.parsing.parse_action`). A request that times out, cannot connect or gets a 429 or 5xx
is retried with exponential backoff; when the retries run out, or the error is not worth
retrying (another 4xx, a malformed response), the move is invalid with the reason, which
forfeits that game for this player and lets the tournament go on.

The API key is read from the environment variable named by `api_key_env` and handed to the
client only: it is not part of the player's name, identity, reasons or repr, and reasons never
quote the server's error text, so nothing a caller writes can contain it.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from zerosum.engines.base import TEMPERATURE
from zerosum.games.base import GameState
from zerosum.games.parsing import Fallback
from zerosum.players.base import Move, Usage
from zerosum.prompts import Prompting
from zerosum.typed_config import (
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    Bound,
    ConfigError,
    fld,
    load_dataclass,
    load_yaml,
    numbers,
)
from zerosum.untrusted import for_server

_URL = Bound(lambda v: v.startswith(("http://", "https://")), "an http:// or https:// URL")

# Longest reply kept (its tail, where the answer is): an honest server is bounded by
# max_tokens, a broken one is not.
MAX_REPLY_CHARS = 100_000


@dataclass(frozen=True)
class ApiPlayerConfig:
    name: str = fld(dataclasses.MISSING, "player name in tables and the database")
    base_url: str = fld(dataclasses.MISSING, "server URL, e.g. http://127.0.0.1:8000/v1", _URL)
    model: str = fld(dataclasses.MISSING, "model name as the server knows it")
    kind: Literal["api"] = fld("api", "player kind")
    api_key_env: str | None = fld(
        None, "name of the environment variable holding the API key (null: no key)"
    )
    timeout: float = fld(60.0, "seconds per request", numbers(0, lo_open=True))
    max_retries: int = fld(3, "retries after a timeout, connection error, 429 or 5xx", NON_NEGATIVE)
    backoff: float = fld(
        1.0, "seconds before the first retry, doubled for each next one", numbers(0)
    )
    max_backoff: float = fld(30.0, "longest wait between two attempts", numbers(0))
    concurrency: int = fld(4, "requests to this player in flight at once", POSITIVE)
    temperature: float = fld(0.6, "sampling temperature (0: greedy)", TEMPERATURE)
    top_p: float = fld(0.95, "nucleus sampling mass", PROBABILITY)
    max_tokens: int = fld(512, "cap on generated tokens per turn", POSITIVE)
    include_rules: bool = fld(True, "put the game's rules into every prompt")
    parser_fallback: Fallback = fld(
        "last_bracket", "without \\boxed{}: what else counts as the answer (docs: Games)"
    )
    send_seed: bool = fld(
        True, "send a per-request seed drawn from the game's RNG (vLLM honours it)"
    )

    # Settings that change how the player plays; the rest (where and how patiently it is
    # reached) may change between sessions of one arena.
    PLAY_FIELDS = ("kind", "model", "temperature", "top_p", "max_tokens", "include_rules",
                   "parser_fallback", "send_seed")  # fmt: skip

    def identity(self) -> dict:
        return {k: getattr(self, k) for k in self.PLAY_FIELDS}

    @property
    def prompting(self) -> Prompting:
        """How the player is asked and read: free answers (the server samples text), the
        prompt's text sent as one chat message."""
        return Prompting(include_rules=self.include_rules, parser_fallback=self.parser_fallback)


def load_api_config(path: str | Path) -> ApiPlayerConfig:
    """An API player's settings from a YAML file (`zerosum match --players api:FILE`)."""
    return load_dataclass(ApiPlayerConfig, load_yaml(path, "API player file"))


def api_key(config: ApiPlayerConfig) -> str:
    """The key from the environment; servers without authentication get a placeholder."""
    if config.api_key_env is None:
        return "EMPTY"
    value = os.environ.get(config.api_key_env, "")
    if not value:
        raise ConfigError(
            f"player {config.name!r}: environment variable {config.api_key_env!r} "
            "(api_key_env) is not set"
        )
    return value


class MalformedReply(ValueError):
    """A 2xx response without a chat message text."""


class ApiPlayer:
    """Answers through `chat.completions`; at most `concurrency` requests in flight."""

    def __init__(self, config: ApiPlayerConfig):
        import openai  # an import of a second or so, paid by API players only

        self.name = config.name
        self.config = config
        self._client = openai.OpenAI(
            base_url=config.base_url,
            api_key=api_key(config),
            timeout=config.timeout,
            max_retries=0,  # retried here, so every attempt is bounded and counted
        )
        self._slots = threading.BoundedSemaphore(config.concurrency)

    def __repr__(self) -> str:
        return f"ApiPlayer({self.name!r}, model={self.config.model!r})"

    def act(self, state: GameState, rng: np.random.Generator, feedback: str | None = None) -> Move:
        seed = int(rng.integers(2**31))  # drawn either way: the game's RNG stream stays the same
        seat = state.current_seat()
        asking = self.config.prompting
        text, failure, usage = self.exchange(asking.content(state, seat, feedback), seed)
        if failure is not None:
            return Move(None, "", failure)
        action, reason = asking.read(text, state.legal_actions())
        return Move(action, text, reason, usage)

    def complete(self, content: str, seed: int) -> tuple[str, str | None]:
        """The reply text, or "" and why there is none after the allowed attempts."""
        text, failure, _ = self.exchange(content, seed)
        return text, failure

    def exchange(self, content: str, seed: int) -> tuple[str, str | None, Usage | None]:
        """`complete`'s reply and reason, and the token counts the API reported for it."""
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(self.config.max_backoff, self.config.backoff * 2 ** (attempt - 1)))
            try:
                with self._slots:
                    reply = self._client.chat.completions.create(**self._request(content, seed))
                return reply_text(reply), None, reply_usage(reply)
            except Exception as err:  # every failure of an untrusted server becomes a reason
                reason, retry = classify(err)
                if not retry:
                    return "", reason, None
        return "", f"{reason} ({attempts} attempts)", None

    def _request(self, content: str, seed: int) -> dict:
        request = {
            "model": self.config.model,
            # the server templates this text itself: no chat control string may reach it whole
            "messages": [{"role": "user", "content": for_server(content)}],
            "temperature": self.config.temperature,
            "top_p": self.config.top_p,
            "max_tokens": self.config.max_tokens,
        }
        return {**request, "seed": seed} if self.config.send_seed else request


def reply_text(reply: object) -> str:
    """The first choice's message text (its bounded tail); MalformedReply otherwise."""
    choices = getattr(reply, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise MalformedReply("no choices")
    content = getattr(getattr(choices[0], "message", None), "content", None)
    if not isinstance(content, str):
        raise MalformedReply("no message content")
    return content[-MAX_REPLY_CHARS:]


def reply_usage(reply: object) -> Usage:
    """The prompt and completion token counts the server reported (`usage`), each None where
    it reported none or something that is not a count (an untrusted server)."""
    usage = getattr(reply, "usage", None)

    def count(name: str) -> int | None:
        value = getattr(usage, name, None)
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31
        return value if ok else None

    return Usage(count("prompt_tokens"), count("completion_tokens"), "api")


def classify(err: Exception) -> tuple[str, bool]:
    """A short reason (never the server's text) and whether another attempt may help."""
    import openai

    if isinstance(err, openai.APITimeoutError):  # a subclass of APIConnectionError
        return "api: timeout", True
    if isinstance(err, openai.APIConnectionError):
        return "api: connection error", True
    if isinstance(err, openai.APIStatusError):
        code = err.status_code
        return f"api: HTTP {code}", code == 429 or code >= 500
    return f"api: malformed response ({type(err).__name__})", False
