"""The `hf` engine: batched sampling with a KV cache over the learner's own model.

A hand-written decode loop rather than `model.generate`, because it must report the exact
log-probability of every sampled token under the sampling distribution (temperature, top-p,
constraint) without keeping [batch, vocab] scores for every step in memory. It shares the
learner's module, so there is nothing to synchronise after an optimizer step.

Temperature 0 is greedy decoding: the most likely (allowed) token at every step, ties to the
lowest token id; its reported log-probabilities are those of the chosen tokens under the
untempered distribution (after the constraint), as vLLM reports them. Constrained answers run
for the depth of their prefix trie (longest answer plus end-of-sequence), not
`max_new_tokens`, so a small free-text cap never truncates a legal action.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from zerosum.batching import prefix_used, prefixed_batch, with_prefix
from zerosum.engines.base import ChoiceTrie, Generation, SamplingParams, choice_token_ids
from zerosum.typed_config import POSITIVE


def stop_token_ids(model, tokenizer) -> set[int]:
    """End-of-sequence ids from the tokenizer and the model's generation config."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(gen_eos, int):
        ids.add(gen_eos)
    elif gen_eos:
        ids.update(gen_eos)
    return ids


def top_p_filter(logp: torch.Tensor, top_p: float) -> torch.Tensor:
    """Renormalised log-probs restricted to the smallest set with mass >= top_p. [B, V]."""
    if top_p >= 1.0:
        return logp
    sorted_lp, order = torch.sort(logp, descending=True, dim=-1)
    mass_before = sorted_lp.exp().cumsum(-1) - sorted_lp.exp()
    drop_sorted = mass_before >= top_p  # keeps at least the top token
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return torch.log_softmax(logp.masked_fill(drop, float("-inf")), dim=-1)


