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
    ) -> list[TileResult]:
        if not tasks:
            return []
        done = task("surface tiles", len(tasks))
        shared = client.scatter(work, broadcast=True)
        futures = client.map(fn, [shared] * len(tasks), tasks, pure=False)
        for n, _ in enumerate(as_completed(futures), 1):
            done(n, len(tasks))
        return client.gather(futures)

    try:
        yield run
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
