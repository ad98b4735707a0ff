"""Folium element names that are the same on every render of the same page.

branca names each element with 16 random bytes (``Element._generate_id``, the hook it offers
for this), so two replicas, or two renders, of one map page would differ in every script
variable, and could not answer the same bytes. Inside ``stable_names()`` the elements are
numbered in the order they are made; everywhere else branca's own random ids stand.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps
from typing import ParamSpec, TypeVar

from branca.element import Element

_COUNTER: ContextVar[Iterator[int] | None] = ContextVar("element_counter", default=None)
_RANDOM = Element._generate_id


def _generate_id(cls: type[Element]) -> str:
    counter = _COUNTER.get()
    return _RANDOM() if counter is None else f"{next(counter):032x}"


Element._generate_id = classmethod(_generate_id)  # type: ignore[method-assign, assignment]


@contextmanager
def stable_names() -> Iterator[None]:
    """Elements made inside are numbered 1, 2, 3… (per thread and task)."""
    token = _COUNTER.set(itertools.count(1))
    try:
        yield
    finally:
        _COUNTER.reset(token)


P = ParamSpec("P")
R = TypeVar("R")


def with_stable_names(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` run inside ``stable_names()``."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with stable_names():
            return fn(*args, **kwargs)

    return wrapper
