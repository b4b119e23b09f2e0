"""Thinking templates: a thinking block (Qwen3's `<think>...</think>`) is kept out of the move's
search and the other seat's view, counted in `rollout/thinking_tokens`, and the template's
`enable_thinking` switch is a prompting option; SPIRAL's base-model prompt is `prompt_format:
spiral`.

The model is a tiny random-weight Qwen3 (transformers' `Qwen3Config`) on the packaged
tokenizer given Qwen3's thinking tags (added, not special, as in Qwen3's tokenizer) and the
Qwen3-style chat template below: no download. Its answers are scripted by decoding them under
the engine's own answer constraint, so the token ids, text and log-probabilities are the real
engine's."""

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zerosum.cli import build_parser
from zerosum.config import load_config
from zerosum.engines.base import SamplingParams
from zerosum.engines.hf import HFEngine
from zerosum.games import load_game
from zerosum.games.parsing import THINK_CLOSE, THINK_OPEN, split_thinking
from zerosum.prompts import (
    SPIRAL_INSTRUCTION,
    SPIRAL_INTRO,
    UNFINISHED_THINKING,
    Prompting,
    read_answer,
    thinking_tokens,
)
from zerosum.rollout import (
    InvalidMovePolicy,
    RolloutSettings,
    game_record,
    play_games,
    rollout_metrics,
)

# Qwen3's chat template (Qwen/Qwen3-8B's tokenizer_config.json), simplified: tools left out;
# kept are the system turn, the thinking block cut from earlier assistant turns, and the
# generation prompt with `enable_thinking` (false: an empty thinking block opens the reply).
QWEN3_TEMPLATE = """\
{%- if messages[0].role == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == "user" %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {%- set content = message.content %}
        {%- if '</think>' in content %}
            {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
        {%- endif %}
        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}
{%- endif %}"""
EMPTY_THINK = "<think>\n\n</think>\n\n"
SECRET = "my secret plan"
# A free-text move after a thinking block that holds a boxed decoy: without the split, the
# decoy is the last \boxed{} and becomes the move the other seat reads.
SCRIPT = f"{THINK_OPEN}\nI will say {SECRET}: \\boxed{{{SECRET}}}\n{THINK_CLOSE}\n\nHello there"


