"""Weight sync by a torch.distributed broadcast (`distributed.weight_sync: broadcast`).

The driver (the `zerosum train` process: learner rank 0, which holds the model) and the
rollout workers form a process group of their own, and after each optimizer step the driver
broadcasts the trainable tensors (LoRA: the adapter) to every worker at once; each worker
loads them with `weights.load_trainable`, the function the object-store path uses, so both
paths leave the workers with the same tensors.

The group is not torch.distributed's default group: the learner ranks' group
(`distributed.learner_ranks` > 1) is the default group of the same driver process. It is a
`ProcessGroupGloo` (or `ProcessGroupNCCL`) built directly on a TCPStore that the driver
serves on a free port, under one key prefix per generation: after a worker's restart the
group is formed again, on the same store, without touching the learner's.

The tensors travel in a fixed order (the model's parameter order) and their own dtype,
concatenated into buckets of at most `BUCKET_BYTES` (one dtype per bucket; a tensor larger
than that travels alone): a few large messages rather than one per tensor. In sync mode the
driver copies out a bucket while the one before is sending, and a worker loads a bucket while
the next arrives, so each holds two buckets beyond its model, not a second copy of it; in
async mode the driver copies every bucket before it trains on (one copy of the trained
weights while in flight).

Crashes: with gloo a broadcast that loses a member fails at once on the driver, and the
driver leaving the group makes the members still waiting fail too (tested). With nccl a lost
member is noticed only when NCCL's watchdog times out (`TIMEOUT`), which may end the process:
the recovery is designed for gloo, and nothing here has run on GPUs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

# Per bucket: large enough that a message's fixed cost is nothing beside its bytes, small
# enough that the workers' receive buffers stay a fraction of the model.
BUCKET_BYTES = 256 << 20
# How long a member waits for the others: to form the group, and for a broadcast. In async
# mode a worker takes its weights only after the games queued before them, so a broadcast may
# wait that long.
TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Layout:
    """The order, shapes and bucketing of the tensors a broadcast carries: bucket k
    concatenates, flattened, the tensors `names[i]` for i in `buckets[k]`, all of dtype
    `dtypes[k]`."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    buckets: tuple[tuple[int, ...], ...]
    dtypes: tuple[torch.dtype, ...]

    def sizes(self, bucket: int) -> list[int]:
        """The element counts of bucket `bucket`'s tensors, in order."""
        return [self.shapes[i].numel() for i in self.buckets[bucket]]

    def nbytes(self, bucket: int) -> int:
        """The bytes of bucket `bucket`."""
        return sum(self.sizes(bucket)) * self.dtypes[bucket].itemsize


def make_layout(tensors: Mapping[str, torch.Tensor], bucket_bytes: int = BUCKET_BYTES) -> Layout:
    """The `Layout` of `tensors` in their order: a new bucket where the dtype changes or the
    next tensor would take the bucket past `bucket_bytes`."""
    names = tuple(tensors)
    buckets: list[list[int]] = []
    dtypes: list[torch.dtype] = []
    filled = 0
    for i, name in enumerate(names):
        t = tensors[name]
        size = t.numel() * t.element_size()
        if not buckets or t.dtype != dtypes[-1] or filled + size > bucket_bytes:
            buckets.append([])
            dtypes.append(t.dtype)
            filled = 0
        buckets[-1].append(i)
        filled += size
    return Layout(
        names, tuple(tensors[n].shape for n in names), tuple(map(tuple, buckets)), tuple(dtypes)
    )


def flatten_bucket(
    tensors: Mapping[str, torch.Tensor], layout: Layout, bucket: int, device: torch.device
) -> torch.Tensor:
    """Bucket `bucket` of `tensors` as one flat tensor on `device` (a new tensor: the model
    may change while a broadcast is in flight)."""
    dtype = layout.dtypes[bucket]
    parts = [tensors[layout.names[i]].detach().reshape(-1) for i in layout.buckets[bucket]]
    if any(p.dtype != dtype for p in parts):
        raise ValueError(f"bucket {bucket} of {dtype} holds a tensor of another dtype")
    return torch.cat(parts).to(device)


