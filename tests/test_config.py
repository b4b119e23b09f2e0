from pathlib import Path

import pytest
import torch

from zerosum.cli import main
from zerosum.config import ConfigError, config_help, load_config
from zerosum.config_checks import check_config
from zerosum.games import game_names

# Training recipes; configs/arena_*.yaml are arena configs (tests/test_arena.py loads them).
RECIPES = sorted(
    p for p in Path(__file__).parent.parent.glob("configs/*.yaml") if not p.name.startswith("arena")
)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_recipe_loads(path):
    cfg = load_config(path)
    assert cfg.rollout.games


def test_overrides_are_typed():
    cfg = load_config(
        None, ["optim.lr=1e-6", "rollout.games={kuhn_poker: 1, tic_tac_toe: 2}", "algo.rae=false"]
    )
    assert cfg.optim.lr == 1e-6 and isinstance(cfg.optim.lr, float)
    assert cfg.rollout.games == {"kuhn_poker": 1, "tic_tac_toe": 2}
    assert cfg.algo.rae is False


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "algo.loss=grpo",
            "config field 'algo.loss' = 'grpo' is invalid; allowed: one of 'reinforce', 'ppo'",
        ),
        (
            "sampling.temperature=0",
            "'sampling.temperature' = 0.0 is invalid; allowed: a number in (0, 100] (training "
            "samples its moves; greedy decoding, temperature 0, is for eval.temperature)",
        ),
        ("sampling.temperature=.inf", "'sampling.temperature' = inf is invalid; allowed: a finite"),
        ("sampling.temperature=1000", "'sampling.temperature' = 1000.0 is invalid"),
        ("optim.lr=1e400", "'optim.lr' = inf is invalid; allowed: a finite number"),
        ("optim.lr=2", "'optim.lr' = 2.0 is invalid; allowed: a number in (0, 1]"),
        ("optim.beta2=1", "'optim.beta2' = 1.0 is invalid; allowed: a number in [0, 1)"),
        ("algo.clip_eps=.nan", "'algo.clip_eps' = nan is invalid; allowed: a finite number"),
        ("rollout.invalid_win=-.inf", "'rollout.invalid_win' = -inf is invalid"),
        (
            "rollout.games={kuhn_poker: .nan}",
            "'rollout.games' value of 'kuhn_poker' = nan is invalid; allowed: a finite number",
        ),
        ("run.steps=true", "'run.steps' = True is invalid; allowed: int"),
        ("run.seed=-1", "'run.seed' = -1 is invalid; allowed: an integer in [0, 2**32)"),
        ("eval.temperature=-0.5", "'eval.temperature' = -0.5 is invalid; allowed: a number in [0"),
        ("eval.opponents=[nash:0]", "'eval.opponents': bad player 'nash:0': CFR+ iterations"),
        ("eval.opponents=[mcts:abc]", "'eval.opponents': bad player 'mcts:abc': MCTS simulations"),
        ("model.nme=x", "unknown config field 'model.nme'; valid fields: model.name"),
        ("rollout.games=chess", "'rollout.games' = 'chess' is invalid; allowed: dict"),
        ("eval.games=kuhn", "'eval.games' = 'kuhn' is invalid; allowed: list"),
        ("algo.kl_coef=0.1", "'algo.kl_coef' was replaced; write algo.regularizer: magnet, "),
        ("algo.regularizer=kl", "'algo.regularizer' = 'kl' is invalid; allowed: one of 'none'"),
        ("algo.magnet_alpha=-1", "'algo.magnet_alpha' = -1.0 is invalid; allowed: a number >= 0"),
        ("algo.magnet_reset=-2", "'algo.magnet_reset' = -2 is invalid; allowed: an integer >= 0"),
        ("rollout.games={go: 1}", "unknown game 'go'; valid games: " + ", ".join(game_names())),
        (
            "sampling.max_new_tokens=abc",
            "'sampling.max_new_tokens' = 'abc' is invalid; allowed: int",
        ),
        ("optim.lr=true", "'optim.lr' = True is invalid; allowed: float"),
        ("model=3", "config section 'model' must be a mapping, got 3"),
        ("model.device=gpu", "'model.device' = 'gpu' is invalid; allowed: auto, cpu, cuda or"),
        (
            "vllm.lora_sync=lora",
            "'vllm.lora_sync' = 'lora' is invalid; allowed: one of 'auto', 'adapter', 'merge'",
        ),
        (
            "vllm.tensor_parallel_size=0",
            "'vllm.tensor_parallel_size' = 0 is invalid; allowed: an integer >= 1",
        ),
        ("nonsense", "override 'nonsense' must look like section.field=value"),
        ("distributed.backend=mpi", "'distributed.backend' = 'mpi' is invalid; allowed: one of"),
        ("distributed.mode=eager", "'distributed.mode' = 'eager' is invalid; allowed: one of"),
        (
            "distributed.rollout_workers=0",
            "'distributed.rollout_workers' = 0 is invalid; allowed: an integer in [1, 4096]",
        ),
        ("distributed.learner_ranks=0", "'distributed.learner_ranks' = 0 is invalid"),
        ("distributed.max_staleness=-1", "'distributed.max_staleness' = -1 is invalid"),
        (
            "distributed.tis_cap=0.5",
            "'distributed.tis_cap' = 0.5 is invalid; allowed: a number >= 1",
        ),
        ("distributed.tis_cap=.nan", "'distributed.tis_cap' = nan is invalid; allowed: a finite"),
        ("distributed.ray_address=''", "'distributed.ray_address' = '' is invalid; allowed: null"),
        (
            "distributed.mode=async",
            "'distributed.mode' = 'async' needs distributed.backend = 'ray'",
        ),
        (
            "sampling.reasoning_temperature=0",
            "'sampling.reasoning_temperature' = 0.0 is invalid; allowed: a number in (0, 100]",
        ),
        (
            "sampling.reasoning_temperature=0.7",
            "'sampling.reasoning_temperature' = 0.7 applies to rollout.answer_mode = 'reasoned'",
        ),
        (
            "algo.reasoning_weight=1.5",
            "'algo.reasoning_weight' = 1.5 is invalid; allowed: a number in [0, 1]",
        ),
        (
            "algo.reasoning_weight=0",
            "'algo.reasoning_weight' = 0.0 applies to rollout.answer_mode = 'reasoned' only",
        ),
        (
            "algo.reasoning_kl_weight=1",
            "'algo.reasoning_kl_weight' = 1.0 applies to rollout.answer_mode = 'reasoned' only "
            "(here 'free'); set it to null",
        ),
        (
            "algo.reasoning_kl_weight=-0.5",
            "'algo.reasoning_kl_weight' = -0.5 is invalid; allowed: a number in [0, 1] or null",
        ),
        (
            "algo.move_kl_weight=0",
            "'algo.move_kl_weight' = 0.0 applies to rollout.answer_mode = 'reasoned' only",
        ),
        (
            "algo.magnet_model=smollm2-135m-instruct",
            "'algo.magnet_model' = 'smollm2-135m-instruct' needs algo.regularizer = 'magnet' "
            "(here 'none'); set it to null",
        ),
        (
            "rollout.reasoning_prefix=My card is",
            "'rollout.reasoning_prefix' = 'My card is' needs answer_mode reasoned, not 'free'",
        ),
    ],
)
def test_bad_values_fail_with_one_line(override, message):
    with pytest.raises(ConfigError) as err:
        check_config(load_config(None, [override]))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_reasoning_temperature_reaches_the_rollouts_and_the_learner():
    from zerosum.learner import LearnerSettings

    cfg = load_config(None, ["rollout.answer_mode=reasoned", "sampling.reasoning_temperature=0.7",
                             "algo.reasoning_weight=0.25", "optim.bf16=false"])  # fmt: skip
    check_config(cfg)
    assert LearnerSettings.from_config(cfg).reasoning_temperature == 0.7
    assert LearnerSettings.from_config(cfg).reasoning_weight == 0.25
    assert LearnerSettings.from_config(cfg).reasoning_kl_weight is None


