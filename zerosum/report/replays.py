"""The replay browser: one `<details>` per game, each turn with the prompt the player saw
(where it was kept), its whole response and the move read from it. Every string is escaped:
a response is shown as the characters it is made of, never as markup."""

from __future__ import annotations

from collections.abc import Sequence

from zerosum.report.page import details, esc, kv_table, num, pre


def player_of(game: dict, seat: int) -> str:
    players = game.get("players") or []
    return str(players[seat]) if 0 <= seat < len(players) else "?"


def ending(game: dict) -> str:
    """How the game ended, in words (from its outcome and invalid answers)."""
    out = game.get("outcome") or {}
    seat = out.get("forfeit_seat")
    if seat is not None:
        reasons = [r for s, r in game.get("invalid", []) if s == seat] or ["invalid answer"]
        return f"seat {seat} ({player_of(game, seat)}) forfeited: {reasons[-1]}"
    if out.get("truncated"):
        return "draw at the turn limit"
    if out.get("winner") is None:
        return "draw"
    w = out["winner"]
    return f"seat {w} ({player_of(game, w)}) won"


def training_turns(game: dict) -> list[dict]:
    """The turns of a kept self-play game (RUN/games.jsonl), as `replay` shows them."""
    return list(game.get("turns", []))


def arena_turns(transcript: Sequence[dict]) -> list[dict]:
    """An arena transcript's entries (seat, reply, action, reason, token counts) as `replay`
    shows them."""
    return [
        {"seat": t.get("seat"), "response": t.get("reply", ""), "move": t.get("action"),
         "valid": t.get("action") is not None, "reason": t.get("reason"),
         "response_tokens": t.get("tokens"), "prompt_tokens": t.get("prompt_tokens"),
         "counted_by": t.get("counted_by")}
        for t in transcript
    ]  # fmt: skip


def replay(game: dict, title: str, facts: list[tuple[str, object]], turns: list[dict]) -> str:
    """One game: a summary line, its facts and its turns."""
    out = game.get("outcome") or {}
    returns = out.get("returns") or []
    summary = (
        f"<b>{esc(title)}</b> · {esc(game.get('game', '?'))} · {esc(ending(game))} · "
        f"returns {esc(' / '.join(f'{r:+g}' for r in returns))} · seed {esc(game.get('seed'))} · {esc(num(out.get('turns')))} moves"
    )
    moves = game.get("moves") or []
    pairs = [
        ("game", game.get("game", "?")),
        ("seed", game.get("seed")),
        *facts,
        ("players", " vs ".join(f"seat {s}: {player_of(game, s)}" for s in (0, 1))),
        ("ending", ending(game)),
        ("returns", ", ".join(f"seat {s}: {r:+g}" for s, r in enumerate(returns))),
        ("public moves", "; ".join(f"{s}: {a}" for s, a in moves) or "none"),
    ]
    items = "".join(_turn(game, i, t) for i, t in enumerate(turns))
    body = kv_table(pairs) + (f"<ol class=turns>{items}</ol>" if items else "<p>No turns.</p>")
    return details(summary, body, cls="game")


def _turn(game: dict, i: int, t: dict) -> str:
    seat = t.get("seat")
    seat_cls = f"seat{seat}" if seat in (0, 1) else ""
    who = f"seat {esc(seat)} ({esc(player_of(game, seat) if isinstance(seat, int) else '?')})"
    move = t.get("move")
    if move is not None and t.get("valid", True):
        verdict = f"move <code>{esc(move)}</code>"
    elif move is not None:  # read, but the game refused it
        verdict = (
            f"move <code>{esc(move)}</code> <span class=bad>invalid: {esc(t.get('reason'))}</span>"
        )
    else:
        verdict = f"<span class=bad>no move: {esc(t.get('reason') or 'invalid')}</span>"
    head = f"<div>{who} · answer {i + 1} · {verdict}</div>"
    prompt = t.get("prompt")
    parts = [head]
    if prompt is not None:
        parts.append(details(f"prompt ({len(prompt)} characters)", pre(prompt), cls="prompt"))
    extra = []
    if t.get("response_tokens") is not None:
        extra.append(f"{esc(num(t['response_tokens']))} tokens")
    if t.get("prompt_tokens") is not None:
        extra.append(f"prompt {esc(num(t['prompt_tokens']))} tokens")
    if t.get("counted_by") == "api":
        extra.append("as the API reported")
    if t.get("finish_reason"):
        extra.append(f"ended by {esc(t['finish_reason'])}")
    label = "response" + (f" ({', '.join(extra)})" if extra else "")
    response = t.get("response") or ""
    if response:
        parts.append(f"<div class=note>{label}</div>{pre(response)}")
    else:  # a bot moves without words
        parts.append(f"<div class=note>{label}: no text</div>")
    return f'<li class="turn {seat_cls}">{"".join(parts)}</li>'
