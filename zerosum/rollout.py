"""Self-play rollouts: many games in flight, one engine batch per round.

Every round, each live game contributes the turn of whichever seat is to move, so games
advance independently (no lockstep, seats mixed in one batch); a finished game's slot is
refilled at once from the step's schedule. One policy plays both seats. Every turn is
recorded with what the learner needs (token ids, sampling log-probs, allowed sets in
constrained mode) and, when its game ends, the seat's final return.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from zerosum.engines.base import Engine, Generation, SamplingParams
from zerosum.games import load_game
from zerosum.games.base import EpisodeMetrics, GameState, Outcome, PrivateWords
from zerosum.games.parsing import names_any
from zerosum.players.base import Player
from zerosum.prompts import (
    Prompting,
    engine_batch,
    reasoning_of,
    retry_feedback,
    thinking_tokens,
)
from zerosum.seeds import player_rng, schedule_rng, turn_seed
from zerosum.snapshot import Snapshot
from zerosum.typed_config import NON_NEGATIVE, POSITIVE, check_choice

InvalidMode = Literal["forfeit", "retry", "random"]
INVALID_MODES: tuple[str, ...] = get_args(InvalidMode)


@dataclass(frozen=True)
class InvalidMovePolicy:
    """What happens when a player's answer is not a legal move.

    forfeit: the game ends; the offender gets `loss`, the other seat `win` (SPIRAL trains with
    -1.5/+0.5 and evaluates with -1/+1). retry: ask again with the reason, up to `retries`
    times, then forfeit. random: play a uniformly random legal move instead.

    The defaults are evaluation's policy (`EVAL_INVALID`: forfeit at -1/+1); training's
    defaults are `TRAIN_INVALID`, a run's own comes from its `cfg.rollout` (`from_config`).
    """

    mode: InvalidMode = "forfeit"
    loss: float = -1.0
    win: float = 1.0
    retries: int = 2

    @classmethod
    def from_config(cls, rollout: Any) -> InvalidMovePolicy:
        """The policy of `cfg.rollout` (its `invalid_mode`, `invalid_loss`, `invalid_win`,
        `invalid_retries`)."""
        r = rollout
        return cls(r.invalid_mode, r.invalid_loss, r.invalid_win, r.invalid_retries)

    def __post_init__(self) -> None:
        check_choice("invalid-move mode", self.mode, INVALID_MODES)
        NON_NEGATIVE.check("invalid-move retries", self.retries)

    def forfeit_returns(self, offender: int) -> tuple[float, float]:
        """Both seats' returns when seat `offender` forfeits."""
        return (self.loss, self.win) if offender == 0 else (self.win, self.loss)

    def decide(self, attempts: int) -> InvalidMode:
        """The action to take after `attempts` invalid answers in a row for one turn."""
        if self.mode == "retry":
            return "retry" if attempts <= self.retries else "forfeit"
        return self.mode


# Evaluation forfeits score -1/+1; training's default is SPIRAL's -1.5/+0.5.
EVAL_INVALID = InvalidMovePolicy()
TRAIN_INVALID = InvalidMovePolicy(loss=-1.5, win=0.5)


@dataclass
class Turn:
    """One model turn: training data plus what metrics need."""

    game: str
    episode: int  # index of the game within the step
    seat: int
    turn: int
    prompt_ids: list[int]
    response_ids: list[int]
    logprobs: list[float]
    allowed: list[list[int]] | None
    valid: bool
    reason: str | None
    finish_reason: str
    ret: float = 0.0  # the seat's final return, set when the game ends
    text: str = ""  # the response as the engine decoded it (kept games, the report)
    action: str | None = None  # the move read from it; None when none could be read
    thinking_tokens: int = 0  # of `response_ids`, in the thinking block (`split_thinking`)
    # Whether its reasoning names the seat's private information (`PrivateWords`); None: no
    # reasoning (constrained answers) or nothing private in the game.
    names_private: bool | None = None


