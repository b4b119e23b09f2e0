"""Weight sync of the Ray backend (`distributed.weight_sync`): the broadcast path leaves the
rollout workers with exactly the tensors the object-store path does, and the learner's,
beside a default process group (the learner ranks'); a worker that dies is brought back
and the broadcast group formed again; the buckets' layout; the config's one-line errors."""

import copy
import os
import signal
import socket

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_distributed import FAST, RAY, RECIPE, fixed_batch
from zerosum.config import ConfigError, load_config
from zerosum.distributed.broadcast import (
    bucket_view,
    flatten_bucket,
    make_layout,
    receive_buffers,
    unflatten_bucket,
)

DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def test_weight_sync_must_be_a_known_value():
    with pytest.raises(ConfigError) as err:
        load_config(RECIPE, [*RAY, "distributed.weight_sync=nccl"])
    message = str(err.value)
    assert "\n" not in message
    assert "'distributed.weight_sync' = 'nccl' is invalid" in message
    assert "'object_store'" in message and "'broadcast'" in message
    with pytest.raises(ConfigError, match=r"'distributed.weight_sync' = 'broadcast' needs "):
        load_config(RECIPE, ["distributed.weight_sync=broadcast"])  # the local backend
    assert load_config(RECIPE, [*RAY]).distributed.weight_sync == "object_store"


@settings(max_examples=60, deadline=None)
@given(
    tensors=st.lists(
        st.tuples(st.lists(st.integers(1, 5), min_size=0, max_size=3), st.sampled_from(DTYPES)),
        min_size=1,
        max_size=12,
    ),
    bucket_bytes=st.integers(1, 200),
)
def test_buckets_keep_every_tensor_in_order_and_dtype(tensors, bucket_bytes):
    """Flattened into buckets and back, through the two receive buffers the buckets take
    turns in, every tensor is bitwise itself; each bucket holds one dtype, the tensors in
    their order, and no more than `bucket_bytes` unless it is one tensor larger than that."""
    gen = torch.Generator().manual_seed(0)
    state = {
        f"t{i}": torch.randn(shape, generator=gen).to(dtype)
        for i, (shape, dtype) in enumerate(tensors)
    }
    layout = make_layout(state, bucket_bytes)
    assert [i for b in layout.buckets for i in b] == list(range(len(state)))
    for bucket, dtype in zip(layout.buckets, layout.dtypes):
        assert all(state[layout.names[i]].dtype == dtype for i in bucket)
        size = sum(state[layout.names[i]].numel() * dtype.itemsize for i in bucket)
        assert size <= bucket_bytes or len(bucket) == 1
    buffers = receive_buffers(layout, torch.device("cpu"))
    assert len(buffers) == min(2, len(layout.buckets))
    back = {}
    for k in range(len(layout.buckets)):
        received = bucket_view(buffers, layout, k)
        received.copy_(flatten_bucket(state, layout, k, torch.device("cpu")))
        back.update({n: t.clone() for n, t in unflatten_bucket(received, layout, k).items()})
    assert list(back) == list(state)
    assert all(torch.equal(back[n], t) and back[n].dtype == t.dtype for n, t in state.items())


def rollouts(model, tokenizer, weight_sync: str):
    """A `RayRollouts` of 2 workers over `model` (in a placement of its own)."""
    from zerosum.distributed.placement import Placement
    from zerosum.distributed.ray_backend import RayRollouts

    cfg = load_config(RECIPE, [*FAST, *RAY, f"distributed.weight_sync={weight_sync}"])
    placement = Placement(cfg.distributed, learner_on_gpu=False)
    try:
        return RayRollouts(cfg, model, tokenizer, 0, placement), placement
    except BaseException:
        placement.close()
        raise


def learner_of(model, tokenizer):
    from zerosum.learner import Learner, LearnerSettings, build_optimizer

    cfg = load_config(None, ["optim.bf16=false", "optim.lr=1e-3", "model.device=cpu"])
    optimizer = build_optimizer(cfg.optim, model)
    return Learner(model, optimizer, LearnerSettings.from_config(cfg), tokenizer.pad_token_id)


def with_lora(model):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)  # B non-zero: a step moves both of the adapter's matrices
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return get_peft_model(model, config)


def state_of(model) -> dict[str, torch.Tensor]:
    return {n: t.detach().clone() for n, t in model.state_dict().items()}