def unflatten_bucket(flat: torch.Tensor, layout: Layout, bucket: int) -> dict[str, torch.Tensor]:
    """Bucket `bucket`'s tensors by name, as views into `flat` (`flatten_bucket`'s inverse)."""
    parts = flat.split(layout.sizes(bucket))
    return {
        layout.names[i]: part.view(layout.shapes[i])
        for i, part in zip(layout.buckets[bucket], parts)
    }


def receive_buffers(layout: Layout, device: torch.device) -> list[torch.Tensor]:
    """Two byte buffers on `device` (one if there is one bucket), each as large as the largest
    bucket: bucket k arrives in buffer k mod 2 (`bucket_view`) while bucket k-1 is loaded."""
    largest = max(layout.nbytes(k) for k in range(len(layout.buckets)))
    count = min(2, len(layout.buckets))
    return [torch.empty(largest, dtype=torch.uint8, device=device) for _ in range(count)]


def bucket_view(buffers: Sequence[torch.Tensor], layout: Layout, bucket: int) -> torch.Tensor:
    """Bucket `bucket`'s place in `receive_buffers`, as a flat tensor of its dtype."""
    raw = buffers[bucket % len(buffers)][: layout.nbytes(bucket)]
    return raw.view(layout.dtypes[bucket])


def server_store(host: str) -> dist.TCPStore:
    """The driver's store, on a free port of this machine (`.port`), that every generation's
    group meets on; `host` is the address the workers will reach it at."""
    return dist.TCPStore(host, 0, None, True, TIMEOUT, wait_for_workers=False)


def client_store(host: str, port: int) -> dist.TCPStore:
    """A worker's connection to the driver's `server_store`."""
    return dist.TCPStore(host, port, None, False, TIMEOUT)


def _prefixed(store: dist.Store, generation: int) -> dist.PrefixStore:
    return dist.PrefixStore(f"weight_sync/{generation}", store)


def announce(store: dist.Store, generation: int, rank: int) -> bool:
    """A worker's first step into `generation`'s group: say it is there, then wait for the
    driver's decision; whether to go on and join (False: some worker could not join, and
    the driver forms another generation). Nobody starts the rendezvous until every worker
    is there, so a worker that dies or restarts before then stalls nobody."""
    store = _prefixed(store, generation)
    store.set(f"ready/{rank}", "1")
    return store.get("decision") == b"go"


def announced(store: dist.Store, generation: int, world: int) -> bool:
    """Whether ranks 1..`world`-1 have all `announce`d themselves for `generation`."""
    return _prefixed(store, generation).check([f"ready/{r}" for r in range(1, world)])


def decide(store: dist.Store, generation: int, go: bool) -> None:
    """The driver's answer to `generation`'s workers: join, or give this generation up."""
    _prefixed(store, generation).set("decision", "go" if go else "abandon")