@dataclass
class Episode:
    """One scheduled game: its name and seed, how it ended, the invalid moves (seat, reason)
    of every player, and the public moves."""

    game: str
    seed: int
    outcome: Outcome | None = None
    invalid: list[tuple[int, str]] = field(default_factory=list)
    moves: list[tuple[int, str]] = field(default_factory=list)  # public moves, in order
    metrics: dict[str, float] = field(default_factory=dict)  # the game's own (`EpisodeMetrics`)


@dataclass(frozen=True, kw_only=True)
class RolloutSettings:
    """How `play_games` plays: the game-loop part of `cfg.rollout` (these are its defaults;
    the invalid-move policy's are training's). `from_config` builds it from a section."""

    prompting: Prompting = Prompting()
    invalid: InvalidMovePolicy = TRAIN_INVALID
    max_turns: int = 50
    max_concurrent: int = 16

    @classmethod
    def from_config(cls, section: Any, invalid: InvalidMovePolicy | None = None) -> RolloutSettings:
        """The settings of `section`: `cfg.rollout` or `EvalSettings` (each has `prompting`,
        `max_turns` and `max_concurrent`). The invalid-move policy is `invalid`, else the
        section's own."""
        if invalid is None:
            invalid = InvalidMovePolicy.from_config(section)
        return cls(
            prompting=section.prompting, invalid=invalid, max_turns=section.max_turns,
            max_concurrent=section.max_concurrent,
        )  # fmt: skip

    def __post_init__(self) -> None:
        # Checked here as well as at the command line: with no game in flight the rollout
        # loop would spin forever; a zero turn limit would make every game a one-move draw.
        for name, value in (("max_concurrent", self.max_concurrent), ("max_turns", self.max_turns)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} = {value!r} is invalid; allowed: {POSITIVE.allowed}")
            POSITIVE.check(name, value)


def schedule_games(
    weights: Mapping[str, float], n: int, seed: int, step: int
) -> list[tuple[str, int]]:
    """The (game, seed) pairs of one step, drawn from the mixture; a pure function of
    (seed, step) so a resumed run plays exactly the same games."""
    rng = schedule_rng(seed, step)
    names = sorted(weights)
    p = np.asarray([weights[g] for g in names], dtype=float)
    picks = rng.choice(len(names), size=n, p=p / p.sum())
    seeds = rng.integers(0, 2**31 - 1, size=n)
    return [(names[int(i)], int(s)) for i, s in zip(picks, seeds)]


@dataclass
class _Slot:
    """One game in flight."""

    index: int  # in the schedule
    game: str
    state: GameState
    rng: np.random.Generator  # fixed players and random-move substitutions
    turns: list[Turn] = field(default_factory=list)  # the model's, until the game ends
    n_moves: int = 0  # moves played so far, any seat
    calls: int = 0  # engine answers so far (turns and retries, any seat): seeds the next
    attempts: int = 0  # invalid answers in a row for the current turn
    feedback: str | None = None  # why the last answer was rejected, for a retry


Decision = Literal["retry", "forfeit", "play"]


