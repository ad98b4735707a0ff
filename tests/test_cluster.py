"""Builds on Dask (``riskmap build --workers N`` / ``--scheduler``): the bundled catalog built
on a local cluster of two worker processes writes the same bytes as in one process, even with
a worker killed in the middle of a partition of the communities or of the surface's tiles;
data lost with a worker is sent again."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from geo_service.build import SURFACE_SCRATCH, build
from geo_service.cluster import local_cluster
from geo_service.risk import surface
from geo_service.settings import BuildSettings
from tests.conftest import CATALOG, QUICK_SURFACE_M

#: Cells per tile in these builds: small, so the coarse test surface is many tasks.
TEST_TILE_CELLS = 6_000


@pytest.fixture(scope="module", autouse=True)
def small_tiles() -> Iterator[None]:
    """Tiles of ``TEST_TILE_CELLS`` (every build of this module: the tiling is part of what
    a build computes, so builds compared must share it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(surface, "TILE_CELLS", TEST_TILE_CELLS)
        yield


def _build(root: Path, **settings: object) -> Path:
    result = build(
        BuildSettings(build_dir=root, surface_cell_m=QUICK_SURFACE_M, **settings),
        catalog_path=CATALOG,
    )
    return result.path


def _contents(path: Path) -> dict[str, bytes]:
    """Every file of a build, the catalog without the build's own id and clock."""
    out = {}
    for f in sorted(path.iterdir()):
        data = f.read_bytes()
        if f.name == "catalog.json":
            meta = json.loads(data)
            for key in ("build_id", "created"):
                meta.pop(key)
            data = json.dumps(meta, sort_keys=True).encode()
        out[f.name] = data
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """The bundled catalog built in one process."""
    path = _build(tmp_path_factory.mktemp("single"))
    meta = json.loads((path / "catalog.json").read_text())
    assert meta["risk"]["surface"]["tiles"]["computed"] >= 20  # many tasks to share out
    assert meta["risk"]["community_partitions"]["partitions"] >= 4
    return _contents(path)


def _same(reference: dict[str, bytes], path: Path) -> None:
    got = _contents(path)
    assert set(got) == set(reference)
    differ = [name for name in reference if got[name] != reference[name]]
    assert not differ, differ
    assert "risk_surface.tif" in got and "community_risk.parquet" in got
    assert SURFACE_SCRATCH not in got  # the surface's regions on disk are gone


def _run_again(dask_scheduler, task: str) -> int:  # type: ignore[no-untyped-def]
    """Tasks of ``task`` a worker was running that went back to be scheduled again."""
    return sum(
        1
        for entry in dask_scheduler.transition_log
        if task in str(entry[0]) and entry[1] == "processing" and entry[2] != "memory"
    )


@pytest.mark.slow
@pytest.mark.parametrize("task", ["evaluate_partition", "compute_tile"])
def test_a_worker_killed_mid_build_changes_nothing(reference, tmp_path, task) -> None:
    """Killed while it runs a partition of the communities, or a tile of the surface."""
    import dask
    from dask.distributed import Client

    with (
        # The scheduler's log of transitions keeps every one of the build's tasks.
        dask.config.set({"distributed.admin.low-level-log-length": 1_000_000}),
        local_cluster(2, dashboard=False) as cluster,
        Client(cluster) as client,
    ):
        done: list[Path] = []
        failed: list[BaseException] = []

        def run() -> None:
            try:
                done.append(_build(tmp_path, scheduler=cluster.scheduler_address))
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                failed.append(exc)

        builder = threading.Thread(target=run, daemon=True)
        builder.start()
        # Once a worker is running such a task, kill its process (its nanny starts another).
        victim = None
        deadline = time.monotonic() + 600
        while victim is None and builder.is_alive() and time.monotonic() < deadline:
            busy = {
                worker: keys
                for worker, keys in client.processing().items()
                if any(task in str(k) for k in keys)
            }
            if busy:
                victim = next(iter(busy))
            else:
                time.sleep(0.02)
        assert victim is not None, f"no {task} was ever running"
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)
        builder.join(timeout=600)
        assert not builder.is_alive() and not failed, failed
        alive = client.run(os.getpid)
        assert pid not in alive.values()
        # The killed worker's running tasks went back to be run again elsewhere.
        again = client.run_on_scheduler(_run_again, task=task)
        assert again > 0, again
    _same(reference, done[0])


#: Tasks of the resend test: short, so that many results are done and not yet gathered
#: when their worker dies (the results lost with it are computed again).
TASKS = 400


def _slowly_doubled(shared: list[int], i: int) -> int:
    time.sleep(0.002)
    return shared[i] * 2


def test_data_lost_with_its_only_worker_is_sent_again() -> None:
    """One worker holds the only copy of what every task reads; it is killed after the first
    result, when others are done but not yet gathered; its nanny starts another, and every
    task still answers, once. The test's own client is the current one, as in a notebook that
    made one: the build waits on its own."""
    from dask.distributed import Client

    from geo_service.cluster import dask_runner

    messages: list[str] = []
    results: dict[int, int] = {}
    with (
        local_cluster(1, dashboard=False) as cluster,
        Client(cluster) as client,
        dask_runner(
            None, cluster.scheduler_address, lambda *_: lambda *_: None, messages.append
        ) as run,
    ):
        shared = list(range(TASKS))
        for i, result in run(_slowly_doubled, shared, range(TASKS), "doubles"):
            if not results:
                pid = next(iter(client.run(os.getpid).values()))
                os.kill(pid, signal.SIGKILL)
            assert i not in results
            results[i] = result
    assert results == {i: 2 * i for i in range(TASKS)}
    assert any("sending it again" in m for m in messages), messages
