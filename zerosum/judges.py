"""Judges for the judged games (`password_game`, `debate`; the protocol and how verdicts are
read: `zerosum.games.judging`), and judge spec strings.

Specs:

- `rule`: the game's own rule (`RuleJudge`): offline and deterministic, what the registry's
  games use. password_game: the rule checks are the whole judgment; debate: a baseline for
  tests that reads the correct answer (see `zerosum.games.debate`).
- `model:PATH`: a checkpoint (a run directory, a checkpoint, a saved model or an HF id, as
  `model:PATH` players take) on its own `hf` engine, greedy (`JUDGE_PARAMS`). `ModelJudge`
  also takes an engine and tokenizer already built (a model shared with other work).
- `api:FILE`: an OpenAI-compatible chat endpoint, settings in a YAML file of the API player's
  fields (`zerosum.players.api.ApiPlayerConfig`: `name`, `base_url`, `model`, `timeout`,
  `max_retries`, ...; set `temperature: 0` for greedy verdicts). Requests are the API
  player's: bounded by the timeout, retried with backoff; when the attempts run out the judge
  fails with the API player's reason (`api: timeout (2 attempts)`), which makes the game a
  draw.

A game judged by a model is built with `judged_game("debate", "api:judge.yaml")`; to train or
play it by name, register it as a plugin under a name of its own (`zerosum.games` entry point,
a function returning `judged_game("debate", "api:judge.yaml", name="debate_api")`). The judge
is asked when a game's last message is played, one request per order of the sides (two per
game), outside the batching of the players' moves.
"""

from __future__ import annotations

from zerosum.engines.base import Engine, SamplingParams
from zerosum.engines.hf import HFEngine
from zerosum.games.base import Game
from zerosum.games.debate import Debate
from zerosum.games.judging import Case, Judge, JudgeError, RuleJudge
from zerosum.games.password import PasswordGame
from zerosum.models import load_model
from zerosum.players.api import ApiPlayer, ApiPlayerConfig, load_api_config
from zerosum.prompts import PromptFormat, encode_prompt

__all__ = ["JUDGE_SPECS", "ApiJudge", "ModelJudge", "RuleJudge", "judged_game", "make_judge"]

JUDGE_SPECS = ("rule", "model:PATH", "api:FILE")
# Greedy: a verdict is a function of the case, and the two orders are asked alike.
JUDGE_PARAMS = SamplingParams(temperature=0.0, max_new_tokens=512)
JUDGED_GAMES: dict[str, type] = {"password_game": PasswordGame, "debate": Debate}


class ModelJudge:
    """A language model on an engine: the case's prompt as one user message (the chat template,
    or `plain`), one sample with `params` seeded by the episode's seed; the reply is returned
    as it is, for the game to read strictly."""

    def __init__(
        self,
        engine: Engine,
        tokenizer,
        params: SamplingParams = JUDGE_PARAMS,
        prompt_format: PromptFormat = "chat",
        name: str = "model",
    ) -> None:
        self.engine, self.tokenizer, self.params = engine, tokenizer, params
        self.prompt_format = prompt_format
        self.name = name

    def judge(self, case: Case) -> str:
        prompt = encode_prompt(self.tokenizer, case.prompt, self.prompt_format)
        (generation,) = self.engine.generate([prompt], self.params, seed=case.seed)
        return generation.text

    def __repr__(self) -> str:
        return f"ModelJudge({self.name!r})"


class ApiJudge:
    """An OpenAI-compatible chat API through the API player's client (timeout, retries,
    backoff, concurrency); a request that fails for good raises `JudgeError` with the reason."""

    def __init__(self, config: ApiPlayerConfig) -> None:
        self.player = ApiPlayer(config)
        self.name = f"api:{config.name}"

    def judge(self, case: Case) -> str:
        text, failure = self.player.complete(case.prompt, case.seed)
        if failure is not None:
            raise JudgeError(failure)
        return text

    def __repr__(self) -> str:
        return f"ApiJudge({self.name!r})"


def make_judge(spec: str, params: SamplingParams = JUDGE_PARAMS) -> Judge:
    """The judge of `spec` (`rule`, `model:PATH`, `api:FILE`); a one-line error otherwise. A
    model judge samples with `params`."""
    kind, _, arg = spec.partition(":")
    try:
        if spec == "rule":
            return RuleJudge()
        if kind == "model" and arg:
            model, tokenizer = load_model(arg)
            return ModelJudge(HFEngine(model, tokenizer), tokenizer, params, name=spec)
        if kind == "api" and arg:
            return ApiJudge(load_api_config(arg))
    except ValueError as err:  # ConfigError is one too
        raise ValueError(f"bad judge {spec!r}: {err}") from None
    raise ValueError(f"unknown judge {spec!r}; valid: {', '.join(JUDGE_SPECS)}")


def judged_game(game: str, judge: str | Judge, **options) -> Game:
    """Judged game `game` (password_game or debate) with `judge` (a spec or a `Judge`); other
    keyword arguments go to the game (`rounds`, `max_chars`, `name`: the name it plays under)."""
    if game not in JUDGED_GAMES:
        raise ValueError(f"unknown judged game {game!r}; valid: {', '.join(JUDGED_GAMES)}")
    return JUDGED_GAMES[game](
        judge=make_judge(judge) if isinstance(judge, str) else judge, **options
    )