def draw(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """One token per row of `probs` [B, V] by inverse CDF at `uniforms` [B] in [0, 1): the
    first token whose cumulative mass exceeds u times the row's total, so a zero-probability
    token is never drawn. One `torch.multinomial` call per row (each with its own generator)
    was about 4x slower on a CPU over a 49k vocabulary (BENCHMARKS.md, the per-token sampler)."""
    cdf = probs.double().cumsum(-1)
    target = (uniforms.double() * cdf[:, -1]).unsqueeze(1)
    index = torch.searchsorted(cdf, target, right=True).squeeze(1)
    over = (index >= probs.shape[1]).nonzero().squeeze(1)
    if len(over):  # u * total rounded up to the total: the row's last positive token
        index[over] = (probs[over] > 0).long().cumsum(-1).argmax(-1)
    return index


class HFEngine:
    """Sampling over a transformers causal LM (optionally wrapped by PEFT)."""

    def __init__(
        self,
        model,
        tokenizer,
        max_batch: int = 64,
        compact: bool = True,
        shared_prefix: bool = True,
    ):
        POSITIVE.check("max_batch", max_batch)
        self.model = model
        self.compact = compact  # drop finished rows from the batch and the KV cache
        self.shared_prefix = shared_prefix  # prefill a batch's common prompt prefix once
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.stop_ids = stop_token_ids(model, tokenizer)
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        # Legal-action lists recur turn after turn: their token ids are read once (bounded).
        self.choice_ids = functools.lru_cache(maxsize=4096)(
            lambda c: choice_token_ids(tokenizer, c, self.eos_id)
        )

    def offload(self) -> None:  # the learner's own module: nothing to free
        return None

    def sync_weights(self) -> None:  # weights are shared with the learner
        return None

    def generate(
        self,
        prompts: Sequence[list[int]],
        params: SamplingParams,
        choices: Sequence[Sequence[str]] | None = None,
        seed: int = 0,
        seeds: Sequence[int] | None = None,
    ) -> list[Generation]:
        """`Engine.generate`, in batches of at most `max_batch` prompts; the batch starting
        at prompt i is seeded `seed + i`. With `seeds`, prompt i is sampled from its own
        generator seeded `seeds[i]` instead, exactly as it is alone with `seed=seeds[i]`."""
        if seeds is not None and len(seeds) != len(prompts):
            raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts; allowed: one each")
        out: list[Generation] = []
        for start in range(0, len(prompts), self.max_batch):
            chunk = slice(start, start + self.max_batch)
            gen = (
                torch.Generator(device="cpu").manual_seed(seed + start)
                if seeds is None
                else [torch.Generator(device="cpu").manual_seed(s) for s in seeds[chunk]]
            )
            out += self._generate_batch(
                prompts[chunk], params, None if choices is None else choices[chunk], gen
            )
        return out

    @torch.no_grad()
    def _generate_batch(self, prompts, params, choices, gen: _Gen) -> list[Generation]:
        """One batch: prefill every prompt, then decode all rows a token at a time."""
        was_training = self.model.training
        self.model.eval()
        tries = None
        if choices is not None:
            tries = [ChoiceTrie(self.choice_ids(tuple(c))) for c in choices]
        out = _Rows(len(prompts))
        step = self._prefill(prompts)
        steps = params.max_new_tokens if tries is None else max(t.depth for t in tries)
        for _ in range(steps):
            sampled, chosen_lp = self._choose(step, params, tries, out, gen)
            for j, i in enumerate(step.rows):
                if not out.stopped[i]:  # (finished rows stay in the batch without compaction)
                    out.tokens[i].append(int(sampled[j]))
                    out.logprobs[i].append(float(chosen_lp[j]))
                    out.stopped[i] = out.tokens[i][-1] in self.stop_ids
            live = [j for j, i in enumerate(step.rows) if not out.stopped[i]]
            # Stop when every row has stopped, or when every live answer is decided: its
            # remaining tokens are forced and need no forward pass.
            if not live or (
                tries and self._finish_forced([step.rows[j] for j in live], tries, out)
            ):
                break
            step.materialise()
            if self.compact and len(live) < len(step.rows):  # finished rows leave the KV cache
                sampled = sampled[step.keep(live)]
            self._decode(step, sampled)
        if was_training:
            self.model.train()
        return [
            Generation(
                token_ids=out.tokens[i],
                logprobs=out.logprobs[i],
                finish_reason="stop" if out.stopped[i] else "length",
                text=self.tokenizer.decode(out.tokens[i], skip_special_tokens=True),
                allowed=out.allowed[i] if tries is not None else None,
            )
            for i in range(len(prompts))
        ]

    @torch.no_grad()
    def next_token_logits(self, prompts: Sequence[list[int]]) -> torch.Tensor:
        """Logits [len(prompts), V] (float32, CPU) of the token after each prompt: a prefill
        alone, shared prefix and repeated prompts computed once. The caller sets eval mode."""
        return self._prefill(list(prompts)).row_logits()

    def _prefill(self, prompts) -> _Step:
        """The prompts through the model: the KV cache and the next-token logits of each. The
        tokens every prompt starts with (chat template, rules, seat) run once, their keys and
        values repeated over the rows (`batching.with_prefix`), and so does every prompt that
        appears more than once (small games deal the same view to many games at once: 256
        Kuhn Poker games hold at most 6 distinct prompts a round), unless `shared_prefix` is
        off. Repeated rows share their copy's cache and logits until a decode step needs
        their own (`_Step.materialise`): a constrained answer decided by its first token
        never does."""
        distinct: dict[tuple[int, ...], int] = {}
        if self.shared_prefix:
            copy_of = [distinct.setdefault(tuple(p), len(distinct)) for p in prompts]
            if len(distinct) < len(prompts):
                step = self._prefill_rows([list(p) for p in distinct])
                index = torch.tensor(copy_of)
                step.rows, step.copy_of = list(range(len(prompts))), index
                step.attn, step.next_pos = step.attn[index], step.next_pos[index]
                return step
        return self._prefill_rows(prompts)

    def _prefill_rows(self, prompts) -> _Step:
        """`_prefill` with every prompt in its own row, repeated ones too."""
        device = next(self.model.parameters()).device
        p = prefix_used(prompts, self.shared_prefix)
        inputs = with_prefix(self.model, prefixed_batch(prompts, p, self.pad_id, device))
        # The prompt's last position is the only one sampled from.
        result = self.model(**inputs, use_cache=True, logits_to_keep=1)
        logits = result.logits[:, -1, :].float().cpu()
        rows = list(range(len(prompts)))
        attn = inputs["attention_mask"].cpu()  # the prefix's columns included
        next_pos = inputs["position_ids"][:, -1].cpu() + 1
        return _Step(rows, result.past_key_values, logits, attn, next_pos, device)

    def _finish_forced(self, rows: list[int], tries: list[ChoiceTrie], out: _Rows) -> bool:
        """If every row in `rows` has a single allowed answer left, write its remaining tokens
        (log-prob 0, each the only one allowed, as the decode loop would) and return True.
        Only when all are forced: the batch's shared generator then draws nothing more, so
        the samples are the same as decoding on (a row finished early would shift the
        uniforms of the others)."""
        tails = []
        for i in rows:  # (stops at the first undecided row: most steps have one)
            tail = tries[i].completion(out.tokens[i])
            if tail is None:
                return False
            tails.append(tail)
        for i, tail in zip(rows, tails):
            for token in tail:
                out.allowed[i].append([token])
                out.tokens[i].append(token)
                out.logprobs[i].append(0.0)
                out.stopped[i] = token in self.stop_ids
                if out.stopped[i]:
                    break
        return True

    def _choose(
        self, step: _Step, params, tries, out: _Rows, gen: _Gen
    ) -> tuple[torch.Tensor, ...]:
        """The next token of every row in the batch (sampled, or greedy) and its log-prob
        under the distribution it came from (temperature, constraint, top-p); constrained
        rows record their allowed token ids. `gen` is one generator for the batch, or one per
        prompt (drawing a row alone, as in a batch of one)."""
        rows = step.rows
        scale = 1.0 if params.greedy else params.temperature
        vocab = None  # constrained: [rows, K] token ids the columns of `logp` stand for
        if tries is not None:
            allowed = [sorted(tries[i].allowed(out.tokens[i]) or [self.eos_id]) for i in rows]
            for j, i in enumerate(rows):
                if not out.stopped[i]:
                    out.allowed[i].append(allowed[j])
            # Only the allowed columns: the vocabulary's other logits would be masked anyway.
            width = max(map(len, allowed))
            vocab = torch.tensor([ids + ids[-1:] * (width - len(ids)) for ids in allowed])
            pad = torch.tensor([[k >= len(ids) for k in range(width)] for ids in allowed])
            logits = step.row_columns(vocab).masked_fill(pad, float("-inf"))
        else:
            logits = step.row_logits()
        logp = torch.log_softmax(logits / scale, dim=-1)  # [rows, V or K]
        if params.greedy:
            sampled = logp.argmax(-1)  # [rows]; the first maximum: lowest token id
        else:
            logp = top_p_filter(logp, params.top_p)
            if isinstance(gen, list):
                u = torch.cat([torch.rand(1, generator=gen[i]) for i in rows])
            else:
                u = torch.rand(len(rows), generator=gen)
            sampled = draw(logp.exp(), u)  # [rows]
        chosen = logp.gather(1, sampled[:, None]).squeeze(1)
        return (sampled if vocab is None else vocab.gather(1, sampled[:, None]).squeeze(1)), chosen

    def _decode(self, step: _Step, sampled: torch.Tensor) -> None:
        """Feed each row's new token; `step` then holds the next logits and cache."""
        step.attn = torch.cat([step.attn, torch.ones((len(step.rows), 1), dtype=torch.long)], 1)
        result = self.model(
            input_ids=sampled[:, None].to(step.device),
            attention_mask=step.attn.to(step.device),
            position_ids=step.next_pos[:, None].to(step.device),
            past_key_values=step.cache,
            use_cache=True,
        )
        step.cache = result.past_key_values
        step.logits = result.logits[:, -1, :].float().cpu()  # [rows, V]
        step.next_pos = step.next_pos + 1


# One generator for a whole batch, or one per prompt of the batch (`generate(seeds=...)`).
_Gen = torch.Generator | list[torch.Generator]


class _Rows:
    """What each prompt of a batch has generated so far."""

    def __init__(self, batch: int):
        self.tokens: list[list[int]] = [[] for _ in range(batch)]
        self.logprobs: list[list[float]] = [[] for _ in range(batch)]
        self.allowed: list[list[list[int]]] = [[] for _ in range(batch)]
        self.stopped = [False] * batch


@dataclass
class _Step:
    """The decode loop's batch: which prompts it holds (`rows`), their KV cache, the logits of
    their next token, attention mask, next positions and the model's device."""

    rows: list[int]
    cache: Any
    logits: torch.Tensor
    attn: torch.Tensor
    next_pos: torch.Tensor
    device: torch.device
    # Row -> the distinct prompt whose KV cache and logits it shares (repeated prompts), or
    # None once every row has its own.
    copy_of: torch.Tensor | None = None

    def row_logits(self) -> torch.Tensor:
        """The next-token logits of every row, [rows, V]."""
        return self.logits if self.copy_of is None else self.logits[self.copy_of]

    def row_columns(self, vocab: torch.Tensor) -> torch.Tensor:
        """Row j's logits at the token ids `vocab[j]`, [rows, K], without repeating the
        full-vocabulary logits of rows that share their copy's."""
        if self.copy_of is None:
            return self.logits.gather(1, vocab)
        return self.logits[self.copy_of[:, None], vocab]

    def materialise(self) -> None:
        """Give every row its own KV cache and logits, as decoding needs."""
        if self.copy_of is not None:
            self.cache.reorder_cache(self.copy_of.to(self.device))  # rows repeated, with their KV
            self.logits, self.copy_of = self.logits[self.copy_of], None

    def keep(self, live: list[int]) -> torch.Tensor:
        """Keep only the batch rows `live` (finished rows leave the batch and KV cache);
        returns their index, to select from other per-row tensors."""
        index = torch.tensor(live)
        self.cache.reorder_cache(index.to(self.device))  # every layer type (also recurrent state)
        self.rows = [self.rows[j] for j in live]
        self.attn, self.next_pos = self.attn[index], self.next_pos[index]
        return index