class GameRunner:
    """One `play_games` call: the schedule, the games in flight and the results so far.

    `run` alternates `refill` (start scheduled games while fewer than `max_concurrent` are in
    flight; fixed players move at once) and `play_round` (one engine batch with the model's
    turn in every live game, then each answer played). A game advances through `apply` (a
    move), `on_invalid` (an invalid answer, under the invalid-move policy) and `finish`.
    """

    def __init__(
        self,
        engine: Engine | None,
        tokenizer,
        schedule: Sequence[tuple[str, int]],
        *,
        params: SamplingParams | None,
        settings: RolloutSettings,
        seed: int,
        opponents: Sequence[Sequence[Player | Snapshot | None]] | None = None,
        on_finish: Callable[[], None] | None = None,
    ):
        self.engine, self.tokenizer, self.params = engine, tokenizer, params
        self.schedule, self.settings, self.seed = schedule, settings, seed
        self.opponents, self.on_finish = opponents, on_finish
        self.episodes = [Episode(game, s) for game, s in schedule]
        self.turns: list[Turn] = []  # the model's (sorted into schedule order by `run`)
        self.pending = list(range(len(schedule)))[::-1]  # pop() takes the next game
        self.live: list[_Slot] = []
        # Prompt text -> token ids: small games show the same view in many games at once.
        self.encoded: dict[str, list[int]] = {}
        self.prompting = settings.prompting

    def run(self) -> tuple[list[Turn], list[Episode]]:
        """Play every scheduled game to the end; the model's turns (in schedule order, each
        game's in play order) and all episodes."""
        while self.pending or self.live:
            self.refill()
            if self.live:
                self.play_round()
        # Schedule order rather than finishing order: with per-answer seeds the whole result
        # is then a function of the schedule alone, however the games were batched or split.
        self.turns.sort(key=lambda t: t.episode)
        return self.turns, self.episodes

    # -- scheduling ------------------------------------------------------------------
    def refill(self) -> None:
        """Start scheduled games while slots are free; a game that fixed players finish
        before the model's first turn never takes a slot."""
        while self.pending and len(self.live) < self.settings.max_concurrent:
            slot = self.start(self.pending.pop())
            if self.advance_fixed(slot):
                self.live.append(slot)

    def start(self, index: int) -> _Slot:
        """A new episode of scheduled game `index`."""
        game_name, seed = self.schedule[index]
        game = load_game(game_name)
        mode = self.prompting.answer_mode
        if self.prompting.decodes_legal_actions and not game.capabilities.finite_actions:
            raise ValueError(
                f"answer_mode {mode!r} needs a game with finite legal actions, not {game_name!r}"
            )
        return _Slot(index, game_name, game.new_episode(seed), player_rng(seed))

    # -- fixed players ---------------------------------------------------------------
    def seat_player(self, slot: _Slot) -> Player | Snapshot | None:
        """What plays the seat to move: None for the learning policy."""
        return self.opponents[slot.index][slot.state.current_seat()] if self.opponents else None

    def fixed_player(self, slot: _Slot) -> Player | None:
        """The fixed player of the seat to move, or None when the engine answers."""
        player = self.seat_player(slot)
        return None if isinstance(player, Snapshot) else player

    def snapshot_of(self, slot: _Slot) -> Snapshot | None:
        """The pool snapshot whose weights answer for the seat to move, if any."""
        player = self.seat_player(slot)
        return player if isinstance(player, Snapshot) else None

    def advance_fixed(self, slot: _Slot) -> bool:
        """Let fixed players move until it is the model's turn; True while the game goes on."""
        while (player := self.fixed_player(slot)) is not None:
            seat = slot.state.current_seat()
            move = player.act(slot.state, slot.rng, slot.feedback)
            action = move.action
            if action is None:
                decision, action = self.on_invalid(slot, seat, move.reason or "invalid")
                if decision == "retry":
                    continue
                if decision == "forfeit":
                    return False
            if not self.apply(slot, seat, action):
                return False
        return True

    # -- the model's turns -----------------------------------------------------------
    def play_round(self) -> None:
        """One engine batch per policy to move (the learning policy, then each pool snapshot
        with its weights served): every live game's pending turn; each answer is played."""
        seats = [slot.state.current_seat() for slot in self.live]
        snaps = [self.snapshot_of(slot) for slot in self.live]
        answers: dict[int, tuple[list[int], Generation]] = {}
        for snap in dict.fromkeys([None, *snaps]):  # the learner first, then in order of games
            idx = [i for i, s in enumerate(snaps) if s is snap]
            if not idx:
                continue
            with self.serving(snap):
                prompts, gens = self.send_turns(
                    [self.live[i] for i in idx], [seats[i] for i in idx]
                )
            answers.update({i: (p, g) for i, p, g in zip(idx, prompts, gens)})
        still_live = []
        for i, (slot, seat, snap) in enumerate(zip(self.live, seats, snaps)):
            if self.take_answer(slot, seat, *answers[i], learner=snap is None):
                still_live.append(slot)
        self.live = still_live

    @contextmanager
    def serving(self, snapshot: Snapshot | None) -> Iterator[None]:
        """The engine generates as `snapshot` inside (the learning policy for None)."""
        if snapshot is None:
            yield
            return
        try:
            with snapshot.swapped_in():
                self.engine.sync_weights()  # vLLM holds its own copy; hf shares the module
                yield
        finally:
            self.engine.sync_weights()

    def send_turns(
        self, slots: Sequence[_Slot], seats: Sequence[int]
    ) -> tuple[list[list[int]], list[Generation]]:
        """The prompts of `slots`' pending turns and the engine's answers to them."""
        asking = self.prompting
        prompts = []
        for slot, seat in zip(slots, seats):
            content = asking.content(slot.state, seat, slot.feedback)
            if content not in self.encoded:
                self.encoded[content] = asking.encode(self.tokenizer, content)
            prompts.append(list(self.encoded[content]))  # a turn's own copy
        choices = None
        if asking.decodes_legal_actions:
            choices = [asking.choices(slot.state) for slot in slots]
        seeds = []
        for slot in slots:
            seeds.append(turn_seed(self.seed, self.schedule[slot.index][1], slot.calls))
            slot.calls += 1
        generate = engine_batch(self.engine, self.params)
        return prompts, asking.answer(generate, self.tokenizer, prompts, choices, seeds)

    def take_answer(
        self, slot: _Slot, seat: int, prompt: list[int], gen: Generation, learner: bool = True
    ) -> bool:
        """Play an engine answer; the learning policy's is recorded as a turn (a pool
        snapshot's is not trained on). True while the game goes on."""
        action, reason = self.prompting.read(gen.text, slot.state.legal_actions())
        turn = Turn(
            slot.game, slot.index, seat, slot.n_moves, prompt, gen.token_ids, gen.logprobs,
            gen.allowed, action is not None, reason, gen.finish_reason, text=gen.text, action=action,
            thinking_tokens=thinking_tokens(self.tokenizer, gen.token_ids, gen.text),
        )  # fmt: skip
        if learner:
            slot.turns.append(turn)
        else:
            turn = None
        if action is None:
            decision, action = self.on_invalid(slot, seat, reason or "invalid")
            if decision != "play":
                return decision == "retry"
        return self.apply(slot, seat, action, turn) and self.advance_fixed(slot)

    # -- one game ----------------------------------------------------------------------
    def apply(self, slot: _Slot, seat: int, action: str, turn: Turn | None = None) -> bool:
        """Play a move (the model's `turn`, if it is one); True while the game goes on."""
        slot.attempts, slot.feedback = 0, None
        slot.state.apply_action(action)
        slot.n_moves += 1
        if reason := slot.state.invalid_reason:  # judged by the game itself
            if turn is not None:
                turn.valid, turn.reason = False, reason
            self.episodes[slot.index].invalid.append((seat, reason))
            self.forfeit(slot, seat)
        elif slot.state.is_terminal():
            self.finish(slot, Outcome(slot.state.returns(), slot.n_moves))
        elif slot.n_moves >= self.settings.max_turns:
            self.finish(slot, Outcome((0.0, 0.0), slot.n_moves, truncated=True))
        else:
            return True
        return False

    def on_invalid(self, slot: _Slot, seat: int, reason: str) -> tuple[Decision, str | None]:
        """Record an invalid answer and apply the invalid-move policy: ("retry", None) with
        the reason as feedback, ("forfeit", None) once the game is over, or ("play", a random
        legal action)."""
        slot.attempts += 1
        self.episodes[slot.index].invalid.append((seat, reason))
        decision = self.settings.invalid.decide(slot.attempts)
        legal = slot.state.legal_actions()
        if decision == "retry":
            slot.feedback = retry_feedback(reason)
            return "retry", None
        if decision == "forfeit" or not legal:  # free-text games have nothing to substitute
            self.forfeit(slot, seat)
            return "forfeit", None
        return "play", legal[int(slot.rng.integers(len(legal)))]

    def forfeit(self, slot: _Slot, seat: int) -> None:
        """End the game as lost by `seat`, with the policy's forfeit returns."""
        returns = self.settings.invalid.forfeit_returns(seat)
        self.finish(slot, Outcome(returns, slot.n_moves, forfeit_seat=seat))

    def read_private(self, state: PrivateWords, turns: Sequence[Turn]) -> None:
        """Mark each turn whose answer has reasoning with whether it names the seat's private
        information (`Turn.names_private`)."""
        mode = self.prompting.answer_mode
        for t in turns:
            words, reasoning = state.private_words(t.seat), reasoning_of(t.text, mode)
            if words and reasoning and reasoning.strip():
                t.names_private = names_any(reasoning, words)

    def finish(self, slot: _Slot, outcome: Outcome) -> None:
        """Record the episode's end; every model turn of the game gets its seat's return."""
        episode = self.episodes[slot.index]
        episode.outcome, episode.moves = outcome, slot.state.move_history()
        if isinstance(slot.state, EpisodeMetrics):
            episode.metrics = dict(slot.state.episode_metrics())
        for t in slot.turns:
            t.ret = outcome.returns[t.seat]
        if isinstance(slot.state, PrivateWords):
            self.read_private(slot.state, slot.turns)
        self.turns.extend(slot.turns)
        if self.on_finish is not None:
            self.on_finish()


