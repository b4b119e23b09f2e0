"""The model's policy at every information set, read exactly in constrained-answer mode.

In constrained mode the reply is a legal action followed by end-of-sequence, decoded
token by token under the prefix-trie restriction; the probability of an action is the
product of the renormalised per-token probabilities along its path. Scoring each legal
action's path by teacher forcing gives the whole distribution without sampling, and the
table plugs into OpenSpiel's `exploitability.nash_conv`.
"""

from __future__ import annotations

import math

import torch
from open_spiel.python import policy as os_policy
from open_spiel.python.algorithms import expected_game_score, exploitability

from zerosum.engines.base import ChoiceTrie, choice_token_ids
from zerosum.engines.hf import HFEngine
from zerosum.games import load_game
from zerosum.games.openspiel_games import OpenSpielGame
from zerosum.prompts import Prompting, engine_batch
from zerosum.scoring import Sample, micro_batches, plan_micro_batches, response_logprobs
from zerosum.solvers import cfr_policy_table, info_set_states, tabular_policy
from zerosum.typed_config import POSITIVE

# How exact policies are read by default: constrained answers in the chat template, rules in.
CONSTRAINED = Prompting(answer_mode="constrained")


def constrained_action_probs(
    model, tokenizer, state, temperature: float = 1.0, prompting: Prompting = CONSTRAINED
) -> dict[str, float]:
    """Exact probability of each legal action for the seat to move, asked as `prompting`
    (a constrained one) says.

    Temperature 0 is greedy decoding: probability 1 for the answer that takes the most likely
    allowed token at every step (ties to the lowest token id, as the engines break them)."""
    return states_action_probs(model, tokenizer, [state], temperature, prompting)[0]


@torch.no_grad()
def states_action_probs(
    model,
    tokenizer,
    states: list,
    temperature: float = 1.0,
    prompting: Prompting = CONSTRAINED,
    *,
    batch_tokens: int = 16384,
    shared_prefix: bool = True,
) -> list[dict[str, float]]:
    """`constrained_action_probs` of many states, their answers scored in batches of about
    `batch_tokens` padded tokens (Leduc's 936 information sets in a few dozen forward passes
    instead of 936), the prompt prefix a batch shares (chat template, rules) run once. Where
    every legal answer is a single token (poker's actions), one prefill per information set
    gives them all, instead of one teacher-forced row per answer.

    Only constrained answers have an exact policy: a `prompting` in another answer mode is
    refused (its prompts ask for other answers)."""
    if prompting.answer_mode != "constrained":
        raise ValueError(
            f"exact policies read constrained answers, not {prompting.answer_mode!r} ones"
        )
    eos = tokenizer.eos_token_id
    per_state = []  # (legal labels, answer token ids, first row in `rows`) per state
    samples: list[Sample] = []
    single: list[tuple[int, list[int], list[int]]] = []  # (state, prompt, each answer's token)
    for k, state in enumerate(states):
        legal = list(state.legal_actions())
        prompt = prompting.prompt(tokenizer, state, state.current_seat())
        seqs = choice_token_ids(tokenizer, legal, eos)
        firsts = [seq[0] for seq in seqs]
        if all(len(seq) == 2 and seq[1] == eos for seq in seqs) and len(set(firsts)) == len(seqs):
            # Every answer is one token, after which end-of-sequence is the only allowed token
            # (log 1): the answer's probability is its token's after the prompt, and one row
            # per information set gives them all (Kuhn and Leduc Poker's actions).
            single.append((k, prompt, firsts))
        else:
            trie = ChoiceTrie(seqs)
            samples += [
                Sample(prompt, seq, 0.0, [trie.allowed(seq[:t]) for t in range(len(seq))])
                for seq in seqs
            ]
        per_state.append((legal, seqs, len(samples) - len(seqs)))
    was_training = model.training
    model.eval()
    scale = 1.0 if temperature == 0 else temperature
    rows: list[torch.Tensor] = [torch.empty(0)] * len(samples)  # per-token log-probs
    first: dict[int, torch.Tensor] = {}  # state -> log-probs of its answers' tokens
    try:
        engine = HFEngine(model, tokenizer, shared_prefix=shared_prefix)
        for idx in micro_batches([len(p) for _, p, _ in single], batch_tokens):
            logits = engine.next_token_logits([single[i][1] for i in idx])
            for row, i in enumerate(idx):
                k, _, tokens = single[i]
                first[k] = torch.log_softmax(logits[row, tokens] / scale, dim=-1)
        for idx in plan_micro_batches(samples, batch_tokens, shared_prefix):
            scores = response_logprobs(
                model, [samples[i] for i in idx], scale, tokenizer.pad_token_id,
                shared_prefix=shared_prefix,
            )  # fmt: skip
            for row, i in enumerate(idx):
                rows[i] = scores.logp[row, : len(samples[i].response_ids)].cpu()
    finally:
        if was_training:
            model.train()
    out = []
    for k, (legal, seqs, start) in enumerate(per_state):
        if k in first:  # one token per answer: its log-prob, then end-of-sequence's 0
            logp = [torch.stack([lp, torch.zeros(())]) for lp in first[k]]
        else:
            logp = rows[start : start + len(seqs)]
        if temperature == 0:
            best = _greedy_path(seqs, logp)
            out.append({a: float(i == best) for i, a in enumerate(legal)})
        else:
            out.append({a: math.exp(float(r.sum())) for a, r in zip(legal, logp)})
    return out


