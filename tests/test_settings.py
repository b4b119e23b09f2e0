"""Each default lives in the config dataclasses; the settings objects built from them agree."""

import dataclasses
import inspect

import pytest

from zerosum.cli import build_parser
from zerosum.config import TrainConfig, VLLMConfig, load_config
from zerosum.evaluation.settings import EvalSettings
from zerosum.learner import LearnerSettings
from zerosum.prompts import Prompting
from zerosum.rollout import EVAL_INVALID, InvalidMovePolicy, RolloutSettings


def test_default_settings_are_the_default_configs():
    cfg = dataclasses.replace(
        TrainConfig(), optim=dataclasses.replace(TrainConfig().optim, bf16=False)
    )
    assert LearnerSettings.from_config(cfg) == LearnerSettings()
    assert RolloutSettings.from_config(cfg.rollout) == RolloutSettings()
    assert RolloutSettings().invalid == InvalidMovePolicy("forfeit", loss=-1.5, win=0.5)
    assert InvalidMovePolicy("forfeit", loss=-1.0, win=1.0) == EVAL_INVALID


def test_learner_settings_read_every_field_of_their_sections():
    cfg = load_config(overrides=[
        "algo.loss=reinforce", "algo.ppo_epochs=3", "algo.clip_eps=0.3", "algo.aggregation=mean",
        "algo.norm_constant=10", "algo.regularizer=magnet", "algo.magnet_alpha=0.1",
        "algo.entropy_coef=0.2", "optim.grad_clip=2",
        "optim.micro_batch_tokens=99", "sampling.temperature=0.7", "optim.bf16=true",
        "optim.shared_prefix=false",
    ])  # fmt: skip
    assert LearnerSettings.from_config(cfg) == LearnerSettings(
        loss="reinforce", epochs=3, clip_eps=0.3, aggregation="mean", norm_constant=10.0,
        entropy_coef=0.2, grad_clip=2.0, micro_batch_tokens=99, temperature=0.7,
        shared_prefix=False,
        bf16=True,
    )  # fmt: skip
    with pytest.raises(ValueError, match="optim.bf16 = 'auto' must be resolved"):
        LearnerSettings.from_config(load_config())


def test_rollout_settings_read_every_field_of_their_section():
    cfg = load_config(overrides=[
        "rollout.answer_mode=constrained", "rollout.parser_fallback=none", "rollout.max_turns=7",
        "rollout.max_concurrent=3", "rollout.include_rules=false", "rollout.prompt_format=plain",
        "rollout.invalid_mode=retry", "rollout.invalid_loss=-2", "rollout.invalid_win=1",
        "rollout.invalid_retries=4",
    ])  # fmt: skip
    asking = Prompting(
        answer_mode="constrained", parser_fallback="none", include_rules=False,
        prompt_format="plain",
    )  # fmt: skip
    assert RolloutSettings.from_config(cfg.rollout) == RolloutSettings(
        prompting=asking, max_turns=7, max_concurrent=3,
        invalid=InvalidMovePolicy("retry", loss=-2.0, win=1.0, retries=4),
    )  # fmt: skip


def test_eval_command_defaults_are_the_settings_defaults():
    """Every field of `EvalSettings` is a flag whose default is the field's own (a list
    comma-separated, a bool that is true by default turned off by its flag)."""
    args = build_parser().parse_args(["eval", "--model", "m"])
    defaults = EvalSettings(model="m")
    for f in dataclasses.fields(EvalSettings):
        assert getattr(args, f.name) == getattr(defaults, f.name), f.name
    flags = build_parser().parse_args(
        ["eval", "--model", "m", "--no-rules", "--vllm-compile", "--games", "a,b", "--limit", "3"]
    )
    assert (flags.include_rules, flags.vllm_eager, flags.games, flags.limit) == (
        False, False, ["a", "b"], 3,
    )  # fmt: skip
    settings = RolloutSettings.from_config(defaults, invalid=EVAL_INVALID)
    assert settings == RolloutSettings(invalid=EVAL_INVALID)


def test_vllm_engine_options_are_the_config_section():
    from zerosum.engines.vllm import VLLMEngine

    params = inspect.signature(VLLMEngine).parameters
    for f in dataclasses.fields(VLLMConfig):
        assert params[f.name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[f.name].default == f.default, f.name


def test_the_magnet_reads_every_field_of_the_algo_section(tiny):
    """`Magnet.from_config`: the weight, its annealing and the reset period; the weight of
    step 1 and after the annealing, and the replacement when it is due."""
    from zerosum.magnet import Magnet

    cfg = load_config(overrides=[
        "algo.regularizer=magnet", "algo.magnet_alpha=0.8", "algo.magnet_reset=3",
        "algo.magnet_anneal_steps=4", "algo.magnet_alpha_final=0.05",
    ])  # fmt: skip
    magnet = Magnet.from_config(cfg.algo, tiny)
    assert (magnet.alpha, magnet.reset_every, magnet.anneal_steps, magnet.alpha_final) == (
        0.8, 3, 4, 0.05,
    )  # fmt: skip
    assert magnet.weight(1) == 0.8 and magnet.weight(9) == pytest.approx(0.05)
    assert magnet.metrics(3) == {"magnet/alpha": magnet.weight(3), "magnet/age": 2.0}
    magnet.after_update(2)
    assert magnet.snapshot.step == 0  # not due
    magnet.after_update(3)
    assert magnet.snapshot.step == 3 and magnet.is_policy(4)
    assert not magnet.is_policy(5) and not magnet.is_policy(None)