def play_games(
    engine: Engine | None,
    tokenizer,
    schedule: Sequence[tuple[str, int]],
    *,
    params: SamplingParams | None,
    settings: RolloutSettings,
    seed: int,
    opponents: Sequence[Sequence[Player | Snapshot | None]] | None = None,
    on_finish: Callable[[], None] | None = None,
) -> tuple[list[Turn], list[Episode]]:
    """Play every scheduled (game, seed) to the end; returns the model's turns and all episodes.

    By default the model plays both seats (self-play). `opponents[i][seat]`, when given and
    not None, is a fixed player for that seat of game i (evaluation); its moves are made at
    once, so only the model's turns go to the engine (None, with `params` None, when no seat
    is the model's). A `Snapshot` there is an earlier self of the model (an opponent pool):
    the engine answers for it with the snapshot's weights, and its turns are not returned.
    Every player's invalid answers go through the same invalid-move policy.
    `seed` seeds the engine's sampling: each answer from its own seed (`seeds.turn_seed` of
    `seed`, its game's seed and its index in the game), so a game plays the same whatever
    other games share its batches; each game's own randomness comes from its scheduled seed.
    The turns come in schedule order (each game's in play order). `on_finish` is called as
    each game ends (a progress bar).
    """
    runner = GameRunner(
        engine, tokenizer, schedule, params=params, settings=settings, seed=seed,
        opponents=opponents, on_finish=on_finish,
    )  # fmt: skip
    return runner.run()