def _greedy_path(seqs: list[list[int]], logp: list[torch.Tensor]) -> int:
    """Index of the answer greedy decoding writes, from each answer's per-token log-probs
    (`logp[i][t]`). Answers sharing a prefix share the
    distribution of the next token, so walking the trie needs no extra forward pass."""
    alive, t = list(range(len(seqs))), 0
    while len(alive) > 1:  # distinct answers, each ending in end-of-sequence, part at some t
        best = max(alive, key=lambda i: (float(logp[i][t]), -seqs[i][t]))
        alive = [i for i in alive if seqs[i][t] == seqs[best][t]]
        t += 1
    return alive[0]


def model_policy(
    model,
    tokenizer,
    game_name: str,
    temperature: float = 1.0,
    prompting: Prompting = CONSTRAINED,
) -> os_policy.TabularPolicy:
    """The model's constrained-mode policy as an OpenSpiel `TabularPolicy` (all info sets),
    asked as `prompting` (a constrained one) says."""
    game = load_game(game_name)
    if not isinstance(game, OpenSpielGame):
        raise ValueError(f"exact policies need an OpenSpiel game, not {game_name!r}")
    table = os_policy.TabularPolicy(game.spiel_game)
    keys = list(table.state_lookup)
    spiel_states = [info_set_states(game_name)[key] for key in keys]
    states = [game.state_from_history(s.history()) for s in spiel_states]
    all_probs = states_action_probs(model, tokenizer, states, temperature, prompting)
    for key, spiel_state, state, probs in zip(keys, spiel_states, states, all_probs):
        row = table.action_probability_array[table.state_lookup[key]]
        row[:] = 0.0
        for action in spiel_state.legal_actions():
            row[action] = probs[state.label(action)]
        row /= row.sum()  # guards float drift; probabilities already sum to 1
    return table


def nash_conv(game_name: str, policy: os_policy.TabularPolicy) -> dict[str, float]:
    """NashConv (the sum of both seats' best-response gains) and each seat's gain, by
    OpenSpiel."""
    result = exploitability.nash_conv(
        load_game(game_name).spiel_game, policy, return_only_nash_conv=False
    )
    return {
        "nash_conv": float(result.nash_conv),
        "best_response_gain_seat0": float(result.player_improvements[0]),
        "best_response_gain_seat1": float(result.player_improvements[1]),
    }


