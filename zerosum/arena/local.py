"""Local models in the arena: one decoding thread per model batches the turns of all games.

Each game runs in its own thread (`zerosum.arena.run`); a local model's turn is a request to
its model's `BatchedSampler`, which decodes whatever requests are waiting as one batch. Every
request carries its own seed (drawn from its game's RNG) and is sampled with its own
generator, exactly as `HFEngine.generate([prompt], params, seed=seed)` samples it alone: a
game's moves do not depend on which other games shared its batches, so a resumed arena
replays nothing and plays the same games as an uninterrupted one. (Batched matrix products
may round differently from single-row ones in the last bits; a sample changes only when its
uniform draw falls that close to a boundary of the cumulative distribution. `max_batch: 1`
removes even that.)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import torch

from zerosum.arena.config import LocalPlayerConfig
from zerosum.engines.base import ChoiceTrie, Generation, SamplingParams, choice_token_ids
from zerosum.engines.hf import stop_token_ids, top_p_filter
from zerosum.games.base import GameState
from zerosum.players.base import Move


@dataclass
class _Request:
    prompt: list[int]
    choices: list[str] | None
    seed: int
    future: Future = field(default_factory=Future)


class BatchedSampler:
    """A daemon thread that owns the model and decodes waiting requests in batches."""

    def __init__(self, model, tokenizer, params: SamplingParams, max_batch: int = 16):
        self.model, self.tokenizer, self.params, self.max_batch = (
            model,
            tokenizer,
            params,
            max_batch,
        )
        self.stop_ids = stop_token_ids(model, tokenizer)
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self._queue: queue.Queue[_Request] = queue.Queue()
        threading.Thread(target=self._serve, daemon=True, name="arena-sampler").start()

    def generate(self, prompt: list[int], choices: list[str] | None, seed: int) -> Generation:
        request = _Request(prompt, choices, seed)
        self._queue.put(request)
        return request.future.result()

    def _serve(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                gens = self.sample(batch)
            except BaseException as err:  # the waiting games raise it, not this thread
                for r in batch:
                    r.future.set_exception(err)
                continue
            for r, gen in zip(batch, gens):
                r.future.set_result(gen)

    @torch.no_grad()
    def sample(self, batch: Sequence[_Request]) -> list[Generation]:
        """One response per request, each row sampled with its own seeded generator."""
        device = next(self.model.parameters()).device
        gens = [torch.Generator(device="cpu").manual_seed(r.seed) for r in batch]
        tries = [
            ChoiceTrie(choice_token_ids(self.tokenizer, r.choices, self.eos_id))
            if r.choices is not None else None
            for r in batch
        ]  # fmt: skip
        out, attn, next_pos = self._prefill([r.prompt for r in batch], device)
        tokens: list[list[int]] = [[] for _ in batch]
        logps: list[list[float]] = [[] for _ in batch]
        allowed: list[list[list[int]]] = [[] for _ in batch]
        rows, cache = list(range(len(batch))), out.past_key_values
        logits = out.logits[:, -1, :].float().cpu()
        steps = max(self.params.max_new_tokens if t is None else t.depth for t in tries)
        for step in range(steps):
            picks = []
            for j, i in enumerate(rows):
                limit = self.params.max_new_tokens if tries[i] is None else tries[i].depth
                token, lp, ids_allowed = self._pick(logits[j], tries[i], tokens[i], gens[i])
                tokens[i].append(token)
                logps[i].append(lp)
                if ids_allowed is not None:
                    allowed[i].append(ids_allowed)
                picks.append(token if token not in self.stop_ids and step + 1 < limit else None)
            live = [j for j, p in enumerate(picks) if p is not None]
            if not live:
                break
            index = torch.tensor(live)
            if len(live) < len(rows):  # finished rows leave the batch and the KV cache
                cache.reorder_cache(index.to(device))
                attn, next_pos = attn[index], next_pos[index]
            rows = [rows[j] for j in live]
            attn = torch.cat([attn, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
            out = self.model(
                input_ids=torch.tensor([[picks[j]] for j in live]).to(device),
                attention_mask=attn.to(device),
                position_ids=next_pos[:, None].to(device),
                past_key_values=cache,
                use_cache=True,
            )
            cache, next_pos = out.past_key_values, next_pos + 1
            logits = out.logits[:, -1, :].float().cpu()
        return [
            self._generation(t, lp, a, tr) for t, lp, a, tr in zip(tokens, logps, allowed, tries)
        ]

    def _prefill(self, prompts: list[list[int]], device):
        """The left-padded prompts through the model: output, attention mask, next positions."""
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):  # left padding, as HFEngine
            ids[i, width - len(p) :] = torch.tensor(p)
            attn[i, width - len(p) :] = 1
        positions = (attn.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=ids.to(device),
            attention_mask=attn.to(device),
            position_ids=positions.to(device),
            use_cache=True,
            logits_to_keep=1,
        )
        return out, attn, positions[:, -1] + 1

    def _pick(self, logits, trie, prefix, gen) -> tuple[int, float, list[int] | None]:
        """HFEngine's sampling step for one row: temperature, constraint, top-p, draw."""
        params = self.params
        logp = torch.log_softmax(logits[None] / (1.0 if params.greedy else params.temperature), -1)
        ids = None
        if trie is not None:
            ids = trie.allowed(prefix) or [self.eos_id]
            keep = torch.zeros_like(logp, dtype=torch.bool)
            keep[0, ids] = True
            logp = torch.log_softmax(logp.masked_fill(~keep, float("-inf")), dim=-1)
        if params.greedy:
            token = int(logp.argmax(-1))
        else:
            logp = top_p_filter(logp, params.top_p)
            token = int(torch.multinomial(logp.exp(), 1, generator=gen))
        return token, float(logp[0, token]), ids

    def _generation(self, tokens, logps, allowed, trie) -> Generation:
        stopped = bool(tokens) and tokens[-1] in self.stop_ids
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        return Generation(
            tokens, logps, "stop" if stopped else "length", text, allowed if trie else None
        )


class LocalModelPlayer:
    """A local model as a Player; its turns go through the model's shared BatchedSampler."""

    def __init__(self, config: LocalPlayerConfig, tokenizer, sampler: BatchedSampler):
        from zerosum.rollout import RolloutSettings

        self.name = config.name
        self.config = config
        self.tokenizer = tokenizer
        self.sampler = sampler
        self.settings = RolloutSettings(
            answer_mode=config.answer_mode, parser_fallback=config.parser_fallback
        )

    def act(self, state: GameState, rng: np.random.Generator, feedback: str | None = None) -> Move:
        from zerosum.rollout import build_prompt, read_answer

        c = self.config
        prompt = build_prompt(
            self.tokenizer, state, state.current_seat(), c.answer_mode, feedback,
            c.include_rules, c.prompt_format,
        )  # fmt: skip
        legal = state.legal_actions()
        choices = list(legal) if c.answer_mode == "constrained" else None
        gen = self.sampler.generate(prompt, choices, int(rng.integers(2**31)))
        action, reason = read_answer(gen.text, legal, self.settings)
        return Move(action, gen.text, reason)


def local_player(config: LocalPlayerConfig) -> LocalModelPlayer:
    """Load the model (any checkpoint, run directory or HF id) and start its sampler."""
    from zerosum.models import load_model

    model, tokenizer = load_model(config.model, config.dtype)
    params = SamplingParams(config.temperature, config.top_p, config.max_new_tokens)
    return LocalModelPlayer(
        config, tokenizer, BatchedSampler(model, tokenizer, params, config.max_batch)
    )