def rollout_metrics(turns: Sequence[Turn], episodes: Sequence[Episode]) -> dict[str, float]:
    """`rollout/...` metrics: results per game and seat, invalid moves, lengths (thinking
    tokens apart)."""
    m: dict[str, float] = {}
    by_game: dict[str, list[Episode]] = {}
    for ep in episodes:
        by_game.setdefault(ep.game, []).append(ep)
    for game, eps in by_game.items():
        n = len(eps)
        for seat in (0, 1):
            m[f"rollout/{game}/win_rate_seat{seat}"] = (
                sum(e.outcome.winner == seat for e in eps) / n
            )
            m[f"rollout/{game}/return_seat{seat}"] = sum(e.outcome.returns[seat] for e in eps) / n
        m[f"rollout/{game}/games"] = float(n)  # behind each of its rates
        m[f"rollout/{game}/draw_rate"] = sum(e.outcome.winner is None for e in eps) / n
        m[f"rollout/{game}/truncated_rate"] = sum(e.outcome.truncated for e in eps) / n
        m[f"rollout/{game}/forfeit_rate"] = sum(e.outcome.forfeit_seat is not None for e in eps) / n
        m[f"rollout/{game}/game_length"] = sum(e.outcome.turns for e in eps) / n
        tokens = sum(len(t.response_ids) for t in turns if t.game == game)
        m[f"rollout/{game}/game_tokens"] = tokens / n  # generated by the model's seats
        for key in sorted({k for e in eps for k in e.metrics}):  # over the episodes that report it
            values = [e.metrics[key] for e in eps if key in e.metrics]
            m[f"rollout/{game}/{key}"] = sum(values) / len(values)
    for game in by_game:  # the words are real: does the reasoning read the seat's own card?
        named = [t.names_private for t in turns if t.game == game and t.names_private is not None]
        if named:
            m[f"rollout/{game}/reasoning_names_private"] = sum(named) / len(named)
    n_turns = max(len(turns), 1)
    m["rollout/games"] = float(len(episodes))
    m["rollout/turns"] = float(len(turns))
    m["rollout/invalid_rate"] = sum(not t.valid for t in turns) / n_turns
    m["rollout/forfeit_rate"] = sum(e.outcome.forfeit_seat is not None for e in episodes) / max(
        len(episodes), 1
    )
    m["rollout/response_tokens"] = sum(len(t.response_ids) for t in turns) / n_turns
    # Thinking blocks apart: the part of a response the parser and the other seat never see.
    m["rollout/thinking_tokens"] = sum(t.thinking_tokens for t in turns) / n_turns
    m["rollout/thinking_rate"] = sum(t.thinking_tokens > 0 for t in turns) / n_turns
    m["rollout/game_tokens"] = sum(len(t.response_ids) for t in turns) / max(len(episodes), 1)
    m["rollout/length_capped_rate"] = sum(t.finish_reason == "length" for t in turns) / n_turns
    for reason, count in Counter(t.reason for t in turns if not t.valid).items():
        m[f"rollout/invalid_reason/{_metric_name(reason)}"] = count / n_turns
    return m


