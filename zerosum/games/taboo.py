"""Adversarial Taboo, the language game of SPAG (Cheng et al. 2024, "Self-playing Adversarial
Language Game Enhances LLM Reasoning"), with rules written here and judged by rule.

Seat 0, the Attacker, is told a target word drawn from a packaged list of common nouns by the
episode's seed; seat 1, the Defender, is not. They alternate free-text messages, the Attacker
first. The Attacker wins if the Defender says the word in a message or guesses wrong; the
Defender wins if the Attacker says the word or the Defender guesses it right; after
`2 * rounds` messages without a winner the game is a draw. As in SPAG, the Defender may guess
at any of its turns and has one guess.

Judging is by rule, on words: a message is Unicode-normalised (NFKC), stripped of invisible
formatting characters and case-folded; every character other than a letter breaks words, and
a word says the target if it is one of the target's `inflections` (the target with an ending:
-s, -es, -ed, -ing and their spelling variants). SPAG matches substrings instead ("cat" in "category"); here only words
count, so an innocent longer word never ends a game. Irregular forms ("mice") and spellings
that break the word up ("c-a-t") are not caught.

The Defender's view never names the target, in the rules or in any game line (tests check
this for every word of the list); what players wrote is shown quoted (`text.quote_message`).
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Sequence
from functools import cache
from importlib import resources

from zerosum.games.base import Capabilities
from zerosum.games.judging import DialogueState
from zerosum.games.parsing import MAX_FREE_MOVE_CHARS
from zerosum.typed_config import check_counts

ATTACKER, DEFENDER = 0, 1
SEAT_NAMES = ("Attacker", "Defender")
DEFAULT_ROUNDS = 5  # SPAG's 5 turns each: 10 messages
WORDS_FILE = "taboo_words.txt"  # in zerosum/data
GUESS_OPENING = ("i", "know", "the", "word")
GUESS_FORMAT = "I know the word! It is WORD"
_ARTICLES = frozenset({"a", "an", "the"})
_WORD = re.compile(r"[^\W\d_]+")  # a run of letters; anything else breaks words
_VOWELS = frozenset("aeiou")
_LIST_WORD = re.compile(r"[a-z]+")

RULES = (
    "Adversarial Taboo is played by the Attacker (Player 0) and the Defender (Player 1). The "
    "Attacker is told a secret target word, a common English noun; the Defender is not told "
    "it. They take turns sending one message each, the Attacker first, {messages} messages in "
    "all ({rounds} each). The Attacker tries to make the Defender say the target word, and "
    "must never say it; the Defender tries to work out the word without saying it by "
    "accident.\n"
    "A message is free text, not blank, of at most {max_chars} characters; a blank or longer "
    "message is an invalid move, and whoever sends it loses.\n"
    "The Attacker wins if the Defender says the target word in a message, or guesses wrong. "
    "The Defender wins if the Attacker says the target word, or the Defender guesses it right.\n"
    "Guessing: at any of its turns the Defender may send a guess instead of talking, written "
    "'{guess}' (case and punctuation do not matter; 'It's', and 'a', 'an' or 'the' before the "
    "word, are fine). A message whose first words are 'I know the word' is a guess, and the "
    "guessed word is the first word after them (after 'it is' and an article, if present). "
    "A guess ends the game: the Defender has one guess.\n"
    "Saying the word: messages are compared in lower case, word by word, with any character "
    "that is not a letter (spaces, punctuation, digits) breaking words; invisible characters "
    "such as zero-width spaces are ignored. A word counts as the target word if it is the "
    "target word, or the target word with one ending added: -s, -es, -ed or -ing; before -ed "
    "and -ing a final e may be dropped and a final consonant doubled, and a final y after a "
    "consonant may become i before -es and -ed (so for 'hop' the words 'hops', 'hopped' and "
    "'hopping' count, for 'hope' 'hoped' and 'hoping', for 'pony' 'ponies'). A word that "
    "merely contains the target word does not count ('shopping' does not say 'hop'), nor do "
    "irregular forms such as 'mice' for 'mouse'.\n"
    "If nobody has won after {messages} messages, the game is a draw."
)


def words_of(text: str) -> list[str]:
    """The words of `text` as the game compares them: NFKC-normalised, invisible formatting
    characters (zero-width spaces, soft hyphens: Unicode category Cf) removed, case-folded,
    split at every character that is not a letter."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return _WORD.findall(text.casefold())


def inflections(target: str) -> frozenset[str]:
    """The words that say `target` (a lower-case word): itself plus one ending, -s, -es, -ed,
    -ing; a final e dropped or a final consonant doubled before -ed and -ing; a final y after
    a consonant turned to i before -es and -ed."""
    forms = {target, target + "s", target + "es", target + "ed", target + "ing"}
    last = target[-1:]
    if last == "e":
        forms |= {target[:-1] + "ed", target[:-1] + "ing"}
    elif last and last not in _VOWELS:
        forms |= {target + last + "ed", target + last + "ing"}
    if last == "y" and len(target) > 1 and target[-2] not in _VOWELS:
        forms |= {target[:-1] + "ies", target[:-1] + "ied"}
    return frozenset(forms)