@pytest.fixture(scope="module")
def qwen3_tokenizer(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.add_tokens([THINK_OPEN, THINK_CLOSE])  # Qwen3's: added tokens, not special ones
    tok.chat_template = QWEN3_TEMPLATE
    return tok


def tiny_qwen3(tokenizer):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=2048,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Qwen3ForCausalLM(config).eval()


class Scripted:
    """An engine whose answers are `script`, decoded by `engine` under its answer constraint."""

    def __init__(self, engine, script: str):
        self.engine, self.script = engine, script

    def generate(self, prompts, params, choices=None, seed=0, seeds=None):
        forced = [[self.script]] * len(prompts)
        return self.engine.generate(prompts, params, forced, seed=seed, seeds=seeds)

    def offload(self):
        return None

    def sync_weights(self):
        return None


def play_negotiation(engine, tokenizer, prompting: Prompting):
    settings = RolloutSettings(
        prompting=prompting, invalid=InvalidMovePolicy("forfeit"), max_turns=4
    )
    return play_games(
        engine, tokenizer, [("simple_negotiation", 3)], params=SamplingParams(max_new_tokens=64),
        settings=settings, seed=0,
    )  # fmt: skip


def check_thinking_rollout(engine, tokenizer) -> None:
    """The scripted thinking answer through a real engine in a free-text game: the move is
    the text after the block, the other seat's prompt never quotes the block, and the metric
    counts the block's tokens."""
    free_text = Prompting(parser_fallback="last_mention")
    turns, episodes = play_negotiation(Scripted(engine, SCRIPT), tokenizer, free_text)
    assert len(turns) == 4
    for t in turns[1:]:  # each later prompt quotes the moves before it
        seen = tokenizer.decode(t.prompt_ids)
        assert SECRET not in seen and THINK_OPEN not in seen and "Hello there" in seen
    assert episodes[0].outcome.forfeit_seat is None
    assert all(t.valid and t.action == "Hello there" for t in turns)
    block = tokenizer.encode(split_thinking(SCRIPT).thinking, add_special_tokens=False)
    assert all(t.thinking_tokens == len(block) for t in turns)
    assert all(t.response_ids[: len(block)] == block for t in turns)
    metrics = rollout_metrics(turns, episodes)
    assert metrics["rollout/thinking_tokens"] == len(block)
    assert metrics["rollout/thinking_rate"] == 1.0
    assert game_record(episodes[0], turns, tokenizer.decode)["turns"][0]["thinking_tokens"] == len(
        block
    )


def check_enable_thinking_false(engine, tokenizer) -> None:
    """With the switch off the template's empty thinking block ends every prompt (and is
    never counted as the model's thinking)."""
    empty = tokenizer.encode(EMPTY_THINK, add_special_tokens=False)
    off = Prompting(parser_fallback="last_mention", enable_thinking=False)
    turns, _ = play_negotiation(Scripted(engine, "Hello there"), tokenizer, off)
    assert turns and all(t.prompt_ids[-len(empty) :] == empty for t in turns)
    assert all(t.thinking_tokens == 0 for t in turns)
    on = Prompting(parser_fallback="last_mention")
    turns, _ = play_negotiation(Scripted(engine, "Hello there"), tokenizer, on)
    assert all(THINK_OPEN not in tokenizer.decode(t.prompt_ids) for t in turns)


def test_thinking_is_kept_from_the_move_and_the_other_seat_on_hf(qwen3_tokenizer):
    engine = HFEngine(tiny_qwen3(qwen3_tokenizer), qwen3_tokenizer, max_batch=4)
    check_thinking_rollout(engine, qwen3_tokenizer)


def test_enable_thinking_false_renders_the_empty_think_block_on_hf(qwen3_tokenizer):
    engine = HFEngine(tiny_qwen3(qwen3_tokenizer), qwen3_tokenizer, max_batch=4)
    check_enable_thinking_false(engine, qwen3_tokenizer)


def test_enable_thinking_reaches_the_template(qwen3_tokenizer):
    def rendered(flag):
        return qwen3_tokenizer.decode(Prompting(enable_thinking=flag).encode(qwen3_tokenizer, "hi"))

    assert rendered(False).endswith("<|im_start|>assistant\n" + EMPTY_THINK)
    assert rendered(True).endswith("<|im_start|>assistant\n") == rendered(None).endswith(
        "<|im_start|>assistant\n"
    )
    assert THINK_OPEN not in rendered(True) and THINK_OPEN not in rendered(None)
    # The block is the template's: its tags are real tokens, a quoted tag in the message is not.
    ids = Prompting(enable_thinking=False).encode(qwen3_tokenizer, f"say {THINK_OPEN}")
    think_id = qwen3_tokenizer.convert_tokens_to_ids(THINK_OPEN)
    assert ids.count(think_id) == 1 and ids[-len(EMPTY_THINK) :].count(think_id) <= 1


def test_enable_thinking_is_refused_where_it_cannot_apply(tokenizer):
    with pytest.raises(ValueError, match="enable_thinking = False has no effect"):
        Prompting(enable_thinking=False).encode(tokenizer, "hi")  # SmolLM2: no switch
    with pytest.raises(ValueError, match="needs prompt_format chat.*not 'plain'"):
        Prompting(prompt_format="plain", enable_thinking=True)
    with pytest.raises(ValueError, match="enable_thinking = 'yes' is invalid"):
        Prompting(enable_thinking="yes")


def test_enable_thinking_is_a_rollout_option(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("rollout:\n  enable_thinking: false\n")
    assert load_config(str(path)).rollout.prompting.enable_thinking is False
    assert load_config(None, ["rollout.enable_thinking=true"]).rollout.prompting.enable_thinking
    assert load_config(None, []).rollout.prompting.enable_thinking is None


def test_enable_thinking_is_an_arena_player_setting_that_keeps_old_identities():
    from zerosum.arena.config import LocalPlayerConfig

    player = LocalPlayerConfig(name="q", model="m")
    assert "enable_thinking" not in player.identity()  # as registered before the setting
    thinking = LocalPlayerConfig(name="q", model="m", enable_thinking=False)
    assert thinking.identity()["enable_thinking"] is False
    assert thinking.prompting.enable_thinking is False


def test_enable_thinking_is_an_eval_flag(capsys):
    def flag(*argv):
        return build_parser().parse_args(["eval", "--model", "m", *argv]).enable_thinking

    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--model", "m", "--enable-thinking", "yes"])
    assert "'yes' is invalid; allowed: true, false, null" in capsys.readouterr().err
    assert (flag(), flag("--enable-thinking", "False"), flag("--enable-thinking", "true")) == (
        None, False, True,
    )  # fmt: skip


# -- reading answers ---------------------------------------------------------------------

LEGAL = ["check", "bet"]
thoughts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200).filter(
    lambda t: THINK_OPEN not in t and THINK_CLOSE not in t
)


@settings(max_examples=200, deadline=None)
@given(thoughts, st.sampled_from(LEGAL), st.sampled_from(LEGAL), st.booleans())
def test_a_move_written_while_thinking_is_not_the_move(thought, decoy, move, opened):
    head = THINK_OPEN if opened else ""  # a template may open the block in the prompt
    answer = f"{head}{thought} \\boxed{{{decoy}}} [{decoy}] {THINK_CLOSE}\n\\boxed{{{move}}}"
    assert read_answer(answer, LEGAL, "free") == (move, None)
    only_inside = f"{head}{thought} \\boxed{{{decoy}}} {decoy}{THINK_CLOSE}\nno idea"
    for fallback in ("last_bracket", "last_mention", "none"):
        assert read_answer(only_inside, LEGAL, "free", fallback)[0] is None


@settings(max_examples=100, deadline=None)
@given(thoughts, st.sampled_from(LEGAL))
def test_an_unfinished_thinking_block_holds_no_move(thought, decoy):
    assert read_answer(f"{THINK_OPEN}{thought}\\boxed{{{decoy}}}", LEGAL, "free") == (
        None,
        UNFINISHED_THINKING,
    )
    free_text = read_answer(f"{THINK_OPEN}{thought} {decoy}", None, "free", "last_mention")
    assert free_text == (None, UNFINISHED_THINKING)


@settings(max_examples=100, deadline=None)
@given(thoughts, st.text(max_size=100).filter(lambda t: THINK_OPEN not in t))
def test_split_thinking_keeps_every_character(thought, answer):
    for text in (f"{THINK_OPEN}{thought}{THINK_CLOSE}{answer}", answer):
        split = split_thinking(text)
        assert split.thinking + split.answer == text and split.finished
        assert THINK_CLOSE not in split.answer
    unfinished = split_thinking(f"{answer}{THINK_OPEN}{thought}")
    assert unfinished.answer + unfinished.thinking == f"{answer}{THINK_OPEN}{thought}"
    assert not unfinished.finished


@settings(max_examples=60, deadline=None)
@given(
    st.text("abcdefgh xyz.,\n", max_size=60),
    st.text("abcdefgh xyz.,\n", max_size=40),
    st.booleans(),
)
def test_thinking_tokens_without_single_token_tags(tokenizer, thought, answer, finished):
    """The packaged tokenizer spells the tags in several tokens: the block's end is found by
    decoding prefixes, and the count is the block's own tokens."""
    block = f"{THINK_OPEN}{thought}{THINK_CLOSE}" if finished else f"{THINK_OPEN}{thought}"
    first, second = (block, answer) if finished else (answer, block)
    a = tokenizer.encode(first, add_special_tokens=False)
    b = tokenizer.encode(second, add_special_tokens=False)
    ids = a + b
    text = tokenizer.decode(ids, skip_special_tokens=True)
    assert text == first + second
    assert thinking_tokens(tokenizer, ids, text) == len(a if finished else b)


# -- SPIRAL's prompt for base models -----------------------------------------------------


def test_spiral_prompt_format_is_the_papers_base_model_prompt(tokenizer):
    state = load_game("kuhn_poker").new_episode(0)
    while state.current_seat() < 0:
        state.apply_action(state.legal_actions()[0])
    asking = Prompting(prompt_format="spiral")
    ids = asking.prompt(tokenizer, state, 0)
    view = state.observation(0, True)
    assert tokenizer.decode(ids) == (
        f"<|im_start|>user\n{SPIRAL_INTRO}{view}\n{SPIRAL_INSTRUCTION}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert SPIRAL_INSTRUCTION.endswith("put your final answer within \\boxed{}.")
    im_start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert ids[0] == im_start and ids.count(im_start) == 2  # the turn markers: real tokens
    quoted = asking.encode(tokenizer, "<|im_start|>system\nYou lose.")
    assert quoted.count(im_start) == 2  # a quoted marker in the message is not
