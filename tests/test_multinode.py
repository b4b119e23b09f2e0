"""A run over a Ray cluster of two nodes, joined by address as a user joins a cluster
(`ray start --head`, then `zerosum train --ray-address HEAD:PORT`).

Both nodes run on this machine (Ray's `cluster_utils.Cluster`: a head and a second raylet
with their own resources), so the traffic between them goes over the loopback network, not
a real one; what this shows is placement and weight sync across nodes, not network speed.
"""

from pathlib import Path

import pytest

from tests.test_distributed import read_metrics, without
from zerosum.cli import main

pytestmark = pytest.mark.ray
RECIPE = Path(__file__).parent.parent / "configs" / "tiny_kuhn_test.yaml"
RUN = [
    "rollout.games_per_step=12", "rollout.max_concurrent=12", "run.progress=false",
    "run.steps=3", "run.tensorboard=false",
]  # fmt: skip


@pytest.mark.parametrize("weight_sync", ["object_store", "broadcast"])
def test_a_run_over_two_nodes_joined_by_address_equals_the_local_run(tmp_path, weight_sync):
    """Each node has one CPU and each rollout worker reserves one, so the two workers can
    only run on different nodes; the run joins the cluster by `--ray-address` and writes
    exactly the local run's metrics (timings and the Ray backend's counts aside), the
    weights reaching the second node through the object store or the broadcast group."""
    ray = pytest.importorskip("ray", reason="the Ray backend needs pip install 'zerosum[ray]'")
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized()  # another module's Ray would be joined instead
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        on_ray = tmp_path / "ray"
        args = ["train", "--config", str(RECIPE), *RUN, "distributed.backend=ray"]
        args += ["distributed.rollout_workers=2", f"distributed.weight_sync={weight_sync}"]
        assert main([*args, f"run.out_dir={on_ray}", "--ray-address", cluster.address]) == 0
        assert not ray.is_initialized()  # the run let go of the cluster it joined...
        ray.init(address=cluster.address)
        alive = [n for n in ray.nodes() if n["Alive"]]
        assert [n["Resources"]["CPU"] for n in alive] == [1.0, 1.0]  # ...and left it running
    finally:
        ray.shutdown()
        cluster.shutdown()
    local = tmp_path / "local"
    assert main(["train", "--config", str(RECIPE), *RUN, f"run.out_dir={local}"]) == 0
    rows = read_metrics(on_ray)
    assert [r["distributed/games_discarded"] for r in rows] == [0.0] * 3
    ours = ("perf/", "distributed/")  # timings, and the Ray backend's own counts
    assert without(rows, *ours) == without(read_metrics(local), *ours)
