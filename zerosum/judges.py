"""Judges for the judged games (`password_game`, `redteam`, `debate`; the protocol and how
verdicts are read: `zerosum.games.judging`), and judge spec strings.

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
- `classifier:PATH`: a Hugging Face sequence-classification checkpoint (`ClassifierJudge`),
  for games that give a classifier a text pair to read (`Case.exchange`: redteam's last
  request, prefixed with its type, and last reply). Its label 1 flags the exchange (the
  Attacker succeeded); `ClassifierJudge` also takes other flagged labels by name. A
  classifier is deterministic and does not see the sides' labels, so both orders agree.

A game judged by a model is built with `judged_game("debate", "api:judge.yaml")`; to train or
play it by name, register it as a plugin under a name of its own (`zerosum.games` entry point,
a function returning `judged_game("debate", "api:judge.yaml", name="debate_api")`). The judge
is asked when a game's last message is played, one request per order of the sides (two per
game), outside the batching of the players' moves.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from zerosum.engines.base import Engine, SamplingParams
from zerosum.engines.hf import HFEngine
from zerosum.games.base import Game
from zerosum.games.debate import Debate
from zerosum.games.judging import Case, Judge, JudgeError, RuleJudge
from zerosum.games.password import PasswordGame
from zerosum.games.redteam import RedTeamGame
from zerosum.models import load_model
from zerosum.players.api import ApiPlayer, ApiPlayerConfig, load_api_config
from zerosum.prompts import PromptFormat, encode_prompt
from zerosum.untrusted import control_strings

__all__ = [
    "JUDGE_SPECS",
    "ApiJudge",
    "ClassifierJudge",
    "ModelJudge",
    "RuleJudge",
    "judged_game",
    "make_judge",
]

JUDGE_SPECS = ("rule", "model:PATH", "api:FILE", "classifier:PATH")
# Greedy: a verdict is a function of the case, and the two orders are asked alike.
JUDGE_PARAMS = SamplingParams(temperature=0.0, max_new_tokens=512)
JUDGED_GAMES: dict[str, type] = {
    "password_game": PasswordGame,
    "redteam": RedTeamGame,
    "debate": Debate,
}
CLASSIFIER_MAX_TOKENS = 512  # of a classifier's input: the pair is truncated to it


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


class ClassifierJudge:
    """A sequence classifier (any Hugging Face `...ForSequenceClassification` model) reading
    the case's `exchange` as a text pair; the exchange is flagged when the most likely label
    is one of `flagged_labels` (names from the model's `id2label`; by default its label 1),
    and a flagged exchange is the case's `flagged_winner`'s, an unflagged one the other
    seat's. Control strings of the tokenizer in the players' text are broken up (`<|x|>`
    becomes `< |x|>`) and special tokens split, so no text becomes a control token."""

    def __init__(
        self, model, tokenizer, flagged_labels: Sequence[str] | None = None,
        name: str = "classifier",
    ) -> None:  # fmt: skip
        self.model, self.tokenizer, self.name = model.eval(), tokenizer, name
        id2label = {int(i): str(label) for i, label in model.config.id2label.items()}
        if len(id2label) < 2:
            raise ValueError(f"classifier {name!r} has {len(id2label)} label(s); need 2 or more")
        self.labels = [id2label[i] for i in sorted(id2label)]
        flagged = [self.labels[1]] if flagged_labels is None else list(flagged_labels)
        unknown = [label for label in flagged if label not in self.labels]
        if unknown or not flagged:
            raise ValueError(
                f"flagged labels {flagged!r} are invalid for classifier {name!r}; its labels: "
                f"{', '.join(self.labels)}"
            )
        self.flagged = frozenset(flagged)
        self._controls = [s for s in control_strings(tokenizer) if len(s) > 1]
        # transformers applies `split_special_tokens` by setting it on the shared Rust
        # tokenizer: two arena games labelling at once would race on that setting.
        self._lock = threading.Lock()

    def _plain(self, text: str) -> str:
        for control in self._controls:
            text = text.replace(control, f"{control[0]} {control[1:]}")
        return text

    def label(self, request: str, reply: str) -> str:
        """The most likely label for the pair (request, reply)."""
        import torch

        with self._lock:
            inputs = self.tokenizer(
                self._plain(request), self._plain(reply), truncation=True,
                max_length=CLASSIFIER_MAX_TOKENS, split_special_tokens=True, return_tensors="pt",
            )  # fmt: skip
        with torch.no_grad():
            logits = self.model(**inputs).logits[0]  # (labels,)
        return self.labels[int(logits.argmax())]

    def judge(self, case: Case) -> str:
        if case.exchange is None or case.flagged_winner is None:
            raise JudgeError("this game gives a classifier nothing to read (no exchange)")
        label = self.label(*case.exchange)
        flagged = label in self.flagged
        winner = case.flagged_winner if flagged else 1 - case.flagged_winner
        how = "flagged" if flagged else "not flagged"
        return f"The classifier read {label!r} ({how}): \\boxed{{{case.labels[winner]}}}"

    def __repr__(self) -> str:
        return f"ClassifierJudge({self.name!r})"


def load_classifier(path: str, flagged_labels: Sequence[str] | None = None) -> ClassifierJudge:
    """The classifier judge of a checkpoint directory or Hugging Face id; a one-line error."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        model = AutoModelForSequenceClassification.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"cannot load a sequence classifier from {path!r}: {reason}") from None
    if tokenizer.pad_token is None:  # decoder-only classifiers read the last non-pad token
        tokenizer.pad_token = tokenizer.eos_token
    return ClassifierJudge(model, tokenizer, flagged_labels, name=f"classifier:{path}")


def make_judge(spec: str, params: SamplingParams = JUDGE_PARAMS) -> Judge:
    """The judge of `spec` (`rule`, `model:PATH`, `api:FILE`, `classifier:PATH`); a one-line
    error otherwise. A model judge samples with `params`."""
    kind, _, arg = spec.partition(":")
    try:
        if spec == "rule":
            return RuleJudge()
        if kind == "model" and arg:
            model, tokenizer = load_model(arg)
            return ModelJudge(HFEngine(model, tokenizer), tokenizer, params, name=spec)
        if kind == "api" and arg:
            return ApiJudge(load_api_config(arg))
        if kind == "classifier" and arg:
            return load_classifier(arg)
    except ValueError as err:  # ConfigError is one too
        raise ValueError(f"bad judge {spec!r}: {err}") from None
    raise ValueError(f"unknown judge {spec!r}; valid: {', '.join(JUDGE_SPECS)}")


def judged_game(game: str, judge: str | Judge, **options) -> Game:
    """Judged game `game` (password_game, redteam or debate) with `judge` (a spec or a
    `Judge`); other keyword arguments go to the game (`rounds`, `max_chars`, `name`: the name
    it plays under)."""
    if game not in JUDGED_GAMES:
        raise ValueError(f"unknown judged game {game!r}; valid: {', '.join(JUDGED_GAMES)}")
    return JUDGED_GAMES[game](
        judge=make_judge(judge) if isinstance(judge, str) else judge, **options
    )