def says(text: str, target: str) -> bool:
    """Whether `text` says `target`: one of its words is an inflection of the target."""
    forms = inflections(target)
    return any(w in forms for w in words_of(text))


def guessed_word(text: str) -> str | None:
    """The word a guess names, "" for a guess that names none, or None when `text` is not a
    guess (its first words are not "I know the word")."""
    words = words_of(text)
    if tuple(words[: len(GUESS_OPENING)]) != GUESS_OPENING:
        return None
    rest = words[len(GUESS_OPENING) :]
    if rest[:2] in (["it", "is"], ["it", "s"]):
        rest = rest[2:]
    if rest[:1] and rest[0] in _ARTICLES:
        rest = rest[1:]
    return rest[0] if rest else ""


@cache
def packaged_words() -> tuple[str, ...]:
    """The packaged target words (zerosum/data/taboo_words.txt: one per line, '#' comments)."""
    text = resources.files("zerosum").joinpath("data", WORDS_FILE).read_text(encoding="utf-8")
    lines = (line.strip() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


class AdversarialTaboo:
    """The game: a word list, the number of rounds and the longest message allowed."""

    name = "adversarial_taboo"
    description = "an attacker steers a defender into saying a secret word (SPAG's game)"
    capabilities = Capabilities(finite_actions=False, asymmetric_seats=True)

    def __init__(
        self,
        words: Sequence[str] | None = None,
        rounds: int = DEFAULT_ROUNDS,
        max_chars: int = MAX_FREE_MOVE_CHARS,
    ) -> None:
        self.words = tuple(packaged_words() if words is None else words)
        if not self.words:
            raise ValueError("taboo word list is empty; give at least one word")
        for word in self.words:
            if not isinstance(word, str) or not _LIST_WORD.fullmatch(word):
                raise ValueError(f"taboo word {word!r} is invalid; allowed: lower-case a-z only")
        check_counts("taboo", rounds=rounds, max_chars=max_chars)
        self.rounds = rounds
        self.max_chars = max_chars

    @property
    def max_messages(self) -> int:
        return 2 * self.rounds

    def rules(self) -> str:
        return RULES.format(
            messages=self.max_messages, rounds=self.rounds, max_chars=self.max_chars,
            guess=GUESS_FORMAT,
        )  # fmt: skip

    def new_episode(self, seed: int) -> TabooState:
        return TabooState(self, seed)

    def __repr__(self) -> str:
        return f"AdversarialTaboo({len(self.words)} words, rounds={self.rounds})"


class TabooState(DialogueState):
    """One episode: the target word (drawn by the seed) and the messages so far; the
    message bookkeeping, views' common lines and endings are `DialogueState`'s."""

    seat_names = SEAT_NAMES
    the_seats = ("the Attacker", "the Defender")

    def __init__(self, game: AdversarialTaboo, seed: int) -> None:
        super().__init__(seed, game.max_messages, game.max_chars)
        self.game = game
        self.target = random.Random(seed).choice(game.words)  # the episode's own stream

    def _after_message(self, seat: int, text: str) -> None:
        """Judge a message by the rules (see the module doc)."""
        guess = guessed_word(text) if seat == DEFENDER else None
        if guess is not None:
            right = guess in inflections(self.target)
            verdict = "right" if right else "wrong"
            self._end(DEFENDER if right else ATTACKER, f"The Defender guessed {verdict}.")
        elif says(text, self.target):
            self._end(1 - seat, f"The {SEAT_NAMES[seat]} said the target word.")
        elif len(self._messages) >= self.max_messages:
            self._end(None, f"Nobody won in {self.max_messages} messages.")

    def observation(self, seat: int, include_rules: bool = True) -> str:
        """The rules (unless left out), the seat's role (the target word for the Attacker
        only; how to guess for the Defender), the messages so far quoted, the turns left and
        whose turn it is or how the game ended."""
        self._check_seat(seat)
        lines = [self.game.rules(), ""] if include_rules else []
        if seat == ATTACKER:
            lines.append(
                f"You are the Attacker. The target word is: {self.target}. Never say it, nor "
                "any form of it with an ending such as -s or -ing."
            )
        else:
            lines.append(
                "You are the Defender. You are not told the target word; the Attacker knows it. "
                f"To guess it, send the message: {GUESS_FORMAT} (WORD being your one-word "
                "guess). You have one guess, and it ends the game."
            )
        lines.append("")
        lines += [*self._history_lines(), "", self._turns_line(), self._status_line(seat)]
        return "\n".join(lines)