def policy_by_info_set(
    game_name: str, policy: os_policy.TabularPolicy
) -> dict[str, dict[str, float]]:
    """The policy as {information state: {action label: probability}}, OpenSpiel's information
    state strings as keys (Kuhn Poker's "0pb": holding the jack after pass, bet)."""
    game = load_game(game_name)
    out = {}
    for key, spiel_state in info_set_states(game_name).items():
        row = policy.action_probability_array[policy.state_lookup[key]]
        state = game.state_from_history(spiel_state.history())
        out[key] = {state.label(a): float(row[a]) for a in spiel_state.legal_actions()}
    return out


def exploitability_report(game_name: str, policy: os_policy.TabularPolicy) -> dict:
    """NashConv, each seat's best-response gain, the policy's expected return in each seat
    against the CFR+ approximate Nash policy (OpenSpiel), and the policy itself
    (`policy_by_info_set`)."""
    game = load_game(game_name).spiel_game
    nash = tabular_policy(game, cfr_policy_table(game_name))
    root = game.new_initial_state()
    as_seat0 = expected_game_score.policy_value(root, [policy, nash])[0]
    as_seat1 = expected_game_score.policy_value(root, [nash, policy])[1]
    return {
        **nash_conv(game_name, policy),
        "return_vs_nash_seat0": float(as_seat0),
        "return_vs_nash_seat1": float(as_seat1),
        "policy": policy_by_info_set(game_name, policy),
    }


def sampled_policy(
    engine,
    tokenizer,
    game_name: str,
    params,
    k: int,
    *,
    prompting: Prompting | None = None,
    seed: int = 0,
) -> tuple[os_policy.TabularPolicy, dict[str, float]]:
    """The policy estimated from `k` answers sampled per information set, asked and read as
    `prompting` says (free text by default; `reasoned` answers reason, then choose).

    Each action's probability is its share of the valid answers; an information set with no
    valid answer gets the uniform policy (counted in `invalid_rate`). The statistics give the
    sampling error: the mean and largest binomial standard error over all (set, action)."""
    POSITIVE.check("samples per information set", k)
    prompting = prompting or Prompting()
    game = load_game(game_name)
    if not isinstance(game, OpenSpielGame):
        raise ValueError(f"policies need an OpenSpiel game, not {game_name!r}")
    table = os_policy.TabularPolicy(game.spiel_game)
    keys = list(table.state_lookup)
    states = [game.state_from_history(info_set_states(game_name)[key].history()) for key in keys]
    asked = [s for s in states for _ in range(k)]
    prompts = [prompting.prompt(tokenizer, s, s.current_seat()) for s in asked]
    choices = [prompting.choices(s) for s in asked] if prompting.decodes_legal_actions else None

    generate = engine_batch(engine, params, seed)
    gens = prompting.answer(generate, tokenizer, prompts, choices, [seed] * len(asked))
    texts = [gen.text for gen in gens]
    invalid = 0
    errors = []
    for i, (key, state) in enumerate(zip(keys, states)):
        spiel_state = info_set_states(game_name)[key]
        counts = dict.fromkeys(spiel_state.legal_actions(), 0)
        for text in texts[i * k : (i + 1) * k]:
            action = prompting.read(text, state.legal_actions())[0]
            if action is None:
                invalid += 1
            else:
                counts[state.action_id(action)] += 1
        valid = sum(counts.values())
        row = table.action_probability_array[table.state_lookup[key]]
        row[:] = 0.0
        for action, c in counts.items():
            p = c / valid if valid else 1.0 / len(counts)
            row[action] = p
            errors.append(math.sqrt(p * (1 - p) / valid) if valid else 0.5)
    stats = {
        "samples_per_infoset": float(k),
        "invalid_rate": invalid / (len(keys) * k),
        "mean_std_error": sum(errors) / len(errors),
        "max_std_error": max(errors),
    }
    return table, stats
