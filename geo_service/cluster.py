"""Builds on a Dask cluster: ``riskmap build --workers N`` starts a local one (N worker
processes of one thread), ``--scheduler tcp://HOST:PORT`` uses one already running. The risk
surface's tiles (each with the halo its evidence reaches across) become tasks; the evidence
they read is sent once to every worker, and the build itself — reading sources, the vector
layers, writing files — stays in this process, so workers need the same version of this
package and nothing of the build's folders (``docs/scale.md``). A worker lost mid-build has
its tasks run again elsewhere (Dask's own retries); the values are the same bytes a
single-process build writes.
"""

from __future__ import annotations

import gc
import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from geo_service.errors import RiskMapError
from geo_service.ingest.base import ProgressFn
from geo_service.risk.surface import Runner, TileResult, TileWork


def require_dask() -> None:
    """An error (exit 2) at once, before any source is read, when Dask is not installed."""
    if importlib.util.find_spec("distributed") is None:
        raise RiskMapError(
            "--workers and --scheduler need Dask: pip install 'diamond-risk-map[cluster]'"
        )


def _cells(task: tuple[slice, slice, Any]) -> int:
    """Cells a tile computes (with its halo): its task's priority."""
    rows, cols, _ = task
    return (rows.stop - rows.start) * (cols.stop - cols.start)


@contextmanager
def dask_runner(
    workers: int | None,
    scheduler: str | None,
    task: Callable[[str, int], ProgressFn],
    log: Callable[[str], None],
) -> Iterator[Runner]:
    """A runner of the surface's tiles on a cluster (started here for ``workers``, reached at
    ``scheduler`` otherwise), closed when the build is done."""
    require_dask()
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="30s")
        else:
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                host="127.0.0.1",
            )
            client = Client(cluster)
    except (OSError, TimeoutError) as exc:
        raise RiskMapError(f"cannot reach the Dask scheduler {scheduler or ''}: {exc}") from exc
    link = getattr(client, "dashboard_link", None)
    where = scheduler or f"a local cluster of {workers} workers"
    log(f"computing the surface on {where}" + (f" (dashboard: {link})" if link else ""))

    def run(
        fn: Callable[[TileWork, Any], TileResult], work: TileWork, tasks: list[Any]
    ) -> Iterator[tuple[int, TileResult]]:
        if not tasks:
            return
        done = task("surface tiles", len(tasks))
        shared = client.scatter(work, broadcast=True)
        # Arrived on every worker: the collector need not walk it while the tiles run.
        client.run(gc.freeze)
        # The largest tiles first, so that no worker is left with one big tile at the end.
        futures = {
            client.submit(fn, shared, t, pure=False, priority=_cells(t)): i
            for i, t in enumerate(tasks)
        }
        try:
            for n, (future, result) in enumerate(as_completed(futures, with_results=True), 1):
                yield futures.pop(future), result
                future.release()
                done(n, len(tasks))
        finally:
            client.run(gc.unfreeze)

    try:
        yield run
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
