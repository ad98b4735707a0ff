"""How the model's partitioned work runs: ``run_here`` one task after another in this
process, or ``cluster.dask_runner`` as tasks of a Dask cluster. Either yields each task's
index and result as it finishes (in any order); callers place results by index, so the order
never changes a value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol


class Runner(Protocol):
    """Computes ``fn(shared, task)`` for every task (``label`` names them in progress bars;
    ``size`` weighs a task, the largest first where that helps)."""

    def __call__(
        self,
        fn: Callable[[Any, Any], Any],
        shared: Any,
        tasks: Sequence[Any],
        label: str,
        size: Callable[[Any], int] | None = None,
    ) -> Iterator[tuple[int, Any]]:
        """Each task's index and result, as it finishes."""
        ...


def run_here(
    fn: Callable[[Any, Any], Any],
    shared: Any,
    tasks: Sequence[Any],
    label: str = "",
    size: Callable[[Any], int] | None = None,
) -> Iterator[tuple[int, Any]]:
    """The tasks one after another, in this process (a task built only when its turn comes)."""
    for i in range(len(tasks)):
        yield i, fn(shared, tasks[i])
