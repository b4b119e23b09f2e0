"""`zerosum export`: a training run's checkpoint as a Hugging Face model directory with a model
card, for others to load (transformers, PEFT), serve (vLLM) and compare.

The directory holds the weights in safetensors (a LoRA run's adapter merged into its base, or
with `keep_adapter` the adapter and what it needs to load), the tokenizer with its chat
template, a generation config with the run's evaluation sampling, the run's config
(zerosum_config.json) and README.md: the model card (base model, games and recipe, steps and
compute, evaluation results with 95% intervals where the run has them, license, zerosum
version). It is written beside `out` and renamed into place, so a failed export leaves
nothing half-written under that name.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from zerosum.checkpoint import read_trainer_state
from zerosum.evaluation.games import wilson_interval
from zerosum.models import DEFAULT_MODEL, load_model, resolve_model
from zerosum.players import first_opponent
from zerosum.report.results import is_eval_results
from zerosum.rundir import (
    CONFIG_NAME,
    METRICS_NAME,
    is_run_dir,
    latest_checkpoint,
    read_jsonl,
    step_dirs,
)

CARD_NAME, CONFIG_COPY = "README.md", "zerosum_config.json"
# What the packaged default model is on the Hub (zerosum trains its Q4_1 GGUF, dequantized).
DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
# Licenses known without asking: the default model's and zerosum's own (for tiny models).
KNOWN_LICENSES = {DEFAULT_MODEL: "apache-2.0", "tiny": "apache-2.0"}
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


@dataclass
class Exported:
    """What `export_run` wrote, for the command line's summary."""

    out: Path
    step: int
    adapter: bool  # a PEFT adapter (keep_adapter), else full weights
    card: dict[str, Any] = field(default_factory=dict)  # the card's metadata header
    games: list[str] = field(default_factory=list)  # what it was trained on
    base: str = ""  # the model it was trained from, as `model:` names it ("" for a tiny one)


def find_checkpoint(run_dir: Path, step: int | None) -> Path:
    """RUN/checkpoints/step-N for `step`, else the latest; one-line errors name what exists."""
    if not is_run_dir(run_dir):
        raise ValueError(f"{str(run_dir)!r} is not a training run directory (no config.json)")
    found = step_dirs(run_dir / "checkpoints")
    steps = ", ".join(str(int(p.name[5:])) for p in reversed(found)) or "none"
    if step is None:
        chosen = latest_checkpoint(run_dir) or next(iter(found), None)
        if chosen is None or not chosen.is_dir():
            raise ValueError(f"run {str(run_dir)!r} has no checkpoint to export yet")
        return chosen
    wanted = run_dir / "checkpoints" / f"step-{step:06d}"
    if wanted not in found:
        raise ValueError(
            f"--step {step}: run {str(run_dir)!r} has no such checkpoint; has: {steps}"
        )
    return wanted


def export_run(
    run_dir: Path, out: Path, step: int | None = None, keep_adapter: bool = False,
    license: str | None = None, evals: Sequence[Path] = (),
) -> Exported:  # fmt: skip
    """Export the checkpoint of `run_dir` at `step` (default: the latest) to `out`, which must
    not exist or be empty. `evals`: `zerosum eval --out` files for the card (the run
    directory's own are found too)."""
    run_dir, out = Path(run_dir), Path(out)
    ckpt = find_checkpoint(run_dir, step)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {str(out)!r} exists and is not empty; name a new directory")
    blob = read_trainer_state(ckpt / "trainer_state.pt")
    cfg, state = blob["config"], blob["state"]
    adapter = (ckpt / "model" / ADAPTER_FILES[0]).is_file()
    if keep_adapter and not adapter:
        raise ValueError(
            f"--keep-adapter: checkpoint {ckpt.name} holds full weights (model.lora was false); "
            "export it without --keep-adapter"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        if keep_adapter:
            _write_adapter(ckpt, cfg, tmp)
        else:
            _write_full(ckpt, cfg, tmp)
        rows, _ = read_jsonl(run_dir / METRICS_NAME, strict=False)
        rows = [r for r in rows if r["step"] <= state["step"]]
        found = [*evals, *sorted(p for p in run_dir.glob("*.json") if p.name != CONFIG_NAME)]
        results = [(p, data) for p in found if is_eval_results(data := _read_json(p))]
        card = card_metadata(cfg, adapter and keep_adapter, license)
        text = model_card(card, cfg, state, rows, results, run_dir.name, keep_adapter, adapter)
        (tmp / CARD_NAME).write_text(text)
        saved = {**cfg, "run": {**cfg["run"], "out_dir": run_dir.name}}  # no machine paths
        (tmp / CONFIG_COPY).write_text(json.dumps(saved, indent=2) + "\n")
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    base = "" if cfg["model"]["tiny"] else cfg["model"]["name"]
    return Exported(out, state["step"], keep_adapter, card, list(cfg["rollout"]["games"]), base)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"--eval {str(path)!r} does not exist") from None
    except (OSError, ValueError):
        return None


