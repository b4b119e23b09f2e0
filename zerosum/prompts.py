"""Asking a model for a move and reading its answer.

A prompt is the seat's view of the game (`GameState.observation`), the answer instruction of
the answer mode and, on a retry, why the last answer was invalid; wrapped in the model's chat
template (`chat`) or followed by "Answer:" (`plain`, for base models and tiny test models).
API players send the same text as one user message. The answer is untrusted text: in `free`
mode the parser takes the last \\boxed{} (or its fallback), in `constrained` mode the engine
decoded only legal actions and the answer is one of them unless it was cut short.

`Prompting` holds these choices; the learner's rollouts, model players (fixed opponents,
pool members, arena players) and evaluation all ask and read through it, so a checkpoint
plays with the prompts it was trained on when its settings say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from zerosum.games.base import GameState
from zerosum.games.parsing import FALLBACKS, Fallback, match_action, parse_action

AnswerMode = Literal["free", "constrained"]
ANSWER_MODES: tuple[str, ...] = get_args(AnswerMode)
PromptFormat = Literal["chat", "plain"]
PROMPT_FORMATS: tuple[str, ...] = get_args(PromptFormat)

FREE_INSTRUCTION = "Think step by step, then give your final move in \\boxed{{}}, for example \\boxed{{{example}}}."
FREE_TEXT_INSTRUCTION = "Think step by step, then put your move or message in \\boxed{}."
CONSTRAINED_INSTRUCTION = "Reply with one legal action only."
RETRY_INSTRUCTION = "Answer with one legal action in \\boxed{}."


@dataclass(frozen=True)
class Prompting:
    """How a model is asked for its move and how its answer is read."""

    answer_mode: AnswerMode = "free"
    prompt_format: PromptFormat = "chat"
    include_rules: bool = True
    parser_fallback: Fallback = "last_bracket"

    @classmethod
    def of(cls, settings: Any) -> Prompting:
        """The prompting of `settings`: anything with these four fields (a rollout section,
        `RolloutSettings`, `EvalSettings`, an arena player's config)."""
        return cls(
            settings.answer_mode, settings.prompt_format, settings.include_rules,
            settings.parser_fallback,
        )  # fmt: skip

    def __post_init__(self) -> None:
        for name, value, valid in (
            ("answer_mode", self.answer_mode, ANSWER_MODES),
            ("parser_fallback", self.parser_fallback, FALLBACKS),
            ("prompt_format", self.prompt_format, PROMPT_FORMATS),
        ):
            if value not in valid:
                raise ValueError(f"{name} = {value!r} is invalid; allowed: {', '.join(valid)}")

    def content(self, state: GameState, seat: int, feedback: str | None = None) -> str:
        """The user message's text (`prompt_content`)."""
        return prompt_content(state, seat, self.answer_mode, feedback, self.include_rules)

    def prompt(
        self, tokenizer, state: GameState, seat: int, feedback: str | None = None
    ) -> list[int]:
        """The prompt's token ids (`build_prompt`)."""
        return encode_prompt(tokenizer, self.content(state, seat, feedback), self.prompt_format)

    def choices(self, state: GameState) -> list[str] | None:
        """The answers decoding is restricted to: the legal actions in constrained mode."""
        if self.answer_mode != "constrained":
            return None
        legal = state.legal_actions()
        if legal is None:
            raise ValueError("constrained answers need a game with finite legal actions")
        return list(legal)

    def read(self, text: str, legal: Sequence[str] | None) -> tuple[str | None, str | None]:
        """The move in an answer, or None with the reason it is invalid (`read_answer`)."""
        return read_answer(text, legal, self.answer_mode, self.parser_fallback)


def build_prompt(
    tokenizer,
    state: GameState,
    seat: int,
    answer_mode: AnswerMode,
    feedback: str | None = None,
    include_rules: bool = True,
    prompt_format: PromptFormat = "chat",
) -> list[int]:
    """The seat's view wrapped in the model's chat template (or, `plain`, followed by
    "Answer:" for base models without one and for tiny test models), as token ids.

    `answer_mode` picks the answer instruction (`free`: reason, then \\boxed{}; `constrained`:
    the legal action only); `feedback` (a retry) says why the previous answer was invalid;
    `include_rules=False` leaves the rules out where the game allows it."""
    content = prompt_content(state, seat, answer_mode, feedback, include_rules)
    return encode_prompt(tokenizer, content, prompt_format)


def encode_prompt(tokenizer, content: str, prompt_format: PromptFormat) -> list[int]:
    """`build_prompt`'s token ids of a user message `content`."""
    if prompt_format == "plain":
        return tokenizer.encode(f"{content}\nAnswer: ", add_special_tokens=False)
    return chat_prompt(tokenizer, content)


def prompt_content(
    state: GameState,
    seat: int,
    answer_mode: str,
    feedback: str | None = None,
    include_rules: bool = True,
) -> str:
    """The text of the seat's user message: its view, the answer instruction and any retry
    feedback. Model players tokenize it (`build_prompt`); API players send it as it is."""
    legal = state.legal_actions()
    if answer_mode == "constrained":
        instruction = CONSTRAINED_INSTRUCTION
    elif legal is None:
        instruction = FREE_TEXT_INSTRUCTION
    else:
        instruction = FREE_INSTRUCTION.format(example=legal[0])
    content = f"{state.observation(seat, include_rules)}\n\n{instruction}"
    return f"{content}\n{feedback}" if feedback else content


def chat_prompt(tokenizer, content: str) -> list[int]:
    """One user message in the model's chat template, ready for the assistant's reply."""
    messages = [{"role": "user", "content": content}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer.encode(text, add_special_tokens=False)


def read_answer(
    text: str,
    legal: Sequence[str] | None,
    answer_mode: AnswerMode,
    parser_fallback: Fallback = "last_bracket",
) -> tuple[str | None, str | None]:
    """The move in a model's answer, or None with the reason it is invalid."""
    if answer_mode == "constrained":  # the answer is a legal action unless truncated
        action = match_action(text, legal or ())  # exact case first: chess's bxc4, Bxc4
        return action, None if action else "no legal action (truncated constrained answer)"
    parsed = parse_action(text, legal, parser_fallback)
    return parsed.action, parsed.reason


def retry_feedback(reason: str) -> str:
    """What a retried player is told about its invalid answer."""
    return f"Your last answer was invalid: {reason}. {RETRY_INSTRUCTION}"
