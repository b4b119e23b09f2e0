"""Local models in the arena: one decoding thread per model batches the turns of all games.

Each game runs in its own thread (`zerosum.arena.run`); a local model's turn is a request to
its model's `BatchedSampler`, which decodes whatever requests are waiting as one
`HFEngine.generate` batch. Every request carries its own seed (drawn from its game's RNG) and
the engine samples each row with its own generator (`seeds`), exactly as
`HFEngine.generate([prompt], params, seed=seed)` samples it alone: a game's moves do not
depend on which other games shared its batches, so a resumed arena replays nothing and plays
the same games as an uninterrupted one. (Batched matrix products may round differently from
single-row ones in the last bits; a sample changes only when its uniform draw falls that close
to a boundary of the cumulative distribution. `max_batch: 1` removes even that.)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from zerosum.arena.config import LocalPlayerConfig
from zerosum.engines.base import Generation, SamplingParams
from zerosum.engines.hf import HFEngine
from zerosum.models import load_model
from zerosum.players.model import ModelPlayer


@dataclass
class _Request:
    prompt: list[int]
    choices: list[str] | None
    seed: int
    future: Future = field(default_factory=Future)


class BatchedSampler:
    """A daemon thread that owns the model and decodes waiting requests in batches."""

    def __init__(self, model, tokenizer, params: SamplingParams, max_batch: int = 16):
        self.engine = HFEngine(model, tokenizer, max_batch=max_batch)
        self.params, self.max_batch = params, max_batch
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        threading.Thread(target=self._serve, daemon=True, name="arena-sampler").start()

    def generate(self, prompt: list[int], choices: list[str] | None, seed: int) -> Generation:
        request = _Request(prompt, choices, seed)
        self._queue.put(request)
        return request.future.result()

    def close(self) -> None:
        """End the decoding thread once the waiting requests are served (it then holds the
        model no longer); no request may follow."""
        self._queue.put(None)

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:  # served after this batch
                    self._queue.put(None)
                    break
                batch.append(nxt)
            try:
                gens = self.sample(batch)
            except BaseException as err:  # the waiting games raise it, not this thread
                for r in batch:
                    r.future.set_exception(err)
                continue
            for r, gen in zip(batch, gens):
                r.future.set_result(gen)

    def sample(self, batch: Sequence[_Request]) -> list[Generation]:
        """One response per request, each row sampled with its own seeded generator.

        The engine constrains all prompts of a call or none, so free and constrained requests
        (one player has only one kind) go in separate calls; per-row seeds make that split
        invisible in the samples."""
        out: dict[int, Generation] = {}
        for constrained in (False, True):
            group = [k for k, r in enumerate(batch) if (r.choices is not None) == constrained]
            if not group:
                continue
            gens = self.engine.generate(
                [batch[k].prompt for k in group],
                self.params,
                [batch[k].choices for k in group] if constrained else None,
                seeds=[batch[k].seed for k in group],
            )
            out.update(zip(group, gens))
        return [out[k] for k in range(len(batch))]


def local_player(config: LocalPlayerConfig) -> ModelPlayer:
    """Load the model (any checkpoint, run directory or HF id) and start its sampler; the
    player asks and reads as its settings say."""
    return local_player_and_sampler(config)[0]


def local_player_and_sampler(config: LocalPlayerConfig) -> tuple[ModelPlayer, BatchedSampler]:
    """`local_player` and its sampler, whose engine (`sampler.engine`) can also answer other
    prompts while no game is in flight (a benchmark's math problems)."""
    model, tokenizer = load_model(config.model, config.dtype)
    params = SamplingParams(config.temperature, config.top_p, config.max_new_tokens)
    sampler = BatchedSampler(model, tokenizer, params, config.max_batch)
    return ModelPlayer(config.name, tokenizer, sampler.generate, config.prompting), sampler
