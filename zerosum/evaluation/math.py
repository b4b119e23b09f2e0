"""Reasoning transfer: math benchmarks graded with math-verify, pass@1 over k samples.

Problems come from JSONL files with a `problem` or `question` field and an `answer` field
(GSM8K's answer is the text after `####`). The test sets of MATH500, GSM8K, AIME24 and AMC23
ship with the package and are named by their short names (`math500`, `gsm8k`, `aime24`,
`amc23`); `$ZEROSUM_BENCHMARKS` names another folder of such files. Prompts use the model's
chat template.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from zerosum.engines.base import Engine, SamplingParams
from zerosum.games.parsing import math_equal, split_thinking
from zerosum.prompts import chat_prompt
from zerosum.typed_config import POSITIVE

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


PACKAGED_DIR = Path(__file__).resolve().parent.parent / "data" / "benchmarks"


def benchmark_dir() -> Path:
    """Where short benchmark names are looked up: `$ZEROSUM_BENCHMARKS`, else the package's."""
    return Path(os.environ.get("ZEROSUM_BENCHMARKS") or PACKAGED_DIR)


def packaged_benchmarks() -> list[str]:
    """Short names of the benchmarks that `--math NAME` finds."""
    return sorted(p.stem for p in benchmark_dir().glob("*.jsonl"))


def resolve_source(source: str | Path) -> str | Path:
    """A short benchmark name (`gsm8k`) becomes its file; paths and `hf:` ids pass through."""
    text = str(source)
    if text.startswith("hf:") or Path(text).suffix or "/" in text:
        return source
    path = benchmark_dir() / f"{text}.jsonl"
    if not path.is_file():
        raise ValueError(
            f"unknown benchmark {text!r}; valid: {', '.join(packaged_benchmarks())}, "
            "a JSONL path, or hf:NAME[:CONFIG]:SPLIT"
        )
    return path


@dataclass(frozen=True)
class Problem:
    question: str
    answer: str


def _rows(source: str | Path):
    """(label, record) pairs of a JSONL file, or of `hf:NAME[:CONFIG]:SPLIT` (Hugging Face
    `datasets`, which then needs the package and hub access or a local cache)."""
    source = resolve_source(source)
    text = str(source)
    if text.startswith("hf:"):
        parts = text[3:].split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"dataset id {text!r} must look like hf:NAME[:CONFIG]:SPLIT")
        try:
            import datasets
        except ImportError:
            raise ValueError(
                f"dataset id {text!r} needs the `datasets` package: pip install datasets"
            ) from None
        name, *config, split = parts
        for number, row in enumerate(datasets.load_dataset(name, *config, split=split), 1):
            yield f"{text} row {number}", dict(row)
        return
    p = Path(source)
    if not p.is_file():
        raise ValueError(
            f"benchmark file {str(p)!r} does not exist (give a JSONL path or hf:NAME:SPLIT)"
        )
    for number, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"{p.name} line {number} is not JSON") from None
        if not isinstance(row, dict):
            raise ValueError(
                f"{p.name} line {number} is a JSON {type(row).__name__}, not an object with "
                "'problem' or 'question', and 'answer'"
            )
        yield f"{p.name} line {number}", row


def load_problems(source: str | Path, limit: int | None = None) -> list[Problem]:
    """Problems of a JSONL file or dataset id; a one-line error names a bad source or record."""
    problems = []
    for label, row in _rows(source):
        question = row.get("problem") or row.get("question")
        answer = row.get("answer")
        if not question or answer is None:
            raise ValueError(f"{label} needs 'problem' or 'question', and 'answer'")
        answer = str(answer)
        if "####" in answer:  # GSM8K: worked solution, then '#### final'
            answer = answer.rsplit("####", 1)[1]
        problems.append(Problem(question, answer.strip().replace(",", "")))
        if limit is not None and len(problems) >= limit:
            break
    return problems


def grade(response: str, answer: str) -> bool:
    """True when the response's final answer (outside its thinking block) is mathematically
    equal to `answer` (in any thread)."""
    return math_equal(split_thinking(response).answer[-20_000:], answer)  # untrusted: bounded


def math_prompt(tokenizer, question: str) -> list[int]:

    return chat_prompt(tokenizer, f"{question}\n\n{MATH_INSTRUCTION}")


def evaluate_math(
    engine: Engine,
    tokenizer,
    problems: list[Problem],
    params: SamplingParams,
    *,
    k: int = 1,
    seed: int = 0,
) -> dict:
    """pass@1 averaged over `k` samples per problem (sampled with `params`, seeded from
    `seed`), with the per-problem correct counts and the mean response length."""
    POSITIVE.check("samples per problem", k)
    prompts = [math_prompt(tokenizer, p.question) for p in problems for _ in range(k)]
    correct = [0] * len(problems)
    length = 0
    # The engine batches (hf: max_batch at a time, each chunk seeded seed + its start).
    for i, gen in enumerate(engine.generate(prompts, params, seed=seed)):
        correct[i // k] += grade(gen.text, problems[i // k].answer)
        length += len(gen.token_ids)
    n = max(len(problems), 1)
    return {
        "problems": len(problems),
        "samples_per_problem": k,
        "pass@1": sum(c / k for c in correct) / n,
        "mean_response_tokens": length / max(len(prompts), 1),
        "correct_per_problem": correct,
    }
