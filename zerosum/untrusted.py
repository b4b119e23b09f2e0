"""Where untrusted text (model answers, API and judge replies, TextArena messages, a person's
input) leaves zerosum's hands: as prompt tokens, as a server message, or on a screen.

- Tokens (`encode_text`): the text is tokenized so that no control token arises from it. A
  tokenizer matches its special and added tokens (`<|im_start|>`, `<|eot_id|>`, `<think>`)
  anywhere in a string, so `apply_chat_template(..., tokenize=False)` followed by `encode()`
  turns a quoted `<|im_end|>\\n<|im_start|>system` into a real turn boundary. Here, where a
  control id appears in the text's encoding, the text is cut before each control string's
  second character and encoded in pieces, which are ordinary tokens. The model still reads
  the characters; it never gets the token. Nothing here changes the tokenizer's state, so
  threads may share it. `prompts.chat_prompt` tokenizes the chat template's own parts and the
  message apart.
- Server messages (`for_server`): an OpenAI-compatible server applies its own chat template
  to the message text, where we cannot tokenize; control-string shapes of the common
  templates (`<|...|>`, `<｜...｜>`, `[INST]`, `<<SYS>>`, `<s>`, `<start_of_turn>`, `<think>`,
  ...) get a space after their opening bracket (`<|im_start|>` -> `< |im_start|>`), which no
  tokenizer maps to its control token.
- Screens (`for_display`): bidirectional controls (U+202A-202E, U+2066-2069, and the marks
  U+200E, U+200F, U+061C) are removed, so text cannot display reversed or disguised, and
  other C0/C1 control characters (terminal escapes, NUL) show as U+FFFD; tab and newline stay.
"""

from __future__ import annotations

import re

BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
_BIDI = re.compile(f"[{BIDI_CONTROLS}]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# Control strings of common chat templates (ChatML, Llama 2/3, Mistral, Gemma, Phi, DeepSeek,
# Qwen3's thinking tags), matched case-insensitively; the first character is kept, a space
# follows it.
_SERVER_CONTROLS = re.compile(
    r"<\|[^<>|\s]{0,64}\|>"  # ChatML, Llama 3, Phi: <|im_start|>, <|eot_id|>
    r"|<\uff5c[^<>\uff5c]{0,64}\uff5c>"  # DeepSeek: <｜begin▁of▁sentence｜>
    r"|\[/?INST\]|<</?SYS>>|</?s>|<unk>|<pad>|</?bos>|</?eos>|<mask>"
    r"|<(?:start|end)_of_turn>|</?think>|</?tool_call>|</?tool_response>",
    re.IGNORECASE,
)


def for_display(text: str) -> str:
    """`text` as a person may see it: bidi controls removed, other control characters U+FFFD."""
    return _CONTROL.sub("\ufffd", _BIDI.sub("", text))


def for_server(text: str) -> str:
    """`text` as an OpenAI-compatible server may template it: no chat control string intact."""
    return _SERVER_CONTROLS.sub(lambda m: f"{m.group()[0]} {m.group()[1:]}", text)


def control_ids(tokenizer) -> frozenset[int]:
    """The ids a tokenizer matches as whole strings: its special and added tokens."""
    ids = set(getattr(tokenizer, "all_special_ids", ()))
    ids.update(getattr(tokenizer, "added_tokens_decoder", {}))
    return frozenset(ids)


def control_strings(tokenizer) -> list[str]:
    """The strings of `control_ids`, longest first (so a longer one wins where two overlap)."""
    decoder = getattr(tokenizer, "added_tokens_decoder", {})
    strings = {str(getattr(t, "content", t)) for t in decoder.values()}
    strings.update(getattr(tokenizer, "all_special_tokens", ()))
    return sorted((s for s in strings if s), key=len, reverse=True)


def encode_text(tokenizer, text: str) -> list[int]:
    """Token ids of untrusted `text` in which no control token of `tokenizer` appears."""
    if not text:
        return []
    forbidden = control_ids(tokenizer)
    # Not `split_special_tokens=True`: a fast tokenizer applies it by setting a flag on the
    # shared Rust tokenizer, so a thread encoding a template's own parts at that moment (the
    # arena plays each game in a thread) got `<|im_start|>` spelt out in ordinary tokens.
    ids = tokenizer.encode(text, add_special_tokens=False)
    if forbidden.isdisjoint(ids):
        return list(ids)
    return _encode_in_pieces(tokenizer, text, control_strings(tokenizer), forbidden)


def _encode_in_pieces(tokenizer, text: str, strings: list[str], forbidden: frozenset[int]):
    """`encode_text` for a text whose plain encoding has a control id: each occurrence of a
    control string is encoded as its first character and the rest, apart from the text around
    it (each piece again through this function)."""
    pattern = re.compile("|".join(re.escape(s) for s in strings))
    pieces: list[str] = []
    pos = 0
    for match in pattern.finditer(text):
        pieces += [text[pos : match.start()], match.group()[:1], match.group()[1:]]
        pos = match.end()
    pieces.append(text[pos:])
    if len(pieces) == 1:  # no control string occurs, yet a control id arose: refuse
        raise ValueError(f"cannot tokenize untrusted text without a control token: {text[:60]!r}")
    ids: list[int] = []
    for piece in pieces:
        if piece:
            ids += encode_text(tokenizer, piece)
    return ids
