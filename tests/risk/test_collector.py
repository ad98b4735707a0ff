"""The collector is kept off the model's long-lived objects while it runs, and given them back
once the outermost run ends (a build's process goes on: a service, a notebook)."""

from __future__ import annotations

import gc

from geo_service.risk.collector import frozen


def test_frozen_nests_and_gives_everything_back() -> None:
    gc.unfreeze()
    loaded = [object() for _ in range(10)]  # noqa: F841 - alive while frozen
    assert gc.get_freeze_count() == 0
    with frozen():
        outer = gc.get_freeze_count()
        assert outer > 0
        with frozen():
            assert gc.get_freeze_count() >= outer
        assert gc.get_freeze_count() >= outer  # the inner end keeps the outer's freeze
    assert gc.get_freeze_count() == 0


def test_frozen_gives_back_on_error() -> None:
    gc.unfreeze()
    try:
        with frozen():
            raise ValueError("a build that fails")
    except ValueError:
        pass
    assert gc.get_freeze_count() == 0
