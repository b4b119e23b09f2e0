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

from collections.abc import Sequence

import torch

from zerosum.engines.base import ChoiceTrie, Generation, SamplingParams, choice_token_ids


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


class HFEngine:
    """Sampling over a transformers causal LM (optionally wrapped by PEFT)."""

    def __init__(self, model, tokenizer, max_batch: int = 64, compact: bool = True):
        if max_batch < 1:
            raise ValueError(f"max_batch = {max_batch!r} is invalid; allowed: an integer >= 1")
        self.model = model
        self.compact = compact  # drop finished rows from the batch and the KV cache
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.stop_ids = stop_token_ids(model, tokenizer)
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id

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
    ) -> list[Generation]:
        out: list[Generation] = []
        for start in range(0, len(prompts), self.max_batch):
            chunk = slice(start, start + self.max_batch)
            out += self._generate_batch(
                prompts[chunk], params, None if choices is None else choices[chunk], seed + start
            )
        return out

    @torch.no_grad()
    def _generate_batch(self, prompts, params, choices, seed) -> list[Generation]:
        model = self.model
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        gen = torch.Generator(device="cpu").manual_seed(seed)
        batch = len(prompts)
        width = max(len(p) for p in prompts)
        input_ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((batch, width), dtype=torch.long)
        for i, p in enumerate(prompts):  # left padding
            input_ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            attn[i, width - len(p) :] = 1
        positions = (attn.cumsum(-1) - 1).clamp(min=0)
        tries = None
        if choices is not None:
            tries = [ChoiceTrie(choice_token_ids(self.tokenizer, c, self.eos_id)) for c in choices]

        result = model(
            input_ids=input_ids.to(device),
            attention_mask=attn.to(device),
            position_ids=positions.to(device),
            use_cache=True,
            logits_to_keep=1,  # the prompt's last position is the only one sampled from
        )
        cache = result.past_key_values
        logits = result.logits[:, -1, :].float().cpu()
        tokens: list[list[int]] = [[] for _ in range(batch)]
        logprobs: list[list[float]] = [[] for _ in range(batch)]
        allowed: list[list[list[int]]] = [[] for _ in range(batch)]
        stopped = [False] * batch
        rows = list(range(batch))  # the prompt index of each row still in the cache
        next_pos = positions[:, -1] + 1
        steps = params.max_new_tokens if tries is None else max(t.depth for t in tries)
        for _ in range(steps):
            scale = 1.0 if params.greedy else params.temperature
            logp = torch.log_softmax(logits / scale, dim=-1)  # [rows, V]
            if tries is not None:
                keep = torch.zeros_like(logp, dtype=torch.bool)
                for j, i in enumerate(rows):
                    ids = tries[i].allowed(tokens[i]) or [self.eos_id]
                    if not stopped[i]:
                        allowed[i].append(ids)
                    keep[j, ids] = True
                logp = torch.log_softmax(logp.masked_fill(~keep, float("-inf")), dim=-1)
            if params.greedy:
                sampled = logp.argmax(-1)  # [rows]; the first maximum: lowest token id
            else:
                logp = top_p_filter(logp, params.top_p)
                sampled = torch.multinomial(logp.exp(), 1, generator=gen).squeeze(1)  # [rows]
            chosen_lp = logp.gather(1, sampled[:, None]).squeeze(1)
            for j, i in enumerate(rows):
                if not stopped[i]:  # (finished rows stay in the batch without compaction)
                    tokens[i].append(int(sampled[j]))
                    logprobs[i].append(float(chosen_lp[j]))
                    stopped[i] = tokens[i][-1] in self.stop_ids
            live = [j for j, i in enumerate(rows) if not stopped[i]]
            if not live:
                break
            if self.compact and len(live) < len(rows):  # finished rows leave the KV cache
                index = torch.tensor(live)
                cache.reorder_cache(index.to(device))  # every layer type (also recurrent state)
                rows = [rows[j] for j in live]
                sampled, attn, next_pos = sampled[index], attn[index], next_pos[index]
            attn = torch.cat([attn, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
            result = model(
                input_ids=sampled[:, None].to(device),
                attention_mask=attn.to(device),
                position_ids=next_pos[:, None].to(device),
                past_key_values=cache,
                use_cache=True,
            )
            cache = result.past_key_values
            logits = result.logits[:, -1, :].float().cpu()  # [rows, V]
            next_pos = next_pos + 1
        if was_training:
            model.train()
        return [
            Generation(
                token_ids=tokens[i],
                logprobs=logprobs[i],
                finish_reason="stop" if stopped[i] else "length",
                text=self.tokenizer.decode(tokens[i], skip_special_tokens=True),
                allowed=allowed[i] if tries is not None else None,
            )
            for i in range(batch)
        ]
