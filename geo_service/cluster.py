"""Builds on a Dask cluster: ``riskmap build --workers N`` starts a local one (N worker
processes of one thread), ``--scheduler tcp://HOST:PORT`` uses one already running. The
partitions of the communities (each with the evidence within reach) and the risk surface's
tiles (each with its halo) become tasks; what all of them read is sent once to every worker.
The build itself — reading sources, writing files — stays in this process, so workers need
the same version of this package and nothing of the build's folders (``docs/scale.md``). A
worker lost mid-build has its tasks run again elsewhere (Dask's own retries); if it held the
last copy of what every task reads (Dask keeps one copy once no task waits on a worker), that
is sent again with the tasks it cancelled (done ones whose results went with it too). The
values are the same bytes a single-process build writes.
"""

from __future__ import annotations

import gc
import importlib.util
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from geo_service.errors import RiskMapError
from geo_service.ingest.base import ProgressFn
from geo_service.risk.runner import Runner

#: What the tasks run: every worker imports it as it joins a build.
MODEL_MODULE = "geo_service.risk.model"

#: How many times the data every task reads is sent again after a lost worker took the last
#: copy of it with it (the tasks it cancelled are sent again with it).
RESENDS = 3


def import_model() -> None:
    """Import what the tasks run (a task of its own on each worker as a build starts)."""
    importlib.import_module(MODEL_MODULE)


def require_dask() -> None:
    """An error (exit 2) at once, before any source is read, when Dask is not installed."""
    if importlib.util.find_spec("distributed") is None:
        raise RiskMapError(
            "--workers and --scheduler need Dask: pip install 'diamond-risk-map[cluster]'"
        )


def local_cluster(workers: int, dashboard: bool = True, **options: Any) -> Any:
    """A ``LocalCluster`` of ``workers`` processes of one thread on 127.0.0.1.

    Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (memory back to the system
    at once); glibc then maps every large temporary afresh, and the factors of a partition
    took 1.5 times as long (``bench/README.md``). These workers keep Dask's other settings.
    """
    import dask
    from dask.distributed import LocalCluster

    environ = dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}
    environ = {k: v for k, v in environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0" if dashboard else None,
            host="127.0.0.1",
            **options,
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
    import dask
    from dask.distributed import Client, as_completed, fire_and_forget
    from distributed.client import FutureCancelledError

    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="30s")
        else:
            cluster = local_cluster(workers or 1)
            client = Client(cluster)
    except (OSError, TimeoutError) as exc:
        raise RiskMapError(f"cannot reach the Dask scheduler {scheduler or ''}: {exc}") from exc
    # Every worker imports the model now, while this process prepares the first tasks: a
    # worker that has just started would otherwise import it on reading the first data sent.
    for address in client.scheduler_info()["workers"]:
        fire_and_forget(client.submit(import_model, workers=[address], pure=False))
    link = getattr(client, "dashboard_link", None)
    where = scheduler or f"a local cluster of {workers} workers"
    log(f"computing the risk model on {where}" + (f" (dashboard: {link})" if link else ""))

    def run(
        fn: Callable[[Any, Any], Any],
        shared: Any,
        tasks: Sequence[Any],
        label: str,
        size: Callable[[Any], int] | None = None,
    ) -> Iterator[tuple[int, Any]]:
        if not len(tasks):
            return
        done = task(label, len(tasks))
        left = list(range(len(tasks)))
        finished = 0
        for sending in range(1 + RESENDS):
            if sending:
                log(
                    f"{label}: a worker was lost with the data every task reads; "
                    f"sending it again for the {len(left)} tasks left"
                )
            cancelled = []
            for i, result in _run_once(fn, shared, tasks, left, size, cancelled):
                finished += 1
                yield i, result
                del result
                done(finished, len(tasks))
            if not cancelled:
                return
            left = cancelled
        raise RiskMapError(
            f"{label}: the data every task reads was lost {1 + RESENDS} times (workers "
            f"lost mid-build); {len(left)} of {len(tasks)} tasks not computed"
        )

    def _run_once(
        fn: Callable[[Any, Any], Any],
        shared: Any,
        tasks: Sequence[Any],
        indices: list[int],
        size: Callable[[Any], int] | None,
        cancelled: list[int],
    ) -> Iterator[tuple[int, Any]]:
        """The tasks at ``indices``, each index and result as it finishes; the indices of
        tasks cancelled because the shared data was lost go to ``cancelled``."""
        try:
            # Waits for a worker up to the client's timeout (one lost may be restarting).
            # In a list of one, so that a shared list or dict is sent whole.
            [work] = client.scatter([shared], broadcast=True, hash=False)
        except TimeoutError as exc:
            raise RiskMapError(f"no Dask worker to send the build's data to: {exc}") from exc
        # Arrived on every worker: the collector need not walk it while the tasks run.
        client.run(gc.freeze)
        futures = {}
        try:
            # A task's data rides with it (below), so the graph is large by design.
            with dask.config.set({"distributed.admin.large-graph-warning-threshold": "4GiB"}):
                for i in indices:
                    # Each task's own data (a partition and the evidence within its reach)
                    # goes with it, made when it is sent: the scheduler can give it to another
                    # worker if one is lost. The largest first, so that no worker is left with
                    # one big task at the end.
                    t = tasks[i]
                    priority = size(t) if size is not None else 0
                    futures[client.submit(fn, work, t, pure=False, priority=priority)] = i
                    del t
            # Each result gathered on its own as its task finishes: ``with_results=True``
            # gathers them concurrently, and once waited forever for the last result of a
            # continent-scale run (as in dask/distributed#7331).
            # On this client's loop: ``as_completed`` otherwise waits on the current
            # client's, and a caller's own client (a notebook's) made the waits of this one
            # fail ("bound to a different event loop") once a lost result was gathered again.
            for future in as_completed(futures, loop=client.loop):
                i = futures.pop(future)
                try:
                    result = future.result()
                except FutureCancelledError:
                    # Cancelled before it ran, or after it finished: its result was lost
                    # with its worker before it was gathered.
                    cancelled.append(i)
                    continue
                future.release()
                yield i, result
                del result
        finally:
            futures.clear()
            del work
            client.run(gc.unfreeze)

    try:
        yield run
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