def _tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def _generation_config(cfg: dict, tokenizer, base=None):
    """The run's evaluation sampling (`eval.temperature`, `eval.top_p`) and answer length
    (`sampling.max_new_tokens`) on top of `base` (the model's own, if any)."""
    from transformers import GenerationConfig

    gen = GenerationConfig.from_dict(base.to_dict()) if base is not None else GenerationConfig()
    e = cfg["eval"]
    gen.do_sample = e["temperature"] > 0
    gen.temperature = e["temperature"] if gen.do_sample else None
    gen.top_p = e["top_p"] if gen.do_sample else None
    gen.max_new_tokens = cfg["sampling"]["max_new_tokens"]
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(gen, name, None) is None:
            setattr(gen, name, getattr(tokenizer, name, None))
    return gen


def _write_full(ckpt: Path, cfg: dict, out: Path) -> None:
    """Full weights: the checkpoint's model, or its adapter merged into its base."""
    from transformers.utils import logging as hf_logging

    model, _ = load_model(str(ckpt), cfg["model"]["dtype"])  # merges an adapter
    tokenizer = _tokenizer(ckpt / "model")  # as saved: no padding side of ours
    model.generation_config = _generation_config(cfg, tokenizer, model.generation_config)
    hf_logging.disable_progress_bar()  # a one-off command: its own summary line says enough
    model.save_pretrained(out)  # safetensors
    tokenizer.save_pretrained(out)


def _write_adapter(ckpt: Path, cfg: dict, out: Path) -> None:
    """The adapter as trained, with a base others can load: a hub id or path stays as the
    config names it; a tiny model's random base or the packaged default model's converted
    copy (which only this machine has) goes into OUT/base, named relative to the adapter."""
    adapter_dir = ckpt / "model"
    for name in ADAPTER_FILES:
        shutil.copyfile(adapter_dir / name, out / name)
    tokenizer = _tokenizer(adapter_dir)
    tokenizer.save_pretrained(out)
    config = json.loads((adapter_dir / ADAPTER_FILES[0]).read_text())
    base = config.get("base_model_name_or_path") or ""
    local = adapter_dir / base
    source = None
    if base and not os.path.isabs(base) and local.is_dir():
        source = local.resolve()
    elif base == DEFAULT_MODEL:
        source = Path(resolve_model(base))
    if source is not None:
        shutil.copytree(source, out / "base", ignore=shutil.ignore_patterns(".*"))
        config["base_model_name_or_path"] = "base"
    (out / ADAPTER_FILES[0]).write_text(json.dumps(config, indent=2) + "\n")
    _generation_config(cfg, tokenizer).save_pretrained(out)


# --- the model card --------------------------------------------------------------------


def card_metadata(cfg: dict, adapter: bool, license: str | None) -> dict[str, Any]:
    """The card's YAML header (the Hub reads it): license, base model, library, tags."""
    m = cfg["model"]
    key = "tiny" if m["tiny"] else m["name"]
    meta: dict[str, Any] = {"license": license or KNOWN_LICENSES.get(key, "other")}
    if not m["tiny"]:
        meta["base_model"] = DEFAULT_HUB_ID if m["name"] == DEFAULT_MODEL else m["name"]
    meta["library_name"] = "peft" if adapter else "transformers"
    meta["pipeline_tag"] = "text-generation"
    meta["tags"] = ["zerosum", "self-play", "reinforcement-learning", *cfg["rollout"]["games"]]
    return meta


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _rate(p: float | None, n: int) -> str:
    if p is None or not isinstance(p, int | float) or math.isnan(p):
        return "-"
    lo, hi = wilson_interval(round(p * n), n)
    return f"{p:.3f} [{lo:.3f}, {hi:.3f}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def _yaml_header(meta: dict[str, Any]) -> list[str]:
    import yaml

    return ["---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", ""]


