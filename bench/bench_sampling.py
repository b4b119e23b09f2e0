"""The hf engine's per-token sampler: inverse-CDF draws (`engines.hf.draw`) against
`torch.multinomial`, which it replaced, measured side by side on the same probabilities.

Each decode step samples one token per row from [rows, vocab] probabilities; with
`generate(seeds=...)` (every answer of the game loop has its own seed) each row has its own
generator, so `torch.multinomial` ran once per row. Constrained answers (a legal action only)
now score only the allowed token columns instead of masking the whole vocabulary.

    .venv/bin/python bench/bench_sampling.py
"""

from __future__ import annotations

import argparse
import time

import torch

from zerosum.engines.hf import draw

VOCAB = 49152  # SmolLM2's, also the tiny test models'


def best_of(fn, repeats: int, *args) -> float:
    """Fastest of `repeats` timings of fn(*args), in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def uniforms(gens: list[torch.Generator]) -> torch.Tensor:
    return torch.cat([torch.rand(1, generator=g) for g in gens])


def multinomial(probs: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
    """The sampler before: one `torch.multinomial` call per row and generator."""
    draws = [torch.multinomial(probs[j : j + 1], 1, generator=g) for j, g in enumerate(gens)]
    return torch.cat(draws).squeeze(1)


def inverse_cdf(probs: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
    return draw(probs, uniforms(gens))


def masked_vocabulary(logits, allowed, gens) -> torch.Tensor:
    """The constrained path before: log-softmax over the vocabulary, mask, renormalise."""
    logp = torch.log_softmax(logits, -1)
    keep = torch.zeros_like(logp, dtype=torch.bool).scatter(1, allowed, True)
    logp = torch.log_softmax(logp.masked_fill(~keep, float("-inf")), -1)
    return draw(logp.exp(), uniforms(gens))


def allowed_columns(logits, allowed, gens) -> torch.Tensor:
    """The constrained path now: only the allowed tokens' logits."""
    logp = torch.log_softmax(logits.gather(1, allowed), -1)
    return allowed.gather(1, draw(logp.exp(), uniforms(gens))[:, None]).squeeze(1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", default="16,64,256")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, vocabulary {VOCAB}")
    print(
        "rows | multinomial per row (ms) | inverse CDF (ms) | speed-up | "
        "constrained: masked vocabulary (ms) | allowed columns (ms) | speed-up"
    )
    for rows in map(int, a.rows.split(",")):
        logits = torch.randn(rows, VOCAB, generator=torch.Generator().manual_seed(rows))
        probs = torch.softmax(logits, -1)
        gens = [torch.Generator().manual_seed(i) for i in range(rows)]
        allowed = torch.tensor([[1000, 2000]] * rows)  # two legal actions, say [check], [bet]
        t_old = best_of(multinomial, a.repeats, probs, gens)
        t_new = best_of(inverse_cdf, a.repeats, probs, gens)
        t_mask = best_of(masked_vocabulary, a.repeats, logits, allowed, gens)
        t_cols = best_of(allowed_columns, a.repeats, logits, allowed, gens)
        print(
            f"{rows} | {t_old:.1f} | {t_new:.1f} | {t_old / t_new:.1f}x | "
            f"{t_mask:.1f} | {t_cols:.2f} | {t_mask / t_cols:.0f}x"
        )


if __name__ == "__main__":
    main()