def test_a_reasoning_kl_weight_needs_the_magnet_and_reaches_the_learner():
    from zerosum.learner import LearnerSettings

    reasoned = ["rollout.answer_mode=reasoned", "algo.reasoning_kl_weight=1", "optim.bf16=false"]
    with pytest.raises(ConfigError, match="needs algo.regularizer = 'magnet' \\(here 'none'\\)"):
        check_config(load_config(None, reasoned))
    cfg = check_config(load_config(None, [*reasoned, "algo.regularizer=magnet"]))
    assert LearnerSettings.from_config(cfg).reasoning_kl_weight == 1.0
    moves = ["rollout.answer_mode=reasoned", "algo.move_kl_weight=0", "optim.bf16=false"]
    with pytest.raises(ConfigError, match="'algo.move_kl_weight' = 0.0 needs algo.regularizer"):
        check_config(load_config(None, moves))
    cfg = check_config(load_config(None, [*moves, "algo.regularizer=magnet"]))
    assert LearnerSettings.from_config(cfg).move_kl_weight == 0.0


def test_a_magnet_model_needs_full_weights():
    lora = ["algo.regularizer=magnet", "algo.magnet_model=base", "model.lora=true"]
    with pytest.raises(ConfigError, match="'algo.magnet_model' = 'base' needs model.lora = false"):
        check_config(load_config(None, lora))