def model_card(
    meta: dict[str, Any], cfg: dict, state: dict, rows: list[dict],
    results: Sequence[tuple[Path, dict]], name: str, keep_adapter: bool, lora: bool,
) -> str:  # fmt: skip
    """README.md of an exported model: a function of the run's files only."""
    m, r, a, o = cfg["model"], cfg["rollout"], cfg["algo"], cfg["optim"]
    try:
        version = metadata.version("zerosum")
    except metadata.PackageNotFoundError:
        version = "unknown"
    if m["tiny"]:
        base = (
            f"a tiny randomly initialised {m.get('tiny_family', 'smollm2')} model "
            f"({m['tiny_hidden_size']} hidden, "
            f"{m['tiny_layers']} layers, built in code for tests)"
        )
    elif m["name"] == DEFAULT_MODEL:
        base = f"[{DEFAULT_HUB_ID}](https://huggingface.co/{DEFAULT_HUB_ID}) (its Q4_1 GGUF, dequantized)"
    else:
        base = f"`{m['name']}`"
    weights = (
        f"a LoRA adapter (rank {m['lora_rank']}, alpha {m['lora_alpha']}) on its base"
        if keep_adapter
        else "the LoRA adapter merged into the base weights"
        if lora
        else "all weights trained"
    )
    games = ", ".join(f"{g} ({w:g})" for g, w in r["games"].items())
    lines = [
        *_yaml_header(meta),
        f"# {name}",
        "",
        f"Trained by self-play reinforcement learning with zerosum {version}: one policy plays both seats of two-player zero-sum games and learns from the "
        "outcomes (SPIRAL, arXiv 2506.24119: role-conditioned advantage estimation).",
        "",
        "## Model",
        "",
        f"- Base model: {base}",
        f"- Weights: {weights}; dtype {m['dtype']}",
        "- Chat template: the base tokenizer's (chat_template.jinja)",
        f"- License: {meta['license']}"
        + (
            " (the base model's license applies; set it with --license)"
            if meta["license"] == "other"
            else ""
        ),
        "",
        "## Games and recipe",
        "",
        f"- Games (mixture weights): {games}",
        f"- Answers: {r['answer_mode']}, prompt format {r['prompt_format']}, rules in the prompt: "
        f"{r['include_rules']}, invalid moves: {r['invalid_mode']}",
        f"- Self-play sampling: temperature {cfg['sampling']['temperature']}, top-p "
        f"{cfg['sampling']['top_p']}, up to {cfg['sampling']['max_new_tokens']} new tokens",
        f"- Loss: {a['loss']} ({a['ppo_epochs']} epochs, clip {a['clip_eps']}), "
        + (f"RAE (decay {a['rae_decay']}, baseline {a['baseline']})" if a["rae"] else "no RAE")
        + f", regularizer {a['regularizer']}, "
        f"entropy {a['entropy_coef']}",
        f"- Optimizer: {o['optimizer']}, learning rate {o['lr']} ({o['lr_schedule']}), betas "
        f"{o['beta1']}/{o['beta2']}, gradient clip {o['grad_clip']}",
        f"- The whole config: {CONFIG_COPY}",
        "",
        "## Steps and compute",
        "",
        *_compute(cfg, state, rows),
        "",
        "## Evaluation",
        "",
        *_evaluation(cfg, rows),
        *_eval_files(results, name),
        "",
        "## Use",
        "",
        *_usage(keep_adapter, next(iter(r["games"]))),
        "",
    ]
    return "\n".join(lines)


def _compute(cfg: dict, state: dict, rows: list[dict]) -> list[str]:
    def total(key: str) -> float:
        return sum(v for row in rows if isinstance(v := row.get(key), int | float))

    seconds = sum(total(k) for k in ("perf/rollout_s", "perf/learn_s"))
    spent = (
        f"{seconds / 3600:.1f} h" if seconds >= 3600
        else f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
    )  # fmt: skip
    gpu = any("perf/gpu_peak_gib" in row for row in rows)
    d = cfg["distributed"]
    where = f"{d['backend']} backend" + (
        f", {d['rollout_workers']} rollout workers, {d['learner_ranks']} learner ranks"
        if d["backend"] == "ray"
        else ""
    )
    return [
        f"- Steps: {state['step']} of {cfg['run']['steps']} "
        f"({cfg['rollout']['games_per_step']} games per step), {state['games_played']} games "
        "of self-play in all",
        f"- Training time (rollouts and learner, evaluation aside): {spent} on "
        f"{'a GPU' if gpu else 'CPUs'} ({where}, seed {cfg['run']['seed']})",
    ]