def _metric_name(reason: str | None) -> str:
    """A short, stable metric key for an invalid-move reason (drops quoted model text)."""
    text = (reason or "invalid").split("'")[0].strip().lower()
    return "_".join(text.replace("\\", "").replace("{}", "").split())[:48] or "invalid"


def game_record(
    episode: Episode, turns: Sequence[Turn], decode: Callable[[list[int]], str]
) -> dict[str, Any]:
    """One game as plain data (a line of RUN/games.jsonl, the report's replay): its name and
    seed, how it ended, the public moves and invalid answers, and each of the model's turns
    with its prompt (`decode`d from its token ids: what the model saw), full response and the
    move read from it. Model text is data here, never markup."""
    out = episode.outcome
    return {
        "game": episode.game,
        "seed": episode.seed,
        "outcome": {
            "returns": list(out.returns), "winner": out.winner, "turns": out.turns,
            "truncated": out.truncated, "forfeit_seat": out.forfeit_seat,
        },
        "moves": [list(m) for m in episode.moves],
        "invalid": [list(i) for i in episode.invalid],
        "turns": [
            {
                "seat": t.seat, "move_index": t.turn, "prompt": decode(t.prompt_ids),
                "response": t.text, "move": t.action, "valid": t.valid, "reason": t.reason,
                "finish_reason": t.finish_reason, "response_tokens": len(t.response_ids),
                "thinking_tokens": t.thinking_tokens,
            }
            for t in turns
        ],
    }  # fmt: skip


def game_records(
    episodes: Sequence[Episode], turns: Sequence[Turn], n: int,
    decode: Callable[[list[int]], str],
) -> list[dict[str, Any]]:  # fmt: skip
    """`game_record` of each of the first `n` games (the turns in schedule order)."""
    own: list[list[Turn]] = [[] for _ in range(n)]
    for t in turns:
        if t.episode < n:
            own[t.episode].append(t)
    return [game_record(episodes[i], own[i], decode) for i in range(n)]