def test_greedy_evaluation_is_allowed():
    cfg = load_config(None, ["eval.temperature=0", "eval.games=[kuhn_poker]"])
    assert cfg.eval.temperature == 0.0


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize(
    "text, where",
    [
        ("run:\n  steps: 3\n optim: {lr: 1}\n", "line 3, column 2"),
        ("run:\n  steps: 3\n  seed: [1, 2\n", "line 4, column 1"),
        ("model:\n  name: a: b\n", "line 2, column 10"),
        ("run:\n\tsteps: 3\n", "line 2, column 1"),
    ],
)
def test_invalid_yaml_names_its_line_and_column(text, where, tmp_path):
    from zerosum.arena.config import load_arena_config
    from zerosum.players.api import load_api_config

    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    for load in (load_config, load_arena_config, load_api_config):
        with pytest.raises(ConfigError) as err:
            load(bad)
        message = str(err.value)
        assert f"{str(bad)!r} is not valid YAML: {where}: " in message and "\n" not in message


def test_an_override_that_is_not_yaml_is_one_line():
    with pytest.raises(ConfigError, match=r"override 'run.seed=\[1': not a YAML value: line 1"):
        load_config(None, ["run.seed=[1"])


def test_cli_train_reports_config_errors_in_one_line(capsys):
    assert main(["train", "algo.loss=grpo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("zerosum: error: config field 'algo.loss'") and "\n" not in err


def test_help_lists_every_field_with_help():
    text = config_help()
    assert "algo.rae_decay = 0.95  # EMA decay" in text
    assert all("#" in line and line.split("# ", 1)[1] for line in text.splitlines())


def test_bf16_auto_follows_the_hardware(monkeypatch):
    from zerosum.assembly import choose_precision
    from zerosum.hardware import resolve_bf16

    assert load_config().optim.bf16 == "auto"
    assert load_config(overrides=["optim.bf16=false"]).optim.bf16 is False
    with pytest.raises(
        ConfigError,
        match=r"'optim.bf16' = 'maybe' is invalid; allowed: true or false or one of 'auto'$",
    ):
        load_config(overrides=["optim.bf16=maybe"])
    cpu = torch.device("cpu")
    for avx512_bf16, amx, want in ((True, False, True), (False, True, True), (False, False, False)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert resolve_bf16("auto", cpu)[0] is want
        assert resolve_bf16(True, cpu) == (True, "set in the config")
        # The choice is written into the config, so config.json and a resume keep it.
        assert choose_precision(load_config(), cpu).optim.bf16 is want


def test_peak_rss_is_this_processs_high_water_mark():
    """`perf/peak_rss_gib` rises by what the process touches, and a child process started
    from this one reports its own peak, not this process's (as getrusage would)."""
    import subprocess
    import sys

    from zerosum.hardware import peak_rss_gib, proc_status_gib

    before = proc_status_gib("VmRSS")  # what the process holds now (the peak may be higher)
    block = torch.ones(512 * 2**20 // 4)  # 0.5 GiB, every page written
    peak = peak_rss_gib()
    assert peak - before >= 0.45
    del block
    child = "from zerosum.hardware import peak_rss_gib; print(peak_rss_gib())"
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    assert float(out.stdout) < peak - 0.45  # it never held the block


RAY = ["distributed.backend=ray"]


def test_distributed_section():
    d = load_config(None).distributed
    assert (d.backend, d.mode, d.ray_address) == ("local", "sync", None)  # today's one process
    cfg = load_config(None, [*RAY, "distributed.rollout_workers=4", "distributed.ray_address=auto"])
    assert cfg.distributed.rollout_workers == 4 and cfg.distributed.ray_address == "auto"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            [*RAY, "rollout.games_per_step=2", "distributed.rollout_workers=3"],
            "'distributed.rollout_workers' = 3 is more than rollout.games_per_step = 2",
        ),
        (
            [
                *RAY,
                "distributed.learner_ranks=2",
                "distributed.fsdp=true",
                "algo.regularizer=magnet",
            ],
            "'algo.regularizer' = 'magnet' is not supported with distributed.fsdp",
        ),
        (
            [*RAY, "opponents.pool_size=2"],
            "'opponents.pool_size' = 2 (an opponent pool) is not supported",
        ),
        (["distributed.learner_ranks=2"], "'distributed.learner_ranks' = 2 needs distributed"),
        (["distributed.fsdp=true"], "'distributed.fsdp' = True needs distributed.backend"),
        ([*RAY, "distributed.fsdp=true"], "'distributed.fsdp' = True needs distributed.learner_"),
        (
            ["distributed.placement=colocated"],
            "'distributed.placement' = 'colocated' needs distributed.backend = 'ray'",
        ),
        (["distributed.worker_gpus=1"], "'distributed.worker_gpus' = 1.0 needs distributed"),
        (
            [*RAY, "distributed.placement=colocated", "distributed.worker_gpus=0.5"],
            "'distributed.worker_gpus' = 0.5 applies to placement split; with placement "
            "'colocated' the workers share the learners' GPUs evenly (allowed: null)",
        ),
        (
            [*RAY, "distributed.worker_gpus=1.5"],
            "'distributed.worker_gpus' = 1.5 is invalid; allowed: null, a fraction in (0, 1) "
            "with at most 4 decimals, or a whole number in [1, 4096)",
        ),
        ([*RAY, "distributed.worker_gpus=0.33333"], "'distributed.worker_gpus' = 0.33333 is inv"),
        ([*RAY, "distributed.worker_gpus=0"], "'distributed.worker_gpus' = 0.0 is invalid"),
        (
            [*RAY, "model.device=cuda:1"],
            "'model.device' = 'cuda:1': with distributed.backend 'ray' Ray chooses every "
            "process's GPU; allowed: auto, cpu, cuda",
        ),
    ],
)
def test_distributed_combinations_fail_with_one_line(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_placement_fields():
    d = load_config(None, RAY).distributed
    assert (d.placement, d.worker_gpus) == ("split", None)  # null: 1 GPU a worker on GPUs
    for value in ("0.5", "0.25", "1", "2", "8"):
        cfg = load_config(None, [*RAY, f"distributed.worker_gpus={value}"])
        assert cfg.distributed.worker_gpus == float(value)
    cfg = load_config(None, [*RAY, "distributed.placement=colocated", "model.device=cuda"])
    assert cfg.distributed.placement == "colocated"


def test_the_magnet_is_allowed_with_data_parallel_learner_ranks():
    """Every rank holds the magnet (`LearnerGroup`): only sharded (FSDP) ranks refuse it."""
    cfg = load_config(None, [*RAY, "distributed.learner_ranks=2", "algo.regularizer=magnet"])
    assert cfg.distributed.learner_ranks == 2 and cfg.algo.regularizer == "magnet"


def test_cli_ray_address_sets_the_field_as_text(capsys):
    """`--ray-address 1:20` is the string '1:20' (YAML alone would read it as the number 80);
    with the local backend that is an error naming the field."""
    assert main(["train", "--ray-address", "1:20"]) == 2
    err = capsys.readouterr().err
    assert "'distributed.ray_address' = '1:20' needs distributed.backend = 'ray'" in err


def test_cli_overrides_may_follow_options(capsys):
    """Overrides on both sides of an option are all applied (argparse alone takes the first
    group and refuses the rest as unrecognized); a stray word after them is still refused."""
    assert main(["train", "run.steps=3", "--ray-address", "1:20", "run.seed=-1"]) == 2
    assert "'run.seed' = -1 is invalid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "run.steps=3", "--ray-address", "1:20", "run.seed=1", "steps"])
    assert "unrecognized arguments: run.seed=1 steps" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["games", "run.steps=3"])
    assert "unrecognized arguments: run.steps=3" in capsys.readouterr().err


def test_a_run_from_before_the_magnet_resumes():
    """An older run's config.json holds `algo.kl_coef: 0.0` (the KL penalty off): it loads
    as before; a nonzero value, which has no exact equivalent now, is refused in one line."""
    from zerosum.config import config_from_dict, config_to_dict

    old = config_to_dict(load_config())
    old["algo"]["kl_coef"] = 0.0
    assert config_from_dict(old) == load_config()
    assert "kl_coef" in old["algo"]  # the caller's mapping is left as it was
    old["algo"]["kl_coef"] = 0.05
    with pytest.raises(ConfigError, match="'algo.kl_coef' was replaced"):
        config_from_dict(old)