def _evaluation(cfg: dict, rows: list[dict]) -> list[str]:
    """The run's last online evaluation (metrics.jsonl `eval/` keys) up to the exported step."""
    evaluated = [row for row in rows if any(k.startswith("eval/") for k in row)]
    if not evaluated:
        return ["The run has no online evaluation up to this step (run.eval_every)."]
    last = evaluated[-1]
    e = cfg["eval"]
    n = int(e["n"])
    lines = [f"Online evaluation after step {last['step']} (metrics.jsonl):", ""]
    nash = [
        (g, last[f"eval/{g}/nash_conv"]) for g in e["nash_conv"] if f"eval/{g}/nash_conv" in last
    ]
    if nash:
        lines += _table(("game", "NashConv (exact; 0 is an equilibrium)"),
                        [(g, f"{v:.4f}") for g, v in nash])  # fmt: skip
        lines.append("")
    rows_out = []
    for game in e["games"]:
        for spec in e["opponents"]:
            k = f"eval/{game}/{spec}"
            if f"{k}/win_rate" not in last:
                continue
            rows_out.append((
                game, spec, n, _rate(last[f"{k}/win_rate"], n), _rate(last[f"{k}/draw_rate"], n),
                _rate(last[f"{k}/loss_rate"], n), _rate(last[f"{k}/invalid_rate"], n),
                f"{last[f'{k}/mean_return']:+.3f}",
            ))  # fmt: skip
    if rows_out:
        header = ("game", "opponent", "games", "win [95% CI]", "draw [95% CI]", "loss [95% CI]",
                  "forfeit [95% CI]", "mean return")  # fmt: skip
        lines += _table(header, rows_out)
        lines += ["", f"Temperature {e['temperature']}, top-p {e['top_p']}; seats alternate; "
                  "intervals: Wilson 95%."]  # fmt: skip
    return lines


def _eval_files(results: Sequence[tuple[Path, dict]], run_name: str) -> list[str]:
    """`zerosum eval --out` results: each opponent's rates with their intervals, NashConv."""
    lines = []
    for path, res in results:
        s = res.get("settings", {})
        model = str(s.get("model", "?"))
        shown = Path(model).name if model.startswith(("/", ".", "~")) else model
        lines += ["", f"`zerosum eval` ({path.name}): model `{shown}`, temperature "
                  f"{s.get('temperature')}, top-p {s.get('top_p')}, seed {s.get('seed')}", ""]  # fmt: skip
        table = []
        for game, per_game in res.get("games", {}).items():
            for spec, o in per_game.get("opponents", {}).items():
                cells = [
                    f"{o[f'{k}_rate']:.3f} [{o[f'{k}_ci95'][0]:.3f}, {o[f'{k}_ci95'][1]:.3f}]"
                    for k in ("win", "draw", "loss")
                ]
                ret = o.get("mean_return_ci95", [math.nan, math.nan])
                table.append((game, spec, o.get("games"), *cells,
                              f"{o['mean_return']:+.3f} [{ret[0]:+.3f}, {ret[1]:+.3f}]"))  # fmt: skip
        if table:
            header = ("game", "opponent", "games", "win [95% CI]", "draw [95% CI]",
                      "loss [95% CI]", "mean return [95% CI]")  # fmt: skip
            lines += [*_table(header, table), ""]
        for game, per_game in res.get("games", {}).items():
            if "exploitability" in per_game:
                nash_conv = per_game["exploitability"]["nash_conv"]
                lines.append(f"- {game}: NashConv {nash_conv:.4f} (0 is an equilibrium)")
        for bench, r in res.get("math", {}).items():
            lines.append(f"- {bench}: pass@1 {r['pass@1']:.3f} over {r['problems']} problems")
    return lines


def _try_it(game: str) -> str:
    other = first_opponent(game, "BASE")
    where = "" if other == "random" else " (BASE: the model it was trained from)"
    return f"Try it: `zerosum match --game {game} --players model:PATH {other}`{where}."


def _usage(keep_adapter: bool, game: str) -> list[str]:
    load = (
        [
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            "base = AutoModelForCausalLM.from_pretrained(BASE)  # adapter_config.json names it",
            "model = PeftModel.from_pretrained(base, PATH)",
        ]
        if keep_adapter
        else [
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            "model = AutoModelForCausalLM.from_pretrained(PATH)",
        ]
    )
    return [
        "```python",
        *load,
        "tokenizer = AutoTokenizer.from_pretrained(PATH)",
        "```",
        "",
        _try_it(game),
    ]