@pytest.mark.parametrize("lora", [False, True])
def test_broadcast_leaves_the_workers_as_the_object_store_does(tiny, tokenizer, ray_cpus, lora):
    """One learner step (same batch, same seed) published each way: with broadcast every
    worker's tensors equal the learner's, which moved, and bitwise equal the workers' of the
    object-store path. The broadcast's group lives beside a default process group (as the
    learner ranks' would be in this process), and only the trainable tensors travel (LoRA:
    the adapter alone)."""
    import torch.distributed as dist

    from zerosum.models import trainable_parameters

    base = with_lora(tiny) if lora else tiny
    samples = fixed_batch(base, tokenizer)
    initial = state_of(base)
    learners, workers = {}, {}
    for way in ("object_store", "broadcast"):
        model = copy.deepcopy(base)
        learner = learner_of(model, tokenizer)
        if way == "broadcast":
            with socket.socket() as s:
                s.bind(("", 0))
                port = s.getsockname()[1]
            dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0,
                                    world_size=1)  # fmt: skip
        backend, placement = rollouts(model, tokenizer, way)
        try:
            if way == "broadcast":
                names = backend.sender.layout.names
                assert list(names) == list(trainable_parameters(model))
                assert all("lora_" in n for n in names) == lora
            torch.manual_seed(7)
            learner.step(samples, lr=1e-3, step=1)
            stats = backend.publish(model, 1)
            workers[way] = [ray_cpus.get(w.parameters.remote()) for w in backend.workers]
            assert stats["distributed/worker_restarts"] == 0
            if way == "broadcast":
                total = torch.ones(1)
                dist.all_reduce(total)  # the default group still works beside it
                assert total.item() == 1.0
        finally:
            backend.close()
            placement.close()
            if dist.is_initialized():
                dist.destroy_process_group()
        learners[way] = state_of(model)
    trained = learners["broadcast"]
    moved = [n for n in trained if not torch.equal(trained[n], initial[n])]
    assert moved and (not lora or all("lora_" in n for n in moved))
    for way in ("object_store", "broadcast"):
        assert all(torch.equal(learners[way][n], t) for n, t in trained.items())
        for state in workers[way]:
            assert state.keys() == trained.keys()
            assert all(torch.equal(state[n], t) for n, t in trained.items()), way
    for ours, theirs in zip(workers["broadcast"], workers["object_store"]):
        assert all(torch.equal(ours[n], theirs[n]) for n in ours)


def test_a_worker_killed_before_a_broadcast_is_brought_back(tiny, tokenizer, ray_cpus):
    """SIGKILL to worker 0 between two broadcasts: the next broadcast fails, Ray restarts
    the worker, the learner loads the current policy into it, forms the group again (a new
    generation) and broadcasts again; both workers then hold the learner's tensors."""
    model = copy.deepcopy(tiny)
    learner = learner_of(model, tokenizer)
    samples = fixed_batch(model, tokenizer)
    backend, placement = rollouts(model, tokenizer, "broadcast")
    try:
        torch.manual_seed(7)
        learner.step(samples, lr=1e-3, step=1)
        backend.publish(model, 1)
        assert backend.sender.generation == 1
        os.kill(backend.pids()[0], signal.SIGKILL)
        learner.step(samples, lr=1e-3, step=2)
        stats = backend.publish(model, 2)
        assert stats["distributed/worker_restarts"] == 1
        assert backend.sender.generation >= 2
        workers = [ray_cpus.get(w.parameters.remote()) for w in backend.workers]
        backend.publish(model, 3)  # the new group serves the next broadcast
    finally:
        backend.close()
        placement.close()
    trained = state_of(model)
    for state in workers:
        assert all(torch.equal(state[n], t) for n, t in trained.items())


def test_a_broadcast_cut_short_never_leaves_a_mix(tiny, tokenizer):
    """A worker (driven directly, no Ray) and the learner's sender (a thread here), one
    tensor a bucket: a whole broadcast loads every tensor, as `set_weights` would; one that
    fails before any bucket arrives keeps the policy it had; one cut short after the first
    bucket leaves no policy (the learner loads it again), never a mix of two."""
    import threading

    from zerosum.distributed.broadcast import WeightSender
    from zerosum.distributed.weights import model_payload, trainable_state
    from zerosum.distributed.worker import RolloutWorker
    from zerosum.models import trainable_parameters

    worker = RolloutWorker("hf", max_batch=4, seed=0, device="cpu")
    worker.load(model_payload(tiny, tokenizer), None, version=0)
    reference = RolloutWorker("hf", max_batch=4, seed=0, device="cpu")
    reference.load(model_payload(tiny, tokenizer), None, version=0)
    layout = make_layout(trainable_parameters(tiny), bucket_bytes=1)
    assert len(layout.buckets) == len(layout.names) > 2
    sender = WeightSender("127.0.0.1", 2, layout, "gloo")

    def learner(then) -> threading.Thread:
        thread = threading.Thread(target=then)
        thread.start()
        return thread

    def form_group() -> None:
        generation = sender.next_generation()
        thread = learner(lambda: (wait_for(sender.ready), sender.join()))
        assert worker.join_weight_sync(sender.address, generation, 1, 2, layout, "gloo")[1]
        thread.join()

    def nudge() -> None:
        with torch.no_grad():
            for p in tiny.parameters():
                p.add_(0.1)

    try:
        form_group()
        nudge()
        thread = learner(lambda: sender.send(trainable_parameters(tiny), wait=True))
        assert worker.receive_weights(sender.generation, 1) == (worker.incarnation, True)
        thread.join()
        reference.set_weights(trainable_state(tiny), 1)
        want = state_of(tiny)
        for got in (worker.parameters(), reference.parameters()):
            assert all(torch.equal(got[n], t) for n, t in want.items())

        nudge()
        sender.drop()  # the learner leaves before sending: nothing arrives
        assert worker.receive_weights(sender.generation, 2) == (worker.incarnation, False)
        assert worker.version == 1 and all(
            torch.equal(worker.parameters()[n], t) for n, t in want.items()
        )

        form_group()

        def first_bucket_only() -> None:
            flat = flatten_bucket(trainable_parameters(tiny), layout, 0, torch.device("cpu"))
            sender.group.broadcast(flat).wait()
            sender.drop()

        thread = learner(first_bucket_only)
        assert worker.receive_weights(sender.generation, 2) == (worker.incarnation, False)
        thread.join()
        assert worker.model is None and worker.version is None
    finally:
        sender.close()


def wait_for(condition, seconds: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the worker did not announce itself")
        time.sleep(0.05)