class BroadcastGroup:
    """Rank `rank` of `generation`'s group of `world` members (rank 0 the driver, which
    sends), with `backend` gloo (CPU tensors) or nccl (CUDA tensors). Constructing it is the
    rendezvous: it returns once every member has constructed theirs."""

    def __init__(self, store: dist.Store, generation: int, rank: int, world: int, backend: str):
        store = _prefixed(store, generation)
        if backend == "nccl":
            options = dist.ProcessGroupNCCL.Options()
            options._timeout = TIMEOUT
            self.group = dist.ProcessGroupNCCL(store, rank, world, options)
        elif backend == "gloo":
            self.group = dist.ProcessGroupGloo(store, rank, world, TIMEOUT)
        else:
            raise ValueError(f"unknown broadcast backend {backend!r}; valid: gloo, nccl")
        self.backend, self.generation = backend, generation

    def broadcast(self, flat: torch.Tensor) -> dist.Work:
        """Start broadcasting `flat` from rank 0 into every member's (the sender's is sent,
        the others' overwritten); wait on the returned work."""
        options = dist.BroadcastOptions()
        options.rootRank = 0
        return self.group.broadcast([flat], options)

    def receive(
        self, layout: Layout, buffers: Sequence[torch.Tensor]
    ) -> Iterator[dict[str, torch.Tensor]]:
        """A worker's part of a broadcast: `layout`'s buckets one at a time, as tensors by
        name (views into `buffers`, from `receive_buffers`), each valid until the next is
        asked for; the next bucket is already arriving while the caller loads one."""
        count = len(layout.buckets)
        work = self.broadcast(bucket_view(buffers, layout, 0))
        for bucket in range(count):
            work.wait()
            if self.backend == "nccl":
                torch.cuda.synchronize()
            if bucket + 1 < count:  # into the other buffer
                work = self.broadcast(bucket_view(buffers, layout, bucket + 1))
            yield unflatten_bucket(bucket_view(buffers, layout, bucket), layout, bucket)


class WeightSender:
    """The driver's side: a store for the workers to meet on, the current generation's
    group, and the broadcast in flight (async mode does not wait for it)."""

    def __init__(self, host: str, world: int, layout: Layout, backend: str):
        self.store = server_store(host)
        self.address = (host, self.store.port)
        self.world, self.layout, self.backend = world, layout, backend
        self.generation = 0
        self.group: BroadcastGroup | None = None
        self.pending: tuple[list[dist.Work], list[torch.Tensor]] = ([], [])

    def next_generation(self) -> int:
        """Drop the current group (`drop`), if any, and number the next one."""
        self.drop()
        self.generation += 1
        return self.generation

    def ready(self) -> bool:
        """Whether every worker has announced itself for the current generation."""
        return announced(self.store, self.generation, self.world)

    def join(self) -> None:
        """Tell the workers to go on, and form the current generation's group with them."""
        decide(self.store, self.generation, True)
        self.group = BroadcastGroup(self.store, self.generation, 0, self.world, self.backend)

    def abandon(self) -> None:
        """Give up the current generation (some worker cannot join): the workers that
        announced themselves, or will, return without joining."""
        decide(self.store, self.generation, False)

    def send(self, tensors: Mapping[str, torch.Tensor], wait: bool) -> bool:
        """Broadcast `tensors` (as `layout` orders them) to every worker. `wait`: bucket by
        bucket, at most two copied out at a time (one sending while the next is copied), and
        False if it failed. Otherwise (async mode) every bucket is copied and left in flight
        for `wait`, while the model trains on."""
        if self.group is None:
            raise RuntimeError("no weight-sync group to broadcast on (join first)")
        device = torch.device("cuda" if self.backend == "nccl" else "cpu")
        works: list[dist.Work] = []
        flats: list[torch.Tensor] = []  # each bucket's copy lives until it is sent
        for k in range(len(self.layout.buckets)):
            flat = flatten_bucket(tensors, self.layout, k, device)
            works.append(self.group.broadcast(flat))
            flats.append(flat)
            if wait and len(works) == 2:  # the older one sent before a third copy is made
                self.pending = ([works.pop(0)], [flats.pop(0)])
                if not self.wait():
                    self.pending = (works, flats)
                    self.wait()
                    return False
        self.pending = (works, flats)
        return self.wait() if wait else True

    def wait(self) -> bool:
        """Wait for the broadcast in flight, if any; False if it failed (a member died, or
        left the group), which leaves the group unusable."""
        works, _ = self.pending
        self.pending = ([], [])
        try:
            for work in works:
                work.wait()
            if works and self.backend == "nccl":
                torch.cuda.synchronize()
        except RuntimeError:  # gloo: "Connection closed by peer"; nccl: a timeout
            return False
        return True

    def drop(self) -> None:
        """Leave the current group (after its broadcast in flight, whatever its outcome)."""
        self.wait()
        self.group = None

    def close(self) -> None:
        self.drop()
        self.store = None
